//! AVX-512 (F, BW, VL, VNNI) kernels: I2_S GEMV/GEMM, TQ2_0 GEMV and
//! TQ2_0/TQ1_0 GEMM (TQ1_0 GEMV is its one-token case) with `vpdpbusd`
//! (unsigned codes x signed int8 activations, 4-way into i32), and I2_S
//! activation quantization. Each reproduces the portable kernel of
//! [`crate::quant`] exactly (see the module docs of [`super`]).
//!
//! A 32-byte block of 2-bit codes is expanded into two 64-byte code vectors
//! whose halves meet contiguous runs of 64 activations, so activations are
//! read in their natural order (no repacking).

use core::arch::x86_64::*;

use half::f16;

use super::avx2::{TL_CHUNK, tl_store, tl_widen};
use super::{PREFETCH_BYTES, act_scale, sum_i8};
use crate::quant::q8_k::BlockQ8K;
use crate::quant::tl::TL2_WEIGHTS;
use crate::quant::tq1_0::BlockTq1_0;
use crate::quant::tq2_0::BlockTq2_0;

/// Loads 32 bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn load_u8(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Loads 64 activations starting at `64 * h` of a 128-value group.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn load_i8x64(q: &[i8; 128], h: usize) -> __m512i {
    let part: &[i8; 64] = q[64 * h..64 * h + 64].try_into().unwrap_or(&[0; 64]);
    // SAFETY: `part` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(part.as_ptr().cast()) }
}

/// Loads the 64 activations `64j .. 64j + 64` of a Q8_K block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn load_q64(q: &[i8; 256], j: usize) -> __m512i {
    let part: &[i8; 64] = q[64 * j..64 * j + 64].try_into().unwrap_or(&[0; 64]);
    // SAFETY: `part` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(part.as_ptr().cast()) }
}

/// `[lo | hi]` as one 512-bit vector.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn concat(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// I2_S code-3 fix on packed bytes (every field `11` becomes `01`): one
/// ternary-logic op computes `b ^ (b & (b << 1) & 0xAA)`, which clears the
/// high bit of exactly the fields whose low bit is also set.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn i2s_fix_code3(b: __m256i) -> __m256i {
    // Truth table of f(a, b, c) = a ^ (a & b & c) over the operand
    // patterns a = 0xF0, b = 0xCC, c = 0xAA: 0xF0 ^ 0x80.
    const A_XOR_ABC: i32 = 0x70;
    _mm256_ternarylogic_epi32::<A_XOR_ABC>(
        b,
        _mm256_slli_epi16::<1>(b),
        _mm256_set1_epi8(0xAAu8 as i8),
    )
}

/// The codes of one I2_S block as two vectors of 64 bytes (values 0..=2,
/// code 3 already read as 1): weights 0..64 and 64..128.
///
/// Byte `p` of a block holds the codes of weights `p, 32+p, 64+p, 96+p` at
/// shifts 6, 4, 2, 0. With `z = [b >> 2 | b]`, `(z >> 4) & 3` is the codes
/// of weights 0..64 and `z & 3` those of 64..128.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn block_codes(blk: &[u8; 32]) -> [__m512i; 2] {
    let m3 = _mm512_set1_epi8(3);
    let b = i2s_fix_code3(load_u8(blk));
    let z = concat(_mm256_srli_epi16::<2>(b), b);
    [
        _mm512_and_si512(_mm512_srli_epi16::<4>(z), m3),
        _mm512_and_si512(z, m3),
    ]
}

/// Blocks per segment of [`i2s_row`]: each segment's four sums are
/// shifted back and reduced before they could overflow (a lane adds at
/// most 4 x 192 x 128 per block).
const ROW_SEGMENT_BLOCKS: usize = 512;

/// `sum c*q` of one I2_S row with one token: the decode GEMV's inner loop.
///
/// 256-bit vectors (on Zen 4 a 512-bit op costs two 256-bit ones anyway)
/// and no shifts: the four code fields of each byte are selected in place
/// by masks `0xC0`, `0x30`, `0x0C`, `0x03`, so field `g` meets its 32
/// activations multiplied by `4^(3 - g)`, and the sums are shifted back
/// lane by lane once per [`ROW_SEGMENT_BLOCKS`]-block segment (exact:
/// every term of sum `g` is a multiple of `4^(3 - g)`), then reduced once. Per 32-byte block: one load, the
/// code-3 fix, four ANDs and four `vpdpbusd` into two sets of four
/// accumulators. Hot on one Zen 4 core this reads ~29 GB/s against ~23 for
/// the shift-and-concatenate decoding the batch kernels use
/// ([`block_codes`]); no software prefetch, so each thread's rows are one
/// sequential stream for the hardware prefetcher.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn i2s_row(row: &[[u8; 32]], q: &[[i8; 128]]) -> i32 {
    let masks = [0xC0u8, 0x30, 0x0C, 0x03].map(|m| _mm256_set1_epi8(m as i8));
    let mut total = 0i32;
    for (row, q) in row
        .chunks(ROW_SEGMENT_BLOCKS)
        .zip(q.chunks(ROW_SEGMENT_BLOCKS))
    {
        let mut acc = [[_mm256_setzero_si256(); 4]; 2];
        let (pairs, tail) = row.as_chunks::<2>();
        let (qpairs, qtail) = q.as_chunks::<2>();
        for (b, qq) in pairs.iter().zip(qpairs) {
            for ((blk, qb), acc) in b.iter().zip(qq).zip(&mut acc) {
                masked_block(acc, &masks, blk, qb);
            }
        }
        for (blk, qb) in tail.iter().zip(qtail) {
            masked_block(&mut acc[0], &masks, blk, qb);
        }
        let [a, b] = acc;
        let f = |g: usize| _mm256_add_epi32(a[g], b[g]);
        // Lane by lane: every lane of field g's sum is a multiple of
        // 4^(3 - g), so the arithmetic shifts are exact, and one reduction
        // per segment replaces four (+7 % hot in L2 on Zen 5, where a
        // 640-byte row's reductions were a fifth of its time).
        let v = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_srai_epi32::<6>(f(0)), _mm256_srai_epi32::<4>(f(1))),
            _mm256_add_epi32(_mm256_srai_epi32::<2>(f(2)), f(3)),
        );
        total += _mm512_reduce_add_epi32(_mm512_zextsi256_si512(v));
    }
    total
}

/// One block of [`i2s_row`]: `acc[g] += (codes & masks[g]) . q[32 g..]`
/// after the code-3 fix.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn masked_block(acc: &mut [__m256i; 4], masks: &[__m256i; 4], blk: &[u8; 32], q: &[i8; 128]) {
    let b = i2s_fix_code3(load_u8(blk));
    let (qs, _) = q.as_chunks::<32>();
    for ((a, &m), qg) in acc.iter_mut().zip(masks).zip(qs) {
        // SAFETY: `qg` is 32 readable bytes; `loadu` has no alignment
        // requirement.
        let x = unsafe { _mm256_loadu_si256(qg.as_ptr().cast()) };
        *a = _mm256_dpbusd_epi32(*a, _mm256_and_si256(b, m), x);
    }
}

/// `sum c*q` of an `R`-row x `T`-token tile of I2_S, one accumulator per
/// (row, token), for batches (prefill).
///
/// Each row's block is decoded ([`block_codes`]) once for the `T` tokens and each token's 64-byte activation
/// load feeds `R` VNNI ops, so for `R = T = 4` the loop issues 32
/// `vpdpbusd` per 12 loads (16 accumulators + 8 code vectors + 2
/// activation vectors stay in the 32 registers).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn i2s_tile<const R: usize, const T: usize>(
    rows: [&[[u8; 32]]; R],
    q: [&[[i8; 128]]; T],
) -> [[i32; T]; R] {
    let nb = rows
        .iter()
        .map(|r| r.len())
        .chain(q.iter().map(|t| t.len()))
        .min()
        .unwrap_or(0);
    // Small tiles have too few accumulators to hide the VNNI latency when
    // each takes two dependent ops per block: give them a second set (it
    // stays all-zero and is optimized out for large tiles).
    let split = R * T <= 4;
    let mut acc = [[_mm512_setzero_si512(); T]; R];
    let mut acc2 = [[_mm512_setzero_si512(); T]; R];
    for bi in 0..nb {
        let mut codes = [[_mm512_setzero_si512(); 2]; R];
        for (c, row) in codes.iter_mut().zip(&rows) {
            let blk = &row[bi];
            // Software prefetch PREFETCH_BYTES ahead (the next rows'
            // blocks when near the end of this one: rows are contiguous).
            // A prefetch never faults, and `wrapping_add` keeps the address
            // computation defined even past the end of the slice.
            _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
            *c = block_codes(blk);
        }
        for (t, qt) in q.iter().enumerate() {
            let lo = load_i8x64(&qt[bi], 0);
            let hi = load_i8x64(&qt[bi], 1);
            for ((a, a2), c) in acc.iter_mut().zip(&mut acc2).zip(&codes) {
                if split {
                    a[t] = _mm512_dpbusd_epi32(a[t], c[0], lo);
                    a2[t] = _mm512_dpbusd_epi32(a2[t], c[1], hi);
                } else {
                    a[t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a[t], c[0], lo), c[1], hi);
                }
            }
        }
    }
    let mut out = [[0i32; T]; R];
    for ((o, a), a2) in out.iter_mut().zip(acc).zip(acc2) {
        for ((o, a), a2) in o.iter_mut().zip(a).zip(a2) {
            *o = _mm512_reduce_add_epi32(_mm512_add_epi32(a, a2));
        }
    }
    out
}

/// Transposes a 16x16 tile in place (`t[c][r]` becomes the old
/// `t[r][c]`): 32-bit unpacks, 64-bit unpacks, then two rounds of 128-bit
/// lane shuffles, 64 shuffles for the 256 values instead of a scalar move
/// each.
#[target_feature(enable = "avx512f")]
pub(super) fn transpose16(t: &mut [[f32; 16]; 16]) {
    // SAFETY: each row is 16 readable f32; unaligned loads.
    let r: [__m512; 16] = core::array::from_fn(|i| unsafe { _mm512_loadu_ps(t[i].as_ptr()) });
    // Lane L of `a[2i]`: rows 2i, 2i + 1 interleaved at columns 4L, 4L + 1;
    // of `a[2i + 1]`, at 4L + 2, 4L + 3.
    let a: [__m512; 16] = core::array::from_fn(|j| {
        let (x, y) = (r[j & !1], r[j | 1]);
        if j % 2 == 0 {
            _mm512_unpacklo_ps(x, y)
        } else {
            _mm512_unpackhi_ps(x, y)
        }
    });
    // Lane L of `b[4i + j]`: rows 4i .. 4i + 4 at column 4L + j.
    let b: [__m512; 16] = core::array::from_fn(|n| {
        let (i, j) = (n / 4, n % 4);
        let (x, y) = (
            _mm512_castps_pd(a[4 * i + j / 2]),
            _mm512_castps_pd(a[4 * i + j / 2 + 2]),
        );
        _mm512_castpd_ps(if j % 2 == 0 {
            _mm512_unpacklo_pd(x, y)
        } else {
            _mm512_unpackhi_pd(x, y)
        })
    });
    // `c[2j]`: lanes 0, 1 of `b[j]` and `b[4 + j]`; `c[2j + 1]`: lanes 2, 3.
    // `d[2j]`, `d[2j + 1]`: the same of `b[8 + j]` and `b[12 + j]`.
    let c: [__m512; 8] = core::array::from_fn(|n| {
        let (x, y) = (b[n / 2], b[4 + n / 2]);
        if n % 2 == 0 {
            _mm512_shuffle_f32x4::<0x44>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xEE>(x, y)
        }
    });
    let d: [__m512; 8] = core::array::from_fn(|n| {
        let (x, y) = (b[8 + n / 2], b[12 + n / 2]);
        if n % 2 == 0 {
            _mm512_shuffle_f32x4::<0x44>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xEE>(x, y)
        }
    });
    // Column 4L + j is lane L of `b[j]`, `b[4 + j]`, `b[8 + j]`, `b[12 + j]`.
    for (col, out) in t.iter_mut().enumerate() {
        let (l, j) = (col / 4, col % 4);
        let (x, y) = (c[2 * j + l / 2], d[2 * j + l / 2]);
        let v = if l % 2 == 0 {
            _mm512_shuffle_f32x4::<0x88>(x, y)
        } else {
            _mm512_shuffle_f32x4::<0xDD>(x, y)
        };
        // SAFETY: `out` is 16 writable f32; unaligned store.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
    }
}

/// The scores of 8 keys (`rows`, each at least `qt.len()` long) with 16
/// transposed queries `qt`, as the portable `model::attention::score_lanes`:
/// `out[i][j] = sum over d in index order, from zero, of qt[d][j] *
/// rows[i][d]` (a multiply, then an add: no FMA), so the same bits. Each
/// `qt[d]` is loaded once for the 8 keys (the portable loop, vectorized by
/// LLVM, loaded it once per key and checked every key's bounds per `d`).
///
/// # Panics
/// If a row is shorter than `qt`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn attention_score_lanes(qt: &[[f32; 16]], rows: [&[f32]; 8]) -> [[f32; 16]; 8] {
    let n = qt.len();
    let rows = rows.map(|r| &r[..n]);
    // Plain loops below, not `array::from_fn` / `map` (see
    // `attention_value_lanes`).
    let mut acc = [_mm512_setzero_ps(); 8];
    for (d, qd) in qt.iter().enumerate() {
        // SAFETY: `qd` is 16 readable f32; unaligned load.
        let q = unsafe { _mm512_loadu_ps(qd.as_ptr()) };
        for (a, row) in acc.iter_mut().zip(&rows) {
            // SAFETY: `d < n`, the length of every row (sliced above).
            let k = unsafe { *row.get_unchecked(d) };
            *a = _mm512_add_ps(*a, _mm512_mul_ps(q, _mm512_set1_ps(k)));
        }
    }
    let mut out = [[0.0f32; 16]; 8];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 writable f32; unaligned store.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
    }
    out
}

/// The value sums of 4 queries over the keys all of them see, as the
/// portable `model::attention::value_lanes`: for `t` ascending below the
/// shortest `p[j]`, `acc[j][e] += p[j][t] * values[t * stride + e]` (a
/// multiply, then an add), so the same bits. Each value row is loaded once
/// for the 4 queries (LLVM's build of the portable loop loaded it once per
/// query and checked every query's bounds per key).
///
/// # Panics
/// If `values` does not hold 64 values at each key's `t * stride`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn attention_value_lanes(
    p: [&[f32]; 4],
    values: &[f32],
    stride: usize,
    acc: &mut [[f32; 64]; 4],
) {
    let shared = p.iter().map(|p| p.len()).min().unwrap_or(0);
    if shared == 0 {
        return;
    }
    let p = p.map(|p| &p[..shared]);
    let values = &values[..(shared - 1) * stride + 64];
    // Plain loops, not `array::from_fn` / `map`: their closures are not
    // inlined into this function's AVX-512 code and became calls.
    let mut a = [[_mm512_setzero_ps(); 4]; 4];
    for (aj, row) in a.iter_mut().zip(acc.iter()) {
        for (x, part) in aj.iter_mut().zip(row.as_chunks::<16>().0) {
            // SAFETY: `part` is 16 readable f32; unaligned load.
            *x = unsafe { _mm512_loadu_ps(part.as_ptr()) };
        }
    }
    let mut v = [_mm512_setzero_ps(); 4];
    for t in 0..shared {
        for (k, vk) in v.iter_mut().enumerate() {
            // SAFETY: `t < shared`, so `t * stride + 64 <= values.len()`
            // (the slice above); unaligned load.
            *vk = unsafe { _mm512_loadu_ps(values.as_ptr().add(t * stride + 16 * k)) };
        }
        for (aj, pj) in a.iter_mut().zip(&p) {
            // SAFETY: every `p[j]` was cut to `shared > t` values.
            let pt = _mm512_set1_ps(unsafe { *pj.get_unchecked(t) });
            for (x, &vk) in aj.iter_mut().zip(&v) {
                *x = _mm512_add_ps(*x, _mm512_mul_ps(pt, vk));
            }
        }
    }
    for (row, aj) in acc.iter_mut().zip(a) {
        for (part, x) in row.as_chunks_mut::<16>().0.iter_mut().zip(aj) {
            // SAFETY: `part` is 16 writable f32; unaligned store.
            unsafe { _mm512_storeu_ps(part.as_mut_ptr(), x) };
        }
    }
}

/// Rows per GEMM tile.
const TILE_ROWS: usize = 4;
/// Tokens per GEMM tile.
const TILE_TOKENS: usize = 4;

/// Where a tile sits: its first row and token, the number of tokens
/// (`batch`, the row stride of `out`) and the `sum q` of its tokens.
#[derive(Clone, Copy)]
struct TileAt<'a> {
    r0: usize,
    t0: usize,
    batch: usize,
    sums: &'a [i32],
}

/// One `R`-row x `T`-token tile of [`i2s_gemm`]: the dots of rows
/// `r0..r0 + R` with tokens `t0..t0 + T`, minus each token's `sum q`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn i2s_gemm_tile<const R: usize, const T: usize>(
    blocks: &[[u8; 32]],
    qg: &[[i8; 128]],
    nb: usize,
    at: TileAt,
    out: &mut [i32],
) {
    // Filled by loops: `array::from_fn`'s closures are not inlined into
    // AVX-512 code (a call per slice, ~2 % of a 2B-4T prefill).
    let mut rows: [&[[u8; 32]]; R] = [&[]; R];
    for (i, r) in rows.iter_mut().enumerate() {
        *r = &blocks[(at.r0 + i) * nb..(at.r0 + i + 1) * nb];
    }
    let mut toks: [&[[i8; 128]]; T] = [&[]; T];
    for (i, t) in toks.iter_mut().enumerate() {
        *t = &qg[(at.t0 + i) * nb..(at.t0 + i + 1) * nb];
    }
    for (i, d) in i2s_tile::<R, T>(rows, toks).iter().enumerate() {
        let start = (at.r0 + i) * at.batch + at.t0;
        for ((o, &d), &s) in out[start..start + T].iter_mut().zip(d).zip(at.sums) {
            *o = d - s;
        }
    }
}

/// The tile of [`i2s_gemm`] for `R` rows at `at`, with as many tokens as
/// `at.sums` holds (1 to [`TILE_TOKENS`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn i2s_gemm_rows<const R: usize>(
    blocks: &[[u8; 32]],
    qg: &[[i8; 128]],
    nb: usize,
    at: TileAt,
    out: &mut [i32],
) {
    match at.sums.len() {
        1 => i2s_gemm_tile::<R, 1>(blocks, qg, nb, at, out),
        2 => i2s_gemm_tile::<R, 2>(blocks, qg, nb, at, out),
        3 => i2s_gemm_tile::<R, 3>(blocks, qg, nb, at, out),
        _ => i2s_gemm_tile::<R, TILE_TOKENS>(blocks, qg, nb, at, out),
    }
}

/// I2_S GEMM, same contract as the AVX2 `i2s_gemm`: `w` holds
/// `out.len() / batch` rows of `row_bytes` bytes, `q` holds `batch` tokens;
/// `out[r * batch + t]` equals [`crate::quant::i2s::i2s_dot_i32`].
///
/// Register tiles of [`TILE_ROWS`] rows x [`TILE_TOKENS`] tokens (smaller
/// at the edges). Tokens are the outer loop, so one group of tokens stays
/// in L1 while the caller's row range (a few tens of KB) is re-read from L2.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI and AVX2. `row_bytes` is a
/// nonzero multiple of 32, `w.len() == rows * row_bytes`,
/// `q.len() == batch * 4 * row_bytes`, `out.len() == rows * batch`
/// (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn i2s_gemm(w: &[u8], row_bytes: usize, q: &[i8], out: &mut [i32]) {
    let k = 4 * row_bytes;
    let batch = q.len() / k;
    let (blocks, _) = w.as_chunks::<32>();
    let (qg, _) = q.as_chunks::<128>();
    let nb = row_bytes / 32;
    let rows = blocks.len() / nb;
    if batch == 1 {
        // Decode: one row at a time, one sequential stream per thread.
        let s = sum_i8(q);
        for (o, row) in out.iter_mut().zip(blocks.chunks_exact(nb)) {
            *o = i2s_row(row, qg) - s;
        }
        return;
    }
    let full = rows - rows % TILE_ROWS;
    for t0 in (0..batch).step_by(TILE_TOKENS) {
        let n = (batch - t0).min(TILE_TOKENS);
        let mut sums = [0i32; TILE_TOKENS];
        for (i, s) in sums[..n].iter_mut().enumerate() {
            *s = sum_i8(&q[(t0 + i) * k..(t0 + i + 1) * k]);
        }
        let at = |r0| TileAt {
            r0,
            t0,
            batch,
            sums: &sums[..n],
        };
        for r0 in (0..full).step_by(TILE_ROWS) {
            i2s_gemm_rows::<TILE_ROWS>(blocks, qg, nb, at(r0), out);
        }
        for r0 in full..rows {
            i2s_gemm_rows::<1>(blocks, qg, nb, at(r0), out);
        }
    }
}

/// TQ2_0 x Q8_K GEMV, bit-identical to
/// [`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`] per row.
///
/// Byte `32g + m` holds weights `128g + 32l + m` at shift `2l`; with
/// `z = [b | b >> 2]`, `z & 3` meets activations `128g .. 128g + 64` and
/// `(z >> 4) & 3` meets `128g + 64 .. 128g + 128`. Code 3 reads as +2
/// (`code - 1`), like llama.cpp, so no fix-up.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI and AVX2;
/// `row_bytes == act.len() * 66` and `w.len() == out.len() * row_bytes`
/// (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn tq2_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let m3 = _mm512_set1_epi8(3);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.as_chunks::<{ BlockTq2_0::BYTES }>().0.iter().zip(act) {
            let (qs, d) = blk.split_at(64);
            let (qs, _) = qs.as_chunks::<32>();
            let (qa, _) = ab.qs.as_chunks::<128>();
            let mut acc = [_mm512_setzero_si512(); 2];
            for (half, qh) in qs.iter().zip(qa) {
                let b = load_u8(half);
                let z = concat(b, _mm256_srli_epi16::<2>(b));
                let c_lo = _mm512_and_si512(z, m3);
                let c_hi = _mm512_and_si512(_mm512_srli_epi16::<4>(z), m3);
                acc[0] = _mm512_dpbusd_epi32(acc[0], c_lo, load_i8x64(qh, 0));
                acc[1] = _mm512_dpbusd_epi32(acc[1], c_hi, load_i8x64(qh, 1));
            }
            let sum_q: i32 = ab.bsums.iter().map(|&s| i32::from(s)).sum();
            let sumi = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1])) - sum_q;
            let d = ab.d * f16::from_bits(u16::from_le_bytes([d[0], d[1]])).to_f32();
            sumf += sumi as f32 * d;
        }
        *o = sumf;
    }
}

/// The codes (`w + 1`) of one TQ2_0 block as four vectors of 64 bytes:
/// weights `64j .. 64j + 64` in vector `j`, so each meets a contiguous run
/// of activations (the layout of [`tq2_0_gemv`]: with `z = [b | b >> 2]`
/// for code half `g`, `z & 3` is weights `128g .. 128g + 64` and
/// `(z >> 4) & 3` is `128g + 64 .. 128g + 128`). Code 3 stays 3 (+2).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn tq2_codes(blk: &[u8]) -> [__m512i; 4] {
    let m3 = _mm512_set1_epi8(3);
    let mut c = [_mm512_setzero_si512(); 4];
    for (g, cg) in c.chunks_exact_mut(2).enumerate() {
        let b = load_u8(blk[32 * g..32 * g + 32].try_into().unwrap_or(&[0; 32]));
        let z = concat(b, _mm256_srli_epi16::<2>(b));
        cg[0] = _mm512_and_si512(z, m3);
        cg[1] = _mm512_and_si512(_mm512_srli_epi16::<4>(z), m3);
    }
    c
}

/// `v * 3` per byte of 32, wrapping like ggml's `uint8_t` products.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn mul3_256(v: __m256i) -> __m256i {
    _mm256_add_epi8(v, _mm256_add_epi8(v, v))
}

/// `v * 3` per byte of 16, wrapping.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn mul3_128(v: __m128i) -> __m128i {
    _mm_add_epi8(v, _mm_add_epi8(v, v))
}

/// TQ1_0 trit of each of 64 bytes that already carry their `3^n` factor:
/// ggml's `(v * 3) >> 8`, which for `v` in `0..=255` is
/// `(v >= 86) + (v >= 171)` (two unsigned compares into masks).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn trits64(v: __m512i) -> __m512i {
    let one = _mm512_set1_epi8(1);
    let ge86 = _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(86));
    let ge171 = _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(171u8 as i8));
    let t = _mm512_maskz_mov_epi8(ge86, one);
    _mm512_mask_add_epi8(t, ge171, t, one)
}

/// The trits (`w + 1`) of one TQ1_0 block as four vectors of 64 bytes in
/// activation order, as [`tq2_codes`].
///
/// Trit `n` of `qs[m]` (m < 32) is weight `32n + m`, of `qs[32 + m]`
/// (m < 16) weight `160 + 16n + m`, of `qh[j]` weight `240 + 4n + j`
/// ([`crate::quant::tq1_0`]); trit `n` of a byte is the top trit of the
/// byte times `3^n` (wrapping), so the vectors are
/// `[h | 3h]`, `[9h | 27h]`, `[81h | m, 3m]`, `[9m, 27m | 81m, x]` with
/// `h = qs[..32]`, `m = qs[32..48]` and `x` byte `4n + j` = `qh[j] * 3^n`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn tq1_codes(blk: &[u8]) -> [__m512i; 4] {
    let h0 = load_u8(blk[..32].try_into().unwrap_or(&[0; 32]));
    let h1 = mul3_256(h0);
    let h2 = mul3_256(h1);
    let h3 = mul3_256(h2);
    let h4 = mul3_256(h3);
    let mid: &[u8; 16] = blk[32..48].try_into().unwrap_or(&[0; 16]);
    // SAFETY: `mid` is 16 readable bytes; unaligned load.
    let m0 = unsafe { _mm_loadu_si128(mid.as_ptr().cast()) };
    let m1 = mul3_128(m0);
    let m2 = mul3_128(m1);
    let m3 = mul3_128(m2);
    let m4 = mul3_128(m3);
    let qh: [u8; 4] = blk[48..52].try_into().unwrap_or([0; 4]);
    let x = _mm_set1_epi32(i32::from_le_bytes(qh));
    // Byte `4n + j` times 3^n: per 16-bit lane (two bytes, same n) a
    // wrapping multiply of the low and the high byte.
    let pow = _mm_setr_epi16(1, 1, 3, 3, 9, 9, 27, 27);
    let lo = _mm_and_si128(_mm_mullo_epi16(x, pow), _mm_set1_epi16(0x00ff));
    let hi = _mm_mullo_epi16(_mm_and_si128(x, _mm_set1_epi16(-256)), pow);
    let x = _mm_or_si128(lo, hi);
    [
        trits64(concat(h0, h1)),
        trits64(concat(h2, h3)),
        trits64(concat(h4, _mm256_set_m128i(m1, m0))),
        trits64(concat(_mm256_set_m128i(m3, m2), _mm256_set_m128i(x, m4))),
    ]
}

/// Horizontal sums of 16 vectors at once: lane `i` of the result is the
/// sum of the 16 i32 lanes of `v[i]`. A transpose-and-add tree (unpack
/// 32-bit, unpack 64-bit, two 128-bit lane folds): 45 ops where 16
/// separate reductions take over 100.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn hsum16(v: [__m512i; 16]) -> __m512i {
    let zero = _mm512_setzero_si512();
    // s1[j], 128-bit lane L: [a0+a2, b0+b2, a1+a3, b1+b3] of (a, b) =
    // lane L of (v[2j], v[2j + 1]).
    let mut s1 = [zero; 8];
    for (s, p) in s1.iter_mut().zip(v.chunks_exact(2)) {
        *s = _mm512_add_epi32(
            _mm512_unpacklo_epi32(p[0], p[1]),
            _mm512_unpackhi_epi32(p[0], p[1]),
        );
    }
    // s2[j], lane L: the sums over lane L of v[4j .. 4j + 4].
    let mut s2 = [zero; 4];
    for (s, p) in s2.iter_mut().zip(s1.chunks_exact(2)) {
        *s = _mm512_add_epi32(
            _mm512_unpacklo_epi64(p[0], p[1]),
            _mm512_unpackhi_epi64(p[0], p[1]),
        );
    }
    // [x.L0 + x.L1, x.L2 + x.L3, y.L0 + y.L1, y.L2 + y.L3].
    let fold = |x: __m512i, y: __m512i| {
        _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0b10_00_10_00>(x, y),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(x, y),
        )
    };
    fold(fold(s2[0], s2[1]), fold(s2[2], s2[3]))
}

/// `-bsums` of a Q8_K block as 16 i32 lanes: the starting value of a TQ
/// accumulator, whose horizontal sum then ends at
/// `sum code*q - sum q = sum (code - 1) * q` without a correction step.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn neg_bsums(ab: &BlockQ8K) -> __m512i {
    // SAFETY: `bsums` is 16 i16, 32 readable bytes; unaligned load.
    let b = unsafe { _mm256_loadu_si256(ab.bsums.as_ptr().cast()) };
    _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_cvtepi16_epi32(b))
}

/// TQ GEMM tile size: rows.
const TQ_TILE_ROWS: usize = 4;
/// TQ GEMM tile size: tokens.
const TQ_TILE_TOKENS: usize = 4;
/// Weight bytes of the rows the TQ GEMM keeps in L2 while every token
/// group passes over them (L2 is 1 MiB a core on Zen 4, 2 MiB on recent
/// Intel; the activations of one token group stay in L1).
const TQ_CHUNK_BYTES: usize = 128 << 10;

/// The float outputs of an `R`-row x `T`-token tile of TQ1_0 (`TQ1`) or
/// TQ2_0 weights; lane `4r + t` of the result is row `r`, token `t`.
///
/// Per block, each row is decoded once ([`tq1_codes`] / [`tq2_codes`]) for
/// the `T` tokens and each 64-byte activation load feeds `R` `vpdpbusd`
/// (64 for a 4 x 4 tile, into 16 accumulators that start at `-bsums`);
/// [`hsum16`] gives the 16 exact block integers in one vector, and the
/// float step runs on all 16 lanes at once, each lane doing what
/// the portable dot does: `sumf += sumi as f32 * (ab.d * d)` (TQ2_0) or
/// `* (d * ab.d)` (TQ1_0), blocks in order, separate multiply and add.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn tq_tile<const TQ1: bool, const R: usize, const T: usize>(
    rows: [&[u8]; R],
    act: [&[BlockQ8K]; T],
) -> [f32; 16] {
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
    let zero = _mm512_setzero_si512();
    // Lane 4r + t takes the scale of row r (lanes of dw) / token t (of da).
    let row_of_lane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    let mut sumf = _mm512_setzero_ps();
    for bi in 0..nb {
        let mut codes = [[zero; 4]; R];
        let mut dw = [0u16; 4];
        for ((c, h), row) in codes.iter_mut().zip(&mut dw).zip(&rows) {
            let blk = &row[bi * bytes..(bi + 1) * bytes];
            // Software prefetch PREFETCH_BYTES ahead (the next rows' blocks
            // near the end of this one: rows are contiguous). A prefetch
            // never faults; `wrapping_add` keeps the address defined.
            _mm_prefetch::<_MM_HINT_T0>(blk.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
            *c = if TQ1 { tq1_codes(blk) } else { tq2_codes(blk) };
            *h = u16::from_le_bytes([blk[bytes - 2], blk[bytes - 1]]);
        }
        let mut acc = [[zero; T]; R];
        let mut da = [0.0f32; 4];
        for (t, a) in act.iter().enumerate() {
            let nsq = neg_bsums(&a[bi]);
            da[t] = a[bi].d;
            for ar in acc.iter_mut() {
                ar[t] = nsq;
            }
        }
        for j in 0..4 {
            for (t, a) in act.iter().enumerate() {
                let qv = load_q64(&a[bi].qs, j);
                for (ar, c) in acc.iter_mut().zip(&codes) {
                    ar[t] = _mm512_dpbusd_epi32(ar[t], c[j], qv);
                }
            }
        }
        let mut v = [zero; 16];
        for (r, ar) in acc.iter().enumerate() {
            v[4 * r..4 * r + T].copy_from_slice(ar);
        }
        let sumi = _mm512_cvtepi32_ps(hsum16(v));
        let packed = u64::from(dw[0])
            | u64::from(dw[1]) << 16
            | u64::from(dw[2]) << 32
            | u64::from(dw[3]) << 48;
        let dw = _mm512_cvtph_ps(_mm256_zextsi128_si256(_mm_set1_epi64x(packed as i64)));
        let dw = _mm512_permutexvar_ps(row_of_lane, dw);
        let da = _mm512_broadcast_f32x4(_mm_setr_ps(da[0], da[1], da[2], da[3]));
        let d = if TQ1 {
            _mm512_mul_ps(dw, da)
        } else {
            _mm512_mul_ps(da, dw)
        };
        sumf = _mm512_add_ps(sumf, _mm512_mul_ps(sumi, d));
    }
    let mut out = [0.0f32; 16];
    // SAFETY: `out` is 16 writable f32; unaligned store.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), sumf) };
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
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
/// token groups are the outer loop, so the chunk is re-read from L2 and a
/// token group stays in L1. Every output is computed by the same tile code
/// whatever the chunk or the caller's row range, so results do not depend
/// on how rows are split over threads.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
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
/// The CPU must support AVX-512 F/BW/VL/VNNI and AVX2. `row_bytes` is a
/// nonzero multiple of 66, `w.len() == rows * row_bytes`,
/// `act.len() == batch * row_bytes / 66`, `out.len() == rows * batch`
/// (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn tq2_0_gemm(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    tq_gemm::<false>(w, row_bytes, act, out);
}

/// TQ1_0 x Q8_K GEMM (and, with one token, GEMV), the contract of
/// [`tq2_0_gemm`] with 54-byte blocks: `out[r * batch + t]` equals
/// [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`] bit for bit.
///
/// # Safety
/// As [`tq2_0_gemm`], with `row_bytes` a nonzero multiple of 54 and
/// `act.len() == batch * row_bytes / 54`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn tq1_0_gemm(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    tq_gemm::<true>(w, row_bytes, act, out);
}

/// Rounds 16 activations times `s` to i8 like the portable quantizer:
/// round half to even, NaN -> 0, clamp to [-128, 127].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn quantize16(v: __m512, s: __m512) -> __m128i {
    let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(v, s),
    );
    let r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r), r);
    let r = _mm512_min_ps(
        _mm512_max_ps(r, _mm512_set1_ps(-128.0)),
        _mm512_set1_ps(127.0),
    );
    _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r))
}

/// I2_S activation quantization, bit-identical to
/// [`crate::quant::i2s::quantize_act_i2s`]; returns the scale. Tails use
/// masked loads and stores (masked-off lanes are never touched).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL and AVX2; `x.len() == q.len()`
/// (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn quantize_act_i2s(x: &[f32], q: &mut [i8]) -> f32 {
    let (xc, xt) = x.as_chunks::<16>();
    let tail_mask: __mmask16 = (1u32 << xt.len()).wrapping_sub(1) as u16;
    let abs_mask = _mm512_set1_epi32(0x7fff_ffff);
    let abs = |v: __m512| _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
    // maxps returns its second operand when either is NaN, so NaN inputs
    // are skipped like the portable `av > m` test; masked-off tail lanes
    // load as 0, below the 1e-5 floor.
    let mut vmax = _mm512_set1_ps(1e-5);
    for v in xc {
        // SAFETY: `v` is 16 readable f32; unaligned load.
        let v = unsafe { _mm512_loadu_ps(v.as_ptr()) };
        vmax = _mm512_max_ps(abs(v), vmax);
    }
    // SAFETY: only the `xt.len()` lanes set in `tail_mask` are read, and
    // they are in bounds; masked-off lanes do not fault.
    let vt = unsafe { _mm512_maskz_loadu_ps(tail_mask, xt.as_ptr()) };
    vmax = _mm512_max_ps(abs(vt), vmax);
    let m = _mm512_reduce_max_ps(vmax);
    let s = act_scale(m);
    let sv = _mm512_set1_ps(s);
    let (qc, qt) = q.as_chunks_mut::<16>();
    for (v, o) in xc.iter().zip(qc.iter_mut()) {
        // SAFETY: `v` is 16 readable f32; unaligned load.
        let v = unsafe { _mm512_loadu_ps(v.as_ptr()) };
        // SAFETY: `o` is 16 writable bytes; unaligned store.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), quantize16(v, sv)) };
    }
    let r = quantize16(vt, sv);
    // SAFETY: only the `qt.len() == xt.len()` lanes set in `tail_mask` are
    // written, and they are in bounds.
    unsafe { _mm_mask_storeu_epi8(qt.as_mut_ptr().cast(), tail_mask, r) };
    s
}

/// TL2 dot of one 32-row tile with `N` tokens, as the AVX2 kernel
/// (`pshufb` look-ups, `pmaddubsw` recombination) but applying the sign
/// bits directly as an AVX-512 mask (`vpsubb` under `k`): bit `r` of a sign
/// record negates byte `r`, which is tile row `r`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn tl2_tile<const N: usize>(recs: &[[u8; 20]], tables: [&[[i8; 32]]; N], out: [&mut [i32; 32]; N]) {
    let shifts = _mm256_setr_epi64x(0, 0, 4, 4);
    let low4 = _mm256_set1_epi8(15);
    let comb = _mm256_set1_epi16(0x1001);
    let zero = _mm256_setzero_si256();
    let mut acc = [[zero; 4]; N];
    let mut g0 = 0;
    while g0 < recs.len() {
        let g1 = (g0 + TL_CHUNK).min(recs.len());
        let mut lo = [zero; N];
        let mut hi = [zero; N];
        // Indexing the chunk (not `enumerate().take().skip()`, which
        // compiled to a call per group and spilled the sums) keeps the
        // loop in registers.
        for (i, rec) in recs[g0..g1].iter().enumerate() {
            let g = g0 + i;
            if g % 4 == 0 {
                // A prefetch never faults; `wrapping_add` keeps it defined.
                _mm_prefetch::<_MM_HINT_T0>(rec.as_ptr().wrapping_add(PREFETCH_BYTES).cast());
            }
            // SAFETY: `rec` is 20 readable bytes (16 index bytes loaded);
            // unaligned load.
            let v = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(rec.as_ptr().cast()) });
            let idx = _mm256_and_si256(_mm256_srlv_epi64(v, shifts), low4);
            let [.., s0, s1, s2, s3] = *rec;
            let k: __mmask32 = u32::from_le_bytes([s0, s1, s2, s3]);
            for t in 0..N {
                let Some(tab) = tables[t].get(g) else {
                    continue;
                };
                // SAFETY: `tab` is 32 readable bytes; unaligned loads.
                let (tl, th) = unsafe {
                    (
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(tab.as_ptr().cast())),
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(tab.as_ptr().add(16).cast())),
                    )
                };
                let a = _mm256_shuffle_epi8(tl, idx);
                let b = _mm256_shuffle_epi8(th, idx);
                let a = _mm256_mask_sub_epi8(a, k, zero, a);
                let b = _mm256_mask_sub_epi8(b, k, zero, b);
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

/// TL2 dot of one tile with up to 4 tokens (contract of the AVX2
/// `tl_tile_dot` with `signed`).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL and AVX2. `tile.len() == groups *
/// 20`, `tables.len() == out.len() * groups * 32`, `1 <= out.len() <= 4`
/// (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(super) unsafe fn tl2_tile_dot(
    tile: &[u8],
    groups: usize,
    tables: &[i8],
    out: &mut [[i32; 32]],
) {
    let (tabs, _) = tables.as_chunks::<32>();
    let (recs, _) = tile.as_chunks::<20>();
    let tok = |b: usize| tabs.get(b * groups..(b + 1) * groups).unwrap_or(&[]);
    match out {
        [o0, o1, o2, o3] => tl2_tile::<4>(recs, [tok(0), tok(1), tok(2), tok(3)], [o0, o1, o2, o3]),
        [o0, o1, o2] => tl2_tile::<3>(recs, [tok(0), tok(1), tok(2)], [o0, o1, o2]),
        [o0, o1] => tl2_tile::<2>(recs, [tok(0), tok(1)], [o0, o1]),
        [o0] => tl2_tile::<1>(recs, [tok(0)], [o0]),
        _ => {}
    }
}

/// Wide TL2 dots of `N` 64-row tiles with one token (contract of
/// `crate::quant::tl::tl2_wide_tile_dot` per tile). Per 4-group block, one
/// `vpermi2b` per table half looks up the signed sums of a record's 64
/// (row, group) positions at `32 j + 16 sign + magnitude` (the sign added
/// under the record's sign bits as a `k` mask), and `vpdpbusd` against ones
/// sums a row's four groups into its i32 lane. Two tiles at once share
/// each table load and keep two weight streams in flight.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI/VBMI and AVX2. Each tile
/// holds whole 160-byte blocks and `tables` one token's 256-byte block
/// tables, as many as a tile has blocks (checked by the dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2")]
pub(super) unsafe fn tl2_wide_tiles_dot<const N: usize>(
    tiles: [&[u8]; N],
    tables: &[i8],
    out: [&mut [i32; 64]; N],
) {
    let (tabs, _) = tables.as_chunks::<256>();
    let blocks = tiles.map(|t| t.as_chunks::<160>().0);
    let ones = _mm512_set1_epi8(1);
    let nibble = _mm512_set1_epi8(0x0F);
    // Byte j of every dword (group j of the row) indexes the table of
    // group j: + 32 j.
    let group_base = _mm512_set1_epi32(0x6040_2000);
    let sixteen = _mm512_set1_epi8(16);
    // Bit offsets for `vpmultishiftqb` over the record's 32 nibble bytes
    // in both halves: output byte p < 32 starts at bit 0 of byte p (its low
    // nibble), byte 32 + p at bit 4 of byte p (its high nibble).
    let shifts = _mm512_set_epi64(
        0x3c34_2c24_1c14_0c04,
        0x3c34_2c24_1c14_0c04,
        0x3c34_2c24_1c14_0c04,
        0x3c34_2c24_1c14_0c04,
        0x3830_2820_1810_0800,
        0x3830_2820_1810_0800,
        0x3830_2820_1810_0800,
        0x3830_2820_1810_0800,
    );
    let mut lo = [[_mm512_setzero_si512(); 4]; N];
    let mut hi = [[_mm512_setzero_si512(); 4]; N];
    for (b, t) in tabs.iter().enumerate() {
        // SAFETY: `t` is 256 readable bytes; `loadu` has no alignment
        // requirement.
        let [la, lb, ha, hb] =
            [0, 64, 128, 192].map(|o| unsafe { _mm512_loadu_si512(t.as_ptr().add(o).cast()) });
        for ((tile, lo), hi) in blocks.iter().zip(&mut lo).zip(&mut hi) {
            let Some(block) = tile.get(b) else { continue };
            // Software prefetch PREFETCH_BYTES ahead, every cache line of
            // the 160-byte blocks. A prefetch never faults; `wrapping_add`
            // keeps the address defined past the slice's end.
            for o in [0, 64, 128] {
                _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().wrapping_add(PREFETCH_BYTES + o).cast());
            }
            let (recs, _) = block.as_chunks::<40>();
            for ((rec, l), h) in recs.iter().zip(lo.iter_mut()).zip(hi.iter_mut()) {
                // SAFETY: `rec` is 40 readable bytes, so its first 32 are.
                let v = _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(rec.as_ptr().cast()) });
                // (nibble of position p) | 32 j.
                let m = _mm512_ternarylogic_epi32::<0xEA>(
                    _mm512_multishift_epi64_epi8(shifts, v),
                    nibble,
                    group_base,
                );
                let mut sb = [0u8; 8];
                sb.copy_from_slice(&rec[32..]);
                let idx = _mm512_mask_add_epi8(m, u64::from_le_bytes(sb), m, sixteen);
                *l = _mm512_dpbusd_epi32(*l, ones, _mm512_permutex2var_epi8(la, idx, lb));
                *h = _mm512_dpbusd_epi32(*h, ones, _mm512_permutex2var_epi8(ha, idx, hb));
            }
        }
    }
    for ((o, lo), hi) in out.into_iter().zip(&lo).zip(&hi) {
        let (outs, _) = o.as_chunks_mut::<16>();
        for ((o, &l), &h) in outs.iter_mut().zip(lo).zip(hi) {
            let r = _mm512_add_epi32(l, _mm512_slli_epi32::<4>(h));
            // SAFETY: `o` is 16 writable i32; `storeu` has no alignment
            // requirement.
            unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), r) };
        }
    }
}

/// Byte masks of the wide TL2 tables for activation `i` of a group: bit
/// `e` of `.0` (`.1`) is set where table byte `e` of a 64-byte half (two
/// groups of 16 positive then 16 negated entries) adds (subtracts) that
/// activation; magnitudes 14 and 15 are unused and stay 0.
const fn wide_table_masks(i: usize) -> (u64, u64) {
    let (mut pos, mut neg) = (0u64, 0u64);
    let mut e = 0;
    while e < 64 {
        let (sign, m) = ((e % 32) / 16, e % 16);
        let w = TL2_WEIGHTS[m][i] * if sign == 1 { -1 } else { 1 };
        if w == 1 {
            pos |= 1 << e;
        } else if w == -1 {
            neg |= 1 << e;
        }
        e += 1;
    }
    (pos, neg)
}

/// `vpermb` indices that spread activation `i` of groups `2 h` and
/// `2 h + 1` (bytes `3 g + i` of a block's 12 activations) over the two
/// 32-byte halves of a table register.
const fn wide_table_spread(h: usize, i: usize) -> [u8; 64] {
    let mut idx = [0u8; 64];
    let mut e = 0;
    while e < 64 {
        idx[e] = (3 * (2 * h + e / 32) + i) as u8;
        e += 1;
    }
    idx
}

/// The wide TL2 tables of one token (contract of
/// `crate::quant::tl::tl2_wide_tables`): per 4-group block, the 12
/// activations split into their low and high parts, each spread over the
/// table bytes with `vpermb` and added or subtracted under constant byte
/// masks.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VBMI. `tables.len()` is 256 per
/// 4-group block of `q` (`ceil(ceil(K / 3) / 4)` blocks; checked by the
/// dispatch).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2")]
pub(super) unsafe fn tl2_wide_tables(q: &[i8], tables: &mut [i8]) {
    const MASKS: [(u64, u64); 3] = [
        wide_table_masks(0),
        wide_table_masks(1),
        wide_table_masks(2),
    ];
    const SPREAD: [[[u8; 64]; 3]; 2] = [
        [
            wide_table_spread(0, 0),
            wide_table_spread(0, 1),
            wide_table_spread(0, 2),
        ],
        [
            wide_table_spread(1, 0),
            wide_table_spread(1, 1),
            wide_table_spread(1, 2),
        ],
    ];
    // SAFETY: each `SPREAD` entry is 64 readable bytes; unaligned loads.
    let spread = SPREAD.map(|h| h.map(|s| unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }));
    let low4 = _mm_set1_epi8(0x0F);
    let eight = _mm_set1_epi8(8);
    let (blocks, _) = tables.as_chunks_mut::<256>();
    for (b, t) in blocks.iter_mut().enumerate() {
        // The block's activations, zero past K (masked bytes are not read).
        let avail = q.len().saturating_sub(12 * b).min(12);
        let a = if avail == 0 {
            _mm_setzero_si128()
        } else {
            // SAFETY: `12 b < q.len()`, so the pointer is in bounds, and
            // the mask keeps the load to the `avail` bytes that follow.
            unsafe { _mm_maskz_loadu_epi8((1 << avail) - 1, q.as_ptr().add(12 * b)) }
        };
        // q = 16 * hi + lo, lo = q & 15 in 0..16, hi = q >> 4 in -8..8.
        let lo = _mm_and_si128(a, low4);
        let hi = _mm_sub_epi8(
            _mm_xor_si128(_mm_and_si128(_mm_srli_epi16::<4>(a), low4), eight),
            eight,
        );
        for (p, part) in [lo, hi].into_iter().enumerate() {
            let part = _mm512_zextsi128_si512(part);
            for (h, sp) in spread.iter().enumerate() {
                let mut acc = _mm512_setzero_si512();
                for (&(pos, neg), &s) in MASKS.iter().zip(sp) {
                    let v = _mm512_permutexvar_epi8(s, part);
                    acc = _mm512_mask_add_epi8(acc, pos, acc, v);
                    acc = _mm512_mask_sub_epi8(acc, neg, acc, v);
                }
                // SAFETY: `128 p + 64 h + 64 <= 256` bytes of `t`;
                // unaligned store.
                unsafe { _mm512_storeu_si512(t.as_mut_ptr().add(128 * p + 64 * h).cast(), acc) };
            }
        }
    }
}
