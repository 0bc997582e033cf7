//! wasm32 simd128 kernels: I2_S GEMV/GEMM. Reproduces the portable kernel
//! exactly (module docs of [`super`]); compiled only when the build enables
//! `simd128` (a compile-time choice: wasm has no runtime detection).
//!
//! The I2_S file layout is read as it is (128-weight blocks of 32 bytes):
//! each 16-byte half of a block gives four 16-code vectors by shifts, which
//! meet contiguous runs of activations. Products of the codes (<= 2) and the
//! int8 activations go through `i16x8.extmul_{low,high}_i8x16` (pairs
//! |.| <= 512) and `i32x4.extadd_pairwise_i16x8`; `sum q` is subtracted once.

use core::arch::wasm32::*;

use super::sum_i8;

/// Loads 16 bytes.
#[inline]
#[target_feature(enable = "simd128")]
fn load16<T: Copy>(b: &[T; 16]) -> v128 {
    // SAFETY: `b` is 16 readable bytes (T is u8 or i8); `v128.load` has no
    // alignment requirement.
    unsafe { v128_load(b.as_ptr().cast()) }
}

/// I2_S code-3 fix (every 2-bit field `11` becomes `01`).
#[inline]
#[target_feature(enable = "simd128")]
fn fix_code3(b: v128) -> v128 {
    let both = v128_and(v128_and(b, u8x16_shr(b, 1)), u8x16_splat(0x55));
    v128_xor(b, u8x16_add(both, both))
}

/// `sum c*q` of one I2_S row with one token (exact in i32).
#[inline]
#[target_feature(enable = "simd128")]
fn i2s_row(row: &[u8], q: &[i8]) -> i32 {
    let m3 = u8x16_splat(3);
    let mut acc = i32x4_splat(0);
    let (blocks, _) = row.as_chunks::<16>();
    let (qs, _) = q.as_chunks::<16>();
    // Block b: halves 2b, 2b + 1; activation chunk of group j, half h is
    // 8b + 2j + h.
    for (i, half) in blocks.iter().enumerate() {
        let (b, h) = (i / 2, i % 2);
        let v = fix_code3(load16(half));
        for j in 0..4 {
            let c = v128_and(u8x16_shr(v, 6 - 2 * j as u32), m3);
            let Some(qa) = qs.get(8 * b + 2 * j + h) else {
                continue;
            };
            let a = load16(qa);
            let p = i16x8_add(i16x8_extmul_low_i8x16(c, a), i16x8_extmul_high_i8x16(c, a));
            acc = i32x4_add(acc, i32x4_extadd_pairwise_i16x8(p));
        }
    }
    i32x4_extract_lane::<0>(acc)
        + i32x4_extract_lane::<1>(acc)
        + i32x4_extract_lane::<2>(acc)
        + i32x4_extract_lane::<3>(acc)
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
    for (t, qt) in q.chunks_exact(k).enumerate() {
        let s = sum_i8(qt);
        for (ob, row) in out.chunks_exact_mut(batch).zip(w.chunks_exact(row_bytes)) {
            ob[t] = i2s_row(row, qt) - s;
        }
    }
}
