//! F16 weights (IEEE half precision, little-endian), e.g. the tied
//! `token_embd` LM head of BitNet-b1.58-2B-4T.
//!
//! Two dot products:
//! - [`dot_f16_f32`] keeps the activations in f32 and accumulates in 16 f32
//!   lanes; this is what [`super::QuantizedLinear`] runs.
//! - [`dot_f16_f16_ggml`] reproduces llama.cpp's scalar `ggml_vec_dot_f16`
//!   (`ggml/src/ggml-cpu/vec.cpp`, non-SIMD build): the F16 type's
//!   `vec_dot_type` is F16, so llama.cpp first rounds the activations to f16
//!   ([`f32_to_f16_row`], round to nearest even like `ggml_cpu_fp32_to_fp16`),
//!   then sums the f32 products in f64 (`ggml_float`) in index order. Its
//!   SIMD builds sum in f32 vector lanes instead, so they agree with this
//!   only to float tolerance.

use half::f16;

use super::f32::{F16_LANES, lane_dot};
use super::{QuantError, check_len, f16_le};

/// Dot product of one F16 weight row (`row.len() == 2 * x.len()`) with f32
/// activations, accumulated in 16 f32 lanes (lane `i % 16`, halving
/// reduction).
pub fn dot_f16_f32(row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    lane_dot::<2, F16_LANES>("F16 weight row bytes", row, x, |[lo, hi]| {
        f16_le(lo, hi).to_f32()
    })
}

/// Rounds activations to f16 (round to nearest even), as llama.cpp does
/// before an F16 matmul (`x.len() == out.len()`).
pub fn f32_to_f16_row(x: &[f32], out: &mut [f16]) -> Result<(), QuantError> {
    check_len("f16 activations", x.len(), out.len())?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f16::from_f32(v);
    }
    Ok(())
}

/// llama.cpp-compatible dot product of one F16 weight row
/// (`row.len() == 2 * x.len()`) with f16 activations: f32 products summed in
/// f64 in index order, rounded to f32 at the end.
pub fn dot_f16_f16_ggml(row: &[u8], x: &[f16]) -> Result<f32, QuantError> {
    check_len("F16 weight row bytes", x.len().saturating_mul(2), row.len())?;
    let mut sum = 0.0f64;
    for (w, xv) in row.chunks_exact(2).zip(x) {
        sum += f64::from(f16_le(w[0], w[1]).to_f32() * xv.to_f32());
    }
    Ok(sum as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_dots_agree_on_exact_values() {
        let w = [1.5f32, -2.0, 0.25, 3.0, 1.0, 1.0, 1.0, 1.0, -0.5];
        let x = [2.0f32, 0.5, 4.0, -1.0, 1.0, 2.0, 3.0, 4.0, 2.0];
        let bytes: alloc::vec::Vec<u8> = w
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let want: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert_eq!(dot_f16_f32(&bytes, &x), Ok(want));
        let mut xh = [f16::ZERO; 9];
        f32_to_f16_row(&x, &mut xh).unwrap();
        assert_eq!(dot_f16_f16_ggml(&bytes, &xh), Ok(want));
        assert!(dot_f16_f32(&bytes[..16], &x).is_err());
        assert!(dot_f16_f16_ggml(&bytes, &xh[..8]).is_err());
    }

    #[test]
    fn ggml_variant_rounds_activations_to_f16() {
        // 1 + 2^-12 is not an f16: llama.cpp's path sees 1.0.
        let x = [1.0f32 + 1.0 / 4096.0];
        let row = f16::ONE.to_bits().to_le_bytes();
        let mut xh = [f16::ZERO];
        f32_to_f16_row(&x, &mut xh).unwrap();
        assert_eq!(dot_f16_f16_ggml(&row, &xh), Ok(1.0));
        assert_eq!(dot_f16_f32(&row, &x), Ok(x[0]));
    }
}
