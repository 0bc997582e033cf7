//! Statistics of one tensor's bytes, for the rules: float moments
//! (RMS, mean |w|, finiteness) and ternary code / scale counts of the
//! quantized formats.
//!
//! Every function takes the raw bytes the GGUF reader handed out and reads
//! them with `chunks_exact` / `get`, so a short or hostile tensor gives
//! smaller counts, never a panic. Layouts: I2_S from DESIGN.md §4
//! ([`crate::quant::i2s`]); TQ1_0 / TQ2_0 from llama.cpp `ggml-common.h`
//! ([`crate::quant::tq1_0`], [`crate::quant::tq2_0`]).

use half::{bf16, f16};

use crate::gguf::GgmlType;
use crate::quant::i2s::{I2S_BLOCK_BYTES, I2S_TAIL_BYTES};
use crate::quant::tq1_0::BlockTq1_0;
use crate::quant::tq2_0::BlockTq2_0;

/// Moments of a float tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct FloatStats {
    /// Elements read.
    pub n: u64,
    /// Finite elements (the moments are over these).
    pub finite: u64,
    /// First non-finite element: index and value.
    pub first_non_finite: Option<(u64, f32)>,
    /// Sum of squares of the finite elements.
    pub sum_sq: f64,
    /// Sum of |w| of the finite elements.
    pub sum_abs: f64,
}

impl FloatStats {
    /// Root mean square of the finite elements (0 when there are none).
    pub fn rms(&self) -> f64 {
        if self.finite == 0 {
            return 0.0;
        }
        libm::sqrt(self.sum_sq / self.finite as f64)
    }

    /// Mean |w| of the finite elements (0 when there are none).
    pub fn absmean(&self) -> f64 {
        if self.finite == 0 {
            return 0.0;
        }
        self.sum_abs / self.finite as f64
    }

    /// Number of non-finite elements.
    pub fn non_finite(&self) -> u64 {
        self.n - self.finite
    }

    fn push(&mut self, v: f32) {
        if v.is_finite() {
            let d = f64::from(v);
            self.sum_sq += d * d;
            self.sum_abs += libm::fabs(d);
            self.finite += 1;
        } else if self.first_non_finite.is_none() {
            self.first_non_finite = Some((self.n, v));
        }
        self.n += 1;
    }
}

/// Moments of an F32 / F16 / BF16 tensor; `None` for any other type.
pub(crate) fn float_stats(ty: GgmlType, bytes: &[u8]) -> Option<FloatStats> {
    let mut s = FloatStats::default();
    match ty {
        GgmlType::F32 => {
            for b in bytes.chunks_exact(4) {
                s.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        GgmlType::F16 => {
            for b in bytes.chunks_exact(2) {
                s.push(f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32());
            }
        }
        GgmlType::BF16 => {
            for b in bytes.chunks_exact(2) {
                s.push(bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32());
            }
        }
        _ => return None,
    }
    Some(s)
}

/// Scales of a quantized tensor (one per tensor for I2_S, one per block for
/// TQ1_0 / TQ2_0).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ScaleStats {
    /// Scales read.
    pub count: u64,
    /// Scales that are NaN, infinite, zero or negative.
    pub bad: u64,
    /// The first bad scale: its index and value.
    pub first_bad: Option<(u64, f32)>,
    /// Sum of the good scales.
    pub sum_good: f64,
}

impl ScaleStats {
    fn push(&mut self, v: f32) {
        if v.is_finite() && v > 0.0 {
            self.sum_good += f64::from(v);
        } else {
            if self.first_bad.is_none() {
                self.first_bad = Some((self.count, v));
            }
            self.bad += 1;
        }
        self.count += 1;
    }

    /// Mean of the good scales, `None` when there are none.
    pub fn mean_good(&self) -> Option<f64> {
        let good = self.count - self.bad;
        (good > 0).then(|| self.sum_good / good as f64)
    }
}

/// Codes and scales of a ternary tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TernaryStats {
    /// Weights whose codes were read (0 when codes were not scanned).
    pub n: u64,
    /// Weights coded as 0.
    pub zeros: u64,
    /// Codes outside {-1, 0, +1} (the unused 2-bit code 3).
    pub invalid: u64,
    /// Byte offset (within the tensor) of the first invalid code.
    pub first_invalid: Option<u64>,
    /// The scales.
    pub scales: ScaleStats,
}

impl TernaryStats {
    /// Fraction of zero weights among the codes read.
    pub fn zero_fraction(&self) -> Option<f64> {
        (self.n > 0).then(|| self.zeros as f64 / self.n as f64)
    }
}

/// Per 2-bit-packed byte: how many of its four codes are 1 (weight 0) and
/// how many are 3 (invalid). Same for I2_S and TQ2_0: both store `w + 1`.
const CODES2: [(u8, u8); 256] = {
    let mut t = [(0u8, 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 4 {
            let c = (b >> (2 * k)) & 3;
            if c == 1 {
                t[b].0 += 1;
            }
            if c == 3 {
                t[b].1 += 1;
            }
            k += 1;
        }
        b += 1;
    }
    t
};

/// Adds the code counts of 2-bit-packed `bytes`; `base` is the byte offset
/// of `bytes` in the tensor (for `first_invalid`).
fn count_codes2(s: &mut TernaryStats, bytes: &[u8], base: u64) {
    for (i, &b) in bytes.iter().enumerate() {
        let (z, bad) = CODES2[usize::from(b)];
        s.zeros += u64::from(z);
        if bad > 0 {
            if s.first_invalid.is_none() {
                s.first_invalid = Some(base + i as u64);
            }
            s.invalid += u64::from(bad);
        }
    }
    s.n += 4 * bytes.len() as u64;
}

/// I2_S: the per-tensor scale at byte `n_elements / 4` (cheap), plus the
/// code counts when `codes` is set.
pub(crate) fn i2s_stats(bytes: &[u8], n_elements: u64, codes: bool) -> TernaryStats {
    let mut s = TernaryStats::default();
    let body = usize::try_from(n_elements / 4).unwrap_or(usize::MAX);
    let body_bytes = &bytes[..body.min(bytes.len())];
    if let Some(tail) = bytes.get(body..body.saturating_add(I2S_TAIL_BYTES)) {
        s.scales
            .push(f32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    }
    if codes {
        for (b, block) in body_bytes.chunks(I2S_BLOCK_BYTES).enumerate() {
            count_codes2(&mut s, block, (b * I2S_BLOCK_BYTES) as u64);
        }
    }
    s
}

/// TQ2_0: every block's f16 scale, and the code counts when `codes` is set.
pub(crate) fn tq2_0_stats(bytes: &[u8], codes: bool) -> TernaryStats {
    let mut s = TernaryStats::default();
    for (b, block) in bytes.chunks_exact(BlockTq2_0::BYTES).enumerate() {
        let (qs, d) = block.split_at(BlockTq2_0::BYTES - 2);
        s.scales
            .push(f16::from_bits(u16::from_le_bytes([d[0], d[1]])).to_f32());
        if codes {
            count_codes2(&mut s, qs, (b * BlockTq2_0::BYTES) as u64);
        }
    }
    s
}

/// Trit `n` (0..5) of a TQ1_0 byte: `((byte * 3^n mod 256) * 3) >> 8`
/// (llama.cpp `dequantize_row_tq1_0`).
const fn trit(byte: u8, n: u32) -> u8 {
    let pow = 3u8.pow(n);
    ((byte.wrapping_mul(pow) as u16 * 3) >> 8) as u8
}

/// Per TQ1_0 byte: zero weights (trit 1) among its first 5 and first 4
/// trits (`qs` bytes hold five, `qh` bytes four plus a padding trit).
const TRITS_ZERO: [(u8, u8); 256] = {
    let mut t = [(0u8, 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let mut n = 0;
        while n < 5 {
            if trit(b as u8, n) == 1 {
                t[b].0 += 1;
                if n < 4 {
                    t[b].1 += 1;
                }
            }
            n += 1;
        }
        b += 1;
    }
    t
};

/// TQ1_0: every block's f16 scale, and the zero counts when `codes` is set.
/// Base-3 packing cannot hold a non-ternary value, so `invalid` stays 0.
pub(crate) fn tq1_0_stats(bytes: &[u8], codes: bool) -> TernaryStats {
    /// Bytes of five-trit groups per block (48), then four-trit groups (4).
    const QS: usize = 48;
    let mut s = TernaryStats::default();
    for block in bytes.chunks_exact(BlockTq1_0::BYTES) {
        let (q, d) = block.split_at(BlockTq1_0::BYTES - 2);
        s.scales
            .push(f16::from_bits(u16::from_le_bytes([d[0], d[1]])).to_f32());
        if codes {
            let (qs, qh) = q.split_at(QS);
            for &b in qs {
                s.zeros += u64::from(TRITS_ZERO[usize::from(b)].0);
            }
            for &b in qh {
                s.zeros += u64::from(TRITS_ZERO[usize::from(b)].1);
            }
            s.n += 256;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::i2s::quantize_i2s;
    use crate::quant::tq1_0::quantize_row_tq1_0;
    use crate::quant::tq2_0::quantize_row_tq2_0;
    use alloc::vec;
    use alloc::vec::Vec;

    /// 256 weights: 100 zeros, the rest alternating +-1.
    fn weights() -> Vec<i8> {
        (0..256)
            .map(|i| {
                if i < 100 {
                    0
                } else if i % 2 == 0 {
                    1
                } else {
                    -1
                }
            })
            .collect()
    }

    #[test]
    fn ternary_zero_counts_match_the_quantizers() {
        let w = weights();
        let f: Vec<f32> = w.iter().map(|&x| f32::from(x) * 0.5).collect();
        let i2s = quantize_i2s(&w, 0.5, 2, 128).unwrap();
        let s = i2s_stats(&i2s, 256, true);
        assert_eq!((s.n, s.zeros, s.invalid), (256, 100, 0));
        assert_eq!(s.scales.mean_good(), Some(0.5));

        let mut tq2 = vec![0u8; BlockTq2_0::BYTES];
        quantize_row_tq2_0(&f, &mut tq2).unwrap();
        let s = tq2_0_stats(&tq2, true);
        assert_eq!((s.n, s.zeros, s.invalid), (256, 100, 0));

        let mut tq1 = vec![0u8; BlockTq1_0::BYTES];
        quantize_row_tq1_0(&f, &mut tq1).unwrap();
        let s = tq1_0_stats(&tq1, true);
        assert_eq!((s.n, s.zeros), (256, 100));
        assert_eq!(s.scales.mean_good(), Some(0.5));
    }

    #[test]
    fn code_3_and_bad_scales_are_counted() {
        let mut i2s = quantize_i2s(&weights(), f32::NAN, 2, 128).unwrap();
        i2s[5] = 0xff;
        let s = i2s_stats(&i2s, 256, true);
        assert_eq!(s.invalid, 4);
        assert_eq!(s.first_invalid, Some(5));
        assert_eq!(s.scales.bad, 1);
        // Truncated bytes: no panic, fewer counts.
        let s = i2s_stats(&i2s[..10], 256, true);
        assert_eq!((s.n, s.scales.count), (40, 0));
    }

    #[test]
    fn float_moments() {
        let b: Vec<u8> = [3.0f32, -4.0, f32::NAN]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let s = float_stats(GgmlType::F32, &b).unwrap();
        assert_eq!((s.n, s.finite, s.non_finite()), (3, 2, 1));
        assert!((s.rms() - libm::sqrt(12.5)).abs() < 1e-12);
        assert_eq!(s.absmean(), 3.5);
        assert_eq!(s.first_non_finite.map(|x| x.0), Some(2));
        assert!(float_stats(GgmlType::Q8_0, &b).is_none());
    }
}
