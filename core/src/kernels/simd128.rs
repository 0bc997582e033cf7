//! wasm32 simd128 kernels: I2_S GEMV/GEMM and activation quantization,
//! TQ2_0 and TQ1_0 x Q8_K, the F16 LM head, the int8 LM head and the
//! decode step's attention scores. Each reproduces the portable kernel
//! exactly (module docs of [`super`]); compiled only when
//! the build enables `simd128` (a compile-time choice: wasm has no runtime
//! detection).
//!
//! The I2_S file layout is read as it is (128-weight blocks of 32 bytes):
//! each 16-byte half of a block gives four 16-code vectors by shifts, which
//! meet contiguous runs of activations. Four rows share each activation
//! load. Products of the codes (<= 2) and the int8 activations go through
//! `i16x8.extmul_{low,high}_i8x16` (pairs |.| <= 512, so the 64 pairs of
//! 8 blocks fit i16 lanes) and one `i32x4.extadd_pairwise_i16x8` per 8
//! blocks; `sum q` is subtracted once. A build that also enables `relaxed-simd`
//! multiplies the I2_S codes with `i16x8.relaxed_dot_i8x16_i7x16_s` instead
//! ([`mul_codes`]; same integers, about half the instructions) and reports
//! the `*_simd128_relaxed` kernel ids.
//!
//! Byte-wise shifts use the 16-bit lane shift: every shift here is followed
//! by a mask that keeps only bits that came from the same byte, and the
//! 16-bit shift is one instruction on x86 where the 8-bit one is several.
//!
//! V8 (Chromium, Node) gives wasm 16 vector registers on x86-64 and
//! rematerializes constants or spills sums inside a loop that needs more,
//! or that holds a call: the inner loops here keep their live vectors
//! below that and their rare paths (f16 infinities and NaNs) outside.

use core::arch::wasm32::*;

use half::f16;

use crate::quant::q8_k::BlockQ8K;
use crate::quant::tq1_0::BlockTq1_0;
use crate::quant::tq2_0::BlockTq2_0;

/// Weight rows that share each activation load in the I2_S kernel.
const I2S_ROWS: usize = 4;

/// Loads 16 bytes.
#[inline]
#[target_feature(enable = "simd128")]
fn load16<T: Copy>(b: &[T; 16]) -> v128 {
    // SAFETY: `b` is 16 readable bytes (T is u8 or i8); `v128.load` has no
    // alignment requirement.
    unsafe { v128_load(b.as_ptr().cast()) }
}

/// The 16 bytes of `b` starting at `at` (`at + 16 <= b.len()`).
#[inline]
#[target_feature(enable = "simd128")]
fn load_at<T: Copy>(b: &[T], at: usize) -> v128 {
    let chunk: &[T; 16] = b[at..at + 16]
        .try_into()
        .unwrap_or_else(|_| unreachable!("a 16-element slice"));
    load16(chunk)
}

/// Four f32 from `p[at..at + 4]`.
#[inline]
#[target_feature(enable = "simd128")]
fn load_f32(p: &[f32], at: usize) -> v128 {
    let chunk: &[f32; 4] = p[at..at + 4]
        .try_into()
        .unwrap_or_else(|_| unreachable!("a 4-element slice"));
    // SAFETY: `chunk` is 16 readable bytes; `v128.load` has no alignment
    // requirement.
    unsafe { v128_load(chunk.as_ptr().cast()) }
}

/// Codes at bit `shift` of every byte of `b` (`shift` even, <= 6).
#[inline]
#[target_feature(enable = "simd128")]
fn codes_at(b: v128, shift: u32) -> v128 {
    v128_and(u16x8_shr(b, shift), u8x16_splat(3))
}

/// I2_S code-3 fix (every 2-bit field `11` becomes `01`): the high bit of
/// a field is cleared where the low bit, shifted up one, is set too. The
/// 16-bit shift moves bit 7 of a byte into bit 0 of the next, which the
/// `0xaa` mask (high bits of fields only) drops.
#[inline]
#[target_feature(enable = "simd128")]
fn fix_code3(b: v128) -> v128 {
    v128_xor(b, v128_and(v128_and(b, i16x8_shl(b, 1)), u8x16_splat(0xaa)))
}

/// `sum` over the 16 lanes of `c * a` as 8 i16 lanes (`c`, `a` i8).
#[inline]
#[target_feature(enable = "simd128")]
fn mul_pairs(c: v128, a: v128) -> v128 {
    i16x8_add(i16x8_extmul_low_i8x16(c, a), i16x8_extmul_high_i8x16(c, a))
}

/// `sum` over the 16 lanes of `c * a` as 8 i16 lanes, for I2_S codes `c`
/// in 0..=2. Built with `relaxed-simd`: `i16x8.relaxed_dot_i8x16_i7x16_s`
/// (`pmaddubsw` on x86, `sdot`-like sequences on Arm), deterministic here
/// because every code is a valid i7 and a pair sum (|.| <= 512) cannot
/// saturate, so every engine returns the same integers as [`mul_pairs`].
#[cfg(target_feature = "relaxed-simd")]
#[inline]
#[target_feature(enable = "simd128")]
fn mul_codes(c: v128, a: v128) -> v128 {
    i16x8_relaxed_dot_i8x16_i7x16(a, c)
}

/// [`mul_pairs`] (this build has no `relaxed-simd`).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline]
#[target_feature(enable = "simd128")]
fn mul_codes(c: v128, a: v128) -> v128 {
    mul_pairs(c, a)
}

/// Sum of the four i32 lanes.
#[inline]
#[target_feature(enable = "simd128")]
fn hsum_i32(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v)
        + i32x4_extract_lane::<1>(v)
        + i32x4_extract_lane::<2>(v)
        + i32x4_extract_lane::<3>(v)
}

/// I2_S blocks whose products an i16 lane sums before it is widened: a
/// block adds 8 pair sums to each lane, each in -512..=508 (codes 0..=2
/// after [`fix_code3`], activations -128..=127), so 8 blocks stay within
/// -32768..=32512.
const I2S_I16_BLOCKS: usize = 8;

/// `sum c*q` of `N` I2_S rows (each `q.len() / 4` bytes) with one token
/// (exact in i32).
#[inline]
#[target_feature(enable = "simd128")]
fn i2s_rows<const N: usize>(rows: [&[u8]; N], q: &[i8]) -> [i32; N] {
    let mut acc = [i32x4_splat(0); N];
    let (qs, _) = q.as_chunks::<16>();
    // Block b: halves at bytes 32b, 32b + 16; activation chunk of group j,
    // half h is 8b + 2j + h.
    for (g, qg) in qs.chunks(8 * I2S_I16_BLOCKS).enumerate() {
        let mut p = [i16x8_splat(0); N];
        for (i, qb) in qg.chunks_exact(8).enumerate() {
            let b = g * I2S_I16_BLOCKS + i;
            for h in 0..2 {
                let a: [v128; 4] = core::array::from_fn(|j| load16(&qb[2 * j + h]));
                for (p, row) in p.iter_mut().zip(rows) {
                    let v = fix_code3(load_at(row, 32 * b + 16 * h));
                    for (j, &aj) in a.iter().enumerate() {
                        *p = i16x8_add(*p, mul_codes(codes_at(v, 6 - 2 * j as u32), aj));
                    }
                }
            }
        }
        for (acc, p) in acc.iter_mut().zip(p) {
            *acc = i32x4_add(*acc, i32x4_extadd_pairwise_i16x8(p));
        }
    }
    acc.map(|v| hsum_i32(v))
}

/// `sum q` of one token (the I2_S correction term), 16 at a time.
#[inline]
#[target_feature(enable = "simd128")]
fn sum_i8(q: &[i8]) -> i32 {
    let (qc, qt) = q.as_chunks::<16>();
    let mut acc = i32x4_splat(0);
    for c in qc {
        let pairs = i16x8_extadd_pairwise_i8x16(load16(c));
        acc = i32x4_add(acc, i32x4_extadd_pairwise_i16x8(pairs));
    }
    hsum_i32(acc) + qt.iter().map(|&v| i32::from(v)).sum::<i32>()
}

/// I2_S GEMM: `w` holds `out.len() / batch` rows of `row_bytes` bytes, `q`
/// holds `batch` tokens of `4 * row_bytes` values; `out[r * batch + t]`
/// equals [`crate::quant::i2s::i2s_dot_i32`] of row `r` and token `t`.
///
/// # Safety
/// The build must enable simd128 (this module only exists then).
/// `row_bytes` is a nonzero multiple of 32, `w.len() == rows * row_bytes`,
/// `q.len() == batch * 4 * row_bytes`, `out.len() == rows * batch`
/// (checked by the dispatch).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn i2s_gemm(w: &[u8], row_bytes: usize, q: &[i8], out: &mut [i32]) {
    let k = 4 * row_bytes;
    let batch = q.len() / k;
    if batch == 0 {
        return;
    }
    let group = I2S_ROWS * row_bytes;
    for (t, qt) in q.chunks_exact(k).enumerate() {
        let s = sum_i8(qt);
        let mut wg = w.chunks_exact(group);
        let mut og = out.chunks_exact_mut(I2S_ROWS * batch);
        for (wr, ob) in (&mut wg).zip(&mut og) {
            let rows = core::array::from_fn(|r| &wr[r * row_bytes..(r + 1) * row_bytes]);
            for (r, d) in i2s_rows::<I2S_ROWS>(rows, qt).into_iter().enumerate() {
                ob[r * batch + t] = d - s;
            }
        }
        let rest = wg.remainder().chunks_exact(row_bytes);
        for (row, ob) in rest.zip(og.into_remainder().chunks_exact_mut(batch)) {
            let [d] = i2s_rows([row], qt);
            ob[t] = d - s;
        }
    }
}

/// I2_S activation quantization, bit-identical to
/// [`crate::quant::i2s::quantize_act_i2s`]: the absmax through
/// `f32x4.pmax` (`m < v ? v : m`, so NaN inputs are skipped like the
/// portable `v > m` test), `f32x4.nearest` (round half to even),
/// `i32x4.trunc_sat` (NaN -> 0) and saturating narrows (the clamp to
/// -128..=127). Returns the scale.
///
/// # Safety
/// The build must enable simd128; `x.len() == q.len()` (checked by the
/// dispatch).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn quantize_act_i2s(x: &[f32], q: &mut [i8]) -> f32 {
    let (x16, xt) = x.as_chunks::<16>();
    let abs = |p: &[f32]| f32x4_abs(load_f32(p, 0));
    let mut vmax = f32x4_splat(1e-5);
    for c in x16 {
        for i in 0..4 {
            vmax = f32x4_pmax(vmax, abs(&c[4 * i..]));
        }
    }
    let lanes = [
        f32x4_extract_lane::<0>(vmax),
        f32x4_extract_lane::<1>(vmax),
        f32x4_extract_lane::<2>(vmax),
        f32x4_extract_lane::<3>(vmax),
    ];
    let mut m = 1e-5f32;
    for av in lanes.into_iter().chain(xt.iter().map(|&v| libm::fabsf(v))) {
        if av > m {
            m = av;
        }
    }
    let s = super::act_scale(m);
    let sv = f32x4_splat(s);
    let to_i32 = |p: &[f32]| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(load_f32(p, 0), sv)));
    let (q16, _) = q.as_chunks_mut::<16>();
    for (c, qc) in x16.iter().zip(q16.iter_mut()) {
        let lo = i16x8_narrow_i32x4(to_i32(&c[0..4]), to_i32(&c[4..8]));
        let hi = i16x8_narrow_i32x4(to_i32(&c[8..12]), to_i32(&c[12..16]));
        // SAFETY: `qc` is 16 writable bytes; `v128.store` has no alignment
        // requirement.
        unsafe { v128_store(qc.as_mut_ptr().cast(), i8x16_narrow_i16x8(lo, hi)) };
    }
    let done = x16.len() * 16;
    for (qi, &v) in q[done..].iter_mut().zip(&x[done..]) {
        *qi = super::quantize_act_value(v, s);
    }
    s
}

/// TQ2_0 x Q8_K GEMV, bit-identical to
/// [`crate::quant::tq2_0::vec_dot_tq2_0_q8_k`] per row: per block the exact
/// `sum (code - 1) * q` (weights -1..=2 as i8, products through
/// `i16x8.extmul`: 16 pairs of |.| <= 512 per i16 lane), then
/// `sumf += sumi as f32 * (a.d * w.d)` in block order.
///
/// # Safety
/// The build must enable simd128; `row_bytes == act.len() * 66`,
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn tq2_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    let one = i8x16_splat(1);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.chunks_exact(BlockTq2_0::BYTES).zip(act) {
            let mut p = i16x8_splat(0);
            // Byte 32g + 16h + m carries weights 128g + 32l + 16h + m.
            for g in 0..2 {
                for h in 0..2 {
                    let b = load_at(blk, 32 * g + 16 * h);
                    for l in 0..4 {
                        let wv = i8x16_sub(codes_at(b, 2 * l as u32), one);
                        let a = load_at(&ab.qs, 128 * g + 32 * l + 16 * h);
                        p = i16x8_add(p, mul_pairs(wv, a));
                    }
                }
            }
            let sumi = hsum_i32(i32x4_extadd_pairwise_i16x8(p));
            let d = ab.d * f16::from_bits(u16::from_le_bytes([blk[64], blk[65]])).to_f32();
            sumf += sumi as f32 * d;
        }
        *o = sumf;
    }
}

/// Trits `((b * p mod 256) * 3) >> 8` (0..=2) of the bytes `b` with the
/// per-byte powers of three `p`, minus one: TQ1_0 weights -1..=1 as i8
/// (wasm has no 8-bit multiply, so the product is taken in 16-bit lanes).
#[inline]
#[target_feature(enable = "simd128")]
fn tq1_weights(b: v128, p: v128) -> v128 {
    let (byte, three) = (u16x8_splat(0xff), u16x8_splat(3));
    let trit = |v: v128, p: v128| u16x8_shr(i16x8_mul(v128_and(i16x8_mul(v, p), byte), three), 8);
    let lo = trit(u16x8_extend_low_u8x16(b), u16x8_extend_low_u8x16(p));
    let hi = trit(u16x8_extend_high_u8x16(b), u16x8_extend_high_u8x16(p));
    i8x16_sub(u8x16_narrow_i16x8(lo, hi), i8x16_splat(1))
}

/// TQ1_0 x Q8_K GEMV, bit-identical to
/// [`crate::quant::tq1_0::vec_dot_tq1_0_q8_k`] per row: the trits of the
/// 32- and 16-byte groups (trit `n` of byte `m` is weight `32n + m`, resp.
/// `160 + 16n + m`) and of the 4 high bytes (weight `240 + 4n + j`: the
/// bytes repeated four times against powers 1, 3, 9, 27) meet contiguous
/// activations; per block the exact integer (16 pairs of |.| <= 256 per
/// i16 lane), then `sumf += sumi as f32 * (w.d * a.d)` in block order.
///
/// # Safety
/// The build must enable simd128; `row_bytes == act.len() * 54`,
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn tq1_0_gemv(w: &[u8], row_bytes: usize, act: &[BlockQ8K], out: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let qh_pow = u8x16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27);
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        let mut sumf = 0.0f32;
        for (blk, ab) in row.chunks_exact(BlockTq1_0::BYTES).zip(act) {
            let mut p = i16x8_splat(0);
            for (n, &pw) in POW3.iter().enumerate() {
                let pv = u8x16_splat(pw);
                for h in 0..2 {
                    let wv = tq1_weights(load_at(blk, 16 * h), pv);
                    p = i16x8_add(p, mul_pairs(wv, load_at(&ab.qs, 32 * n + 16 * h)));
                }
                let wv = tq1_weights(load_at(blk, 32), pv);
                p = i16x8_add(p, mul_pairs(wv, load_at(&ab.qs, 160 + 16 * n)));
            }
            let qh = u32::from_le_bytes([blk[48], blk[49], blk[50], blk[51]]);
            let wv = tq1_weights(u32x4_splat(qh), qh_pow);
            p = i16x8_add(p, mul_pairs(wv, load_at(&ab.qs, 240)));
            let sumi = hsum_i32(i32x4_extadd_pairwise_i16x8(p));
            let d = f16::from_bits(u16::from_le_bytes([blk[52], blk[53]])).to_f32();
            sumf += sumi as f32 * (d * ab.d);
        }
        *o = sumf;
    }
}

/// The constants of [`f16x8_to_f32`], made once per GEMV and hidden from
/// LLVM ([`core::hint::black_box`]): as `v128.const` in a loop, V8 built
/// each again in every iteration (three instructions apiece).
#[derive(Clone, Copy)]
struct F16Consts {
    /// Sign and exponent/mantissa bits after the shift: `0x8fff_e000`.
    mask: v128,
    /// 2^112, the exponent bias difference.
    scale: v128,
}

impl F16Consts {
    #[inline]
    #[target_feature(enable = "simd128")]
    fn new() -> Self {
        let [mask, scale] = core::hint::black_box([
            i32x4_splat(0x8fff_e000_u32 as i32),
            f32x4_splat(f32::from_bits((127 + 112) << 23)),
        ]);
        Self { mask, scale }
    }
}

/// Eight f16 values (`h`, little-endian bits) as two f32x4, exactly as
/// `f16::to_f32`: the bits land in the top half of 32-bit lanes; an
/// arithmetic shift by 3 and a mask give the f32 with the sign in place and
/// exponent/mantissa shifted by 13, which times 2^112 rebiases normals and
/// normalizes subnormals exactly. Callers send infinities and NaNs (the
/// only values this would get wrong) to [`f16x8_to_f32_slow`].
#[inline]
#[target_feature(enable = "simd128")]
fn f16x8_to_f32(h: v128, k: F16Consts) -> [v128; 2] {
    let zero = i16x8_splat(0);
    let cvt = |hi: v128| f32x4_mul(v128_and(i32x4_shr(hi, 3), k.mask), k.scale);
    [
        cvt(i16x8_shuffle::<8, 0, 9, 1, 10, 2, 11, 3>(h, zero)),
        cvt(i16x8_shuffle::<12, 4, 13, 5, 14, 6, 15, 7>(h, zero)),
    ]
}

/// [`f16x8_to_f32`] element by element (`f16::to_f32`), for the vectors
/// that hold an infinity or NaN.
#[cold]
#[target_feature(enable = "simd128")]
fn f16x8_to_f32_slow(b: &[u8]) -> [v128; 2] {
    let f: [f32; 8] = core::array::from_fn(|i| {
        f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
    });
    [load_f32(&f, 0), load_f32(&f, 4)]
}

/// The 16 lanes of one [`f16_gemv`] row's four accumulators.
#[inline]
#[target_feature(enable = "simd128")]
fn f16_lanes(a: [v128; 4]) -> [f32; 16] {
    const _: () = assert!(crate::quant::f32::F16_LANES == 16);
    let mut lanes = [0.0f32; 16];
    for (i, v) in a.into_iter().enumerate() {
        // SAFETY: `lanes` is 16 writable f32 and `4 * i + 4 <= 16`;
        // unaligned store.
        unsafe { v128_store(lanes.as_mut_ptr().add(4 * i).cast(), v) };
    }
    lanes
}

/// The end of one [`f16_gemv`] row: its `lanes` (lane `i % 16` of the
/// vector part, `groups` groups of 8), the tail (`rt` weights, `xt`
/// activations) added element by element to the lanes that follow the last
/// group's (8.. after an odd count, 0.. after an even one), then the
/// halving reduction.
#[inline]
#[target_feature(enable = "simd128")]
fn f16_row_end(mut lanes: [f32; 16], groups: usize, rt: &[u8], xt: &[f32]) -> f32 {
    let first = 8 * (groups % 2);
    for (a, (we, &xv)) in lanes[first..].iter_mut().zip(rt.chunks_exact(2).zip(xt)) {
        *a += f16::from_bits(u16::from_le_bytes([we[0], we[1]])).to_f32() * xv;
    }
    for half in [8, 4, 2, 1] {
        for l in 0..half {
            lanes[l] += lanes[l + half];
        }
    }
    lanes[0]
}

/// Adds one group of 8 products `w * x` (the weights as two f32x4) to the
/// accumulators of its lanes, `a[O]` and `a[O + 1]`: `O = 0` for even
/// groups (lanes 0..8), 2 for odd ones (lanes 8..16).
#[inline]
#[target_feature(enable = "simd128")]
fn f16_add_group<const O: usize>(a: &mut [v128; 4], [w0, w1]: [v128; 2], xv: &[f32; 8]) {
    a[O] = f32x4_add(a[O], f32x4_mul(w0, load_f32(xv, 0)));
    a[O + 1] = f32x4_add(a[O + 1], f32x4_mul(w1, load_f32(xv, 4)));
}

/// The vector part of one [`f16_gemv`] row: its groups of 8 in pairs
/// (lanes 0..8, then 8..16), then an odd last one, each converted by `cvt`.
#[inline]
#[target_feature(enable = "simd128")]
fn f16_groups(
    rc: &[[u8; 16]],
    xc: &[[f32; 8]],
    mut cvt: impl FnMut(&[u8; 16]) -> [v128; 2],
) -> [v128; 4] {
    let mut a = [f32x4_splat(0.0); 4];
    let (r2, r1) = rc.as_chunks::<2>();
    let (x2, x1) = xc.as_chunks::<2>();
    for (wb, xv) in r2.iter().zip(x2) {
        f16_add_group::<0>(&mut a, cvt(&wb[0]), &xv[0]);
        f16_add_group::<2>(&mut a, cvt(&wb[1]), &xv[1]);
    }
    for (wb, xv) in r1.iter().zip(x1) {
        f16_add_group::<0>(&mut a, cvt(wb), xv);
    }
    a
}

/// One row of [`f16_gemv`] through [`f16x8_to_f32`] alone, or `None` when
/// its vector part holds an infinity or NaN (the largest `|h|` seen is
/// kept, so the loop has no branch; V8 spilled the sums of the loop that
/// tested each vector). The four accumulators are four independent chains
/// of additions.
#[inline]
#[target_feature(enable = "simd128")]
fn f16_row(row: &[u8], x: &[f32], k: F16Consts) -> Option<f32> {
    let (xc, xt) = x.as_chunks::<8>();
    let rc = &row.as_chunks::<16>().0[..xc.len()];
    // The largest `h << 1` (the sign shifted out): an infinity or NaN is
    // at least 0xf800.
    let mut top = u16x8_splat(0);
    let a = f16_groups(rc, xc, |wb| {
        let h = load16(wb);
        top = u16x8_max(top, i16x8_shl(h, 1));
        f16x8_to_f32(h, k)
    });
    if v128_any_true(u16x8_ge(top, u16x8_splat(0xf800))) {
        return None;
    }
    // The sums go to memory before the tail: the tail's f16 conversion is
    // a call, and V8 spills in the loop whatever vector is live across a
    // call after it (about 40 % slower).
    let lanes = f16_lanes(a);
    Some(f16_row_end(lanes, xc.len(), &row[16 * xc.len()..], xt))
}

/// One row of [`f16_gemv`] that holds an infinity or NaN: each vector is
/// tested and the special ones converted element by element.
#[cold]
#[target_feature(enable = "simd128")]
fn f16_row_special(row: &[u8], x: &[f32], k: F16Consts) -> f32 {
    let (xc, xt) = x.as_chunks::<8>();
    let (rc, rt) = row.as_chunks::<16>();
    let (inf, abs) = (u16x8_splat(0x7c00), u16x8_splat(0x7fff));
    let a = f16_groups(&rc[..xc.len()], xc, |wb| {
        let h = load16(wb);
        if v128_any_true(u16x8_ge(v128_and(h, abs), inf)) {
            f16x8_to_f32_slow(wb)
        } else {
            f16x8_to_f32(h, k)
        }
    });
    f16_row_end(f16_lanes(a), xc.len(), rt, xt)
}

/// F16 x f32 GEMV, bit-identical to [`crate::quant::f16::dot_f16_f32`] per
/// row: element `i`'s product `w_i * x_i` (f32, not fused) is added to lane
/// `i % 16` (four f32x4 accumulators), the tail in the same way, then the
/// halving reduction. One row at a time: a row of the 16-lane order keeps
/// four independent sums in flight (what two rows of the former 8-lane
/// order did, sharing their activation loads), and two rows' eight
/// accumulators would not fit the 16 vector registers V8 has on x86-64. A
/// row with an infinity or NaN is computed again by [`f16_row_special`].
///
/// # Safety
/// The build must enable simd128; `row_bytes == 2 * x.len()`,
/// `w.len() == out.len() * row_bytes` (checked by the dispatch).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn f16_gemv(w: &[u8], row_bytes: usize, x: &[f32], out: &mut [f32]) {
    let k = F16Consts::new();
    for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
        *o = match f16_row(row, x, k) {
            Some(v) => v,
            None => f16_row_special(row, x, k),
        };
    }
}

/// Int8 LM-head GEMV: `out[r] = sum w[r][i] * q[i]` exactly (codes in
/// -127..=127, so a pair of products is at most 32512 in an i16 lane).
///
/// # Safety
/// The build must enable simd128; `q.len() == k`, `w.len() == out.len() * k`,
/// codes in -127..=127 (checked by the dispatch / `Q8Rows`).
#[target_feature(enable = "simd128")]
pub(super) unsafe fn q8_head_gemv(w: &[i8], k: usize, q: &[i8], out: &mut [i32]) {
    let (qc, qt) = q.as_chunks::<16>();
    for (o, row) in out.iter_mut().zip(w.chunks_exact(k)) {
        let (rc, rt) = row.as_chunks::<16>();
        let mut acc = i32x4_splat(0);
        for (wv, qv) in rc.iter().zip(qc) {
            let p = mul_pairs(load16(wv), load16(qv));
            acc = i32x4_add(acc, i32x4_extadd_pairwise_i16x8(p));
        }
        let tail: i32 = rt
            .iter()
            .zip(qt)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        *o = hsum_i32(acc) + tail;
    }
}

/// Keys scored together by [`attention_scores`]: two groups of four, each
/// group one f32x4 of sums.
const SCORE_KEYS: usize = 8;

/// Attention scores of one query, bit-identical to the portable loop
/// (`model::attention::scores`): `out[t] = dot(q, key t) * scale`, each
/// dot one sum over `d` in index order started from zero, with key `t` at
/// `keys[t * stride..][..q.len()]`. Four keys share an f32x4 (one lane
/// each), so every lane's operations are the portable ones; the keys'
/// elements reach the lanes by 4x4 transposes of contiguous loads
/// (`i32x4.shuffle` patterns V8 emits as one unpack each) where LLVM's
/// own vectorization of the portable loop gathered them one lane at a time.
/// Keys past the last full group of [`SCORE_KEYS`], and the last
/// `q.len() % 4` elements, go element by element in the same order.
///
/// # Safety
/// The build must enable simd128 (this module only exists then). Slices
/// are indexed with bounds checks: `keys` must hold every key
/// (`(out.len() - 1) * stride + q.len()` values) or this panics.
#[inline]
#[target_feature(enable = "simd128")]
pub(crate) unsafe fn attention_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = q.len();
    let (q4, qt) = q.as_chunks::<4>();
    let done = 4 * q4.len();
    let scale_v = f32x4_splat(scale);
    let mut groups = out.chunks_exact_mut(SCORE_KEYS);
    let mut t0 = 0;
    for o in &mut groups {
        let rows: [&[f32]; SCORE_KEYS] =
            core::array::from_fn(|j| &keys[(t0 + j) * stride..(t0 + j) * stride + hd]);
        let mut acc = [f32x4_splat(0.0); 2];
        for (i, qv) in q4.iter().enumerate() {
            for (g, a) in acc.iter_mut().enumerate() {
                let r: [v128; 4] = core::array::from_fn(|j| load_f32(rows[4 * g + j], 4 * i));
                // Lane j of column k: key 4g + j, element 4i + k.
                let lo01 = i32x4_shuffle::<0, 4, 1, 5>(r[0], r[1]);
                let lo23 = i32x4_shuffle::<0, 4, 1, 5>(r[2], r[3]);
                let hi01 = i32x4_shuffle::<2, 6, 3, 7>(r[0], r[1]);
                let hi23 = i32x4_shuffle::<2, 6, 3, 7>(r[2], r[3]);
                let cols = [
                    i64x2_shuffle::<0, 2>(lo01, lo23),
                    i64x2_shuffle::<1, 3>(lo01, lo23),
                    i64x2_shuffle::<0, 2>(hi01, hi23),
                    i64x2_shuffle::<1, 3>(hi01, hi23),
                ];
                for (&qd, col) in qv.iter().zip(cols) {
                    *a = f32x4_add(*a, f32x4_mul(f32x4_splat(qd), col));
                }
            }
        }
        for (d, &qd) in (done..).zip(qt) {
            for (g, a) in acc.iter_mut().enumerate() {
                let col = f32x4(
                    rows[4 * g][d],
                    rows[4 * g + 1][d],
                    rows[4 * g + 2][d],
                    rows[4 * g + 3][d],
                );
                *a = f32x4_add(*a, f32x4_mul(f32x4_splat(qd), col));
            }
        }
        let [lo, hi] = acc.map(|a| f32x4_mul(a, scale_v));
        // SAFETY: `o` is SCORE_KEYS = 8 writable f32; unaligned stores.
        unsafe {
            v128_store(o.as_mut_ptr().cast(), lo);
            v128_store(o.as_mut_ptr().add(4).cast(), hi);
        }
        t0 += SCORE_KEYS;
    }
    for (t, o) in (t0..).zip(groups.into_remainder()) {
        let mut s = 0.0f32;
        for (&qd, &kd) in q.iter().zip(&keys[t * stride..t * stride + hd]) {
            s += qd * kd;
        }
        *o = s * scale;
    }
}

/// The largest value of `x` by `f32x4.pmax` (`m < v ? v : m`), NaNs
/// skipped, as the fold of `f32::max` (of two zeros either may come out,
/// as there), for softmax in a build without relaxed-simd, where
/// `f32::max` is a call to libm's `fmaxf` per element. Not for a build
/// with relaxed-simd: LLVM turns `pmax` there (and any vector compare and
/// select) into `f32x4.relaxed_max`, whose NaN result the engine chooses
/// (V8 on x86-64 returned the NaN lane).
///
/// # Safety
/// The build must enable simd128 (this module only exists then).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline]
#[target_feature(enable = "simd128")]
pub(crate) unsafe fn max_of(x: &[f32]) -> f32 {
    let (chunks, tail) = x.as_chunks::<8>();
    let mut m = [f32x4_splat(f32::NEG_INFINITY); 2];
    for c in chunks {
        m[0] = f32x4_pmax(m[0], load_f32(c, 0));
        m[1] = f32x4_pmax(m[1], load_f32(c, 4));
    }
    let lanes = f32x4_pmax(m[0], m[1]);
    let lanes = [
        f32x4_extract_lane::<0>(lanes),
        f32x4_extract_lane::<1>(lanes),
        f32x4_extract_lane::<2>(lanes),
        f32x4_extract_lane::<3>(lanes),
    ];
    let mut best = f32::NEG_INFINITY;
    for v in lanes.into_iter().chain(tail.iter().copied()) {
        if v > best {
            best = v;
        }
    }
    best
}

/// BitNet's FFN gate, `g = max(g, 0)^2 * u` element by element, as the
/// portable `g.max(0.0)` then `r * r * u` (NaN -> 0; a zero's sign cannot
/// show after squaring): `f32x4.pmax(0, g)`, then NaN lanes cleared by
/// `g == g`: in a relaxed-simd build LLVM turns `pmax` into
/// `f32x4.relaxed_max`, whose NaN result the engine chooses (V8 on x86-64
/// may pass the NaN). `g.max(0.0)` would be a call to libm's `fmaxf` per
/// element, wasm having no IEEE maxNum.
///
/// # Safety
/// The build must enable simd128 (this module only exists then);
/// `g.len() == u.len()` (else the shorter length is used).
#[inline]
#[target_feature(enable = "simd128")]
pub(crate) unsafe fn relu_squared_mul(g: &mut [f32], u: &[f32]) {
    let n = g.len().min(u.len());
    let (g4, gt) = g[..n].as_chunks_mut::<4>();
    let (u4, ut) = u[..n].as_chunks::<4>();
    let zero = f32x4_splat(0.0);
    for (gc, uc) in g4.iter_mut().zip(u4) {
        let gv = load_f32(gc, 0);
        let r = v128_and(f32x4_pmax(zero, gv), f32x4_eq(gv, gv));
        let v = f32x4_mul(f32x4_mul(r, r), load_f32(uc, 0));
        // SAFETY: `gc` is 4 writable f32; unaligned store.
        unsafe { v128_store(gc.as_mut_ptr().cast(), v) };
    }
    for (gv, &uv) in gt.iter_mut().zip(ut) {
        let r = if *gv > 0.0 { *gv } else { 0.0 };
        *gv = r * r * uv;
    }
}
