//! The float building blocks of the forward pass, written to reproduce
//! ggml's CPU operators (llama.cpp `ggml/src/ggml-cpu/ops.cpp`, vendored in
//! llama-cpp-python 0.3.36) operation for operation where that is cheap.

/// RMSNorm, `out = x / sqrt(mean(x^2) + eps) * w`.
///
/// Accumulates in **f64**, as `ggml_compute_forward_rms_norm_f32` does: each
/// `x*x` is an f32 product widened to f64 (`ggml_float`) and summed in index
/// order; the mean is rounded to f32, `scale = 1 / sqrtf(mean + eps)` is in
/// f32, and `out = (x * scale) * w` in f32 (the fused RMS_NORM + MUL).
/// `out`, `x` and `w` have the same length.
pub(crate) fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let mut sum = 0.0f64;
    for &v in x {
        sum += f64::from(v * v);
    }
    rmsnorm_by_sum(out, x, w, eps, sum);
}

/// [`rmsnorm`] given its sum of squares.
#[inline(always)]
fn rmsnorm_by_sum(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, sum: f64) {
    let mean = (sum / x.len().max(1) as f64) as f32;
    let scale = 1.0 / libm::sqrtf(mean + eps);
    for ((o, &v), &wv) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * wv;
    }
}

/// Rows whose sums of squares [`rmsnorm_rows`] runs side by side.
const NORM_CHAINS: usize = 8;

/// [`rmsnorm`] of every row of `x` (rows of `w.len()`) into the same row
/// of `out`. Each row's f64 sum is still one chain of additions in index
/// order, so the bits are [`rmsnorm`]'s; [`NORM_CHAINS`] rows' chains run
/// side by side, because one chain waits on each addition's latency (a
/// prefill's norms were ~2.5 % of pp512 at one addition per ~4 cycles).
pub(crate) fn rmsnorm_rows(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let width = w.len();
    if width == 0 {
        return;
    }
    let (xs, out) = (x.chunks_exact(width), out.chunks_exact_mut(width));
    let mut rows = xs.zip(out);
    while rows.len() >= NORM_CHAINS {
        let group: [(&[f32], &mut [f32]); NORM_CHAINS] =
            core::array::from_fn(|_| rows.next().unwrap_or((&[], &mut [])));
        let mut sums = [0.0f64; NORM_CHAINS];
        for i in 0..width {
            for (s, (xr, _)) in sums.iter_mut().zip(&group) {
                let v = xr[i];
                *s += f64::from(v * v);
            }
        }
        for ((xr, o), s) in group.into_iter().zip(sums) {
            rmsnorm_by_sum(o, xr, w, eps, s);
        }
    }
    for (xr, o) in rows {
        rmsnorm(o, xr, w, eps);
    }
}

/// Fills `cos`/`sin` (`n_rot / 2` each) for position `pos`, as ggml's
/// `ggml_rope_cache_init`: `theta_scale = base^(-2/n_rot)` (f32 exponent),
/// and the angle of pair `i` is `pos * theta_scale^i` built by repeated f32
/// multiplication, times `freq_scale`. `cos`/`sin` are evaluated in f64 and
/// rounded to f32 (glibc's `cosf`/`sinf` are correctly rounded, so this
/// gives the same f32 values). Public so that other backends (the CUDA
/// step's RoPE table) use these exact values.
pub fn rope_cache(
    pos: usize,
    n_rot: usize,
    base: f32,
    freq_scale: f32,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    let exponent = -2.0f32 / n_rot as f32;
    let theta_scale = libm::pow(f64::from(base), f64::from(exponent)) as f32;
    let mut theta = pos as f32;
    for (c, s) in cos.iter_mut().zip(sin.iter_mut()) {
        let t = f64::from(freq_scale * theta);
        *c = libm::cos(t) as f32;
        *s = libm::sin(t) as f32;
        theta *= theta_scale;
    }
}

/// Rotates the first `n_rot` dimensions of one head `x` with the cached
/// `cos`/`sin`: NEOX pairs `i` with `i + n_rot/2`, NORM pairs `2i` with
/// `2i + 1`.
pub(crate) fn rope_head(x: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
    let half = cos.len();
    if neox {
        let (lo, hi) = x.split_at_mut(half);
        for (((a, b), &c), &s) in lo.iter_mut().zip(hi.iter_mut()).zip(cos).zip(sin) {
            let (x0, x1) = (*a, *b);
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    } else {
        for ((pair, &c), &s) in x.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0 * c - x1 * s;
            pair[1] = x0 * s + x1 * c;
        }
    }
}

/// `e^x` in f32, the exponential of [`softmax`] and [`silu`]: libm's
/// `expf` (FreeBSD `e_expf.c`: argument reduction by `ln 2` in two parts,
/// a degree-5 rational approximation, `scalbnf`), which is built from IEEE
/// f32 multiplications, additions, subtractions, one division and exact
/// bit operations only, so every target computes the same bits. The CUDA
/// step's `expf_cpu` (std-ext `cuda/kernels.cu`) is the same function
/// operation for operation; `bitnet-cuda-suite OUT fixtures` checks the
/// two bit for bit on a sweep.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    libm::expf(x)
}

/// `ln 2` in two parts, `1 / ln 2` and the rational approximation's
/// coefficients of libm's `expf` (FreeBSD `e_expf.c`), for [`exp_lane`].
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
const EXP_P1: f32 = f32::from_bits(0x3e2a_aa8f);
const EXP_P2: f32 = f32::from_bits(0xbb35_5215);

/// `|x|` bits from which libm's `expf` leaves its main path (overflow,
/// a two-step `scalbnf`, NaN): `|x| >= 87.33655`.
const EXP_SLOW_BITS: u32 = 0x42ae_ac50;

/// Lanes of [`exp_shifted`]'s branch-free chunks: one 512-bit vector.
const EXP_LANES: usize = 16;

/// [`exp_f32`] for `|x| < 87.33655` (bits below [`EXP_SLOW_BITS`]),
/// without branches: libm's three argument reductions (`|x| > 1.5 ln 2`:
/// `k = trunc(x / ln 2 +- 1/2)`; `> 0.5 ln 2`: `k = +-1`; else `k = 0`,
/// where libm's `hi = x, lo = 0` are what `x - 0 * LN2_HI` and
/// `0 * LN2_LO` give), the same rational approximation, and `scalbnf` as
/// one multiplication by `2^k` (`k` stays within `-126..=126` here, where
/// libm multiplies once too; `2^0 = 1` leaves `y` as libm's `k == 0`
/// return does). `|x| <= 2^-14` returns `1 + x` as libm. Every step is
/// the same IEEE operation in the same order, so the bits are libm's,
/// and a chunk of lanes vectorizes.
#[inline(always)]
fn exp_lane(x: f32) -> f32 {
    let hx = x.to_bits() & 0x7fff_ffff;
    let neg = x.to_bits() >> 31 != 0;
    // Bounded before the conversion (no change in range, where
    // `|k| <= 126`), so that it needs no saturation: with `as i32` LLVM
    // converted each lane on its own, with NaN and range fix-ups. Not
    // `clamp`, which passes a NaN through.
    #[allow(clippy::manual_clamp)]
    let kx = (INV_LN2 * x + if neg { -0.5 } else { 0.5 })
        .max(-128.0)
        .min(128.0);
    let k = if hx > 0x3f85_1592 {
        // SAFETY: `max` / `min` return the number of a NaN and a number,
        // so `kx` is a number within -128..=128, which an i32 holds.
        unsafe { kx.to_int_unchecked::<i32>() }
    } else if hx > 0x3eb1_7218 {
        if neg { -1 } else { 1 }
    } else {
        0
    };
    let kf = k as f32;
    let hi = x - kf * LN2_HI;
    let lo = kf * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (EXP_P1 + rr * EXP_P2);
    let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
    let scaled = y * f32::from_bits(((0x7f + k) as u32) << 23);
    if hx > 0x3900_0000 { scaled } else { 1.0 + x }
}

/// `x[i] = exp_f32(x[i] - m)` for every `i`: chunks of [`EXP_LANES`]
/// through [`exp_lane`] (vectorized, since it has no branches) unless a
/// lane is outside its range, then that chunk and the tail through
/// [`exp_f32`]. The bits are [`exp_f32`]'s either way.
#[inline(always)]
pub(crate) fn exp_shifted(x: &mut [f32], m: f32) {
    let (chunks, tail) = x.as_chunks_mut::<EXP_LANES>();
    for c in chunks {
        let v = c.map(|v| v - m);
        let slow = v.iter().fold(0, |s, &v| {
            s | u32::from(v.to_bits() & 0x7fff_ffff >= EXP_SLOW_BITS)
        });
        if slow == 0 {
            for (o, v) in c.iter_mut().zip(v) {
                *o = exp_lane(v);
            }
        } else {
            for (o, v) in c.iter_mut().zip(v) {
                *o = exp_f32(v);
            }
        }
    }
    for v in tail {
        *v = exp_f32(*v - m);
    }
}

/// In-place softmax of `x` (non-empty), as `ggml_vec_soft_max_f32`: subtract
/// the max, `expf` in f32 ([`exp_shifted`], libm's bits), sum in f64 in
/// index order, multiply by `1 / sum` rounded to f32. Inlined so that the
/// attention heads built for an ISA ([`super::attention`]) vectorize the
/// exponentials with its vectors.
#[inline(always)]
pub(crate) fn softmax(x: &mut [f32]) {
    let max = max_of(x);
    exp_shifted(x, max);
    let sum = x.iter().fold(0.0f64, |s, &v| s + f64::from(v));
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The largest value of `x` for [`softmax`] (`-inf` when empty; NaNs
/// skipped): the `f32::max` fold, which LLVM vectorizes natively and in a
/// relaxed-SIMD wasm build (relaxed max with a NaN check). In a wasm build
/// with simd128 alone `f32::max` is a call to libm's `fmaxf` per element
/// (wasm has no IEEE maxNum), so there the `f32x4.pmax` kernel
/// ([`crate::kernels::max_of_simd128`]). Without NaNs every order gives
/// the same max up to the sign of a zero, which `v - max` cannot tell.
/// (Rewriting the fold changed LLVM's inlining in [`softmax`] on x86-64
/// and made its `expf` calls three times as costly, and the kernel in the
/// relaxed build made stories260K about 10 % slower in Chromium, so the
/// fold stays where it is fast.)
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    #[cfg(all(
        target_arch = "wasm32",
        target_feature = "simd128",
        not(target_feature = "relaxed-simd")
    ))]
    // SAFETY: this build enables simd128 (the cfg).
    return unsafe { crate::kernels::max_of_simd128(x) };
    #[cfg(not(all(
        target_arch = "wasm32",
        target_feature = "simd128",
        not(target_feature = "relaxed-simd")
    )))]
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// BitNet's FFN gate: `g = max(g, 0)^2 * u` element by element (`g.max(0.0)`,
/// then `r * r * u`; NaN -> 0). On wasm simd128 the kernel with
/// `f32x4.pmax` ([`crate::kernels::relu_squared_mul_simd128`]), for the
/// reasons of [`max_of`].
pub(crate) fn relu_squared_mul(g: &mut [f32], u: &[f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: this build enables simd128 (the cfg).
    return unsafe { crate::kernels::relu_squared_mul_simd128(g, u) };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for (g, &u) in g.iter_mut().zip(u) {
        let r = g.max(0.0);
        *g = r * r * u;
    }
}

/// `silu(x) = x / (1 + exp(-x))` in f32 (`ggml_silu_f32`; [`exp_f32`]).
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp_f32(-x))
}

/// Dot product in f32, index order (short vectors: one attention head).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsnorm_of_a_constant_vector_is_the_weight() {
        // mean(x^2) = 4, eps 0: scale 1/2 exactly.
        let x = [2.0f32, -2.0, 2.0, -2.0];
        let w = [1.0f32, 2.0, 3.0, 4.0];
        let mut out = [0.0f32; 4];
        rmsnorm(&mut out, &x, &w, 0.0);
        assert_eq!(out, [1.0, -2.0, 3.0, -4.0]);
    }

    #[test]
    fn rmsnorm_rows_is_rmsnorm_of_each_row() {
        let mut rng = crate::sample::Rng::new(7);
        for (rows, width) in [(1usize, 5usize), (7, 3), (8, 16), (9, 33), (19, 64), (3, 0)] {
            // Rows of very different magnitudes, so an f64 sum in another
            // order would round differently.
            let x: alloc::vec::Vec<f32> = (0..rows * width)
                .map(|i| rng.next_gaussian() as f32 * [1e-3f32, 1.0, 3e3][i % 3])
                .collect();
            let w: alloc::vec::Vec<f32> = (0..width).map(|_| rng.next_gaussian() as f32).collect();
            let mut got = alloc::vec![f32::NAN; rows * width];
            rmsnorm_rows(&mut got, &x, &w, 1e-6);
            for r in 0..rows {
                // The definition written out: f32 squares summed in f64
                // in index order.
                let xr = &x[r * width..(r + 1) * width];
                let sum = xr.iter().fold(0.0f64, |s, &v| s + f64::from(v * v));
                let scale = 1.0 / libm::sqrtf((sum / width.max(1) as f64) as f32 + 1e-6);
                for (i, (&g, (&v, &wv))) in
                    got[r * width..].iter().zip(xr.iter().zip(&w)).enumerate()
                {
                    assert_eq!(
                        g.to_bits(),
                        (v * scale * wv).to_bits(),
                        "{rows}x{width} row {r} {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn rope_pairs_by_style() {
        // Position 1, n_rot 4, base 100: theta_scale = 100^(-1/2) = 0.1, so
        // pair 0 turns by 1 rad and pair 1 by 0.1 rad.
        let (mut c, mut s) = ([0.0f32; 2], [0.0f32; 2]);
        rope_cache(1, 4, 100.0, 1.0, &mut c, &mut s);
        assert_eq!(c[0], 1.0f64.cos() as f32);
        assert!((c[1] - 0.1f64.cos() as f32).abs() < 1e-7);
        let mut neox = [1.0f32, 0.0, 0.0, 0.0];
        rope_head(&mut neox, &c, &s, true);
        // Element 0 pairs with element 2.
        assert_eq!(neox, [c[0], 0.0, s[0], 0.0]);
        let mut norm = [1.0f32, 0.0, 0.0, 0.0];
        rope_head(&mut norm, &c, &s, false);
        assert_eq!(norm, [c[0], s[0], 0.0, 0.0]);
    }

    /// Random values with NaNs, infinities and zeros of both signs, `n`
    /// long.
    fn awkward(rng: &mut crate::sample::Rng, n: usize) -> alloc::vec::Vec<f32> {
        (0..n)
            .map(|i| match i % 13 {
                3 => f32::NAN,
                5 => -0.0,
                7 => 0.0,
                11 if n > 40 => f32::NEG_INFINITY,
                _ => rng.next_gaussian() as f32,
            })
            .collect()
    }

    #[test]
    fn max_of_is_the_fold_of_f32_max() {
        let mut rng = crate::sample::Rng::new(5);
        for n in [0usize, 1, 3, 4, 7, 8, 9, 17, 64, 203] {
            let x = awkward(&mut rng, n);
            let want = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Equal as values: of two zeros either may come out.
            assert_eq!(max_of(&x), want, "n = {n}");
        }
    }

    #[test]
    fn softmax_of_a_nan_is_all_nan() {
        for n in [1usize, 5, 8, 9, 40] {
            let mut x: alloc::vec::Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
            x[n / 2] = f32::NAN;
            softmax(&mut x);
            assert!(x.iter().all(|v| v.is_nan()), "n = {n}: {x:?}");
        }
    }

    #[test]
    fn relu_squared_mul_is_the_plain_loop() {
        let mut rng = crate::sample::Rng::new(6);
        for n in [0usize, 1, 3, 4, 5, 8, 17, 64, 203] {
            let g = awkward(&mut rng, n);
            let u: alloc::vec::Vec<f32> = (0..n).map(|_| rng.next_gaussian() as f32).collect();
            let mut got = g.clone();
            relu_squared_mul(&mut got, &u);
            for (i, ((&o, &gv), &uv)) in got.iter().zip(&g).zip(&u).enumerate() {
                let r = gv.max(0.0);
                assert_eq!(o.to_bits(), (r * r * uv).to_bits(), "n = {n}, i = {i}");
            }
        }
    }

    /// [`exp_shifted`] compiled with the vectors of `isa`, as the
    /// attention heads built for it inline it.
    fn exp_shifted_built_for(isa: crate::kernels::Isa, x: &mut [f32], m: f32) {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
        fn avx512(x: &mut [f32], m: f32) {
            exp_shifted(x, m);
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn avx2(x: &mut [f32], m: f32) {
            exp_shifted(x, m);
        }
        match isa {
            // SAFETY: a platform of this ISA exists only where it was
            // detected.
            #[cfg(target_arch = "x86_64")]
            crate::kernels::Isa::Avx512 => unsafe { avx512(x, m) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            crate::kernels::Isa::Avx2 => unsafe { avx2(x, m) },
            _ => exp_shifted(x, m),
        }
    }

    /// [`exp_shifted`] against libm's `expf` itself (not our wrapper) on a
    /// sweep of bit patterns of both signs, every value near the branch
    /// thresholds of libm and of [`exp_lane`], and the specials; chunked
    /// and tail positions, with and without a slow lane in the chunk.
    #[test]
    fn exp_shifted_is_libm_expf_bit_for_bit() {
        // Every 4099th pattern natively; sparser on wasm, where Node's
        // WASI runner crashed on exit (SIGSEGV, after every test passed)
        // once this test had held ~25 MB.
        let step = if cfg!(target_arch = "wasm32") {
            65537
        } else {
            4099
        };
        let mut xs: alloc::vec::Vec<f32> = (0..=u32::MAX / step)
            .flat_map(|i| {
                let b = i * step;
                [f32::from_bits(b), f32::from_bits(b ^ 0x8000_0000)]
            })
            .collect();
        for t in [
            0x3900_0000u32,
            0x3eb1_7218,
            0x3f85_1592,
            EXP_SLOW_BITS,
            0x42b1_7218,
            0x42cf_f1b5,
            0x3f80_0000,
        ] {
            for b in t - 300..t + 300 {
                xs.push(f32::from_bits(b));
                xs.push(-f32::from_bits(b));
            }
        }
        xs.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        for (isa, m) in
            crate::kernels::Platform::available().flat_map(|p| [0.0f32, 1.5].map(|m| (p.isa(), m)))
        {
            let mut got = xs.clone();
            exp_shifted_built_for(isa, &mut got, m);
            for (i, (&g, &x)) in got.iter().zip(&xs).enumerate() {
                let want = libm::expf(x - m);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{isa:?}: expf({x:e} - {m}) at {i}: {g:e} vs libm {want:e}"
                );
            }
        }
    }

    #[test]
    fn softmax_matches_hand_values() {
        let mut x = [0.0f32, core::f32::consts::LN_2, f32::NEG_INFINITY];
        softmax(&mut x);
        // e^0 : e^ln2 : 0 = 1 : 2 : 0.
        assert!((x[0] - 1.0 / 3.0).abs() < 1e-7);
        assert!((x[1] - 2.0 / 3.0).abs() < 1e-7);
        assert_eq!(x[2], 0.0);
    }
}
