//! Causal multi-head attention of a batch over the KV cache, one task per
//! head through [`Join`].
//!
//! Every output is computed by the same arithmetic in the same order
//! whatever the split: each score is one dot product summed in index order
//! (as [`dot`]), softmax as [`softmax`], and the weighted sum of values in
//! key order. So the results are bit-identical for any `J` and thread count,
//! and to a plain head-by-head loop.

use alloc::vec::Vec;

use super::math::{dot, softmax};
use crate::parallel::{Join, for_each_chunk_mut};

/// Keys scored together in [`scores`]: independent sums in flight.
const KEYS_AT_ONCE: usize = 8;

/// The shape of one layer's attention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnShape {
    /// Query heads.
    pub n_heads: usize,
    /// Query heads per KV head (GQA).
    pub group: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// `n_heads * head_dim`: the stride of a batch row of queries.
    pub q_dim: usize,
    /// `n_kv_heads * head_dim`: the stride of a cached position.
    pub kv_dim: usize,
    /// Score scale (`1 / sqrt(head_dim)` unless the file says otherwise).
    pub scale: f32,
}

/// `out[t] = dot(q, keys[t * stride..][..q.len()]) * scale` for every
/// `t < out.len()`. Each dot is summed in index order exactly as [`dot`]
/// (so each score is bit-identical to `dot(..) * scale`), with
/// [`KEYS_AT_ONCE`] keys at a time so their sums overlap instead of waiting
/// on one another.
fn scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let mut chunks = out.chunks_exact_mut(KEYS_AT_ONCE);
    let mut t0 = 0;
    for c in &mut chunks {
        let rows: [&[f32]; KEYS_AT_ONCE] =
            core::array::from_fn(|j| &keys[(t0 + j) * stride..(t0 + j) * stride + hd]);
        let mut acc = [0.0f32; KEYS_AT_ONCE];
        for (d, &qd) in q.iter().enumerate() {
            for (a, row) in acc.iter_mut().zip(&rows) {
                *a += qd * row[d];
            }
        }
        for (o, a) in c.iter_mut().zip(acc) {
            *o = a * scale;
        }
        t0 += KEYS_AT_ONCE;
    }
    for (i, o) in chunks.into_remainder().iter_mut().enumerate() {
        let t = t0 + i;
        *o = dot(q, &keys[t * stride..t * stride + hd]) * scale;
    }
}

/// Head `h` for every batch position: `out` is `[nb x head_dim]`, `sc` is
/// the score scratch (at least `pos + nb` long).
#[allow(clippy::too_many_arguments)]
fn head(
    h: usize,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    nb: usize,
    pos: usize,
    s: &AttnShape,
    sc: &mut [f32],
    out: &mut [f32],
) {
    let hd = s.head_dim;
    let kvh = (h / s.group) * hd;
    for b in 0..nb {
        let n_seen = pos + b + 1;
        let qh = &q[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
        let sc = &mut sc[..n_seen];
        scores(qh, &keys[kvh..], s.kv_dim, s.scale, sc);
        softmax(sc);
        let o = &mut out[b * hd..(b + 1) * hd];
        o.fill(0.0);
        for (t, &p) in sc.iter().enumerate() {
            let vt = &values[t * s.kv_dim + kvh..t * s.kv_dim + kvh + hd];
            for (o, &vv) in o.iter_mut().zip(vt) {
                *o += p * vv;
            }
        }
    }
}

/// Causal attention of `nb` queries at positions `pos..pos + nb` (`q` is
/// `[nb x q_dim]`) over `keys` / `values` (`[(pos + nb) x kv_dim]`, the
/// cache including the batch): position `pos + b` sees `0..=pos + b`.
///
/// Writes `out` **head-major**, `[n_heads x nb x head_dim]`. `scratch` holds
/// one score row per head, `n_heads x n_ctx` with `n_ctx >= pos + nb`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention<J: Join>(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    nb: usize,
    pos: usize,
    s: &AttnShape,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let n_ctx = scratch.len() / s.n_heads;
    let per_head = nb * s.head_dim;
    let heads = out[..s.n_heads * per_head]
        .chunks_exact_mut(per_head)
        .zip(scratch.chunks_exact_mut(n_ctx));
    if !J::PARALLEL {
        for (h, (o, sc)) in heads.enumerate() {
            head(h, q, keys, values, nb, pos, s, sc, o);
        }
        return;
    }
    let mut tasks: Vec<(&mut [f32], &mut [f32])> = heads.collect();
    for_each_chunk_mut::<J, _, _>(&mut tasks, 1, 1, &|first, items| {
        for (i, (o, sc)) in items.iter_mut().enumerate() {
            head(first + i, q, keys, values, nb, pos, s, sc, o);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::SerialJoin;
    use alloc::vec;

    /// The plain loop the forward pass ran before heads were split: one
    /// `dot` per key, softmax, values in key order; batch-major output.
    fn reference(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        nb: usize,
        pos: usize,
        s: &AttnShape,
    ) -> Vec<f32> {
        let hd = s.head_dim;
        let mut out = vec![0.0f32; nb * s.q_dim];
        for b in 0..nb {
            let n_seen = pos + b + 1;
            for h in 0..s.n_heads {
                let qh = &q[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
                let kvh = (h / s.group) * hd;
                let mut sc: Vec<f32> = (0..n_seen)
                    .map(|t| dot(qh, &keys[t * s.kv_dim + kvh..t * s.kv_dim + kvh + hd]) * s.scale)
                    .collect();
                softmax(&mut sc);
                let o = &mut out[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
                for (t, &p) in sc.iter().enumerate() {
                    let vt = &values[t * s.kv_dim + kvh..t * s.kv_dim + kvh + hd];
                    for (o, &vv) in o.iter_mut().zip(vt) {
                        *o += p * vv;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn bit_identical_to_the_plain_loop() {
        let mut rng = crate::sample::Rng::new(3);
        let mut fill =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_gaussian() as f32).collect() };
        for (n_heads, n_kv, hd) in [(4usize, 2usize, 16usize), (3, 3, 8), (6, 1, 12)] {
            for (nb, pos) in [(1usize, 0usize), (1, 17), (5, 0), (9, 3), (16, 8)] {
                let s = AttnShape {
                    n_heads,
                    group: n_heads / n_kv,
                    head_dim: hd,
                    q_dim: n_heads * hd,
                    kv_dim: n_kv * hd,
                    scale: 1.0 / (hd as f32).sqrt(),
                };
                let n_ctx = pos + nb + 2;
                let q = fill(nb * s.q_dim);
                let keys = fill((pos + nb) * s.kv_dim);
                let values = fill((pos + nb) * s.kv_dim);
                let mut scratch = vec![0.0f32; n_heads * n_ctx];
                let mut hm = vec![0.0f32; nb * s.q_dim];
                attention::<SerialJoin>(&q, &keys, &values, nb, pos, &s, &mut scratch, &mut hm);
                let want = reference(&q, &keys, &values, nb, pos, &s);
                for h in 0..n_heads {
                    for b in 0..nb {
                        let got = &hm[(h * nb + b) * hd..(h * nb + b + 1) * hd];
                        let w = &want[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(got),
                            bits(w),
                            "heads {n_heads}/{n_kv} nb {nb} pos {pos} h {h} b {b}"
                        );
                    }
                }
            }
        }
    }
}
