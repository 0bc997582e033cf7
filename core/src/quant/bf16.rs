//! BF16 weights (bfloat16: the upper 16 bits of an f32, little-endian).
//!
//! Two dot products, as for F16:
//! - [`dot_bf16_f32`] keeps the activations in f32 and accumulates in 8 f32
//!   lanes; this is what [`super::QuantizedLinear`] runs.
//! - [`dot_bf16_bf16_ggml`] reproduces llama.cpp's scalar `ggml_vec_dot_bf16`
//!   (`ggml/src/ggml-cpu/vec.cpp`, non-SIMD build): the BF16 type's
//!   `vec_dot_type` is BF16, so llama.cpp first rounds the activations to
//!   bf16 ([`f32_to_bf16_row`], round to nearest even like
//!   `ggml_compute_fp32_to_bf16`; NaN payloads may differ), then sums the f32
//!   products in f64 in index order.

use half::bf16;

use super::f32::{FLOAT_LANES, lane_dot};
use super::{QuantError, check_len};

/// bf16 bits to f32: the bits are the top half of the f32.
fn bf16_le(lo: u8, hi: u8) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([lo, hi])) << 16)
}

/// Dot product of one BF16 weight row (`row.len() == 2 * x.len()`) with f32
/// activations, accumulated in 8 f32 lanes (lane `i % 8`, halving reduction).
pub fn dot_bf16_f32(row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    lane_dot::<2, FLOAT_LANES>("BF16 weight row bytes", row, x, |[lo, hi]| bf16_le(lo, hi))
}

/// Rounds activations to bf16 (round to nearest even), as llama.cpp does
/// before a BF16 matmul (`x.len() == out.len()`).
pub fn f32_to_bf16_row(x: &[f32], out: &mut [bf16]) -> Result<(), QuantError> {
    check_len("bf16 activations", x.len(), out.len())?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = bf16::from_f32(v);
    }
    Ok(())
}

/// llama.cpp-compatible dot product of one BF16 weight row
/// (`row.len() == 2 * x.len()`) with bf16 activations: f32 products summed
/// in f64 in index order, rounded to f32 at the end.
pub fn dot_bf16_bf16_ggml(row: &[u8], x: &[bf16]) -> Result<f32, QuantError> {
    check_len(
        "BF16 weight row bytes",
        x.len().saturating_mul(2),
        row.len(),
    )?;
    let mut sum = 0.0f64;
    for (w, xv) in row.chunks_exact(2).zip(x) {
        sum += f64::from(bf16_le(w[0], w[1]) * xv.to_f32());
    }
    Ok(sum as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_dots_agree_on_exact_values() {
        let w = [1.5f32, -2.0, 0.25, 3.0, 1.0, 1.0, 1.0, 1.0, -0.5, 6.0];
        let x = [2.0f32, 0.5, 4.0, -1.0, 1.0, 2.0, 3.0, 4.0, 2.0, 0.125];
        let bytes: alloc::vec::Vec<u8> = w
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let want: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert_eq!(dot_bf16_f32(&bytes, &x), Ok(want));
        let mut xb = [bf16::ZERO; 10];
        f32_to_bf16_row(&x, &mut xb).unwrap();
        assert_eq!(dot_bf16_bf16_ggml(&bytes, &xb), Ok(want));
        assert!(dot_bf16_f32(&bytes[..18], &x).is_err());
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        // 1 + 2^-8 lies halfway between bf16 1.0 and 1 + 2^-7: even is 1.0.
        let mut o = [bf16::ZERO; 2];
        f32_to_bf16_row(&[1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0], &mut o).unwrap();
        assert_eq!(o[0].to_f32(), 1.0);
        assert_eq!(o[1].to_f32(), 1.0 + 4.0 / 256.0);
    }
}
