//! Causal multi-head attention of a batch over the KV cache, one task per
//! head through [`Join`].
//!
//! Every output is computed by the same arithmetic in the same order
//! whatever the split: each score is one dot product summed in index order
//! (as [`dot`]), softmax as [`softmax`], and the weighted sum of values in
//! key order. So the results are bit-identical for any `J` and thread count,
//! and to a plain head-by-head loop.

use alloc::vec;
use alloc::vec::Vec;

use super::math::{dot, softmax};
use crate::kernels::Isa;
use crate::parallel::{Join, for_each_chunk_mut};

/// Keys scored together in [`scores`] and [`head_batch`]: independent
/// sums in flight.
const KEYS_AT_ONCE: usize = 8;

/// Queries scored together in [`head_batch`] (one 512-bit vector of f32).
const QUERY_LANES: usize = 16;

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
/// the score scratch (at least `pos + nb` long). A batch goes through
/// [`head_batch`]; one query (decode) scores keys [`KEYS_AT_ONCE`] at a
/// time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
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
    head_scored(
        scores,
        score_lanes,
        value_lanes,
        h,
        q,
        keys,
        values,
        nb,
        pos,
        s,
        sc,
        out,
    );
}

/// [`head`] with one query's scores computed by `score` (same arguments
/// and bits as [`scores`]) and a batch's [`KEYS_AT_ONCE`] keys by `lanes`
/// (same bits as [`score_lanes`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_scored(
    score: impl Fn(&[f32], &[f32], usize, f32, &mut [f32]),
    lanes: impl Fn(&[[f32; QUERY_LANES]], [&[f32]; KEYS_AT_ONCE]) -> [[f32; QUERY_LANES]; KEYS_AT_ONCE],
    values_of: impl Fn([&[f32]; VALUE_QUERIES], &[f32], usize, &mut ValueSums),
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
    if nb > 1 {
        head_batch(lanes, values_of, h, q, keys, values, nb, pos, s, out);
        return;
    }
    let n_seen = pos + 1;
    let sc = &mut sc[..n_seen];
    score(
        &q[h * hd..(h + 1) * hd],
        &keys[kvh..],
        s.kv_dim,
        s.scale,
        sc,
    );
    softmax(sc);
    weigh_values(sc, values, kvh, s, &mut out[..hd]);
}

/// Head-dimension elements accumulated in registers by [`weigh_values`].
#[cfg(not(target_arch = "wasm32"))]
const VALUE_CHUNK: usize = 64;
/// Head-dimension elements accumulated in registers by [`weigh_values`]:
/// fewer on wasm, where V8 has 16 vector registers on x86-64 and spilled
/// the 16 f32x4 sums of 64 elements at every key.
#[cfg(target_arch = "wasm32")]
const VALUE_CHUNK: usize = 16;

/// `o = sum_t p[t] * v[t]` over the head's values, in key order (each
/// output element its own sum, so SIMD across `o` keeps the order).
/// [`VALUE_CHUNK`] elements at a time stay in registers over all keys.
#[inline(always)]
fn weigh_values(p: &[f32], values: &[f32], kvh: usize, s: &AttnShape, o: &mut [f32]) {
    let hd = o.len();
    let mut chunks = o.chunks_exact_mut(VALUE_CHUNK);
    for (c, oc) in (&mut chunks).enumerate() {
        let at = kvh + c * VALUE_CHUNK;
        let mut acc = [0.0f32; VALUE_CHUNK];
        for (t, &pt) in p.iter().enumerate() {
            let vt = &values[t * s.kv_dim + at..t * s.kv_dim + at + VALUE_CHUNK];
            for (a, &vv) in acc.iter_mut().zip(vt) {
                *a += pt * vv;
            }
        }
        oc.copy_from_slice(&acc);
    }
    let tail = chunks.into_remainder();
    weigh_tail(p, values, kvh + hd - tail.len(), s, tail);
}

/// The value sums of the last `o.len()` (fewer than [`VALUE_CHUNK`])
/// elements of a head, from element `at` of a cached position on.
#[inline(always)]
fn weigh_tail(p: &[f32], values: &[f32], at: usize, s: &AttnShape, o: &mut [f32]) {
    o.fill(0.0);
    for (t, &pt) in p.iter().enumerate() {
        let vt = &values[t * s.kv_dim + at..t * s.kv_dim + at + o.len()];
        for (o, &vv) in o.iter_mut().zip(vt) {
            *o += pt * vv;
        }
    }
}

/// The scores of `M` keys (`rows`, each `qt.len()` long) with the
/// [`QUERY_LANES`] transposed queries `qt`: `out[i][j]` is the dot of key
/// `i` and query `j`, summed over `d` in index order from zero.
#[inline(always)]
fn score_lanes<const M: usize>(
    qt: &[[f32; QUERY_LANES]],
    rows: [&[f32]; M],
) -> [[f32; QUERY_LANES]; M] {
    let rows = rows.map(|r| &r[..qt.len()]);
    let mut acc = [[0.0f32; QUERY_LANES]; M];
    for (d, qd) in qt.iter().enumerate() {
        for (a, row) in acc.iter_mut().zip(&rows) {
            let kd = row[d];
            for (a, &qv) in a.iter_mut().zip(qd) {
                *a += qv * kd;
            }
        }
    }
    acc
}

/// Head `h` for a batch of queries, [`QUERY_LANES`] queries at a time:
/// the queries are transposed so that one key's element `d` multiplies
/// all lanes at once, and each (query, key) score is still one sum over
/// `d` in index order started from zero, exactly as [`dot`] (then `*
/// scale`); `lanes` scores [`KEYS_AT_ONCE`] keys as [`score_lanes`].
/// Softmax and the values are per query as in [`head`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_batch(
    lanes: impl Fn(&[[f32; QUERY_LANES]], [&[f32]; KEYS_AT_ONCE]) -> [[f32; QUERY_LANES]; KEYS_AT_ONCE],
    values_of: impl Fn([&[f32]; VALUE_QUERIES], &[f32], usize, &mut ValueSums),
    h: usize,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    nb: usize,
    pos: usize,
    s: &AttnShape,
    out: &mut [f32],
) {
    let hd = s.head_dim;
    let kvh = (h / s.group) * hd;
    let n_ctx = pos + nb;
    // Scores of the lanes, lane-major: `sc[j * n_ctx + t]`.
    let mut sc = vec![0.0f32; QUERY_LANES * n_ctx];
    let mut qt = vec![[0.0f32; QUERY_LANES]; hd];
    for b0 in (0..nb).step_by(QUERY_LANES) {
        let n = (nb - b0).min(QUERY_LANES);
        for (j, b) in (b0..b0 + n).enumerate() {
            let qh = &q[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
            for (row, &v) in qt.iter_mut().zip(qh) {
                row[j] = v;
            }
        }
        // Keys seen by the chunk's last query; earlier lanes score a few
        // keys they do not see, and ignore them.
        let n_keys = pos + b0 + n;
        let key = |t: usize| &keys[t * s.kv_dim + kvh..t * s.kv_dim + kvh + hd];
        let mut store = |t0: usize, acc: &[[f32; QUERY_LANES]]| {
            for (i, a) in acc.iter().enumerate() {
                for (j, &v) in a[..n].iter().enumerate() {
                    sc[j * n_ctx + t0 + i] = v * s.scale;
                }
            }
        };
        let full = n_keys - n_keys % KEYS_AT_ONCE;
        for t0 in (0..full).step_by(KEYS_AT_ONCE) {
            let rows: [&[f32]; KEYS_AT_ONCE] = core::array::from_fn(|i| key(t0 + i));
            store(t0, &lanes(&qt, rows));
        }
        for t in full..n_keys {
            store(t, &score_lanes(&qt, [key(t)]));
        }
        for (j, b) in (b0..b0 + n).enumerate() {
            softmax(&mut sc[j * n_ctx..j * n_ctx + pos + b + 1]);
        }
        let probs = |j: usize| &sc[j * n_ctx..j * n_ctx + pos + b0 + j + 1];
        let outs = out[b0 * hd..(b0 + n) * hd].chunks_exact_mut(hd);
        let mut outs = outs.enumerate();
        while outs.len() >= VALUE_QUERIES {
            let o: [(usize, &mut [f32]); VALUE_QUERIES] =
                core::array::from_fn(|_| outs.next().unwrap_or((0, &mut [])));
            let p = o.each_ref().map(|(j, _)| probs(*j));
            weigh_values_batch(&values_of, p, values, kvh, s, o.map(|(_, o)| o));
        }
        for (j, o) in outs {
            weigh_values(probs(j), values, kvh, s, o);
        }
    }
}

/// The value sums of [`VALUE_QUERIES`] queries, one chunk of the head.
type ValueSums = [[f32; VALUE_CHUNK]; VALUE_QUERIES];

/// `acc[j][e] += p[j][t] * values[t * stride + e]` for `t` ascending over
/// the keys every query sees (below the shortest `p[j]`): the shared part
/// of [`weigh_values_batch`], which an ISA may run as a kernel.
#[inline(always)]
fn value_lanes(p: [&[f32]; VALUE_QUERIES], values: &[f32], stride: usize, acc: &mut ValueSums) {
    let shared = p.iter().map(|p| p.len()).min().unwrap_or(0);
    for t in 0..shared {
        let vt = &values[t * stride..t * stride + VALUE_CHUNK];
        for (a, p) in acc.iter_mut().zip(&p) {
            let pt = p[t];
            for (a, &vv) in a.iter_mut().zip(vt) {
                *a += pt * vv;
            }
        }
    }
}

/// Queries whose value sums [`weigh_values_batch`] runs together.
const VALUE_QUERIES: usize = 4;

/// [`weigh_values`] for [`VALUE_QUERIES`] queries of one head at once
/// (`p[j]` the probabilities of query `j`, any lengths): each value row is
/// loaded once for all of them instead of once per query, which made the
/// prefill's value sums stream the head's values from L2 once per query.
/// Every output element is still its own sum in key order, from zero, with
/// the same operations, so the bits equal [`weigh_values`]'s.
#[inline(always)]
fn weigh_values_batch(
    values_of: impl Fn([&[f32]; VALUE_QUERIES], &[f32], usize, &mut ValueSums),
    p: [&[f32]; VALUE_QUERIES],
    values: &[f32],
    kvh: usize,
    s: &AttnShape,
    mut o: [&mut [f32]; VALUE_QUERIES],
) {
    let hd = s.head_dim;
    let shared = p.iter().map(|p| p.len()).min().unwrap_or(0);
    let chunks = hd / VALUE_CHUNK;
    for c in 0..chunks {
        let at = kvh + c * VALUE_CHUNK;
        let row = |t: usize| &values[t * s.kv_dim + at..t * s.kv_dim + at + VALUE_CHUNK];
        let mut acc = [[0.0f32; VALUE_CHUNK]; VALUE_QUERIES];
        values_of(p, &values[at..], s.kv_dim, &mut acc);
        for ((a, p), o) in acc.iter_mut().zip(&p).zip(&mut o) {
            for (t, &pt) in p.iter().enumerate().skip(shared) {
                for (a, &vv) in a.iter_mut().zip(row(t)) {
                    *a += pt * vv;
                }
            }
            o[c * VALUE_CHUNK..(c + 1) * VALUE_CHUNK].copy_from_slice(a);
        }
    }
    let done = chunks * VALUE_CHUNK;
    if done < hd {
        for (p, o) in p.iter().zip(&mut o) {
            weigh_tail(p, values, kvh + done, s, &mut o[done..hd]);
        }
    }
}

/// Causal attention of `nb` queries at positions `pos..pos + nb` (`q` is
/// `[nb x q_dim]`) over `keys` / `values` (`[(pos + nb) x kv_dim]`, the
/// cache including the batch): position `pos + b` sees `0..=pos + b`.
///
/// Writes `out` **head-major**, `[n_heads x nb x head_dim]`. `scratch` holds
/// one score row per head, `n_heads x n_ctx` with `n_ctx >= pos + nb`.
/// `isa` picks the build of the loops (see [`head_for`]); the results are
/// the same bits for every `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention<J: Join>(
    isa: Isa,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    nb: usize,
    pos: usize,
    s: &AttnShape,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let head = head_for(isa);
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

/// [`head`]'s signature.
type HeadFn = fn(usize, &[f32], &[f32], &[f32], usize, usize, &AttnShape, &mut [f32], &mut [f32]);

/// [`head`] compiled for `isa`: the same source, so the same operations in
/// the same order (no FMA contraction, no reassociation), only with wider
/// vectors across independent lanes (queries in the scores, the head
/// dimension in the values). On wasm simd128 the decode scores come from
/// a kernel written with intrinsics instead ([`head_simd128`]), with the
/// same operations per key.
fn head_for(isa: Isa) -> HeadFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => |h, q, k, v, nb, pos, s, sc, o| {
            // SAFETY: an Avx512 platform is only built when AVX-512
            // F/BW/VL were detected.
            unsafe { head_avx512(h, q, k, v, nb, pos, s, sc, o) }
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => |h, q, k, v, nb, pos, s, sc, o| {
            // SAFETY: an Avx2 platform is only built when AVX2 was detected.
            unsafe { head_avx2(h, q, k, v, nb, pos, s, sc, o) }
        },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => head_simd128,
        _ => head,
    }
}

/// Head dimensions from which [`head_simd128`] scores with the kernel:
/// below, its per-key setup costs more than its transposes save
/// (stories260K, head_dim 8, was about 10 % slower in attention with it).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const SIMD128_SCORES_MIN_DIM: usize = 32;

/// [`head`] with the decode scores of the simd128 kernel
/// ([`crate::kernels::attention_scores_simd128`], the same bits as
/// [`scores`]) from [`SIMD128_SCORES_MIN_DIM`] on: LLVM vectorizes the
/// portable loop for simd128 by loading each key element into its lane
/// separately.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[allow(clippy::too_many_arguments)]
fn head_simd128(
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
    if s.head_dim < SIMD128_SCORES_MIN_DIM {
        head(h, q, keys, values, nb, pos, s, sc, out);
        return;
    }
    let score = |q: &[f32], k: &[f32], stride: usize, scale: f32, o: &mut [f32]| {
        // SAFETY: this build enables simd128 (the cfg above), and `k`
        // holds every key `o` asks for, as for the portable `scores`.
        unsafe { crate::kernels::attention_scores_simd128(q, k, stride, scale, o) }
    };
    head_scored(
        score,
        score_lanes,
        value_lanes,
        h,
        q,
        keys,
        values,
        nb,
        pos,
        s,
        sc,
        out,
    );
}

/// Defines `$name`: [`head`] built with the target features `$features`
/// (both include AVX2), with the decode scores of the AVX2 kernel
/// ([`crate::kernels::attention_scores_avx2`], the same bits as [`scores`]:
/// LLVM leaves the portable loop's eight key loads scalar), a batch's
/// groups of keys scored by `$lanes` (the same bits as [`score_lanes`];
/// on AVX-512 [`crate::kernels::attention_score_lanes_avx512`]) and its
/// shared value sums by `$values` (as [`value_lanes`]; on AVX-512
/// [`crate::kernels::attention_value_lanes_avx512`]).
macro_rules! head_built_with {
    ($name:ident, $features:literal, $lanes:expr, $values:expr) => {
        #[doc = concat!("[`head`] built with `", $features, "`.")]
        #[cfg(target_arch = "x86_64")]
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $features)]
        fn $name(
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
            let score = |q: &[f32], k: &[f32], stride: usize, scale: f32, o: &mut [f32]| {
                // SAFETY: `$features` include AVX2 (this function's
                // callers checked them), and `k` holds every key `o` asks
                // for, as for the portable `scores`.
                unsafe { crate::kernels::attention_scores_avx2(q, k, stride, scale, o) }
            };
            head_scored(
                score, $lanes, $values, h, q, keys, values, nb, pos, s, sc, out,
            );
        }
    };
}

head_built_with!(
    head_avx512,
    "avx512f,avx512bw,avx512vl,avx2",
    |qt: &[[f32; QUERY_LANES]], rows: [&[f32]; KEYS_AT_ONCE]| {
        crate::kernels::attention_score_lanes_avx512(qt, rows)
    },
    |p: [&[f32]; VALUE_QUERIES], v: &[f32], stride: usize, acc: &mut ValueSums| {
        crate::kernels::attention_value_lanes_avx512(p, v, stride, acc)
    }
);
head_built_with!(head_avx2, "avx2", score_lanes, value_lanes);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::SerialJoin;
    use alloc::vec;

    /// The plain loop the forward pass ran before heads were split: one
    /// `dot` per key, softmax (libm's `expf`), values in key order;
    /// batch-major output.
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
                // ggml's softmax, written out with libm's `expf`.
                let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f64;
                for v in sc.iter_mut() {
                    *v = libm::expf(*v - max);
                    sum += f64::from(*v);
                }
                for v in sc.iter_mut() {
                    *v *= (1.0 / sum) as f32;
                }
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
        // Head dims below and above SIMD128_SCORES_MIN_DIM, with and
        // without a tail of head_dim % 4.
        let shapes = [
            (4usize, 2usize, 16usize),
            (3, 3, 8),
            (6, 1, 12),
            (2, 1, 128),
            (4, 2, 64),
            (2, 1, 37),
            // A full value chunk and a tail (VALUE_CHUNK is 64 off wasm).
            (2, 1, 80),
        ];
        let batches = [
            (1usize, 0usize),
            (1, 17),
            (1, 44),
            (5, 0),
            (9, 3),
            (16, 8),
            (17, 0),
            (40, 5),
        ];
        for (isa, (n_heads, n_kv, hd), (nb, pos)) in crate::kernels::Platform::available()
            .flat_map(|p| shapes.iter().map(move |&sh| (p.isa(), sh)))
            .flat_map(|(isa, sh)| batches.iter().map(move |&b| (isa, sh, b)))
        {
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
            attention::<SerialJoin>(isa, &q, &keys, &values, nb, pos, &s, &mut scratch, &mut hm);
            let want = reference(&q, &keys, &values, nb, pos, &s);
            for h in 0..n_heads {
                for b in 0..nb {
                    let got = &hm[(h * nb + b) * hd..(h * nb + b + 1) * hd];
                    let w = &want[b * s.q_dim + h * hd..b * s.q_dim + (h + 1) * hd];
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(got),
                        bits(w),
                        "{isa:?} heads {n_heads}/{n_kv} nb {nb} pos {pos} h {h} b {b}"
                    );
                }
            }
        }
    }
}
