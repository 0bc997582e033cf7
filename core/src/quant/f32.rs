//! F32 weights: little-endian IEEE single precision, read straight from the
//! (possibly unaligned) mapped bytes.

use super::{QuantError, check_len, mul_size};

/// Dot product of one F32 weight row (`row.len() == 4 * x.len()`) with f32
/// activations, accumulated in 8 f32 lanes (order documented on the shared
/// lane kernel: lane `i % 8`, halving reduction).
pub fn dot_f32(row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    lane_dot("F32 weight row bytes", row, x, f32::from_le_bytes)
}

/// Lanes of the float dot products (F32, F16, BF16).
const FLOAT_LANES: usize = 8;

/// The float dot product shared by the F32/F16/BF16 kernels: element `i` of
/// `row` is the `B`-byte little-endian value `decode`d to f32, and
/// `w_i * x_i` (f32 product) is added in index order to lane `i % 8`; the
/// lanes are then reduced by halving (`l += l + 4`, `l += l + 2`, `0 += 1`).
/// This fixed order is what an 8-wide SIMD loop computes, and lets the
/// compiler vectorize the portable loop.
pub(super) fn lane_dot<const B: usize>(
    what: &'static str,
    row: &[u8],
    x: &[f32],
    decode: impl Fn([u8; B]) -> f32,
) -> Result<f32, QuantError> {
    check_len(what, mul_size(what, x.len(), B)?, row.len())?;
    let mut acc = [0.0f32; FLOAT_LANES];
    let rows = row.chunks_exact(B * FLOAT_LANES);
    let xs = x.chunks_exact(FLOAT_LANES);
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
    for half in [4, 2, 1] {
        for l in 0..half {
            acc[l] += acc[l + half];
        }
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
