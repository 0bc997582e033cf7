//! AArch64 NEON kernels: I2_S GEMV/GEMM, TQ2_0 and TQ1_0 x Q8_K GEMV and the
//! TL1/TL2 tile dots. Each
//! reproduces the portable kernel of [`crate::quant`] exactly (module docs
//! of [`super`]). NEON is part of the AArch64 base ISA, so the tier is a
//! compile-time choice (no runtime detection needed).
//!
//! The Armv8.2 dot-product extension (`sdot`) is a compile-time choice too:
//! a build whose target has `dotprod` (`-C target-feature=+dotprod`, or a
//! `target-cpu` that implies it) multiplies codes and activations with
//! `sdot` (four products per i32 lane) instead of `smull`/`smlal` +
//! `sadalp`, and reports the `*_neon_dotprod` kernel ids. Runtime detection
//! would need the OS (`getauxval` / `sysctl`), which this `no_std` crate
//! does not reach. The intrinsic `vdotq_s32` is unstable
//! (`stdarch_neon_dotprod`), so the instruction is written with `asm!`.
//! Both variants give the same exact integers.
//!
//! The I2_S file layout is read as it is on every CPU (128-weight blocks of
//! 32 bytes, DESIGN.md §4): a block's 32 bytes give four 32-code groups by
//! shifts, each meeting a contiguous run of 32 activations. Products of the
//! unsigned codes (<= 2) and int8 activations go through `smull`/`smlal`
//! into i16 (two products, |.| <= 512) and `sadalp` into i32; `sum q` is
//! subtracted once, as in the x86 kernels.
//!
//! The TL kernels look the 4-bit indices up with `tbl` (`vqtbl1q_s8`) in the
//! low and high halves of each group's table, negate by the TL2 sign bits,
//! and recombine `lo + 16 * hi` in i16 (`sshll` + `saddw`).

use core::arch::aarch64::*;

use half::f16;

use super::{ids, sum_i8};
use crate::quant::q8_k::BlockQ8K;
use crate::quant::tq1_0::BlockTq1_0;
use crate::quant::tq2_0::BlockTq2_0;

/// Whether this build's code/activation products use `sdot`.
const DOTPROD: bool = cfg!(target_feature = "dotprod");

/// Kernel id of [`i2s_gemm`] for one token.
pub(super) const I2S_GEMV_ID: &str = if DOTPROD {
    ids::I2S_GEMV_NEON_DOTPROD
} else {
    ids::I2S_GEMV_NEON
};
/// Kernel id of [`i2s_gemm`] for several tokens.
pub(super) const I2S_GEMM_ID: &str = if DOTPROD {
    ids::I2S_GEMM_NEON_DOTPROD
} else {
    ids::I2S_GEMM_NEON
};
/// Kernel id of [`tq2_0_gemv`].
pub(super) const TQ2_0_GEMV_ID: &str = if DOTPROD {
    ids::TQ2_0_GEMV_NEON_DOTPROD
} else {
    ids::TQ2_0_GEMV_NEON
};
/// Kernel id of [`tq1_0_gemv`].
pub(super) const TQ1_0_GEMV_ID: &str = if DOTPROD {
    ids::TQ1_0_GEMV_NEON_DOTPROD
} else {
    ids::TQ1_0_GEMV_NEON
};

/// Loads 16 bytes.
#[inline]
#[target_feature(enable = "neon")]
fn ld_u8(b: &[u8]) -> uint8x16_t {
    let b: &[u8; 16] = b
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .unwrap_or(&[0; 16]);
    // SAFETY: `b` is 16 readable bytes; `ld1` has no alignment requirement.
    unsafe { vld1q_u8(b.as_ptr()) }
}

/// Loads 16 activations.
#[inline]
#[target_feature(enable = "neon")]
fn ld_i8(q: &[i8]) -> int8x16_t {
    let q: &[i8; 16] = q
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .unwrap_or(&[0; 16]);
    // SAFETY: `q` is 16 readable bytes; `ld1` has no alignment requirement.
    unsafe { vld1q_s8(q.as_ptr()) }
}

/// I2_S code-3 fix (every 2-bit field `11` becomes `01`), as the AVX2
/// kernel's `i2s_fix_code3`.
#[inline]
#[target_feature(enable = "neon")]
fn fix_code3(b: uint8x16_t) -> uint8x16_t {
    let both = vandq_u8(vandq_u8(b, vshrq_n_u8::<1>(b)), vdupq_n_u8(0x55));
    veorq_u8(b, vaddq_u8(both, both))
}

/// `acc` plus the products of the unsigned codes `c` (each <= 3) and the
/// activations `a`, summed four by four into the i32 lanes (`sdot`): exact.
/// (The whole build targets `dotprod`, so the function needs no attribute
/// of its own for it, and its callers stay `neon`-only.)
#[cfg(target_feature = "dotprod")]
#[inline]
#[target_feature(enable = "neon")]
fn dot_codes(mut acc: int32x4_t, c: uint8x16_t, a: int8x16_t) -> int32x4_t {
    let c = vreinterpretq_s8_u8(c);
    // SAFETY: `sdot` exists (this build's target has `dotprod`) and only
    // reads and writes the three vector registers.
    unsafe {
        core::arch::asm!(
            "sdot {acc:v}.4s, {c:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            c = in(vreg) c,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `acc` plus the products of the unsigned codes `c` (each <= 3) and the
/// activations `a`: pairs through `smull`/`smlal` into i16 (|pair| <= 768)
/// and `sadalp` into the i32 lanes: exact.
#[cfg(not(target_feature = "dotprod"))]
#[inline]
#[target_feature(enable = "neon")]
fn dot_codes(acc: int32x4_t, c: uint8x16_t, a: int8x16_t) -> int32x4_t {
    let c = vreinterpretq_s8_u8(c);
    let p = vmlal_high_s8(vmull_s8(vget_low_s8(c), vget_low_s8(a)), c, a);
    vpadalq_s16(acc, p)
}

/// `sum c*q` of one I2_S row with one token (exact in i32).
#[inline]
#[target_feature(enable = "neon")]
fn i2s_row(row: &[u8], q: &[i8]) -> i32 {
    let m3 = vdupq_n_u8(3);
    let mut acc = vdupq_n_s32(0);
    for (blk, qb) in row.chunks_exact(32).zip(q.chunks_exact(128)) {
        for h in 0..2 {
            let b = fix_code3(ld_u8(&blk[16 * h..]));
            let codes = [
                vandq_u8(vshrq_n_u8::<6>(b), m3),
                vandq_u8(vshrq_n_u8::<4>(b), m3),
                vandq_u8(vshrq_n_u8::<2>(b), m3),
                vandq_u8(b, m3),
            ];
            for (j, c) in codes.into_iter().enumerate() {
                acc = dot_codes(acc, c, ld_i8(&qb[32 * j + 16 * h..]));
            }
        }
    }
    vaddvq_s32(acc)
}

/// I2_S GEMM: `w` holds `out.len() / batch` rows of `row_bytes` bytes, `q`
/// holds `batch` tokens of `4 * row_bytes` values; `out[r * batch + t]`
/// equals [`crate::quant::i2s::i2s_dot_i32`] of row `r` and token `t`.
///
/// # Safety
/// The CPU must support NEON (every AArch64 CPU). `row_bytes` is a nonzero
/// multiple of 32, `w.len() == rows * row_bytes`, `q.len() == batch * 4 *
/// row_bytes`, `out.len() == rows * batch` (checked by the dispatch).
#[target_feature(enable = "neon")]
pub(super) unsafe fn i2s_gemm(w: &[u8], row_bytes: usize, q: &[i8], out: &mut [i32]) {
    let k = 4 * row_bytes;
    let batch = q.len() / k;
    if batch == 0 {
        return;
    }
    let mut sums = [0i32; 16];
    for t0 in (0..batch).step_by(16) {
        let n = (batch - t0).min(16);
        for (i, s) in sums.iter_mut().enumerate().take(n) {
            *s = sum_i8(&q[(t0 + i) * k..(t0 + i + 1) * k]);
        }
        for (ob, row) in out.chunks_exact_mut(batch).zip(w.chunks_exact(row_bytes)) {
            for (i, o) in ob[t0..t0 + n].iter_mut().enumerate() {
                let qt = &q[(t0 + i) * k..(t0 + i + 1) * k];
                *o = i2s_row(row, qt) - sums[i];
            }
        }
    }
}

/// Groups per i16 accumulation chunk: |group sum| <= 384, 64 of them fit.
const TL_CHUNK: usize = 64;

/// TL dot of one tile with one token: `tile` is `groups` group records
/// (16 index bytes, then TL2's 4 sign bytes), `tables` `groups` 32-byte tables;
/// `out` gets the 32 row dots (equal to the portable tile dot of
/// [`crate::quant::tl`]).
///
/// # Safety
/// The CPU must support NEON. `tile.len()` is `groups * 16` (TL1) or
/// `groups * 20` (TL2, `signed`), `tables.len() == groups * 32` (checked by
/// the dispatch).
#[target_feature(enable = "neon")]
pub(super) unsafe fn tl_tile_dot(
    signed: bool,
    tile: &[u8],
    groups: usize,
    tables: &[i8],
    out: &mut [i32; 32],
) {
    // Group records: 16 index bytes, then TL2's 4 sign bytes.
    let stride = if signed { 20 } else { 16 };
    let low4 = vdupq_n_u8(15);
    // Byte i of a 16-row half takes bit i % 8 of sign byte i / 8.
    let sel: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    let bits: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    let (sel, bits) = (ld_u8(&sel), ld_u8(&bits));
    // acc[i]: i32 sums of tile rows 4i..4i + 4.
    let mut acc = [vdupq_n_s32(0); 8];
    let mut g0 = 0;
    while g0 < groups {
        let g1 = (g0 + TL_CHUNK).min(groups);
        // s16[i]: i16 sums of rows 8i..8i + 8.
        let mut s16 = [vdupq_n_s16(0); 4];
        for g in g0..g1 {
            let rec = &tile[stride * g..];
            let v = ld_u8(rec);
            let t = &tables[32 * g..32 * g + 32];
            let (tlo, thi) = (ld_i8(t), ld_i8(&t[16..]));
            let idx = [vandq_u8(v, low4), vshrq_n_u8::<4>(v)];
            for (half, ix) in idx.into_iter().enumerate() {
                let mut lo = vqtbl1q_s8(tlo, ix);
                let mut hi = vqtbl1q_s8(thi, ix);
                if signed {
                    let sb = &rec[16 + 2 * half..];
                    let pair =
                        vreinterpretq_u8_u16(vdupq_n_u16(u16::from_le_bytes([sb[0], sb[1]])));
                    let m = vreinterpretq_s8_u8(vtstq_u8(vqtbl1q_u8(pair, sel), bits));
                    // (x ^ m) - m negates where m = -1.
                    lo = vsubq_s8(veorq_s8(lo, m), m);
                    hi = vsubq_s8(veorq_s8(hi, m), m);
                }
                let r0 = vaddw_s8(vshll_n_s8::<4>(vget_low_s8(hi)), vget_low_s8(lo));
                let r1 = vaddw_high_s8(vshll_high_n_s8::<4>(hi), lo);
                s16[2 * half] = vaddq_s16(s16[2 * half], r0);
                s16[2 * half + 1] = vaddq_s16(s16[2 * half + 1], r1);
            }
        }
        for (i, s) in s16.into_iter().enumerate() {
            acc[2 * i] = vaddw_s16(acc[2 * i], vget_low_s16(s));
            acc[2 * i + 1] = vaddw_high_s16(acc[2 * i + 1], s);
        }
        g0 = g1;
    }
    for (o, a) in out.as_chunks_mut::<4>().0.iter_mut().zip(acc) {
        // SAFETY: `o` is 4 writable i32; `st1` has no alignment requirement.
        unsafe { vst1q_s32(o.as_mut_ptr(), a) };
    }
}

/// TQ2_0 x Q8_K GEMV: `w` holds `out.len()` rows of `row_bytes` bytes
/// (`act.len()` blocks of 66 bytes); `out[r]` equals
/// [`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`] bit for bit: the same
/// integer per block (`sum code * q - sum q`, codes 0..=3 through
/// [`dot_codes`]) and the same float combination in block order.
///
/// # Safety
/// The CPU must support NEON; `row_bytes == act.len() * 66` and
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "neon")]
pub(super) unsafe fn tq2_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let m3 = vdupq_n_u8(3);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.chunks_exact(BlockTq2_0::BYTES).zip(act) {
            let mut acc = vdupq_n_s32(0);
            for (g, qg) in ab.qs.chunks_exact(128).enumerate() {
                for h in 0..2 {
                    let b = ld_u8(&blk[32 * g + 16 * h..]);
                    for l in 0..4 {
                        let c = match l {
                            0 => vandq_u8(b, m3),
                            1 => vandq_u8(vshrq_n_u8::<2>(b), m3),
                            2 => vandq_u8(vshrq_n_u8::<4>(b), m3),
                            _ => vshrq_n_u8::<6>(b),
                        };
                        acc = dot_codes(acc, c, ld_i8(&qg[32 * l + 16 * h..]));
                    }
                }
            }
            let sum_q: i32 = ab.bsums.iter().map(|&s| i32::from(s)).sum();
            let sumi = vaddvq_s32(acc) - sum_q;
            let d = ab.d * f16::from_bits(u16::from_le_bytes([blk[64], blk[65]])).to_f32();
            sumf += sumi as f32 * d;
        }
        *o = sumf;
    }
}

/// ggml's trit extraction on 16 bytes already multiplied by `3^n`
/// (wrapping): `(q * 3) >> 8` in u16, each result 0..=2.
#[inline]
#[target_feature(enable = "neon")]
fn trits(q: uint8x16_t) -> uint8x16_t {
    let lo = vshrn_n_u16::<8>(vmull_u8(vget_low_u8(q), vdup_n_u8(3)));
    let hi = vshrn_n_u16::<8>(vmull_high_u8(q, vdupq_n_u8(3)));
    vcombine_u8(lo, hi)
}

/// TQ1_0 x Q8_K GEMV: `w` holds `out.len()` rows of `row_bytes` bytes
/// (`act.len()` blocks of 54 bytes); `out[r]` equals
/// [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`] bit for bit: per block the
/// exact `sum trit * q - sum q` (trits by `mul` with `3^n` and ggml's
/// multiply-shift, products through [`dot_codes`]), then
/// `sumf += sumi * (d_w * d_a)` in block order.
///
/// The block layout (module docs of [`crate::quant::tq1_0`]) keeps every
/// trit position `n` of a run of bytes next to a contiguous run of
/// activations: `qs[0..32]` meets `q[32n..32n + 32]`, `qs[32..48]` meets
/// `q[160 + 16n..]`, and the four `qh` bytes, repeated across the vector
/// and multiplied by `3^(lane / 4)`, meet `q[240..256]`.
///
/// # Safety
/// The CPU must support NEON; `row_bytes == act.len() * 54` and
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "neon")]
pub(super) unsafe fn tq1_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let pow_qh = ld_u8(&[1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27]);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.chunks_exact(BlockTq1_0::BYTES).zip(act) {
            let q = &ab.qs;
            let (b0, b1, b2) = (ld_u8(blk), ld_u8(&blk[16..]), ld_u8(&blk[32..]));
            let mut acc = vdupq_n_s32(0);
            for (n, &p) in POW3.iter().enumerate() {
                let p = vdupq_n_u8(p);
                acc = dot_codes(acc, trits(vmulq_u8(b0, p)), ld_i8(&q[32 * n..]));
                acc = dot_codes(acc, trits(vmulq_u8(b1, p)), ld_i8(&q[32 * n + 16..]));
                acc = dot_codes(acc, trits(vmulq_u8(b2, p)), ld_i8(&q[160 + 16 * n..]));
            }
            let qh = u32::from_le_bytes([blk[48], blk[49], blk[50], blk[51]]);
            let h = vreinterpretq_u8_u32(vdupq_n_u32(qh));
            acc = dot_codes(acc, trits(vmulq_u8(h, pow_qh)), ld_i8(&q[240..]));
            let sum_q: i32 = ab.bsums.iter().map(|&s| i32::from(s)).sum();
            let sumi = vaddvq_s32(acc) - sum_q;
            let d = f16::from_bits(u16::from_le_bytes([blk[52], blk[53]])).to_f32();
            sumf += sumi as f32 * (d * ab.d);
        }
        *o = sumf;
    }
}
