//! F32 weights: little-endian IEEE single precision, read straight from the
//! (possibly unaligned) mapped bytes.

use super::{QuantError, check_len, mul_size};

/// Dot product of one F32 weight row (`row.len() == 4 * x.len()`) with f32
/// activations, accumulated in [`FLOAT_LANES`] f32 lanes (order documented
/// on the shared lane kernel: lane `i % 8`, halving reduction).
pub fn dot_f32(row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    lane_dot::<4, FLOAT_LANES>("F32 weight row bytes", row, x, f32::from_le_bytes)
}

/// Lanes of the F32 and BF16 dot products.
pub const FLOAT_LANES: usize = 8;

/// Lanes of the F16 dot product (the tied LM head of the 2B-4T model):
/// each lane is a chain of dependent additions, and with 8 lanes an F16
/// row is one 8-wide chain, 16 weight bytes per `vaddps` latency (~32 GB/s
/// per core at 4 GHz), below what two cores can stream on the machines of
/// docs/perf.md ("F16 head: sixteen lanes"); 16 lanes make it two chains.
/// F32 and BF16 keep 8: the portable loop vectorizes better with 8 (an
/// F32 model decoded ~17 % slower with 16), and no SIMD tier of theirs
/// needs more.
pub const F16_LANES: usize = 16;

/// The float dot product shared by the F32/F16/BF16 kernels: element `i` of
/// `row` is the `B`-byte little-endian value `decode`d to f32, and
/// `w_i * x_i` (f32 product) is added in index order to lane `i % L`; the
/// lanes are then reduced by halving (`l += l + L / 2`, ..., `0 += 1`).
/// This fixed order is what `L / 8` 8-wide SIMD accumulators (taking the
/// groups of 8 in turn) compute, and lets the compiler vectorize the
/// portable loop.
pub(super) fn lane_dot<const B: usize, const L: usize>(
    what: &'static str,
    row: &[u8],
    x: &[f32],
    decode: impl Fn([u8; B]) -> f32,
) -> Result<f32, QuantError> {
    check_len(what, mul_size(what, x.len(), B)?, row.len())?;
    let mut acc = [0.0f32; L];
    let rows = row.chunks_exact(B * L);
    let xs = x.chunks_exact(L);
    let (row_tail, x_tail) = (rows.remainder(), xs.remainder());
    for (wc, xc) in rows.zip(xs) {
        for (l, (we, &xv)) in wc.chunks_exact(B).zip(xc).enumerate() {
            let mut e = [0u8; B];
            e.copy_from_slice(we);
            acc[l] += decode(e) * xv;
        }
    }
    for (l, (we, &xv)) in row_tail.chunks_exact(B).zip(x_tail).enumerate() {
        let mut e = [0u8; B];
        e.copy_from_slice(we);
        acc[l] += decode(e) * xv;
    }
    let mut half = L / 2;
    while half > 0 {
        for l in 0..half {
            acc[l] += acc[l + half];
        }
        half /= 2;
    }
    Ok(acc[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_dot_small_exact() {
        let w: [f32; 11] = [1.0, -2.0, 3.0, 0.5, 0.25, 8.0, -1.0, 2.0, 4.0, 1.0, -3.0];
        let x: [f32; 11] = [1.0, 1.0, 2.0, 4.0, 4.0, 0.5, 3.0, -1.0, 0.25, 7.0, 1.0];
        let bytes: alloc::vec::Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert_eq!(dot_f32(&bytes, &x), Ok(want));
        assert!(dot_f32(&bytes[1..], &x).is_err());
        assert_eq!(dot_f32(&[], &[]), Ok(0.0));
    }
}
