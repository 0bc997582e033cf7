//! TQ2_0: llama.cpp's 2-bit ternary format (BitNet b1.58 and TriLMs).
//!
//! Layout from llama.cpp `ggml/src/ggml-common.h` (`block_tq2_0`); quantizer
//! and dequantizer from `ggml/src/ggml-quants.c` (`quantize_row_tq2_0_ref`,
//! `dequantize_row_tq2_0`); dot from `ggml/src/ggml-cpu/quants.c`
//! (`ggml_vec_dot_tq2_0_q8_K_generic`), as vendored in llama-cpp-python
//! 0.3.36.
//!
//! Each block holds 256 weights: byte `32g + m` (g = 0, 1) carries the codes
//! of weights `128g + 32l + m` in bits `2l + 1 ..= 2l` (l = 0..4), code
//! `c = w + 1`; weight = `code - 1` times the f16 block scale `d`. Like
//! llama.cpp, the never-written code 3 reads as +2.

use half::f16;

use super::q8_k::{BlockQ8K, QK_K};
use super::{QuantError, blocks_of, check_len, f16_le};

/// One TQ2_0 block: 64 bytes of codes + f16 scale = 66 bytes per 256
/// weights, 2.0625 bits per weight.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockTq2_0 {
    /// 2-bit codes, four per byte.
    pub qs: [u8; QK_K / 4],
    /// Block scale.
    pub d: f16,
}

const _: () = assert!(core::mem::size_of::<BlockTq2_0>() == BlockTq2_0::BYTES);

impl BlockTq2_0 {
    /// Serialized size in bytes (little-endian, no padding).
    pub const BYTES: usize = QK_K / 4 + 2;

    /// Decodes one block from its `BYTES` serialized bytes.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0u8; QK_K / 4];
        qs.copy_from_slice(&b[..QK_K / 4]);
        Self {
            qs,
            d: f16_le(b[QK_K / 4], b[QK_K / 4 + 1]),
        }
    }

    /// Serializes the block (little-endian f16).
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..QK_K / 4].copy_from_slice(&self.qs);
        out[QK_K / 4..].copy_from_slice(&self.d.to_bits().to_le_bytes());
        out
    }
}

/// Quantizes `x` (a multiple of 256 values) into TQ2_0 bytes
/// (`out.len() == x.len() / 256 * 66`), exactly as llama.cpp's
/// `quantize_row_tq2_0_ref`: `d = max|x|` per block, weight
/// `lroundf(x / d)` (half away from zero). For ternary weights pass
/// `w * scale`.
pub fn quantize_row_tq2_0(x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let nb = blocks_of("TQ2_0 input", x.len(), QK_K)?;
    check_len(
        "TQ2_0 output bytes",
        nb.saturating_mul(BlockTq2_0::BYTES),
        out.len(),
    )?;
    for (xb, ob) in x
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BlockTq2_0::BYTES))
    {
        // ggml's MAX(amax, |v|) keeps the exact comparison order (NaN-wise).
        let amax = xb.iter().fold(0.0f32, |a, &v| {
            let av = libm::fabsf(v);
            if a > av { a } else { av }
        });
        let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
        let mut block = BlockTq2_0 {
            qs: [0; QK_K / 4],
            d: f16::from_f32(amax),
        };
        for (g, xg) in xb.chunks_exact(128).enumerate() {
            for m in 0..32 {
                let mut q = 0u8;
                for l in 0..4 {
                    let code = (libm::roundf(xg[32 * l + m] * id) as i32 + 1) & 3;
                    q |= (code as u8) << (2 * l);
                }
                block.qs[32 * g + m] = q;
            }
        }
        ob.copy_from_slice(&block.to_bytes());
    }
    Ok(())
}

/// Dequantizes TQ2_0 bytes into `y` (`y.len() == bytes / 66 * 256`), as
/// llama.cpp's `dequantize_row_tq2_0`: `y = (code - 1) as f32 * d`.
pub fn dequantize_row_tq2_0(x: &[u8], y: &mut [f32]) -> Result<(), QuantError> {
    let nb = blocks_of("TQ2_0 bytes", x.len(), BlockTq2_0::BYTES)?;
    check_len("TQ2_0 dequantized output", nb.saturating_mul(QK_K), y.len())?;
    for (xb, yb) in x
        .chunks_exact(BlockTq2_0::BYTES)
        .zip(y.chunks_exact_mut(QK_K))
    {
        let d = f16_le(xb[QK_K / 4], xb[QK_K / 4 + 1]).to_f32();
        for (g, yg) in yb.chunks_exact_mut(128).enumerate() {
            for (l, yl) in yg.chunks_exact_mut(32).enumerate() {
                for (m, out) in yl.iter_mut().enumerate() {
                    let code = (xb[32 * g + m] >> (2 * l)) & 3;
                    *out = (i32::from(code) - 1) as f32 * d;
                }
            }
        }
    }
    Ok(())
}

/// The 256 weights (`code - 1`) of one TQ2_0 block (its 64 code bytes
/// `qs`), for the TL repacking: `Err(i)` names the first weight whose code
/// is 3 (weight +2, which no ternary table holds).
pub(crate) fn block_weights(qs: &[u8], out: &mut [i8; QK_K]) -> Result<(), usize> {
    for (g, (qg, og)) in qs
        .chunks_exact(32)
        .zip(out.chunks_exact_mut(128))
        .enumerate()
    {
        for (l, ol) in og.chunks_exact_mut(32).enumerate() {
            for (m, (&byte, w)) in qg.iter().zip(ol.iter_mut()).enumerate() {
                let code = (byte >> (2 * l)) & 3;
                if code == 3 {
                    return Err(128 * g + 32 * l + m);
                }
                *w = code as i8 - 1;
            }
        }
    }
    Ok(())
}

/// `sum (code - 1) * q` over one block: `qs` its 64 code bytes, `a` the 256
/// Q8_K values.
fn block_dot_i32(qs: &[u8], a: &[i8]) -> i32 {
    let mut sum = 0i32;
    for (qg, ag) in qs.chunks_exact(32).zip(a.chunks_exact(128)) {
        for (l, al) in ag.chunks_exact(32).enumerate() {
            for (&byte, &q) in qg.iter().zip(al) {
                let w = i32::from((byte >> (2 * l)) & 3) - 1;
                sum += w * i32::from(q);
            }
        }
    }
    sum
}

/// Dot product of one TQ2_0 weight row (`row.len() == K / 256 * 66`) with
/// Q8_K activations (`K / 256` blocks), as llama.cpp's
/// `ggml_vec_dot_tq2_0_q8_K_generic`: per block
/// `sumf += sumi as f32 * (a.d * w.d)`, blocks in order.
pub fn vec_dot_tq2_0_q8_k(row: &[u8], act: &[BlockQ8K]) -> Result<f32, QuantError> {
    check_len(
        "TQ2_0 weight row bytes",
        act.len().saturating_mul(BlockTq2_0::BYTES),
        row.len(),
    )?;
    let mut sumf = 0.0f32;
    for (wb, ab) in row.chunks_exact(BlockTq2_0::BYTES).zip(act) {
        let (qs, d) = wb.split_at(QK_K / 4);
        let sumi = block_dot_i32(qs, &ab.qs);
        let d = ab.d * f16_le(d[0], d[1]).to_f32();
        sumf += sumi as f32 * d;
    }
    Ok(sumf)
}
