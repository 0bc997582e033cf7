//! TQ1_0: llama.cpp's base-3 ternary format (BitNet b1.58 and TriLMs).
//!
//! Layout from llama.cpp `ggml/src/ggml-common.h` (`block_tq1_0`); quantizer
//! and dequantizer from `ggml/src/ggml-quants.c` (`quantize_row_tq1_0_ref`,
//! `dequantize_row_tq1_0`); dot from `ggml/src/ggml-cpu/quants.c`
//! (`ggml_vec_dot_tq1_0_q8_K_generic`), as vendored in llama-cpp-python
//! 0.3.36.
//!
//! A block of 256 weights packs trits `t = w + 1`:
//! - `qs[m]`, m < 32: weights `m + 32n` (n = 0..5, weights 0..160);
//! - `qs[32 + m]`, m < 16: weights `160 + m + 16n` (n = 0..5, 160..240);
//! - `qh[j]`, j < 4: weights `240 + j + 4n` (n = 0..4, 240..256), with a 0
//!   as fifth trit.
//!
//! Five trits, first most significant, form `v < 243`, stored as
//! `ceil(v * 256 / 243)` so that trit `n` is recovered as
//! `((byte * 3^n mod 256) * 3) >> 8` — a multiply and a shift, no division.

use half::f16;

use super::q8_k::{BlockQ8K, QK_K};
use super::{QuantError, blocks_of, check_len, f16_le};

/// Bytes of five-trit groups per block.
const QS_BYTES: usize = (QK_K - 4 * QK_K / 64) / 5;
/// Bytes of four-trit groups per block.
const QH_BYTES: usize = QK_K / 64;
/// `3^n` for the trit extraction (`u8` products wrap like ggml's).
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// One TQ1_0 block: 48 + 4 bytes of trits + f16 scale = 54 bytes per 256
/// weights, 1.6875 bits per weight.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockTq1_0 {
    /// Five trits per byte.
    pub qs: [u8; QS_BYTES],
    /// Four trits per byte.
    pub qh: [u8; QH_BYTES],
    /// Block scale.
    pub d: f16,
}

const _: () = assert!(core::mem::size_of::<BlockTq1_0>() == BlockTq1_0::BYTES);

impl BlockTq1_0 {
    /// Serialized size in bytes (little-endian, no padding).
    pub const BYTES: usize = QS_BYTES + QH_BYTES + 2;

    /// Decodes one block from its `BYTES` serialized bytes.
    pub fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let mut qs = [0u8; QS_BYTES];
        qs.copy_from_slice(&b[..QS_BYTES]);
        let mut qh = [0u8; QH_BYTES];
        qh.copy_from_slice(&b[QS_BYTES..QS_BYTES + QH_BYTES]);
        Self {
            qs,
            qh,
            d: f16_le(b[Self::BYTES - 2], b[Self::BYTES - 1]),
        }
    }

    /// Serializes the block (little-endian f16).
    pub fn to_bytes(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..QS_BYTES].copy_from_slice(&self.qs);
        out[QS_BYTES..QS_BYTES + QH_BYTES].copy_from_slice(&self.qh);
        out[Self::BYTES - 2..].copy_from_slice(&self.d.to_bits().to_le_bytes());
        out
    }
}

/// Trit `n` (0 = most significant) of a packed byte, as ggml extracts it.
fn trit(byte: u8, n: usize) -> u8 {
    let q = byte.wrapping_mul(POW3[n]);
    ((u16::from(q) * 3) >> 8) as u8
}

/// Calls `f(weight_index, byte, n)` for every trit of a block: the
/// `n`-th trit of `byte` is weight `weight_index` (the layout in the module
/// docs, in ggml's loop order).
fn for_each_trit(block: &[u8], mut f: impl FnMut(usize, u8, usize)) {
    let (qs, rest) = block.split_at(QS_BYTES.min(block.len()));
    let qh = &rest[..QH_BYTES.min(rest.len())];
    let (qs32, qs16) = qs.split_at(32.min(qs.len()));
    for n in 0..5 {
        for (m, &b) in qs32.iter().enumerate() {
            f(32 * n + m, b, n);
        }
    }
    for n in 0..5 {
        for (m, &b) in qs16.iter().enumerate() {
            f(160 + 16 * n + m, b, n);
        }
    }
    for n in 0..4 {
        for (j, &b) in qh.iter().enumerate() {
            f(240 + 4 * n + j, b, n);
        }
    }
}

/// The 256 weights (`trit - 1`, each -1, 0 or +1) of one TQ1_0 block
/// (`block.len() == 54`; its f16 scale is not read), decoded as
/// [`vec_dot_tq1_0_q8_k`] decodes them: for the TL repacking and the CUDA
/// backend's repacking into TQ2_0 codes. A shorter `block` leaves the
/// weights it lacks untouched.
pub fn block_weights(block: &[u8], out: &mut [i8; QK_K]) {
    for_each_trit(block, |i, byte, n| {
        if let Some(w) = out.get_mut(i) {
            *w = trit(byte, n) as i8 - 1;
        }
    });
}

/// Packs trits (each 0..=2, first most significant) like ggml: base-3 value
/// in wrapping u8 arithmetic, then `ceil(v * 256 / 243)`.
fn pack_trits(trits: impl Iterator<Item = i32>) -> u8 {
    let v = trits.fold(0u8, |q, t| q.wrapping_mul(3).wrapping_add(t as u8));
    (u16::from(v) * 256).div_ceil(243) as u8
}

/// Quantizes `x` (a multiple of 256 values) into TQ1_0 bytes
/// (`out.len() == x.len() / 256 * 54`), exactly as llama.cpp's
/// `quantize_row_tq1_0_ref`: `d = max|x|` per block, trit
/// `lroundf(x / d) + 1` (half away from zero). For ternary weights pass
/// `w * scale`.
pub fn quantize_row_tq1_0(x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let nb = blocks_of("TQ1_0 input", x.len(), QK_K)?;
    check_len(
        "TQ1_0 output bytes",
        nb.saturating_mul(BlockTq1_0::BYTES),
        out.len(),
    )?;
    for (xb, ob) in x
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BlockTq1_0::BYTES))
    {
        // ggml's MAX(amax, |v|) keeps the exact comparison order (NaN-wise).
        let amax = xb.iter().fold(0.0f32, |a, &v| {
            let av = libm::fabsf(v);
            if a > av { a } else { av }
        });
        let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
        let t = |i: usize| libm::roundf(xb[i] * id) as i32 + 1;
        let mut block = BlockTq1_0 {
            qs: [0; QS_BYTES],
            qh: [0; QH_BYTES],
            d: f16::from_f32(amax),
        };
        for m in 0..32 {
            block.qs[m] = pack_trits((0..5).map(|n| t(32 * n + m)));
        }
        for m in 0..16 {
            block.qs[32 + m] = pack_trits((0..5).map(|n| t(160 + 16 * n + m)));
        }
        for j in 0..QH_BYTES {
            // Four trits then a zero fifth trit ("shift to the top").
            let four = (0..4).map(|n| t(240 + 4 * n + j));
            block.qh[j] = pack_trits(four.chain(core::iter::once(0)));
        }
        ob.copy_from_slice(&block.to_bytes());
    }
    Ok(())
}

/// Dequantizes TQ1_0 bytes into `y` (`y.len() == bytes / 54 * 256`), as
/// llama.cpp's `dequantize_row_tq1_0`: `y = (trit - 1) as f32 * d`.
pub fn dequantize_row_tq1_0(x: &[u8], y: &mut [f32]) -> Result<(), QuantError> {
    let nb = blocks_of("TQ1_0 bytes", x.len(), BlockTq1_0::BYTES)?;
    check_len("TQ1_0 dequantized output", nb.saturating_mul(QK_K), y.len())?;
    for (xb, yb) in x
        .chunks_exact(BlockTq1_0::BYTES)
        .zip(y.chunks_exact_mut(QK_K))
    {
        let d = f16_le(xb[BlockTq1_0::BYTES - 2], xb[BlockTq1_0::BYTES - 1]).to_f32();
        for_each_trit(xb, |i, byte, n| {
            if let Some(out) = yb.get_mut(i) {
                *out = (i32::from(trit(byte, n)) - 1) as f32 * d;
            }
        });
    }
    Ok(())
}

/// Dot product of one TQ1_0 weight row (`row.len() == K / 256 * 54`) with
/// Q8_K activations (`K / 256` blocks), as llama.cpp's
/// `ggml_vec_dot_tq1_0_q8_K_generic`: per block
/// `sumf += sumi as f32 * (w.d * a.d)`, blocks in order.
pub fn vec_dot_tq1_0_q8_k(row: &[u8], act: &[BlockQ8K]) -> Result<f32, QuantError> {
    check_len(
        "TQ1_0 weight row bytes",
        act.len().saturating_mul(BlockTq1_0::BYTES),
        row.len(),
    )?;
    let mut sumf = 0.0f32;
    for (wb, ab) in row.chunks_exact(BlockTq1_0::BYTES).zip(act) {
        let mut sumi = 0i32;
        for_each_trit(wb, |i, byte, n| {
            let q = ab.qs.get(i).copied().unwrap_or(0);
            sumi += (i32::from(trit(byte, n)) - 1) * i32::from(q);
        });
        let d = f16_le(wb[BlockTq1_0::BYTES - 2], wb[BlockTq1_0::BYTES - 1]).to_f32();
        sumf += sumi as f32 * (d * ab.d);
    }
    Ok(sumf)
}
