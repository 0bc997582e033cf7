//! Q8_K: llama.cpp's 8-bit activation format for the K-quants and the
//! ternary TQ1_0 / TQ2_0 weights.
//!
//! Layout and algorithm from llama.cpp `ggml/src/ggml-common.h` (`block_q8_K`)
//! and `ggml/src/ggml-quants.c` (`quantize_row_q8_K_ref`, `nearest_int`), as
//! vendored in llama-cpp-python 0.3.36. The x86 CPU backend calls the same
//! reference routine, so these blocks are the ones llama.cpp multiplies with.

use super::{QuantError, blocks_of, check_len};

/// Elements per K-quant super-block (llama.cpp `QK_K`).
pub const QK_K: usize = 256;

/// One block of 256 activations quantized to i8.
///
/// 8 bits per value plus an f32 scale and 16 i16 partial sums: 9.125 bits per
/// value. `bsums[j]` is the sum of `qs[16j..16j + 16]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8K {
    /// Scale: value `i` is `d * qs[i]`. Note llama.cpp's sign convention: `d`
    /// is `-max / 127` where `max` is the element of largest magnitude *with
    /// its sign*, so `d` and the `qs` are usually negated.
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; QK_K],
    /// Sums of groups of 16 `qs`.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(core::mem::size_of::<BlockQ8K>() == 4 + QK_K + QK_K / 16 * 2);

impl BlockQ8K {
    /// An all-zero block (scratch initialisation).
    pub const ZERO: Self = Self {
        d: 0.0,
        qs: [0; QK_K],
        bsums: [0; QK_K / 16],
    };
}

/// llama.cpp's `nearest_int`: rounds by adding 1.5 * 2^23 and reading the
/// mantissa bits, which is round-half-to-even for `|v| <= 4194303`. Outside
/// that range (and for NaN) it returns the same bit-derived value llama.cpp
/// does instead of asserting.
pub fn nearest_int(v: f32) -> i32 {
    let biased = v + 12_582_912.0;
    // Reinterpreting the bits as i32 is what the C code's memcpy does.
    (biased.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Quantizes `x` (`n` values, `n` a multiple of 256) into `out` (`n / 256`
/// blocks), exactly as llama.cpp's `quantize_row_q8_K_ref`:
/// `max` = the first element of largest magnitude (signed),
/// `iscale = -127 / max`, `q = min(127, nearest_int(iscale * x))`,
/// `d = 1 / iscale`; an all-zero block gets `d = 0` and zero `qs`.
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) -> Result<(), QuantError> {
    let nb = blocks_of("Q8_K activation row", x.len(), QK_K)?;
    check_len("Q8_K output blocks", nb, out.len())?;
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut max = 0.0f32;
        let mut amax = 0.0f32;
        for &v in xb {
            let av = libm::fabsf(v);
            if av > amax {
                amax = av;
                max = v;
            }
        }
        if amax == 0.0 {
            *yb = BlockQ8K::ZERO;
            continue;
        }
        let iscale = -127.0f32 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            // nearest_int(iscale * x) <= 127 in magnitude for finite input;
            // the clamp to [-128, 127] only keeps the i8 cast exact.
            *q = nearest_int(iscale * v).clamp(-128, 127) as i8;
        }
        for (sum, group) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            // 16 values of at most 128 in magnitude: fits an i16.
            *sum = group.iter().map(|&q| i16::from(q)).sum();
        }
        yb.d = 1.0 / iscale;
    }
    Ok(())
}

/// Dequantizes Q8_K blocks: `y[i] = d * qs[i]` (`y.len() == 256 * x.len()`).
pub fn dequantize_row_q8_k(x: &[BlockQ8K], y: &mut [f32]) -> Result<(), QuantError> {
    check_len(
        "Q8_K dequantized row",
        x.len().saturating_mul(QK_K),
        y.len(),
    )?;
    for (b, yb) in x.iter().zip(y.chunks_exact_mut(QK_K)) {
        for (out, &q) in yb.iter_mut().zip(&b.qs) {
            *out = b.d * f32::from(q);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-126.5), -126);
        assert_eq!(nearest_int(126.7), 127);
        assert_eq!(nearest_int(-127.0), -127);
    }

    #[test]
    fn q8_k_uses_llama_cpp_sign_convention() {
        let mut x = [0.0f32; QK_K];
        x[3] = 2.0;
        x[7] = -1.0;
        x[8] = 2.0 / 127.0; // -1 after the sign flip
        let mut out = [BlockQ8K::ZERO];
        quantize_row_q8_k(&x, &mut out).unwrap();
        let b = &out[0];
        assert_eq!(b.d, 1.0 / (-127.0f32 / 2.0));
        assert_eq!(b.qs[3], -127);
        // -127/2 * -1 = 63.5: ties go to even.
        assert_eq!(b.qs[7], 64);
        assert_eq!(b.qs[8], -1);
        assert_eq!(b.bsums[0], -127 + 64 - 1);
        assert!(b.bsums[1..].iter().all(|&s| s == 0));
    }

    #[test]
    fn q8_k_negative_max_and_zero_block() {
        let mut x = [0.0f32; 2 * QK_K];
        x[0] = -4.0;
        x[1] = 4.0; // same magnitude later: the first one wins
        let mut out = [BlockQ8K::ZERO; 2];
        out[1].d = 9.0;
        quantize_row_q8_k(&x, &mut out).unwrap();
        // max = -4: iscale = +127/4, so d > 0 and the signs are kept.
        assert_eq!(out[0].qs[0], -127);
        assert_eq!(out[0].qs[1], 127);
        assert_eq!(out[0].d, 4.0 / 127.0);
        assert_eq!(out[1], BlockQ8K::ZERO);
    }

    #[test]
    fn q8_k_rejects_bad_lengths() {
        let mut out = [BlockQ8K::ZERO];
        assert_eq!(
            quantize_row_q8_k(&[0.0; 255], &mut out),
            Err(QuantError::NotBlockMultiple {
                what: "Q8_K activation row",
                len: 255,
                block: 256
            })
        );
        assert!(quantize_row_q8_k(&[0.0; 512], &mut out).is_err());
        let mut y = [0.0f32; 10];
        assert!(dequantize_row_q8_k(&out, &mut y).is_err());
    }
}
