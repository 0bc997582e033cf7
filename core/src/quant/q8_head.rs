//! `--lm-head q8`: a float LM head (typically the tied F16 embedding)
//! quantized at load to int8 per row, used only for the output projection.
//!
//! **This changes numerics** (unlike every other kernel choice): the
//! logits differ from the exact F16 head by the int8 rounding of weights
//! and activations, so greedy tokens may differ. It is opt-in, and the
//! kernel ids (`q8_head_gemv_*`) appear in the receipts' kernel evidence.
//!
//! Row `r` keeps `d_r = max|w_r| / 127` and `w_q = round_half_even(w / d_r)`
//! in `-127..=127` (an all-zero row has `d_r = 0`, codes 0). Activations
//! are quantized per token exactly like I2_S's
//! ([`super::i2s::quantize_act_i2s`], scale `s`), and the output is
//! `(sum w_q * q) as f32 / s * d_r`, the integer part exact on every path.

use alloc::vec::Vec;

use super::{QuantError, QuantType, check_len, mul_size};

/// Largest row length: `|sum w_q * q| <= 127 * 128 * K` must fit an i32.
pub const Q8_HEAD_MAX_K: usize = 1 << 17;

/// A `rows x cols` matrix as int8 rows with one f32 scale each (8 bits per
/// weight plus 32 bits per row); owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Q8Rows {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    scales: Vec<f32>,
}

/// `1.5 * 2^23`: adding it to an f32 of magnitude below `2^22` leaves a
/// sum whose unit in the last place is 1, so the addition rounds to an
/// integer (ties to even, the default rounding mode).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `libm::rintf(x)` for `|x| <= 127` (and NaN to NaN), without the call:
/// `(x + ROUND_MAGIC) - ROUND_MAGIC` (both steps exact but the first's
/// rounding). Loading a 2B model's head went from ~1.3 s of `rintf` to a
/// few vector instructions per 16 weights. Clamping to the integer bounds
/// before rounding equals clamping after.
#[inline]
fn round_small(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

impl Q8Rows {
    /// Quantizes a float matrix (`F32`, `F16` or `BF16` bytes, `rows x
    /// cols`, row-major) per row (module docs).
    pub fn from_float(
        weight: &[u8],
        qtype: QuantType,
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        if rows == 0 || cols == 0 {
            return Err(QuantError::EmptyShape { rows, cols });
        }
        if cols > Q8_HEAD_MAX_K {
            return Err(QuantError::TooLarge {
                what: "q8 head row length",
                value: cols,
                max: Q8_HEAD_MAX_K,
            });
        }
        let width = match qtype {
            QuantType::F32 => 4,
            QuantType::F16 | QuantType::BF16 => 2,
            _ => {
                return Err(QuantError::UnsupportedType { name: qtype.name() });
            }
        };
        let n = mul_size("q8 head weights", rows, cols)?;
        check_len(
            "q8 head source bytes",
            mul_size("q8 head bytes", n, width)?,
            weight.len(),
        )?;
        let mut qs = Vec::new();
        qs.try_reserve_exact(n)
            .map_err(|_| QuantError::AllocFailed { bytes: n })?;
        let mut scales = Vec::new();
        scales
            .try_reserve_exact(rows)
            .map_err(|_| QuantError::AllocFailed { bytes: 4 * rows })?;
        let mut row = Vec::new();
        row.try_reserve_exact(cols)
            .map_err(|_| QuantError::AllocFailed { bytes: 4 * cols })?;
        for wr in weight.chunks_exact(cols * width) {
            row.clear();
            row.extend(wr.chunks_exact(width).map(|b| match qtype {
                QuantType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                QuantType::F16 => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
                _ => half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            }));
            let m = row
                .iter()
                .filter(|v| v.is_finite())
                .fold(0.0f32, |m, v| m.max(libm::fabsf(*v)));
            let d = m / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            qs.extend(
                row.iter()
                    .map(|&v| round_small((v * inv).clamp(-127.0, 127.0)) as i8),
            );
            scales.push(d);
        }
        Ok(Self {
            rows,
            cols,
            qs,
            scales,
        })
    }

    /// Output features M.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features K.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The int8 codes, `rows x cols`.
    pub fn qs(&self) -> &[i8] {
        &self.qs
    }

    /// The per-row scales `d_r`.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Bytes one matmul reads (codes and scales).
    pub fn bytes(&self) -> usize {
        self.qs.len() + 4 * self.scales.len()
    }
}

/// The exact integer dot of an int8 row with int8 activations (portable).
pub fn q8_dot_i32(w: &[i8], q: &[i8]) -> i32 {
    w.iter()
        .zip(q)
        .map(|(&a, &b)| i32::from(a) * i32::from(b))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_small_is_rintf() {
        // Every tie and its neighbours, a fine sweep, the bounds, NaN.
        let mut xs = alloc::vec![-127.0f32, 127.0, 0.0, -0.0, f32::MIN_POSITIVE, 0.49999997];
        for i in -255..=255 {
            let half = i as f32 * 0.5;
            xs.extend([
                half,
                f32::from_bits(half.to_bits() + 1),
                f32::from_bits(half.to_bits().wrapping_sub(1)),
            ]);
        }
        xs.extend((0..100_000).map(|i| -127.0 + i as f32 * 0.00254));
        for x in xs.into_iter().filter(|x| x.abs() <= 127.0) {
            assert_eq!(round_small(x), libm::rintf(x), "{x}");
        }
        assert!(round_small(f32::NAN).is_nan());
    }

    #[test]
    fn rows_quantize_to_127_at_the_max() {
        let w: Vec<u8> = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0]
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
            .collect();
        let q = Q8Rows::from_float(&w, QuantType::F16, 2, 4).unwrap();
        assert_eq!(q.qs(), &[64, -127, 32, 0, 0, 0, 0, 0]);
        assert_eq!(q.scales(), &[1.0 / 127.0, 0.0]);
        assert!(Q8Rows::from_float(&w, QuantType::I2S, 2, 4).is_err());
        assert!(Q8Rows::from_float(&w[..15], QuantType::F16, 2, 4).is_err());
    }
}
