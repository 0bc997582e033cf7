//! I2_S: Microsoft's ternary format (bitnet.cpp, the format of
//! microsoft/bitnet-b1.58-2B-4T-gguf), byte-exact per DESIGN.md §4.
//!
//! Layout (bitnet.cpp `ggml-bitnet-mad.cpp`, `quantize_i2_s`): the tensor is
//! flattened row-major (K contiguous) and cut into blocks of 128 weights
//! stored in 32 bytes; weight `w` is the 2-bit code `c = w + 1`, and
//! `byte[32b + p] = c[128b + p] << 6 | c[128b + 32 + p] << 4 |
//! c[128b + 64 + p] << 2 | c[128b + 96 + p]`. One f32 scale for the whole
//! tensor sits at byte offset `ne / 4`, inside a 32-byte tail, so a tensor
//! takes `M * K / 4 + 32` bytes. K is a multiple of 128, so rows never share
//! a block. Code 3 is never written; readers treat it as weight 0.
//!
//! Activations (DESIGN.md §5) are quantized per token over the whole K:
//! `m = max(1e-5, max|x|)`, `s = (127 / m)` computed in f64 and rounded to
//! f32, `q = clamp(round_half_even(x * s), -128, 127)` with `x * s` in f32.
//! A row's output is `((sum c*q - sum q) as f32 / s) * w_scale`. The integer
//! [`i2s_dot_i32`] is the contract every SIMD, GPU and wasm kernel must
//! reproduce exactly.

use alloc::vec::Vec;

use super::{QuantError, blocks_of, check_len, mul_size};

/// Weights per I2_S block.
pub const I2S_BLOCK_LEN: usize = 128;
/// Bytes per I2_S block.
pub const I2S_BLOCK_BYTES: usize = 32;
/// Bytes of the per-tensor tail that holds the f32 scale at its start.
pub const I2S_TAIL_BYTES: usize = 32;
/// Largest row length [`i2s_dot_i32`] accepts: `|sum c*q - sum q| <=
/// 384 * K` must fit an i32.
pub const I2S_MAX_K: usize = 1 << 22;

/// One block of 128 ternary weights as 2-bit codes: 2 bits per weight (plus
/// 256 tail bits per tensor).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockI2S {
    /// `qs[p]` holds the codes of weights `p`, `32 + p`, `64 + p`, `96 + p`
    /// in bits 7..6, 5..4, 3..2, 1..0.
    pub qs: [u8; I2S_BLOCK_BYTES],
}

const _: () = assert!(core::mem::size_of::<BlockI2S>() * 4 == I2S_BLOCK_LEN);

/// The code used in `sum c*q - sum q` for each 2-bit code: codes 0, 1, 2
/// stand for -1, 0, +1; the unused code 3 reads as weight 0, i.e. as code 1.
const EFFECTIVE_CODE: [i32; 4] = [0, 1, 2, 1];

/// Bit shift of the code of group `j` (weights `32j..32j + 32` of a block).
const fn group_shift(j: usize) -> u32 {
    6 - 2 * j as u32
}

/// Checks the `rows x cols` shape and returns the bytes of the weight part
/// (`rows * cols / 4`).
fn body_bytes(rows: usize, cols: usize) -> Result<usize, QuantError> {
    let blocks = blocks_of("I2_S row length", cols, I2S_BLOCK_LEN)?;
    let row_bytes = mul_size("I2_S row bytes", blocks, I2S_BLOCK_BYTES)?;
    mul_size("I2_S tensor bytes", row_bytes, rows)
}

/// Packs ternary `weights` (`rows x cols`, row-major, values in {-1, 0, 1})
/// and the tensor scale into a complete I2_S tensor of `rows * cols / 4 + 32`
/// bytes: codes, then `scale` as little-endian f32, then 28 zero bytes.
pub fn quantize_i2s(
    weights: &[i8],
    scale: f32,
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, QuantError> {
    let body = body_bytes(rows, cols)?;
    check_len(
        "I2_S weights",
        mul_size("I2_S weights", rows, cols)?,
        weights.len(),
    )?;
    let total = body
        .checked_add(I2S_TAIL_BYTES)
        .ok_or(QuantError::SizeOverflow {
            what: "I2_S tensor bytes",
        })?;
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| QuantError::AllocFailed { bytes: total })?;
    for (b, block) in weights.chunks_exact(I2S_BLOCK_LEN).enumerate() {
        let mut packed = BlockI2S {
            qs: [0; I2S_BLOCK_BYTES],
        };
        for (j, group) in block.chunks_exact(I2S_BLOCK_BYTES).enumerate() {
            for (p, &w) in group.iter().enumerate() {
                if !(-1..=1).contains(&w) {
                    let index = b * I2S_BLOCK_LEN + j * I2S_BLOCK_BYTES + p;
                    return Err(QuantError::NotTernary { index, value: w });
                }
                let code = (w + 1) as u8;
                packed.qs[p] |= code << group_shift(j);
            }
        }
        out.extend_from_slice(&packed.qs);
    }
    out.extend_from_slice(&scale.to_le_bytes());
    out.resize(total, 0);
    Ok(out)
}

/// The per-tensor scale of an I2_S tensor of shape `rows x cols`
/// (`tensor.len()` must be `rows * cols / 4 + 32`).
pub fn i2s_scale(tensor: &[u8], rows: usize, cols: usize) -> Result<f32, QuantError> {
    let body = body_bytes(rows, cols)?;
    let total = body
        .checked_add(I2S_TAIL_BYTES)
        .ok_or(QuantError::SizeOverflow {
            what: "I2_S tensor bytes",
        })?;
    check_len("I2_S tensor bytes", total, tensor.len())?;
    let mut le = [0u8; 4];
    le.copy_from_slice(&tensor[body..body + 4]);
    Ok(f32::from_le_bytes(le))
}

/// Reference dequantization: `out[i] = w[i] * scale` for the whole
/// `rows x cols` tensor (code 3 gives 0). For tools and tests; the matmul
/// path never dequantizes.
pub fn dequantize_i2s(
    tensor: &[u8],
    rows: usize,
    cols: usize,
    out: &mut [f32],
) -> Result<(), QuantError> {
    let scale = i2s_scale(tensor, rows, cols)?;
    check_len(
        "I2_S dequantized output",
        mul_size("I2_S output", rows, cols)?,
        out.len(),
    )?;
    for (block, ob) in tensor
        .chunks_exact(I2S_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(I2S_BLOCK_LEN))
    {
        for (j, group) in ob.chunks_exact_mut(I2S_BLOCK_BYTES).enumerate() {
            for (o, &byte) in group.iter_mut().zip(block) {
                let code = (byte >> group_shift(j)) & 3;
                *o = (EFFECTIVE_CODE[usize::from(code)] - 1) as f32 * scale;
            }
        }
    }
    Ok(())
}

/// Quantizes one token's activations `x` (length K) into `q` (length K) and
/// returns the activation scale `s` (see the module docs). Non-finite input
/// cannot panic: NaN is ignored by the max and quantizes to 0.
pub fn quantize_act_i2s(x: &[f32], q: &mut [i8]) -> Result<f32, QuantError> {
    check_len("I2_S quantized activations", x.len(), q.len())?;
    let mut m = 1e-5f32;
    for &v in x {
        let av = libm::fabsf(v);
        if av > m {
            m = av;
        }
    }
    let s = (127.0f64 / f64::from(m)) as f32;
    for (qi, &v) in q.iter_mut().zip(x) {
        *qi = quantize_act_value(v, s);
    }
    Ok(s)
}

/// `clamp(round_half_even(v * s), -128, 127)`; NaN gives 0.
pub(crate) fn quantize_act_value(v: f32, s: f32) -> i8 {
    let r = libm::rintf(v * s);
    // NaN is mapped to 0 explicitly: a wasm build with `relaxed-simd` lets
    // LLVM vectorize `as i8` into `i32x4.relaxed_trunc_f32x4_s`, whose NaN
    // result is implementation-defined (V8 gave -128). Every other value
    // is clamped into range first, where the relaxed truncation is exact.
    if r.is_nan() {
        0
    } else {
        r.clamp(-128.0, 127.0) as i8
    }
}

/// The exact integer dot product `sum_k w_k * q_k` of one I2_S weight row
/// (`row.len() == K / 4`) with quantized activations `q` (`K` values),
/// computed as `sum c*q - sum q`. K must be a multiple of 128 and at most
/// [`I2S_MAX_K`].
pub fn i2s_dot_i32(row: &[u8], q: &[i8]) -> Result<i32, QuantError> {
    let blocks = blocks_of("I2_S activations", q.len(), I2S_BLOCK_LEN)?;
    if q.len() > I2S_MAX_K {
        return Err(QuantError::TooLarge {
            what: "I2_S row length",
            value: q.len(),
            max: I2S_MAX_K,
        });
    }
    check_len("I2_S weight row bytes", blocks * I2S_BLOCK_BYTES, row.len())?;
    let mut sum_cq = 0i32;
    let mut sum_q = 0i32;
    for (block, qb) in row
        .chunks_exact(I2S_BLOCK_BYTES)
        .zip(q.chunks_exact(I2S_BLOCK_LEN))
    {
        for (j, qg) in qb.chunks_exact(I2S_BLOCK_BYTES).enumerate() {
            let shift = group_shift(j);
            for (&byte, &qv) in block.iter().zip(qg) {
                let code = i32::from((byte >> shift) & 3);
                // EFFECTIVE_CODE without a table lookup, so the loop
                // vectorizes: 3 -> 3 - 2 = 1; 0, 1, 2 unchanged.
                let c = code - 2 * ((code >> 1) & code & 1);
                sum_cq += c * i32::from(qv);
                sum_q += i32::from(qv);
            }
        }
    }
    Ok(sum_cq - sum_q)
}

/// A row's output from its integer dot product:
/// `(dot as f32 / act_scale) * weight_scale`.
pub fn i2s_output(dot: i32, act_scale: f32, weight_scale: f32) -> f32 {
    (dot as f32 / act_scale) * weight_scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_edge_cases() {
        // All zeros: m = 1e-5, s = 127e5, everything quantizes to 0.
        let mut q = [1i8; 128];
        let s = quantize_act_i2s(&[0.0; 128], &mut q).unwrap();
        assert_eq!(s, (127.0f64 / f64::from(1e-5f32)) as f32);
        assert!(q.iter().all(|&v| v == 0));

        // Ties at .5 go to even: with max 127, s = 1 exactly.
        let x = [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -127.0];
        let mut q = [0i8; 8];
        assert_eq!(quantize_act_i2s(&x, &mut q).unwrap(), 1.0);
        assert_eq!(q, [127, 0, 2, 2, 0, -2, -2, -127]);

        // The extreme negative value reaches -127, never -128 ...
        let x = [-3.0f32, 1.0, 2.999_999_8];
        let mut q = [0i8; 3];
        quantize_act_i2s(&x, &mut q).unwrap();
        assert_eq!(q[0], -127);
        // ... but the clamp is there for products beyond the i8 range.
        assert_eq!(quantize_act_value(-1.0, 128.4), -128);
        assert_eq!(quantize_act_value(-1.0, 1000.0), -128);
        assert_eq!(quantize_act_value(1.0, 1000.0), 127);
        assert_eq!(quantize_act_value(f32::NAN, 1.0), 0);
    }

    #[test]
    fn non_finite_activations_do_not_panic() {
        let mut q = [0i8; 4];
        let s = quantize_act_i2s(&[f32::INFINITY, 1.0, f32::NAN, -2.0], &mut q).unwrap();
        assert_eq!(s, 0.0);
        assert_eq!(q, [0; 4]);
    }

    #[test]
    fn byte_layout_matches_design_formula() {
        // Weight 128b + 32j + p lands in byte 32b + p at shift 6 - 2j.
        let mut w = [0i8; 256];
        w[0] = 1; // c=2 -> byte 0 bits 7..6
        w[32] = -1; // c=0 -> byte 0 bits 5..4
        w[96 + 5] = 1; // c=2 -> byte 5 bits 1..0
        w[128 + 64 + 31] = -1; // c=0 -> byte 32+31 bits 3..2
        let t = quantize_i2s(&w, 0.25, 1, 256).unwrap();
        assert_eq!(t.len(), 64 + 32);
        assert_eq!(t[0], 0b10_00_01_01);
        assert_eq!(t[5], 0b01_01_01_10);
        assert_eq!(t[63], 0b01_01_00_01);
        assert!(
            t[..64]
                .iter()
                .enumerate()
                .all(|(i, &b)| [0, 5, 63].contains(&i) || b == 0x55)
        );
        assert_eq!(t[64..68], 0.25f32.to_le_bytes());
        assert!(t[68..].iter().all(|&b| b == 0));
        assert_eq!(i2s_scale(&t, 1, 256), Ok(0.25));
    }

    #[test]
    fn code_three_reads_as_zero() {
        let row = [0xffu8; 32];
        let q = [5i8; 128];
        assert_eq!(i2s_dot_i32(&row, &q), Ok(0));
        let mut t = [0xffu8; 64];
        t[32..36].copy_from_slice(&2.0f32.to_le_bytes());
        let mut out = [1.0f32; 128];
        dequantize_i2s(&t, 1, 128, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(
            quantize_i2s(&[0; 100], 1.0, 1, 100),
            Err(QuantError::NotBlockMultiple {
                what: "I2_S row length",
                len: 100,
                block: 128
            })
        );
        assert_eq!(
            quantize_i2s(&[2; 128], 1.0, 1, 128),
            Err(QuantError::NotTernary { index: 0, value: 2 })
        );
        assert!(quantize_i2s(&[0; 128], 1.0, 2, 128).is_err());
        assert!(quantize_i2s(&[], 1.0, usize::MAX, 128).is_err());
        assert!(i2s_scale(&[0; 63], 1, 128).is_err());
        assert!(i2s_dot_i32(&[0; 32], &[0; 256]).is_err());
        assert!(i2s_dot_i32(&[0; 32], &[0; 127]).is_err());
        let mut q = [0i8; 3];
        assert!(quantize_act_i2s(&[0.0; 4], &mut q).is_err());
        let mut out = [0.0f32; 127];
        assert!(dequantize_i2s(&[0; 64], 1, 128, &mut out).is_err());
    }
}
