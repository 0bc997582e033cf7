//! AVX2 (+ F16C) kernels: I2_S GEMV/GEMM, TQ2_0 and TQ1_0 x Q8_K GEMV/GEMM,
//! F16 GEMV, I2_S activation quantization. Each reproduces the portable
//! kernel of [`crate::quant`] exactly (see the module docs of [`super`]).
//!
//! The ternary dots use `vpmaddubsw` on the unsigned 2-bit codes (or trits)
//! times the signed int8 activations and subtract `sum q` once, as
//! bitnet.cpp's `ggml-bitnet-mad.cpp` and llama.cpp's x86 TQ kernels do.
//!
//! Callers (the dispatch in [`super`]) check every shape first; the entry
//! points document what they rely on, and index only through slices and
//! fixed-size arrays derived from them.

use core::arch::x86_64::*;

use half::f16;

use super::{PREFETCH_BYTES, act_scale, quantize_act_value, sum_i8};
use crate::quant::q8_k::BlockQ8K;
use crate::quant::tq1_0::BlockTq1_0;
use crate::quant::tq2_0::BlockTq2_0;

/// Loads 32 bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn load_u8(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Loads 32 activations starting at `32 * j` of a 128-value group.
#[inline]
#[target_feature(enable = "avx2")]
fn load_i8(q: &[i8; 128], j: usize) -> __m256i {
    let part: &[i8; 32] = q[32 * j..32 * j + 32].try_into().unwrap_or(&[0; 32]);
    // SAFETY: `part` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(part.as_ptr().cast()) }
}

/// Horizontal sum of 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// I2_S code-3 fix on packed bytes: every 2-bit field `11` becomes `01`
/// (weight 0), the others are kept, as [`crate::quant::i2s`]'s
/// `EFFECTIVE_CODE`.
#[inline]
#[target_feature(enable = "avx2")]
fn i2s_fix_code3(b: __m256i) -> __m256i {
    // Low bit of each field where both bits are set, moved to the high bit.
    let both = _mm256_and_si256(
        _mm256_and_si256(b, _mm256_srli_epi16::<1>(b)),
        _mm256_set1_epi8(0x55),
    );
    _mm256_xor_si256(b, _mm256_add_epi8(both, both))
}

/// `sum c*q` of one I2_S row (32-byte blocks) with `N` tokens (128-value
/// groups, as many as the row has blocks), codes fixed for code 3.
#[inline]
#[target_feature(enable = "avx2")]
fn i2s_row<const N: usize>(row: &[[u8; 32]], q: [&[[i8; 128]]; N]) -> [i32; N] {
    let m3 = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); N];
    for (bi, blk) in row.iter().enumerate() {
        // Software prefetch ahead (into the next rows near the end of this
        // one: rows are contiguous). A prefetch never faults, and
        // `wrapping_add` keeps the address computation defined.
        _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
        let b = i2s_fix_code3(load_u8(blk));
        let c = [
            _mm256_and_si256(_mm256_srli_epi16::<6>(b), m3),
            _mm256_and_si256(_mm256_srli_epi16::<4>(b), m3),
            _mm256_and_si256(_mm256_srli_epi16::<2>(b), m3),
            _mm256_and_si256(b, m3),
        ];
        for t in 0..N {
            let Some(qb) = q[t].get(bi) else { continue };
            // |c*q pair| <= 2*128*2 = 512, four of them fit an i16.
            let p01 = _mm256_add_epi16(
                _mm256_maddubs_epi16(c[0], load_i8(qb, 0)),
                _mm256_maddubs_epi16(c[1], load_i8(qb, 1)),
            );
            let p23 = _mm256_add_epi16(
                _mm256_maddubs_epi16(c[2], load_i8(qb, 2)),
                _mm256_maddubs_epi16(c[3], load_i8(qb, 3)),
            );
            let p = _mm256_add_epi16(p01, p23);
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p, ones));
        }
    }
    let mut out = [0i32; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_i32(a);
    }
    out
}

/// I2_S GEMM: `w` holds `out.len() / batch` rows of `row_bytes` bytes,
/// `q` holds `batch` tokens of `4 * row_bytes` values;
/// `out[r * batch + t] = sum w*q` of row `r` and token `t`, equal to
/// [`crate::quant::i2s::i2s_dot_i32`].
///
/// # Safety
/// The CPU must support AVX2. `row_bytes` is a nonzero multiple of 32,
/// `w.len() == rows * row_bytes`, `q.len() == batch * 4 * row_bytes`,
/// `out.len() == rows * batch` (checked by the dispatch).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn i2s_gemm(w: &[u8], row_bytes: usize, q: &[i8], out: &mut [i32]) {
    let k = 4 * row_bytes;
    let batch = q.len() / k;
    if batch == 0 {
        return;
    }
    let (blocks, _) = w.as_chunks::<32>();
    let (qg, _) = q.as_chunks::<128>();
    let nb = row_bytes / 32;
    let mut t = 0;
    while t < batch {
        let n = (batch - t).min(4);
        let tok = |i: usize| &qg[(t + i) * nb..(t + i + 1) * nb];
        let mut sums = [0i32; 4];
        for (i, s) in sums.iter_mut().enumerate().take(n) {
            *s = sum_i8(&q[(t + i) * k..(t + i + 1) * k]);
        }
        for (ob, row) in out.chunks_exact_mut(batch).zip(blocks.chunks_exact(nb)) {
            let dots: &[i32] = match n {
                4 => &i2s_row::<4>(row, [tok(0), tok(1), tok(2), tok(3)]),
                3 => &i2s_row::<3>(row, [tok(0), tok(1), tok(2)]),
                2 => &i2s_row::<2>(row, [tok(0), tok(1)]),
                _ => &i2s_row::<1>(row, [tok(0)]),
            };
            for ((o, &d), &s) in ob[t..t + n].iter_mut().zip(dots).zip(&sums) {
                *o = d - s;
            }
        }
        t += n;
    }
}

/// TQ2_0 x Q8_K GEMV: `w` holds `out.len()` rows of `row_bytes` bytes
/// (`act.len()` blocks of 66 bytes each); `out[r]` equals
/// [`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`] bit for bit (same integer
/// per block, same float combination order).
///
/// # Safety
/// The CPU must support AVX2; `row_bytes == act.len() * 66` and
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tq2_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let m3 = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.as_chunks::<{ BlockTq2_0::BYTES }>().0.iter().zip(act) {
            let (qs, d) = blk.split_at(64);
            let (qs, _) = qs.as_chunks::<32>();
            let (qa, _) = ab.qs.as_chunks::<128>();
            let mut p = _mm256_setzero_si256();
            for (half, qh) in qs.iter().zip(qa) {
                let b = load_u8(half);
                let c = [
                    _mm256_and_si256(b, m3),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(b), m3),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(b), m3),
                    _mm256_and_si256(_mm256_srli_epi16::<6>(b), m3),
                ];
                // |c*q pair| <= 3*128*2 = 768: eight of them fit an i16.
                for (l, &cl) in c.iter().enumerate() {
                    p = _mm256_add_epi16(p, _mm256_maddubs_epi16(cl, load_i8(qh, l)));
                }
            }
            let sum_q: i32 = ab.bsums.iter().map(|&s| i32::from(s)).sum();
            let sumi = hsum_i32(_mm256_madd_epi16(p, ones)) - sum_q;
            let d = ab.d * f16::from_bits(u16::from_le_bytes([d[0], d[1]])).to_f32();
            sumf += sumi as f32 * d;
        }
        *o = sumf;
    }
}

/// `v * 3` per byte, wrapping like ggml's `uint8_t` products.
#[inline]
#[target_feature(enable = "avx2")]
fn mul3_u8(v: __m256i) -> __m256i {
    _mm256_add_epi8(v, _mm256_add_epi8(v, v))
}

/// Per-byte wrapping product `x * m`, where each i16 lane of `m` holds the
/// multiplier of both its bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn mul_u8(x: __m256i, m: __m256i) -> __m256i {
    let lo = _mm256_and_si256(_mm256_mullo_epi16(x, m), _mm256_set1_epi16(0x00ff));
    let hi = _mm256_mullo_epi16(_mm256_and_si256(x, _mm256_set1_epi16(-256)), m);
    _mm256_or_si256(lo, hi)
}

/// TQ1_0 trit of each byte: `(v * 3) >> 8` (ggml's extraction after the
/// `3^n` multiply), computed per byte with `vpmulhuw`.
#[inline]
#[target_feature(enable = "avx2")]
fn trits(v: __m256i) -> __m256i {
    let three = _mm256_set1_epi16(3);
    let lo = _mm256_mulhi_epu16(_mm256_slli_epi16::<8>(v), three);
    let hi = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi16(-256)), three);
    _mm256_or_si256(lo, _mm256_slli_epi16::<8>(hi))
}

/// TQ1_0 x Q8_K GEMV, bit-identical to
/// [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`] per row.
///
/// Weight order (module docs of [`crate::quant::tq1_0`]): trit `n` of
/// `qs[m]` is weight `32n + m` (m < 32), of `qs[32 + m]` weight
/// `160 + 16n + m` (m < 16), of `qh[j]` weight `240 + 4n + j`; so every
/// vector below meets a contiguous run of activations.
///
/// # Safety
/// The CPU must support AVX2; `row_bytes == act.len() * 54` and
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tq1_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let ones = _mm256_set1_epi16(1);
    // Multipliers (per i16 lane, for both its bytes) of the vectors built
    // from qs[32..48]: (3^0 | 3^1), (3^2 | 3^3), and (3^4 | the qh powers
    // 1, 1, 3, 3, 9, 9, 27, 27 for bytes 4n + j).
    let m01 = _mm256_setr_epi16(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    let m23 = _mm256_setr_epi16(9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27);
    let m4h = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.as_chunks::<{ BlockTq1_0::BYTES }>().0.iter().zip(act) {
            let q = &ab.qs;
            let qv = |start: usize| -> __m256i {
                let part: &[i8; 32] = q[start..start + 32].try_into().unwrap_or(&[0; 32]);
                // SAFETY: `part` is 32 readable bytes; unaligned load.
                unsafe { _mm256_loadu_si256(part.as_ptr().cast()) }
            };
            let head: &[u8; 32] = blk[..32].try_into().unwrap_or(&[0; 32]);
            let mut v = load_u8(head);
            let mut p = _mm256_setzero_si256();
            for n in 0..5 {
                p = _mm256_add_epi16(p, _mm256_maddubs_epi16(trits(v), qv(32 * n)));
                v = mul3_u8(v);
            }
            let mid: &[u8; 16] = blk[32..48].try_into().unwrap_or(&[0; 16]);
            // SAFETY: `mid` is 16 readable bytes; unaligned load.
            let x1 = unsafe { _mm_loadu_si128(mid.as_ptr().cast()) };
            let x11 = _mm256_set_m128i(x1, x1);
            let qh = u32::from_le_bytes([blk[48], blk[49], blk[50], blk[51]]);
            let xh = _mm256_set_m128i(_mm_set1_epi32(qh as i32), x1);
            // 8 maddubs of trits <= 2: |sum| <= 8 * 512 fits an i16.
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(trits(mul_u8(x11, m01)), qv(160)));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(trits(mul_u8(x11, m23)), qv(192)));
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(trits(mul_u8(xh, m4h)), qv(224)));
            let sum_q: i32 = ab.bsums.iter().map(|&s| i32::from(s)).sum();
            let sumi = hsum_i32(_mm256_madd_epi16(p, ones)) - sum_q;
            let d = f16::from_bits(u16::from_le_bytes([blk[52], blk[53]])).to_f32();
            sumf += sumi as f32 * (d * ab.d);
        }
        *o = sumf;
    }
}

/// The codes (`w + 1`) of one TQ2_0 block as eight vectors of 32 bytes:
/// weights `32j .. 32j + 32` in vector `j` (byte `32g + m` holds weight
/// `128g + 32l + m` at shift `2l`), in activation order. Code 3 stays 3.
#[inline]
#[target_feature(enable = "avx2")]
fn tq2_codes(blk: &[u8]) -> [__m256i; 8] {
    let m3 = _mm256_set1_epi8(3);
    let mut c = [_mm256_setzero_si256(); 8];
    for (g, cg) in c.chunks_exact_mut(4).enumerate() {
        let b = load_u8(blk[32 * g..32 * g + 32].try_into().unwrap_or(&[0; 32]));
        cg[0] = _mm256_and_si256(b, m3);
        cg[1] = _mm256_and_si256(_mm256_srli_epi16::<2>(b), m3);
        cg[2] = _mm256_and_si256(_mm256_srli_epi16::<4>(b), m3);
        cg[3] = _mm256_and_si256(_mm256_srli_epi16::<6>(b), m3);
    }
    c
}

/// The trits (`w + 1`) of one TQ1_0 block as eight vectors of 32 bytes in
/// activation order, decoded as [`tq1_0_gemv`] does: five of
/// `trits(qs[..32] * 3^n)`, then `[m | 3m]`, `[9m | 27m]`, `[81m | x]`
/// with `m = qs[32..48]` and `x` byte `4n + j` = `qh[j] * 3^n`.
#[inline]
#[target_feature(enable = "avx2")]
fn tq1_codes(blk: &[u8]) -> [__m256i; 8] {
    let m01 = _mm256_setr_epi16(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    let m23 = _mm256_setr_epi16(9, 9, 9, 9, 9, 9, 9, 9, 27, 27, 27, 27, 27, 27, 27, 27);
    let m4h = _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27);
    let mut c = [_mm256_setzero_si256(); 8];
    let mut v = load_u8(blk[..32].try_into().unwrap_or(&[0; 32]));
    for cn in &mut c[..5] {
        *cn = trits(v);
        v = mul3_u8(v);
    }
    let mid: &[u8; 16] = blk[32..48].try_into().unwrap_or(&[0; 16]);
    // SAFETY: `mid` is 16 readable bytes; unaligned load.
    let x1 = unsafe { _mm_loadu_si128(mid.as_ptr().cast()) };
    let x11 = _mm256_set_m128i(x1, x1);
    let qh: [u8; 4] = blk[48..52].try_into().unwrap_or([0; 4]);
    let xh = _mm256_set_m128i(_mm_set1_epi32(i32::from_le_bytes(qh)), x1);
    c[5] = trits(mul_u8(x11, m01));
    c[6] = trits(mul_u8(x11, m23));
    c[7] = trits(mul_u8(xh, m4h));
    c
}

/// Horizontal sums of 8 vectors at once: lane `i` of the result is the
/// sum of the 8 i32 lanes of `v[i]` (two levels of `vphaddd`, one 128-bit
/// lane fold).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: [__m256i; 8]) -> __m256i {
    let a = _mm256_hadd_epi32(v[0], v[1]);
    let b = _mm256_hadd_epi32(v[2], v[3]);
    let c = _mm256_hadd_epi32(v[4], v[5]);
    let d = _mm256_hadd_epi32(v[6], v[7]);
    // 128-bit lane L of `ab`: the lane-L sums of v[0..4]; of `cd`: v[4..8].
    let ab = _mm256_hadd_epi32(a, b);
    let cd = _mm256_hadd_epi32(c, d);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(ab, cd),
        _mm256_permute2x128_si256::<0x31>(ab, cd),
    )
}

/// TQ GEMM tile size: rows (2 rows x 4 tokens of i16 sums, plus the code
/// and activation vectors, fit the 16 `ymm` registers).
const TQ_TILE_ROWS: usize = 2;
/// TQ GEMM tile size: tokens.
const TQ_TILE_TOKENS: usize = 4;
/// Weight bytes of the rows the TQ GEMM keeps in L2 while every token
/// group passes over them.
const TQ_CHUNK_BYTES: usize = 128 << 10;

/// The float outputs of an `R`-row x `T`-token tile (`R <= 2`, `T <= 4`)
/// of TQ1_0 (`TQ1`) or TQ2_0 weights; lane `4r + t` of the result is row
/// `r`, token `t`.
///
/// Per block, each row is decoded once ([`tq1_codes`] / [`tq2_codes`]) for
/// the `T` tokens and each 32-byte activation load feeds `R` `vpmaddubsw`.
/// The i16 sums start at `-bsums` (so the block integer comes out as
/// `sum (code - 1) * q`): at most 8 * 768 + 2048 in magnitude, no
/// saturation. [`hsum8`] gives the 8 block integers in one vector; the
/// float step runs on all lanes at once, each doing what the portable dot
/// does: `sumf += sumi as f32 * (ab.d * d)` (TQ2_0) or `* (d * ab.d)`
/// (TQ1_0), blocks in order, separate multiply and add.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn tq_tile<const TQ1: bool, const R: usize, const T: usize>(
    rows: [&[u8]; R],
    act: [&[BlockQ8K]; T],
) -> [f32; 8] {
    let bytes = if TQ1 {
        BlockTq1_0::BYTES
    } else {
        BlockTq2_0::BYTES
    };
    let nb = rows
        .iter()
        .map(|r| r.len() / bytes)
        .chain(act.iter().map(|a| a.len()))
        .min()
        .unwrap_or(0);
    let zero = _mm256_setzero_si256();
    let ones = _mm256_set1_epi16(1);
    let mut sumf = _mm256_setzero_ps();
    for bi in 0..nb {
        let mut codes = [[zero; 8]; R];
        let mut dw = [0i16; 2];
        for ((c, h), row) in codes.iter_mut().zip(&mut dw).zip(&rows) {
            let blk = &row[bi * bytes..(bi + 1) * bytes];
            // Software prefetch ahead (a prefetch never faults;
            // `wrapping_add` keeps the address defined).
            _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
            *c = if TQ1 { tq1_codes(blk) } else { tq2_codes(blk) };
            *h = i16::from_le_bytes([blk[bytes - 2], blk[bytes - 1]]);
        }
        let mut acc = [[zero; T]; R];
        let mut da = [0.0f32; 4];
        for (t, a) in act.iter().enumerate() {
            // SAFETY: `bsums` is 16 i16, 32 readable bytes; unaligned load.
            let bs = unsafe { _mm256_loadu_si256(a[bi].bsums.as_ptr().cast()) };
            let nsq = _mm256_sub_epi16(zero, bs);
            da[t] = a[bi].d;
            for ar in acc.iter_mut() {
                ar[t] = nsq;
            }
        }
        for j in 0..8 {
            for (t, a) in act.iter().enumerate() {
                let part: &[i8; 32] = a[bi].qs[32 * j..32 * j + 32].try_into().unwrap_or(&[0; 32]);
                // SAFETY: `part` is 32 readable bytes; unaligned load.
                let qv = unsafe { _mm256_loadu_si256(part.as_ptr().cast()) };
                for (ar, c) in acc.iter_mut().zip(&codes) {
                    ar[t] = _mm256_add_epi16(ar[t], _mm256_maddubs_epi16(c[j], qv));
                }
            }
        }
        let mut v = [zero; 8];
        for (r, ar) in acc.iter().enumerate() {
            for (vt, &a) in v[4 * r..4 * r + T].iter_mut().zip(ar) {
                *vt = _mm256_madd_epi16(a, ones);
            }
        }
        let sumi = _mm256_cvtepi32_ps(hsum8(v));
        let (h0, h1) = (dw[0], dw[1]);
        let dw = _mm256_cvtph_ps(_mm_setr_epi16(h0, h0, h0, h0, h1, h1, h1, h1));
        let da4 = _mm_setr_ps(da[0], da[1], da[2], da[3]);
        let da = _mm256_set_m128(da4, da4);
        let d = if TQ1 {
            _mm256_mul_ps(dw, da)
        } else {
            _mm256_mul_ps(da, dw)
        };
        sumf = _mm256_add_ps(sumf, _mm256_mul_ps(sumi, d));
    }
    let mut out = [0.0f32; 8];
    // SAFETY: `out` is 8 writable f32; unaligned store.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sumf) };
    out
}

/// Where a TQ tile sits: its first row and token and the number of tokens
/// (`batch`, the row stride of `out`).
#[derive(Clone, Copy)]
struct TqAt {
    r0: usize,
    t0: usize,
    batch: usize,
}

/// One `R`-row x `T`-token tile of [`tq_gemm`] at `at`: `w` holds rows of
/// `row_bytes`, `act` tokens of `nb` blocks.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn tq_gemm_tile<const TQ1: bool, const R: usize, const T: usize>(
    w: &[u8],
    row_bytes: usize,
    act: &[BlockQ8K],
    nb: usize,
    at: TqAt,
    out: &mut [f32],
) {
    let rows: [&[u8]; R] =
        core::array::from_fn(|i| &w[(at.r0 + i) * row_bytes..(at.r0 + i + 1) * row_bytes]);
    let toks: [&[BlockQ8K]; T] =
        core::array::from_fn(|i| &act[(at.t0 + i) * nb..(at.t0 + i + 1) * nb]);
    let lanes = tq_tile::<TQ1, R, T>(rows, toks);
    for (i, l) in lanes.chunks_exact(4).take(R).enumerate() {
        let start = (at.r0 + i) * at.batch + at.t0;
        out[start..start + T].copy_from_slice(&l[..T]);
    }
}

/// The tile of [`tq_gemm`] for `R` rows at `at` with `n` tokens (1 to
/// [`TQ_TILE_TOKENS`]).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn tq_gemm_rows<const TQ1: bool, const R: usize>(
    w: &[u8],
    row_bytes: usize,
    act: &[BlockQ8K],
    nb: usize,
    (at, n): (TqAt, usize),
    out: &mut [f32],
) {
    match n {
        1 => tq_gemm_tile::<TQ1, R, 1>(w, row_bytes, act, nb, at, out),
        2 => tq_gemm_tile::<TQ1, R, 2>(w, row_bytes, act, nb, at, out),
        3 => tq_gemm_tile::<TQ1, R, 3>(w, row_bytes, act, nb, at, out),
        _ => tq_gemm_tile::<TQ1, R, TQ_TILE_TOKENS>(w, row_bytes, act, nb, at, out),
    }
}

/// The TQ GEMM of [`tq2_0_gemm`] and [`tq1_0_gemm`]: register tiles of
/// [`TQ_TILE_ROWS`] rows x [`TQ_TILE_TOKENS`] tokens (smaller at the
/// edges), over chunks of about [`TQ_CHUNK_BYTES`] of rows; within a chunk
/// token groups are the outer loop. Every output is computed by the same
/// tile code whatever the chunk or the caller's row range, so results do
/// not depend on how rows are split over threads.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn tq_gemm<const TQ1: bool>(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let bytes = if TQ1 {
        BlockTq1_0::BYTES
    } else {
        BlockTq2_0::BYTES
    };
    let nb = row_bytes / bytes;
    if nb == 0 {
        return;
    }
    let batch = act.len() / nb;
    let rows = w.len() / row_bytes;
    let chunk = (TQ_CHUNK_BYTES / row_bytes / TQ_TILE_ROWS).max(1) * TQ_TILE_ROWS;
    for c0 in (0..rows).step_by(chunk) {
        let c1 = (c0 + chunk).min(rows);
        let full = c1 - (c1 - c0) % TQ_TILE_ROWS;
        for t0 in (0..batch).step_by(TQ_TILE_TOKENS) {
            let n = (batch - t0).min(TQ_TILE_TOKENS);
            let at = |r0| (TqAt { r0, t0, batch }, n);
            for r0 in (c0..full).step_by(TQ_TILE_ROWS) {
                tq_gemm_rows::<TQ1, TQ_TILE_ROWS>(w, row_bytes, act, nb, at(r0), out);
            }
            for r0 in full..c1 {
                tq_gemm_rows::<TQ1, 1>(w, row_bytes, act, nb, at(r0), out);
            }
        }
    }
}

/// TQ2_0 x Q8_K GEMM: `w` holds `out.len() / batch` rows of `row_bytes`
/// bytes, `act` holds `batch` tokens of `row_bytes / 66` Q8_K blocks;
/// `out[r * batch + t]` equals
/// [`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`] of row `r` and token `t`
/// bit for bit. See [`tq_gemm`] and [`tq_tile`].
///
/// # Safety
/// The CPU must support AVX2 and F16C. `row_bytes` is a nonzero multiple
/// of 66, `w.len() == rows * row_bytes`,
/// `act.len() == batch * row_bytes / 66`, `out.len() == rows * batch`
/// (checked by the dispatch).
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tq2_0_gemm(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    tq_gemm::<false>(w, row_bytes, act, out);
}

/// TQ1_0 x Q8_K GEMM, the contract of [`tq2_0_gemm`] with 54-byte blocks:
/// `out[r * batch + t]` equals
/// [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`] bit for bit.
///
/// # Safety
/// As [`tq2_0_gemm`], with `row_bytes` a nonzero multiple of 54 and
/// `act.len() == batch * row_bytes / 54`.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn tq1_0_gemm(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    tq_gemm::<true>(w, row_bytes, act, out);
}

/// One F16 row dotted with `x` in the portable 16-lane order
/// ([`crate::quant::f32`]'s `lane_dot`: `w_i * x_i` added to lane `i % 16`
/// in index order, tail included, halving reduction): groups of 8 elements
/// alternate between two accumulators (lanes 0..8 and 8..16), so a row is
/// two independent chains of `vaddps`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn f16_row(row: &[u8], x: &[f32]) -> f32 {
    const _: () = assert!(crate::quant::f32::F16_LANES == 16);
    let (xc, xt) = x.as_chunks::<8>();
    let (hc, ht) = row.as_chunks::<16>();
    let mut acc = [_mm256_setzero_ps(); 2];
    let term = |xv: &[f32; 8], h: &[u8; 16]| {
        // SAFETY: `xv` is 8 readable f32, `h` 16 readable bytes (8
        // halves); unaligned loads.
        let (xv, h) = unsafe {
            (
                _mm256_loadu_ps(xv.as_ptr()),
                _mm_loadu_si128(h.as_ptr().cast()),
            )
        };
        _mm256_mul_ps(_mm256_cvtph_ps(h), xv)
    };
    let (x2, x1) = xc.as_chunks::<2>();
    let (h2, h1) = hc[..xc.len()].as_chunks::<2>();
    for (xv, h) in x2.iter().zip(h2) {
        acc[0] = _mm256_add_ps(acc[0], term(&xv[0], &h[0]));
        acc[1] = _mm256_add_ps(acc[1], term(&xv[1], &h[1]));
    }
    // An odd last group of 8 goes to lanes 0..8, the tail after it to
    // lanes 8.. (and after an even count, to lanes 0..).
    for (xv, h) in x1.iter().zip(h1) {
        acc[0] = _mm256_add_ps(acc[0], term(xv, h));
    }
    let mut lanes = [0.0f32; 16];
    // SAFETY: `lanes` is 16 writable f32; unaligned stores.
    unsafe {
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
    }
    let first = 8 * (xc.len() % 2);
    for ((l, h), &xv) in lanes[first..].iter_mut().zip(ht.chunks_exact(2)).zip(xt) {
        *l += f16::from_bits(u16::from_le_bytes([h[0], h[1]])).to_f32() * xv;
    }
    for half in [8, 4, 2, 1] {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
    }
    lanes[0]
}

/// F16 x f32 GEMV, one row at a time, bit-identical to
/// [`crate::quant::f16::dot_f16_f32`] per row.
///
/// One row per pass makes each thread read its rows as one sequential
/// stream, which the hardware prefetcher follows at the DRAM limit: on Zen
/// 4 with two threads, the tied 2B-4T head (657 MB) reads at ~31 GB/s this
/// way against ~24 GB/s with four rows (four streams) per pass, while
/// a plain summing loop reads ~33 GB/s (docs/perf.md, "F16 head").
/// The 16-lane order makes a row two dependent add chains, not one: hot in
/// L2 two Zen 5 cores read ~104 GB/s this way against ~65 GB/s with one
/// chain, which was the bound of the fastest DRAM reads there
/// (docs/perf.md, "F16 head: sixteen lanes").
///
/// # Safety
/// The CPU must support AVX2 and F16C; `row_bytes == 2 * x.len() > 0` and
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn f16_gemv(w: &[u8], row_bytes: usize, x: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        *o = f16_row(row, x);
    }
}

/// I2_S activation quantization, bit-identical to
/// [`crate::quant::i2s::quantize_act_i2s`]; returns the scale.
///
/// # Safety
/// The CPU must support AVX2; `x.len() == q.len()` (checked by the
/// dispatch).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_act_i2s(x: &[f32], q: &mut [i8]) -> f32 {
    let (xc, xt) = x.as_chunks::<8>();
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut vmax = _mm256_set1_ps(1e-5);
    for v in xc {
        // SAFETY: `v` is 8 readable f32; unaligned load.
        let v = unsafe { _mm256_loadu_ps(v.as_ptr()) };
        // maxps returns its second operand when either is NaN, so NaN
        // inputs are skipped like the portable `av > m` test.
        vmax = _mm256_max_ps(_mm256_and_ps(v, abs_mask), vmax);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` is 8 writable f32; unaligned store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), vmax) };
    let mut m = 1e-5f32;
    for av in lanes.into_iter().chain(xt.iter().map(|&v| libm::fabsf(v))) {
        if av > m {
            m = av;
        }
    }
    let s = act_scale(m);
    let sv = _mm256_set1_ps(s);
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let (x32, _) = x.as_chunks::<32>();
    let (q32, _) = q.as_chunks_mut::<32>();
    let to_i32 = |p: &[f32]| -> __m256i {
        // SAFETY: callers pass 8 readable f32 (a quarter of a 32-chunk).
        let v = unsafe { _mm256_loadu_ps(p.as_ptr()) };
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(v, sv),
        );
        // NaN -> 0, then clamp: the portable `as i8` of a clamped value.
        let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
        _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi))
    };
    for (xv, qv) in x32.iter().zip(q32.iter_mut()) {
        let a = to_i32(&xv[0..8]);
        let b = to_i32(&xv[8..16]);
        let c = to_i32(&xv[16..24]);
        let d = to_i32(&xv[24..32]);
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        let packed = _mm256_permutevar8x32_epi32(packed, perm);
        // SAFETY: `qv` is 32 writable bytes; unaligned store.
        unsafe { _mm256_storeu_si256(qv.as_mut_ptr().cast(), packed) };
    }
    let done = x32.len() * 32;
    for (qi, &v) in q[done..].iter_mut().zip(&x[done..]) {
        *qi = quantize_act_value(v, s);
    }
    s
}

/// Broadcasts 16 bytes to both 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn bcast16(b: &[u8; 16]) -> __m256i {
    // SAFETY: `b` is 16 readable bytes; unaligned load.
    _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// The two 16-byte halves of a TL activation table, each broadcast to both
/// lanes (`pshufb` tables).
#[inline]
#[target_feature(enable = "avx2")]
fn tl_table(t: &[i8; 32]) -> (__m256i, __m256i) {
    // SAFETY: `t` is 32 readable bytes; unaligned loads of both halves.
    let (lo, hi) = unsafe {
        (
            _mm_loadu_si128(t.as_ptr().cast()),
            _mm_loadu_si128(t.as_ptr().add(16).cast()),
        )
    };
    (
        _mm256_broadcastsi128_si256(lo),
        _mm256_broadcastsi128_si256(hi),
    )
}

/// Groups per i16 accumulation chunk: |group sum| <= 384, 64 of them fit.
pub(super) const TL_CHUNK: usize = 64;

/// Widens the i16 per-row sums of a chunk into `acc` (tile rows 0..32):
/// `lo` holds rows 0..8 | 16..24, `hi` rows 8..16 | 24..32 (the lane order of
/// `punpck{l,h}bw`).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn tl_widen(acc: &mut [__m256i; 4], lo: __m256i, hi: __m256i) {
    let parts = [
        _mm256_castsi256_si128(lo),
        _mm256_castsi256_si128(hi),
        _mm256_extracti128_si256::<1>(lo),
        _mm256_extracti128_si256::<1>(hi),
    ];
    for (a, p) in acc.iter_mut().zip(parts) {
        *a = _mm256_add_epi32(*a, _mm256_cvtepi16_epi32(p));
    }
}

/// Stores the four 8-row accumulators of a tile.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn tl_store(acc: &[__m256i; 4], out: &mut [i32; 32]) {
    for (o, a) in out.chunks_exact_mut(8).zip(acc) {
        // SAFETY: `o` is 8 writable i32; unaligned store.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), *a) };
    }
}

/// TL1 / TL2 dot of one 32-row tile with `N` tokens by `pshufb` look-ups,
/// equal to the portable [`crate::quant::tl`] tile dot (module docs there):
/// per group, the 4-bit indices of the 32 rows select from the low and high
/// table halves, TL2's sign bits negate the bytes (`psignb`), and one
/// `pmaddubsw` by `(1, 16)` recombines `lo + 16 * hi` as i16.
#[inline]
#[target_feature(enable = "avx2")]
fn tl_tile<const R: usize, const N: usize>(
    recs: &[[u8; R]],
    tables: [&[[i8; 32]]; N],
    out: [&mut [i32; 32]; N],
) {
    let shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    let low4 = _mm256_set1_epi8(15);
    let comb = _mm256_set1_epi16(0x1001);
    let sel = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    let one = _mm256_set1_epi8(1);
    // TL2 records carry 4 sign bytes after the 16 index bytes.
    let signed = R > 16;
    let mut acc = [[_mm256_setzero_si256(); 4]; N];
    let mut g0 = 0;
    while g0 < recs.len() {
        let g1 = (g0 + TL_CHUNK).min(recs.len());
        let mut lo = [_mm256_setzero_si256(); N];
        let mut hi = [_mm256_setzero_si256(); N];
        // Indexing the chunk (not `enumerate().take().skip()`, which
        // compiled to a call per group and spilled the sums) keeps the
        // loop in registers.
        for (i, rec) in recs[g0..g1].iter().enumerate() {
            let g = g0 + i;
            // Rows are contiguous tiles: prefetch ahead once per cache line
            // (a prefetch never faults; `wrapping_add` keeps it defined).
            if g % 4 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(rec.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
            }
            // Rows 0..16 from the low nibbles (lane 0), 16..32 from the high.
            let index: &[u8; 16] = rec.first_chunk().unwrap_or(&[0; 16]);
            let idx = _mm256_and_si256(_mm256_srlv_epi64(bcast16(index), shifts), low4);
            let sg = if signed {
                let s = _mm256_set1_epi32(i32::from_le_bytes(
                    rec.get(16..20)
                        .and_then(|b| b.try_into().ok())
                        .unwrap_or([0; 4]),
                ));
                let m =
                    _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(s, sel), bits), bits);
                _mm256_or_si256(m, one)
            } else {
                one
            };
            for t in 0..N {
                let Some(tab) = tables[t].get(g) else {
                    continue;
                };
                let (tl, th) = tl_table(tab);
                let mut a = _mm256_shuffle_epi8(tl, idx);
                let mut b = _mm256_shuffle_epi8(th, idx);
                if signed {
                    a = _mm256_sign_epi8(a, sg);
                    b = _mm256_sign_epi8(b, sg);
                }
                lo[t] = _mm256_add_epi16(
                    lo[t],
                    _mm256_maddubs_epi16(comb, _mm256_unpacklo_epi8(a, b)),
                );
                hi[t] = _mm256_add_epi16(
                    hi[t],
                    _mm256_maddubs_epi16(comb, _mm256_unpackhi_epi8(a, b)),
                );
            }
        }
        for t in 0..N {
            tl_widen(&mut acc[t], lo[t], hi[t]);
        }
        g0 = g1;
    }
    for (a, o) in acc.iter().zip(out) {
        tl_store(a, o);
    }
}

/// TL dot of one tile with up to 4 tokens: `tile` is one tile of
/// `groups` groups, `tables` holds `out.len()` tokens of `groups * 32`
/// bytes; `out[t]` gets the 32 row dots of token `t`.
///
/// # Safety
/// The CPU must support AVX2. `tile.len()` is `groups * 16` (TL1) or
/// `groups * 20` (TL2, `signed`), `tables.len() == out.len() * groups * 32`,
/// `1 <= out.len() <= 4` (checked by the dispatch).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn tl_tile_dot(
    signed: bool,
    tile: &[u8],
    groups: usize,
    tables: &[i8],
    out: &mut [[i32; 32]],
) {
    let (tabs, _) = tables.as_chunks::<32>();
    if signed {
        tl_tile_tokens(tile.as_chunks::<20>().0, tabs, groups, out);
    } else {
        tl_tile_tokens(tile.as_chunks::<16>().0, tabs, groups, out);
    }
}

/// [`tl_tile`] for as many tokens as `out` holds (1 to 4); token `b`'s
/// tables are `tabs[b * groups..(b + 1) * groups]`.
#[inline]
#[target_feature(enable = "avx2")]
fn tl_tile_tokens<const R: usize>(
    recs: &[[u8; R]],
    tabs: &[[i8; 32]],
    groups: usize,
    out: &mut [[i32; 32]],
) {
    let tok = |b: usize| tabs.get(b * groups..(b + 1) * groups).unwrap_or(&[]);
    match out {
        [o0, o1, o2, o3] => {
            tl_tile::<R, 4>(recs, [tok(0), tok(1), tok(2), tok(3)], [o0, o1, o2, o3])
        }
        [o0, o1, o2] => tl_tile::<R, 3>(recs, [tok(0), tok(1), tok(2)], [o0, o1, o2]),
        [o0, o1] => tl_tile::<R, 2>(recs, [tok(0), tok(1)], [o0, o1]),
        [o0] => tl_tile::<R, 1>(recs, [tok(0)], [o0]),
        _ => {}
    }
}

/// Int8 x int8 GEMV for the q8 LM head: `out[r]` is the exact dot of row
/// `r` of `w` (`k` codes in `-127..=127` each) with `q`, equal to
/// [`crate::quant::q8_head::q8_dot_i32`]. `pmaddubsw(|q|, sign(w, q))`:
/// products <= 128 * 127, pairs <= 32512, so no i16 saturation.
///
/// # Safety
/// The CPU must support AVX2; `k == q.len() > 0`, `w.len() == out.len() *
/// k`, every code of `w` in `-127..=127` (checked by the dispatch / built by
/// `Q8Rows`).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn q8_head_gemv(w: &[i8], k: usize, q: &[i8], out: &mut [i32]) {
    let ones = _mm256_set1_epi16(1);
    let (qc, qt) = q.as_chunks::<32>();
    for (o, row) in out.iter_mut().zip(w.chunks_exact(k)) {
        let (wc, wt) = row.as_chunks::<32>();
        let mut acc = _mm256_setzero_si256();
        for (wv, qv) in wc.iter().zip(qc) {
            // SAFETY: both are 32 readable bytes; unaligned loads.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(qv.as_ptr().cast()),
                    _mm256_loadu_si256(wv.as_ptr().cast()),
                )
            };
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
        }
        let tail: i32 = wt
            .iter()
            .zip(qt)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        *o = hsum_i32(acc) + tail;
    }
}

/// The 8x8 transpose of `r`: lane `j` of result `k` is lane `k` of
/// `r[j]` (unpacks of 32-bit pairs, 64-bit shuffles, then 128-bit halves).
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t: [__m256; 8] = core::array::from_fn(|j| {
        let (a, b) = (r[j & !1], r[j | 1]);
        if j % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    // `u[n]`: rows 4 (n / 4) .. 4 (n / 4) + 4, lane n % 4 in the low
    // 128-bit half and n % 4 + 4 in the high one.
    let u: [__m256; 8] = core::array::from_fn(|n| {
        let m = n / 2;
        let (a, b) = (t[(m / 2) * 4 + m % 2], t[(m / 2) * 4 + m % 2 + 2]);
        if n % 2 == 0 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    core::array::from_fn(|k| {
        let (a, b) = (u[k % 4], u[k % 4 + 4]);
        if k < 4 {
            _mm256_permute2f128_ps::<0x20>(a, b)
        } else {
            _mm256_permute2f128_ps::<0x31>(a, b)
        }
    })
}

/// Transposes a 16x16 tile in place (`t[c][r]` becomes the old
/// `t[r][c]`): four 8x8 blocks through [`transpose8`], the off-diagonal
/// two swapped.
#[target_feature(enable = "avx2")]
pub(super) fn transpose16(t: &mut [[f32; 16]; 16]) {
    // SAFETY: each row holds 16 f32, so 8 from column 0 or 8; unaligned
    // loads.
    let load = |r: usize, c: usize| unsafe { _mm256_loadu_ps(t[r][c..].as_ptr()) };
    let blocks: [[[__m256; 8]; 2]; 2] = core::array::from_fn(|bi| {
        core::array::from_fn(|bj| transpose8(core::array::from_fn(|i| load(8 * bi + i, 8 * bj))))
    });
    for (bi, row) in blocks.iter().enumerate() {
        for (bj, block) in row.iter().enumerate() {
            for (i, &v) in block.iter().enumerate() {
                // SAFETY: as the loads; unaligned store.
                unsafe { _mm256_storeu_ps(t[8 * bj + i][8 * bi..].as_mut_ptr(), v) };
            }
        }
    }
}

/// Keys scored together by [`attention_scores`]: one lane each of a
/// 256-bit vector.
const SCORE_KEYS: usize = 8;

/// Attention scores of one query, bit-identical to the portable loop
/// (`model::attention::scores`): `out[t] = dot(q, key t) * scale`, each dot
/// one sum over `d` in index order from zero (a multiply, then an add:
/// no FMA), with key `t` at `keys[t * stride..][..q.len()]`. Eight keys
/// share a vector, one lane each, so every lane runs the portable
/// operations; their elements reach the lanes by 8x8 transposes of
/// contiguous loads (the portable loop loads them one at a time). Keys past
/// the last group of eight, and the last `q.len() % 8` elements, go one by
/// one in the same order.
///
/// # Safety
/// The CPU must support AVX2. Slices are indexed with bounds checks:
/// `keys` must hold every key (`(out.len() - 1) * stride + q.len()`
/// values) or this panics.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn attention_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    let (q8, qt) = q.as_chunks::<8>();
    let done = 8 * q8.len();
    let mut groups = out.chunks_exact_mut(SCORE_KEYS);
    let mut t0 = 0;
    for o in &mut groups {
        let rows: [&[f32]; SCORE_KEYS] =
            core::array::from_fn(|j| &keys[(t0 + j) * stride..(t0 + j) * stride + hd]);
        let mut acc = _mm256_setzero_ps();
        for (i, qv) in q8.iter().enumerate() {
            // SAFETY: every row holds `hd >= 8 i + 8` values; unaligned
            // loads.
            let r: [__m256; 8] =
                core::array::from_fn(|j| unsafe { _mm256_loadu_ps(rows[j][8 * i..].as_ptr()) });
            // Lane j of `cols[k]`: key j, element 8 i + k.
            let cols = transpose8(r);
            for (&qd, col) in qv.iter().zip(cols) {
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(qd), col));
            }
        }
        for (d, &qd) in (done..).zip(qt) {
            let col: [f32; SCORE_KEYS] = core::array::from_fn(|j| rows[j][d]);
            // SAFETY: `col` is 8 readable f32.
            let col = unsafe { _mm256_loadu_ps(col.as_ptr()) };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(qd), col));
        }
        let v = _mm256_mul_ps(acc, _mm256_set1_ps(scale));
        // SAFETY: `o` is SCORE_KEYS = 8 writable f32; unaligned store.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
        t0 += SCORE_KEYS;
    }
    for (i, o) in groups.into_remainder().iter_mut().enumerate() {
        let key = &keys[(t0 + i) * stride..(t0 + i) * stride + hd];
        let mut sum = 0.0f32;
        for (&x, &y) in q.iter().zip(key) {
            sum += x * y;
        }
        *o = sum * scale;
    }
}
