//! Q8_0: llama.cpp's 8-bit format with one f16 scale per 32 values, used
//! both for weights and, quantized on the fly, for the activations they
//! multiply.
//!
//! Layout from llama.cpp `ggml/src/ggml-common.h` (`block_q8_0`); quantizer
//! and dequantizer from `ggml/src/ggml-quants.c` (`quantize_row_q8_0_ref`,
//! `dequantize_row_q8_0`); dot from `ggml/src/ggml-cpu/quants.c`
//! (`ggml_vec_dot_q8_0_q8_0_generic`), as vendored in llama-cpp-python
//! 0.3.36. The reference quantizer rounds half away from zero (`roundf`);
//! llama.cpp's x86 SIMD activation quantizer rounds half to even, so its
//! activations can differ from these by one step on exact ties.

use alloc::vec::Vec;

use half::f16;

use super::{QuantError, blocks_of, check_len, f16_le, mul_size};

/// Values per Q8_0 block.
pub const QK8_0: usize = 32;

/// One Q8_0 block: f16 scale + 32 i8 values = 34 bytes per 32 values,
/// 8.5 bits per weight.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_0 {
    /// Scale: value `i` is `d * qs[i]`.
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == BlockQ8_0::BYTES);

impl BlockQ8_0 {
    /// Serialized size in bytes (little-endian, no padding).
    pub const BYTES: usize = 2 + QK8_0;
    /// An all-zero block (scratch initialisation).
    pub const ZERO: Self = Self {
        d: f16::ZERO,
        qs: [0; QK8_0],
    };

    /// Decodes one block from its `BYTES` serialized bytes.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &byte) in qs.iter_mut().zip(&b[2..]) {
            *q = byte as i8;
        }
        Self {
            d: f16_le(b[0], b[1]),
            qs,
        }
    }

    /// Serializes the block (little-endian f16).
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..2].copy_from_slice(&self.d.to_bits().to_le_bytes());
        for (byte, &q) in out[2..].iter_mut().zip(&self.qs) {
            *byte = q as u8;
        }
        out
    }
}

/// Quantizes `x` (a multiple of 32 values) into `out` (`x.len() / 32`
/// blocks), exactly as llama.cpp's `quantize_row_q8_0_ref`:
/// `d = max|x| / 127`, `q = roundf(x / d)` (half away from zero; computed as
/// `x * (1 / d)`), `d` stored as f16.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) -> Result<(), QuantError> {
    let nb = blocks_of("Q8_0 input", x.len(), QK8_0)?;
    check_len("Q8_0 output blocks", nb, out.len())?;
    for (xb, yb) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        // ggml's MAX(amax, |v|) keeps the exact comparison order (NaN-wise).
        let amax = xb.iter().fold(0.0f32, |a, &v| {
            let av = libm::fabsf(v);
            if a > av { a } else { av }
        });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f16::from_f32(d);
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            // |x * id| <= 127 (+ rounding) for finite input; `as` saturates.
            *q = libm::roundf(v * id) as i8;
        }
    }
    Ok(())
}

/// Quantizes `x` into serialized Q8_0 bytes (a weight tensor for fixtures).
pub fn quantize_q8_0_bytes(x: &[f32]) -> Result<Vec<u8>, QuantError> {
    let nb = blocks_of("Q8_0 input", x.len(), QK8_0)?;
    let total = mul_size("Q8_0 bytes", nb, BlockQ8_0::BYTES)?;
    let mut out = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| QuantError::AllocFailed { bytes: total })?;
    let mut block = [BlockQ8_0::ZERO];
    for xb in x.chunks_exact(QK8_0) {
        quantize_row_q8_0(xb, &mut block)?;
        out.extend_from_slice(&block[0].to_bytes());
    }
    Ok(out)
}

/// Dequantizes serialized Q8_0 bytes into `y` (`y.len() == bytes / 34 * 32`),
/// as llama.cpp's `dequantize_row_q8_0`: `y = q as f32 * d`.
pub fn dequantize_row_q8_0(x: &[u8], y: &mut [f32]) -> Result<(), QuantError> {
    let nb = blocks_of("Q8_0 bytes", x.len(), BlockQ8_0::BYTES)?;
    check_len("Q8_0 dequantized output", nb.saturating_mul(QK8_0), y.len())?;
    for (xb, yb) in x
        .chunks_exact(BlockQ8_0::BYTES)
        .zip(y.chunks_exact_mut(QK8_0))
    {
        let d = f16_le(xb[0], xb[1]).to_f32();
        for (out, &byte) in yb.iter_mut().zip(&xb[2..]) {
            *out = f32::from(byte as i8) * d;
        }
    }
    Ok(())
}

/// Dot product of one serialized Q8_0 weight row (`row.len() == K / 32 * 34`)
/// with Q8_0 activations (`K / 32` blocks), as llama.cpp's
/// `ggml_vec_dot_q8_0_q8_0_generic`: per block
/// `sumf += sumi as f32 * (w.d * a.d)`, blocks in order.
pub fn vec_dot_q8_0_q8_0(row: &[u8], act: &[BlockQ8_0]) -> Result<f32, QuantError> {
    check_len(
        "Q8_0 weight row bytes",
        act.len().saturating_mul(BlockQ8_0::BYTES),
        row.len(),
    )?;
    let mut sumf = 0.0f32;
    for (wb, ab) in row.chunks_exact(BlockQ8_0::BYTES).zip(act) {
        let mut sumi = 0i32;
        for (&w, &a) in wb[2..].iter().zip(&ab.qs) {
            sumi += i32::from(w as i8) * i32::from(a);
        }
        let d = f16_le(wb[0], wb[1]).to_f32() * ab.d.to_f32();
        sumf += sumi as f32 * d;
    }
    Ok(sumf)
}
