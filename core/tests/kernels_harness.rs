//! One harness for every kernel tier (BLAKE3 style): each kernel available
//! on this CPU, taken as a function pointer, runs against (a) a readable
//! reference written here from DESIGN.md §4-5 / llama.cpp's layouts and
//! (b) the portable kernel, on edge-case shapes and seeded random data.
//! Integers must be identical, and so must every float output (the SIMD
//! kernels keep the portable operation order).
//!
//! Run it also with `--features no_avx512` and `--features no_avx2` so that
//! one machine exercises every dispatch path (.ci/run does), and under
//! `cargo xtask cross-test aarch64` (NEON, qemu) and `cargo xtask
//! cross-test wasm32` (simd128, Node WASI).

use core::ops::Range;

use bitnet_core::kernels::{Isa, KernelChoice, Platform, ids};
use bitnet_core::quant::f16::dot_f16_f32;
use bitnet_core::quant::i2s::{i2s_dot_i32, quantize_act_i2s, quantize_i2s};
use bitnet_core::quant::q8_head::{Q8_HEAD_MAX_K, Q8Rows};
use bitnet_core::quant::q8_k::{BlockQ8K, QK_K, quantize_row_q8_k};
use bitnet_core::quant::tl::{TL_VARIANTS, TlKind, TlLayout, TlMatrix};
use bitnet_core::quant::tl_tq::TlBlocks;
use bitnet_core::quant::tq1_0::{BlockTq1_0, vec_dot_tq1_0_q8_k};
use bitnet_core::quant::tq2_0::{BlockTq2_0, vec_dot_tq2_0_q8_k};
use bitnet_core::quant::{ActScratch, QuantError, QuantType, QuantizedLinear};

/// I2_S row lengths: block multiples, BitNet-2B's hidden (2560) and FFN
/// (6912) sizes.
const I2S_KS: [usize; 5] = [128, 256, 384, 2560, 6912];
/// I2_S row lengths past one segment of the AVX-512 decode kernel (65536)
/// and past the 2^19 where its scaled sums would overflow an i32 unsplit.
const I2S_LONG_KS: [usize; 2] = [65536 + 384, (1 << 19) + 128];
/// TQ row lengths (multiples of 256).
const TQ_KS: [usize; 5] = [256, 512, 768, 2560, 6912];
/// Row counts 1..=67 hitting every unroll tail.
const ROWS: [usize; 14] = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67];
/// Batch sizes 1..=17 hitting the 4-token GEMM groups and their tails.
const BATCHES: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 16, 17];
/// Float lengths (lane tails).
const FLOAT_LENS: [usize; 19] = [
    1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 255, 1023, 2560, 6912,
];
/// F16 dot vs an f64 reference, relative to `sum |w x|`: any summation
/// order of n f32 products errs by at most about `n * eps * sum |w x|`
/// (Higham, "Accuracy and Stability of Numerical Algorithms", §3.1);
/// n <= 6912 here.
const F16_DOT_REL_TOL: f64 = 8192.0 * f32::EPSILON as f64;

/// An I2_S GEMV/GEMM dispatch entry (`Platform::i2s_gemv` / `i2s_gemm`).
type I2sKernel =
    fn(Platform, &[u8], usize, Range<usize>, &[i8], &mut [i32]) -> Result<&'static str, QuantError>;
/// A TQ x Q8_K GEMV dispatch entry.
type TqKernel = fn(
    Platform,
    &[u8],
    usize,
    Range<usize>,
    &[BlockQ8K],
    &mut [f32],
) -> Result<&'static str, QuantError>;
/// An F16 GEMV dispatch entry.
type F16Kernel = fn(
    Platform,
    &[u8],
    usize,
    Range<usize>,
    &[f32],
    &mut [f32],
) -> Result<&'static str, QuantError>;

/// splitmix64: a tiny seeded PRNG for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Every platform this machine (and this build's test features) can run.
fn platforms() -> Vec<Platform> {
    Platform::available().collect()
}

/// I2_S weight `i` of a row, from DESIGN.md §4 (code 3 reads as 0).
fn i2s_weight_ref(row: &[u8], i: usize) -> i32 {
    let (b, j, p) = (i / 128, (i % 128) / 32, i % 32);
    match (row[32 * b + p] >> (6 - 2 * j)) & 3 {
        0 => -1,
        2 => 1,
        _ => 0,
    }
}

/// Reference I2_S dot: dequantize to i32 and multiply.
fn i2s_dot_ref(row: &[u8], q: &[i8]) -> i32 {
    let dot: i64 = (0..q.len())
        .map(|i| i64::from(i2s_weight_ref(row, i)) * i64::from(q[i]))
        .sum();
    i32::try_from(dot).unwrap()
}

/// The expected id of each kernel entry on each tier.
/// Whether this build's NEON kernels use `sdot` (`cargo xtask cross-test
/// aarch64` runs the suite with and without `+dotprod`).
const DOTPROD: bool = cfg!(target_feature = "dotprod");

/// The TQ kernel id expected on `isa` for the format named `fmt` (`tq2_0`
/// or `tq1_0`); `None` where no fixed expectation applies.
fn tq_neon_id(isa: Isa, fmt: &str) -> Option<String> {
    (isa == Isa::Neon).then(|| {
        let suffix = if DOTPROD { "_dotprod" } else { "" };
        format!("{fmt}_gemv_neon{suffix}")
    })
}

fn i2s_id(isa: Isa, gemm: bool) -> &'static str {
    match (isa, gemm) {
        (Isa::Scalar, _) => ids::I2S_GEMV_SCALAR,
        (Isa::Avx2, false) => ids::I2S_GEMV_AVX2,
        (Isa::Avx2, true) => ids::I2S_GEMM_AVX2,
        (Isa::Avx512, false) => ids::I2S_GEMV_AVX512VNNI,
        (Isa::Avx512, true) => ids::I2S_GEMM_AVX512VNNI,
        (Isa::Neon, false) if DOTPROD => ids::I2S_GEMV_NEON_DOTPROD,
        (Isa::Neon, true) if DOTPROD => ids::I2S_GEMM_NEON_DOTPROD,
        (Isa::Neon, false) => ids::I2S_GEMV_NEON,
        (Isa::Neon, true) => ids::I2S_GEMM_NEON,
        (Isa::Simd128, false) if cfg!(target_feature = "relaxed-simd") => {
            ids::I2S_GEMV_SIMD128_RELAXED
        }
        (Isa::Simd128, true) if cfg!(target_feature = "relaxed-simd") => {
            ids::I2S_GEMM_SIMD128_RELAXED
        }
        (Isa::Simd128, false) => ids::I2S_GEMV_SIMD128,
        (Isa::Simd128, true) => ids::I2S_GEMM_SIMD128,
    }
}

/// Runs one I2_S kernel on `rows` of `w` against the reference and the
/// portable dot, with `batch` tokens.
fn check_i2s(
    kernel: I2sKernel,
    gemm: bool,
    p: Platform,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    q: &[i8],
) {
    let batch = q.len() / k;
    let mut out = vec![i32::MIN; rows.len() * batch];
    let id = kernel(p, w, k, rows.clone(), q, &mut out).unwrap();
    assert_eq!(id, i2s_id(p.isa(), gemm));
    for (i, r) in rows.clone().enumerate() {
        let row = &w[r * k / 4..(r + 1) * k / 4];
        for (t, qt) in q.chunks_exact(k).enumerate() {
            let want = i2s_dot_ref(row, qt);
            assert_eq!(i2s_dot_i32(row, qt), Ok(want), "portable k={k} r={r}");
            assert_eq!(
                out[i * batch + t],
                want,
                "{id} k={k} rows={rows:?} r={r} t={t}"
            );
        }
    }
}

#[test]
fn i2s_gemv_gemm_every_tier() {
    let mut rng = Rng(11);
    let kernels: [(I2sKernel, bool); 2] = [(Platform::i2s_gemv, false), (Platform::i2s_gemm, true)];
    for k in I2S_KS {
        for m in ROWS {
            // Random bytes: every code including the unused 3.
            let mut w = rng.bytes(m * k / 4);
            w.extend_from_slice(&[0; 32]);
            for batch in BATCHES {
                let q = rng.i8s(batch * k);
                for p in platforms() {
                    for (kernel, gemm) in kernels {
                        if !gemm && batch != 1 {
                            continue;
                        }
                        check_i2s(kernel, gemm, p, &w, k, 0..m, &q);
                        // A row range, as a thread's share would be.
                        check_i2s(kernel, gemm, p, &w, k, m / 3..m, &q);
                    }
                }
            }
        }
    }
}

#[test]
fn i2s_extreme_values_every_tier() {
    // All +1 / all -1 / all code 3 against -128 and 127: the largest sums.
    for k in I2S_KS.into_iter().chain(I2S_LONG_KS) {
        for byte in [0x00u8, 0xaa, 0xff, 0x55, 0xe4] {
            let w = vec![byte; k / 4];
            for v in [-128i8, 127, -1] {
                let q = vec![v; 4 * k];
                for p in platforms() {
                    check_i2s(Platform::i2s_gemm, true, p, &w, k, 0..1, &q);
                    check_i2s(Platform::i2s_gemv, false, p, &w, k, 0..1, &q[..k]);
                }
            }
        }
    }
}

#[test]
fn i2s_quantize_matches_reference_every_tier() {
    let mut rng = Rng(12);
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.5,
        1.5,
        -2.5,
        127.0,
    ];
    for n in FLOAT_LENS.into_iter().chain([0]) {
        for scale in [0.0f32, 1e-7, 1e-3, 1.0, 37.5, 1e6] {
            for special in [None, Some(0), Some(1), Some(2), Some(3), Some(4)] {
                let mut x: Vec<f32> = (0..n).map(|_| rng.unit() * scale).collect();
                if let (Some(s), false) = (special, x.is_empty()) {
                    let at = rng.next() as usize % n;
                    x[at] = specials[(s + rng.next() as usize) % specials.len()];
                }
                // Ties: exact halves after scaling by s = 1 (max |x| = 127).
                if special == Some(4) && n > 1 {
                    x[0] = 127.0;
                    for v in x.iter_mut().skip(1) {
                        *v = ((rng.next() % 255) as f32 - 127.0) + 0.5;
                    }
                }
                let mut want = vec![0i8; n];
                let s_want = quantize_act_i2s(&x, &mut want).unwrap();
                // Readable reference: DESIGN.md §5 with std's ties-even.
                let m = x
                    .iter()
                    .filter(|v| !v.is_nan())
                    .fold(1e-5f32, |m, v| m.max(v.abs()));
                let s_ref = (127.0f64 / f64::from(m)) as f32;
                assert_eq!(s_want.to_bits(), s_ref.to_bits());
                for (&v, &qv) in x.iter().zip(&want) {
                    let r = (v * s_ref).round_ties_even();
                    let r = if r.is_nan() {
                        0
                    } else {
                        r.clamp(-128.0, 127.0) as i8
                    };
                    assert_eq!(qv, r, "portable n={n} v={v}");
                }
                for p in platforms() {
                    let mut got = vec![99i8; n];
                    let (s, _id) = p.i2s_quantize_act(&x, &mut got).unwrap();
                    assert_eq!(s.to_bits(), s_want.to_bits(), "{p:?} n={n}");
                    assert_eq!(got, want, "{p:?} n={n} scale={scale}");
                }
            }
        }
    }
}

/// Q8_K activations of `k` random floats (`k / 256` blocks).
fn q8k_blocks(rng: &mut Rng, k: usize) -> Vec<BlockQ8K> {
    let x: Vec<f32> = (0..k).map(|_| rng.unit() * 4.0).collect();
    let mut act = vec![BlockQ8K::ZERO; k / QK_K];
    quantize_row_q8_k(&x, &mut act).unwrap();
    act
}

/// A random finite f16 scale as two bytes.
fn f16_scale(rng: &mut Rng) -> [u8; 2] {
    half::f16::from_f32(rng.unit() * 2.0)
        .to_bits()
        .to_le_bytes()
}

/// TQ2_0 weight `i` of a block (llama.cpp layout: byte `32g + m` holds
/// weights `128g + 32l + m` at bits `2l`; weight = code - 1, code 3 -> +2).
fn tq2_weight_ref(blk: &[u8], i: usize) -> i32 {
    let (g, l, m) = (i / 128, (i % 128) / 32, i % 32);
    i32::from((blk[32 * g + m] >> (2 * l)) & 3) - 1
}

/// TQ1_0 weight `i` of a block (llama.cpp layout, ggml's trit extraction).
fn tq1_weight_ref(blk: &[u8], i: usize) -> i32 {
    let (byte, n) = if i < 160 {
        (blk[i % 32], i / 32)
    } else if i < 240 {
        (blk[32 + (i - 160) % 16], (i - 160) / 16)
    } else {
        (blk[48 + (i - 240) % 4], (i - 240) / 4)
    };
    let v = byte.wrapping_mul([1u8, 3, 9, 27, 81][n]);
    ((u16::from(v) * 3) >> 8) as i32 - 1
}

/// Reference TQ dot: per block the exact integer, then llama.cpp's float
/// combination `sumf += sumi * (d_w * d_a)` in block order.
fn tq_dot_ref(row: &[u8], act: &[BlockQ8K], bytes: usize, weight: fn(&[u8], usize) -> i32) -> f32 {
    let mut sumf = 0.0f32;
    for (blk, a) in row.chunks_exact(bytes).zip(act) {
        let sumi: i32 = (0..QK_K).map(|i| weight(blk, i) * i32::from(a.qs[i])).sum();
        let d = half::f16::from_bits(u16::from_le_bytes([blk[bytes - 2], blk[bytes - 1]])).to_f32();
        sumf += sumi as f32 * (d * a.d);
    }
    sumf
}

#[test]
fn tq_gemv_every_tier() {
    let mut rng = Rng(13);
    type Portable = fn(&[u8], &[BlockQ8K]) -> Result<f32, QuantError>;
    type WeightRef = fn(&[u8], usize) -> i32;
    let formats: [(TqKernel, Portable, usize, WeightRef); 2] = [
        (
            Platform::tq2_0_gemv,
            vec_dot_tq2_0_q8_k,
            BlockTq2_0::BYTES,
            tq2_weight_ref,
        ),
        (
            Platform::tq1_0_gemv,
            vec_dot_tq1_0_q8_k,
            BlockTq1_0::BYTES,
            tq1_weight_ref,
        ),
    ];
    for (kernel, portable, bytes, weight) in formats {
        for k in TQ_KS {
            for m in ROWS {
                let row_bytes = k / QK_K * bytes;
                let mut w = rng.bytes(m * row_bytes);
                for blk in w.chunks_exact_mut(bytes) {
                    blk[bytes - 2..].copy_from_slice(&f16_scale(&mut rng));
                }
                let act = q8k_blocks(&mut rng, k);
                for p in platforms() {
                    for rows in [0..m, m / 2..m] {
                        let mut out = vec![f32::NAN; rows.len()];
                        let id = kernel(p, &w, k, rows.clone(), &act, &mut out).unwrap();
                        if let Some(want) = tq_gemv_id(p.isa(), &id[..5]) {
                            assert_eq!(id, want);
                        }
                        for (i, r) in rows.clone().enumerate() {
                            let row = &w[r * row_bytes..(r + 1) * row_bytes];
                            let want = tq_dot_ref(row, &act, bytes, weight);
                            assert_eq!(portable(row, &act).map(f32::to_bits), Ok(want.to_bits()));
                            assert_eq!(out[i].to_bits(), want.to_bits(), "{id} k={k} r={r}");
                        }
                    }
                }
            }
        }
    }
}

/// The TQ GEMV kernel id expected on `isa` for `fmt` (`tq2_0` or
/// `tq1_0`); `None` where no fixed expectation applies.
fn tq_gemv_id(isa: Isa, fmt: &str) -> Option<String> {
    match isa {
        Isa::Scalar => Some(format!("{fmt}_gemv_scalar")),
        Isa::Avx2 => Some(format!("{fmt}_gemv_avx2")),
        Isa::Avx512 => Some(format!("{fmt}_gemv_avx512vnni")),
        _ => tq_neon_id(isa, fmt),
    }
}

/// The TQ GEMM kernel id expected on `isa` for `fmt` (`tq2_0` or
/// `tq1_0`); `None` where no fixed expectation applies (NEON's GEMV ids
/// are checked by [`tq_neon_id`]).
fn tq_gemm_id(isa: Isa, fmt: &str) -> Option<String> {
    match isa {
        Isa::Scalar => Some(format!("{fmt}_gemv_scalar")),
        Isa::Avx2 => Some(format!("{fmt}_gemm_avx2")),
        Isa::Avx512 => Some(format!("{fmt}_gemm_avx512vnni")),
        _ => tq_neon_id(isa, fmt),
    }
}

/// Runs one TQ GEMM on `rows` of `w` (rows of `k` weights in blocks of
/// `bytes`) with the tokens of `act` (`k / 256` blocks each) and checks
/// every output against the portable dot, bit for bit.
fn check_tq_gemm(
    (kernel, portable, fmt): (TqKernel, TqPortable, &str),
    p: Platform,
    (w, bytes): (&[u8], usize),
    k: usize,
    rows: Range<usize>,
    act: &[BlockQ8K],
) {
    let nb = k / QK_K;
    let batch = act.len() / nb;
    let row_bytes = nb * bytes;
    let mut out = vec![f32::NAN; rows.len() * batch];
    let id = kernel(p, w, k, rows.clone(), act, &mut out).unwrap();
    if let Some(want) = tq_gemm_id(p.isa(), fmt) {
        assert_eq!(id, want);
    }
    for (i, r) in rows.clone().enumerate() {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        for (t, a) in act.chunks_exact(nb).enumerate() {
            let want = portable(row, a).unwrap();
            assert_eq!(
                out[i * batch + t].to_bits(),
                want.to_bits(),
                "{id} k={k} rows={rows:?} r={r} t={t}: {} vs {want}",
                out[i * batch + t]
            );
        }
    }
}

/// A portable TQ dot (`vec_dot_tq2_0_q8_k` / `vec_dot_tq1_0_q8_k`).
type TqPortable = fn(&[u8], &[BlockQ8K]) -> Result<f32, QuantError>;

/// The two TQ formats: GEMM entry, portable dot, name, block bytes.
const TQ_GEMMS: [(TqKernel, TqPortable, &str, usize); 2] = [
    (
        Platform::tq2_0_gemm,
        vec_dot_tq2_0_q8_k,
        "tq2_0",
        BlockTq2_0::BYTES,
    ),
    (
        Platform::tq1_0_gemm,
        vec_dot_tq1_0_q8_k,
        "tq1_0",
        BlockTq1_0::BYTES,
    ),
];

#[test]
fn tq_gemm_every_tier() {
    let mut rng = Rng(19);
    for (kernel, portable, fmt, bytes) in TQ_GEMMS {
        for k in TQ_KS {
            for m in ROWS {
                // Random bytes: every TQ2_0 code including 3 (+2).
                let row_bytes = k / QK_K * bytes;
                let mut w = rng.bytes(m * row_bytes);
                for blk in w.chunks_exact_mut(bytes) {
                    blk[bytes - 2..].copy_from_slice(&f16_scale(&mut rng));
                }
                for batch in BATCHES {
                    let act: Vec<BlockQ8K> =
                        (0..batch).flat_map(|_| q8k_blocks(&mut rng, k)).collect();
                    // The portable dot against the readable reference,
                    // for the first token.
                    for r in 0..m {
                        let row = &w[r * row_bytes..(r + 1) * row_bytes];
                        let a = &act[..k / QK_K];
                        let weight = if bytes == BlockTq2_0::BYTES {
                            tq2_weight_ref
                        } else {
                            tq1_weight_ref
                        };
                        let want = tq_dot_ref(row, a, bytes, weight);
                        assert_eq!(portable(row, a).map(f32::to_bits), Ok(want.to_bits()));
                    }
                    for p in platforms() {
                        let f = (kernel, portable, fmt);
                        check_tq_gemm(f, p, (&w, bytes), k, 0..m, &act);
                        // A row range, as a thread's share would be.
                        check_tq_gemm(f, p, (&w, bytes), k, m / 3..m, &act);
                    }
                }
            }
        }
    }
}

#[test]
fn tq_gemm_gemv_extreme_values_every_tier() {
    // Every weight -1, 0, +1 or (TQ2_0 code 3) +2, and 0xff bytes in TQ1_0,
    // against all -128 / all 127 activations: the largest block integers
    // and i16 partial sums. Rows and tokens past one tile (33 x 6).
    for (kernel, portable, fmt, bytes) in TQ_GEMMS {
        for k in [256, 2560] {
            for byte in [0x00u8, 0x55, 0xaa, 0xff, 0xe4] {
                let mut w = vec![byte; 33 * k / QK_K * bytes];
                for blk in w.chunks_exact_mut(bytes) {
                    blk[bytes - 2..]
                        .copy_from_slice(&half::f16::from_f32(-1.5).to_bits().to_le_bytes());
                }
                for v in [-128i8, 127] {
                    let act = vec![
                        BlockQ8K {
                            d: 0.375,
                            qs: [v; QK_K],
                            bsums: [i16::from(v) * 16; QK_K / 16],
                        };
                        6 * k / QK_K
                    ];
                    let gemv: TqKernel = if fmt == "tq2_0" {
                        Platform::tq2_0_gemv
                    } else {
                        Platform::tq1_0_gemv
                    };
                    let want = portable(&w[..k / QK_K * bytes], &act[..k / QK_K]).unwrap();
                    for p in platforms() {
                        check_tq_gemm((kernel, portable, fmt), p, (&w, bytes), k, 0..33, &act);
                        let mut out = vec![f32::NAN; 33];
                        let id = gemv(p, &w, k, 0..33, &act[..k / QK_K], &mut out).unwrap();
                        assert!(
                            out.iter().all(|o| o.to_bits() == want.to_bits()),
                            "{id} {byte:#x} {v}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn f16_gemv_every_tier() {
    let mut rng = Rng(14);
    let kernel: F16Kernel = Platform::f16_gemv;
    for k in FLOAT_LENS {
        for m in [1, 2, 3, 4, 5, 7, 8, 9, 17] {
            let wf: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
            let w: Vec<u8> = wf
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
                .collect();
            let x: Vec<f32> = (0..k).map(|_| rng.unit() * 3.0).collect();
            for p in platforms() {
                let mut out = vec![f32::NAN; m];
                let id = kernel(p, &w, k, 0..m, &x, &mut out).unwrap();
                for r in 0..m {
                    let row = &w[r * 2 * k..(r + 1) * 2 * k];
                    let want = dot_f16_f32(row, &x).unwrap();
                    assert_eq!(out[r].to_bits(), want.to_bits(), "{id} k={k} r={r}");
                    // Readable reference in f64, within the named tolerance.
                    let (mut exact, mut mag) = (0.0f64, 0.0f64);
                    for (i, &xv) in x.iter().enumerate() {
                        let wv = f64::from(half::f16::from_f32(wf[r * k + i]).to_f32());
                        exact += wv * f64::from(xv);
                        mag += (wv * f64::from(xv)).abs();
                    }
                    assert!(
                        (f64::from(out[r]) - exact).abs() <= F16_DOT_REL_TOL * mag,
                        "{id} k={k} r={r}: {} vs {exact}",
                        out[r]
                    );
                }
            }
        }
    }
}

#[test]
fn linear_forward_every_tier_equals_portable() {
    let mut rng = Rng(15);
    let mut scratch = ActScratch::new();
    for (k, m) in [(256, 67), (2560, 5), (512, 17)] {
        let wt: Vec<i8> = (0..m * k).map(|_| (rng.next() % 3) as i8 - 1).collect();
        let i2s = quantize_i2s(&wt, 0.625, m, k).unwrap();
        let mut tq2 = rng.bytes(m * k / QK_K * BlockTq2_0::BYTES);
        for blk in tq2.chunks_exact_mut(BlockTq2_0::BYTES) {
            blk[64..].copy_from_slice(&f16_scale(&mut rng));
        }
        let mut tq1 = rng.bytes(m * k / QK_K * BlockTq1_0::BYTES);
        for blk in tq1.chunks_exact_mut(BlockTq1_0::BYTES) {
            blk[52..].copy_from_slice(&f16_scale(&mut rng));
        }
        let f16w: Vec<u8> = (0..m * k)
            .flat_map(|_| half::f16::from_f32(rng.unit()).to_bits().to_le_bytes())
            .collect();
        let cases = [
            (&i2s, QuantType::I2S),
            (&tq2, QuantType::TQ2_0),
            (&tq1, QuantType::TQ1_0),
            (&f16w, QuantType::F16),
        ];
        for (bytes, qtype) in cases {
            let lin = QuantizedLinear::new(bytes, qtype, m, k).unwrap();
            for batch in [1, 3, 4, 9] {
                let x: Vec<f32> = (0..batch * k).map(|_| rng.unit() * 5.0).collect();
                let mut want = vec![0.0f32; batch * m];
                let id = lin
                    .forward_with(Platform::portable(), &x, &mut want, &mut scratch)
                    .unwrap();
                assert_eq!(id, qtype.scalar_kernel_id());
                for p in platforms() {
                    let mut got = vec![f32::NAN; batch * m];
                    let id = lin.forward_with(p, &x, &mut got, &mut scratch).unwrap();
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{qtype} {id} batch={batch}"
                    );
                    // NEON has I2_S, TQ2_0, TQ1_0 (and TL) kernels; simd128 I2_S.
                    if p.isa() != Isa::Scalar
                        && (p.isa() != Isa::Neon || qtype != QuantType::F16)
                        && (p.isa() != Isa::Simd128 || qtype == QuantType::I2S)
                    {
                        assert_ne!(id, qtype.scalar_kernel_id(), "{qtype} on {p:?}");
                    }
                }
                let mut auto = vec![f32::NAN; batch * m];
                lin.forward(&x, &mut auto, &mut scratch).unwrap();
                assert_eq!(auto, want);
            }
        }
    }
}

#[test]
fn dispatch_rejects_bad_shapes() {
    for p in platforms() {
        let w = [0u8; 64];
        let mut out = [0i32; 2];
        assert!(p.i2s_gemv(&w, 100, 0..1, &[0; 100], &mut out[..1]).is_err());
        assert!(p.i2s_gemv(&w, 128, 0..3, &[0; 128], &mut [0; 3]).is_err());
        let reversed = Range { start: 1, end: 0 };
        assert!(p.i2s_gemv(&w, 128, reversed, &[0; 128], &mut []).is_err());
        assert!(p.i2s_gemv(&w, 128, 0..2, &[0; 127], &mut out).is_err());
        assert!(p.i2s_gemv(&w, 128, 0..2, &[0; 128], &mut out[..1]).is_err());
        assert!(p.i2s_gemm(&w, 128, 0..2, &[0; 300], &mut out).is_err());
        assert!(p.i2s_gemm(&w, 128, 0..2, &[0; 256], &mut out).is_err());
        assert!(p.i2s_gemm(&w, 1 << 23, 0..0, &[], &mut []).is_err());
        let mut f = [0.0f32; 1];
        assert!(p.tq2_0_gemv(&w, 256, 0..1, &[], &mut f).is_err());
        assert!(
            p.tq1_0_gemv(&w, 200, 0..1, &[BlockQ8K::ZERO], &mut f)
                .is_err()
        );
        // K = 0, and (GEMM) a batch that is not whole tokens or whose
        // outputs do not match.
        assert!(p.tq2_0_gemv(&w, 0, 0..1, &[], &mut f).is_err());
        assert!(p.tq1_0_gemm(&w, 0, 0..1, &[], &mut f).is_err());
        let a3 = [BlockQ8K::ZERO; 3];
        let w2 = [0u8; 4 * BlockTq2_0::BYTES];
        assert!(p.tq2_0_gemm(&w2, 512, 0..1, &a3, &mut f).is_err());
        assert!(
            p.tq2_0_gemm(&w2, 512, 0..2, &a3[..2], &mut [0.0; 1])
                .is_err()
        );
        assert!(
            p.tq2_0_gemm(&w2, 512, 0..3, &a3[..2], &mut [0.0; 3])
                .is_err()
        );
        assert!(p.tq1_0_gemm(&w2, 768, 0..1, &a3, &mut [0.0; 2]).is_err());
        assert!(p.tq2_0_gemm(&w2, 512, 1..2, &a3[..2], &mut f).is_ok());
        assert!(p.f16_gemv(&w, 0, 0..1, &[], &mut f).is_err());
        assert!(p.f16_gemv(&w, 33, 0..1, &[0.0; 33], &mut f).is_err());
        assert!(p.i2s_quantize_act(&[0.0; 3], &mut [0; 2]).is_err());
    }
}

#[test]
fn detection_and_choice() {
    let best = Platform::detect();
    assert_eq!(Platform::with_choice(KernelChoice::Auto), Ok(best));
    assert_eq!(
        Platform::with_choice(KernelChoice::Scalar).map(Platform::isa),
        Ok(Isa::Scalar)
    );
    for (choice, isa) in [
        (KernelChoice::Avx2, Isa::Avx2),
        (KernelChoice::Avx512, Isa::Avx512),
    ] {
        let got = Platform::with_choice(choice);
        if platforms().iter().any(|p| p.isa() == isa) {
            assert_eq!(got.map(Platform::isa), Ok(isa));
        } else {
            let e = got.unwrap_err();
            assert_eq!((e.requested, e.detected), (isa, best.isa()));
        }
    }
    assert_eq!(platforms().last().copied(), Some(best));
    // Our CPUID ladder agrees with std's detection (unless a test feature
    // caps it).
    #[cfg(all(
        target_arch = "x86_64",
        not(feature = "no_avx2"),
        not(feature = "no_avx512")
    ))]
    {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni");
        let want = if avx512 {
            Isa::Avx512
        } else if avx2 {
            Isa::Avx2
        } else {
            Isa::Scalar
        };
        assert_eq!(best.isa(), want);
    }
    #[cfg(feature = "no_avx2")]
    assert_eq!(best.isa(), Isa::Scalar);
    #[cfg(all(feature = "no_avx512", not(feature = "no_avx2")))]
    assert!(best.isa() <= Isa::Avx2);
}

/// A TL1 / TL2 GEMV/GEMM dispatch entry (`Platform::tl_gemm`).
type TlKernel =
    fn(Platform, &TlMatrix, Range<usize>, &[i8], &mut [i32]) -> Result<&'static str, QuantError>;

/// Runs the TL kernel of `p` for `kind` in `layout` on `rows` of the I2_S
/// tensor `w` (repacked) against the readable I2_S reference, with `q`
/// (`batch x k`).
fn check_tl(
    p: Platform,
    (kind, layout): (TlKind, TlLayout),
    w: &[u8],
    m: usize,
    k: usize,
    rows: Range<usize>,
    q: &[i8],
) {
    let kernel: TlKernel = Platform::tl_gemm;
    let packed = TlMatrix::from_i2s(w, m, k, kind, layout).unwrap();
    let batch = q.len() / k;
    let per = packed.table_bytes();
    let mut tables = vec![0i8; batch * per];
    for (qt, t) in q.chunks_exact(k).zip(tables.chunks_exact_mut(per)) {
        packed.build_tables(qt, t).unwrap();
    }
    let mut out = vec![i32::MIN; rows.len() * batch];
    let id = kernel(p, &packed, rows.clone(), &tables, &mut out).unwrap();
    assert!(id.starts_with(kind.name()), "{id}");
    // wasm has no TL kernels: its TL path is the portable one; the wide
    // layout has SIMD kernels only where the tier prefers it.
    if !matches!(p.isa(), Isa::Scalar | Isa::Simd128) && p.tl_layout(kind) == layout {
        assert!(!id.ends_with("scalar"), "{id} on {p:?}");
    }
    #[cfg(target_arch = "x86_64")]
    if layout == TlLayout::Wide
        && p.isa() == Isa::Avx512
        && std::is_x86_feature_detected!("avx512vbmi")
    {
        assert!(id.ends_with("avx512vbmi"), "{id} on {p:?}");
    }
    for (i, r) in rows.clone().enumerate() {
        let row = &w[r * k / 4..(r + 1) * k / 4];
        for (t, qt) in q.chunks_exact(k).enumerate() {
            assert_eq!(
                out[i * batch + t],
                i2s_dot_ref(row, qt),
                "{id} k={k} m={m} rows={rows:?} r={r} t={t}"
            );
        }
    }
}

#[test]
fn tl_gemv_gemm_every_tier_equals_i2s() {
    let mut rng = Rng(16);
    for k in I2S_KS {
        for m in ROWS.into_iter().chain([64, 65, 97, 128, 191]) {
            // Random bytes: every code including the unused 3.
            let mut w = rng.bytes(m * k / 4);
            w.extend_from_slice(&[0; 32]);
            for batch in [1, 2, 3, 4, 5, 9] {
                let q = rng.i8s(batch * k);
                for p in platforms() {
                    for case in TL_VARIANTS {
                        check_tl(p, case, &w, m, k, 0..m, &q);
                        check_tl(p, case, &w, m, k, m / 3..m, &q);
                        check_tl(p, case, &w, m, k, m / 2..m / 2 + 1, &q);
                    }
                }
            }
        }
    }
}

#[test]
fn tl_extreme_values_every_tier() {
    // All +1 / all -1 / all code 3 against -128 and 127: the largest sums
    // and the largest i16 chunk accumulations.
    for k in I2S_KS {
        for byte in [0x00u8, 0xaa, 0xff, 0x55, 0xe4, 0x1b] {
            let mut w = vec![byte; 33 * k / 4];
            w.extend_from_slice(&[0; 32]);
            for v in [-128i8, 127, -1] {
                let q = vec![v; 4 * k];
                for p in platforms() {
                    for case in TL_VARIANTS {
                        check_tl(p, case, &w, 33, k, 0..33, &q);
                        check_tl(p, case, &w, 33, k, 0..33, &q[..k]);
                    }
                }
            }
        }
    }
}

#[test]
fn tl_tables_every_tier_equal_the_portable_ones() {
    // I2_S row lengths whose last TL2 group holds 1, 2 or 3 weights and
    // whose last wide block 0, 1 or 2 padding groups; random and extreme
    // activations.
    let mut rng = Rng(19);
    for k in [128, 256, 384, 512, 640, 2560, 6912] {
        // A shape-only matrix of the row length (one row of zeros).
        let w = vec![0u8; k / 4 + 32];
        for (kind, layout) in TL_VARIANTS {
            let m = TlMatrix::from_i2s(&w, 1, k, kind, layout).unwrap();
            for q in [rng.i8s(k), vec![-128; k], vec![127; k]] {
                let mut want = vec![0i8; m.table_bytes()];
                m.build_tables(&q, &mut want).unwrap();
                for p in platforms() {
                    let mut got = vec![1i8; m.table_bytes()];
                    p.tl_build_tables(&m, &q, &mut got).unwrap();
                    assert_eq!(got, want, "{kind:?} {layout:?} k={k} {p:?}");
                    assert!(p.tl_build_tables(&m, &q[1..], &mut got).is_err());
                    assert!(p.tl_build_tables(&m, &q, &mut got[1..]).is_err());
                }
            }
        }
    }
}

#[test]
fn tl_layout_follows_the_cpu() {
    // The wide TL2 layout where its VBMI kernel runs, the tiles elsewhere
    // (and always for TL1).
    for p in platforms() {
        #[cfg(target_arch = "x86_64")]
        let vbmi = p.isa() == Isa::Avx512 && std::is_x86_feature_detected!("avx512vbmi");
        #[cfg(not(target_arch = "x86_64"))]
        let vbmi = false;
        let want = if vbmi {
            TlLayout::Wide
        } else {
            TlLayout::Tiles
        };
        assert_eq!(p.tl_layout(TlKind::Tl2), want, "{p:?}");
        assert_eq!(p.tl_layout(TlKind::Tl1), TlLayout::Tiles, "{p:?}");
    }
}

#[test]
fn tl_rejects_bad_shapes() {
    let w = [0u8; 64];
    for (kind, layout) in TL_VARIANTS {
        assert!(TlMatrix::from_i2s(&w, 1, 100, kind, layout).is_err());
        assert!(TlMatrix::from_i2s(&w[..63], 1, 128, kind, layout).is_err());
        let packed = TlMatrix::from_i2s(&w, 1, 128, kind, layout).unwrap();
        let t = vec![0i8; packed.table_bytes()];
        assert!(packed.build_tables(&[0; 127], &mut t.clone()).is_err());
        assert!(
            packed
                .build_tables(&[0; 128], &mut t[1..].to_vec())
                .is_err()
        );
        for p in platforms() {
            assert!(p.tl_gemm(&packed, 0..2, &t, &mut [0; 2]).is_err());
            assert!(p.tl_gemm(&packed, 0..1, &t[..32], &mut [0; 1]).is_err());
            assert!(p.tl_gemm(&packed, 0..1, &t, &mut [0; 2]).is_err());
            assert!(p.tl_gemm(&packed, 0..1, &[], &mut []).is_err());
        }
    }
    // The wide layout is TL2's.
    let err = TlMatrix::from_i2s(&w, 1, 128, TlKind::Tl1, TlLayout::Wide).unwrap_err();
    assert!(err.to_string().contains("wide"), "{err}");
}

/// F16 weights that a bit-level conversion can get wrong: signed zeros,
/// subnormals (smallest, largest), the largest normal, infinities and NaNs
/// (quiet, signalling, negative); every tier must give the portable bits
/// (NaN for NaN).
#[test]
fn f16_gemv_special_values_every_tier() {
    let specials: [u16; 12] = [
        0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01,
        0xfd55,
    ];
    let mut rng = Rng(18);
    for k in [8, 16, 24, 40, 13] {
        // Even rows: finite specials only; odd rows: every special (NaN
        // output). Five rows: kernels that take rows in pairs or fours see
        // groups with and without a special row, and a row left over.
        let finite: Vec<u16> = specials
            .iter()
            .copied()
            .filter(|&h| h & 0x7c00 != 0x7c00)
            .collect();
        let rows: [Vec<u16>; 5] = core::array::from_fn(|r| {
            if r % 2 == 0 {
                (0..k).map(|i| finite[(i + r) % finite.len()]).collect()
            } else {
                (0..k)
                    .map(|i| specials[(i * 5 + r) % specials.len()])
                    .collect()
            }
        });
        let w: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|h| h.to_le_bytes())
            .collect();
        let x: Vec<f32> = (0..k).map(|_| rng.unit() * 3.0).collect();
        for p in platforms() {
            let mut out = [0.0f32; 5];
            let id = p.f16_gemv(&w, k, 0..5, &x, &mut out).unwrap();
            for (r, o) in out.iter().enumerate() {
                let want = dot_f16_f32(&w[r * 2 * k..(r + 1) * 2 * k], &x).unwrap();
                // A NaN's payload is not part of the contract (wasm leaves
                // it to the engine, so it can change between JIT tiers).
                if want.is_nan() {
                    assert!(o.is_nan(), "{id} k={k} row {r}: {o}");
                } else {
                    assert_eq!(o.to_bits(), want.to_bits(), "{id} k={k} row {r}");
                }
            }
        }
    }
}

#[test]
fn q8_head_gemv_every_tier() {
    let mut rng = Rng(17);
    for k in FLOAT_LENS {
        for m in [1, 2, 3, 5, 17] {
            let wf: Vec<u8> = (0..m * k)
                .flat_map(|_| half::f16::from_f32(rng.unit()).to_bits().to_le_bytes())
                .collect();
            let w = Q8Rows::from_float(&wf, QuantType::F16, m, k).unwrap();
            for q in [rng.i8s(k), vec![-128; k], vec![127; k]] {
                for p in platforms() {
                    for rows in [0..m, m / 2..m] {
                        let mut out = vec![i32::MIN; rows.len()];
                        let id = p.q8_head_gemv(&w, rows.clone(), &q, &mut out).unwrap();
                        for (i, r) in rows.clone().enumerate() {
                            let row = &w.qs()[r * k..(r + 1) * k];
                            let want: i64 = row
                                .iter()
                                .zip(&q)
                                .map(|(&a, &b)| i64::from(a) * i64::from(b))
                                .sum();
                            assert_eq!(i64::from(out[i]), want, "{id} k={k} r={r}");
                        }
                    }
                }
            }
        }
    }
    // The longest rows, all +127 and all -127, against all 127 and all
    // -128: the largest dots (the VNNI kernel's offset sums wrap past 2^32
    // on the way; the dot itself fits).
    let k = Q8_HEAD_MAX_K;
    let wf: Vec<u8> = [1.0f32, -1.0]
        .iter()
        .flat_map(|&v| (0..k).flat_map(move |_| half::f16::from_f32(v).to_bits().to_le_bytes()))
        .collect();
    let w = Q8Rows::from_float(&wf, QuantType::F16, 2, k).unwrap();
    assert_eq!((w.qs()[0], w.qs()[k]), (127, -127));
    for v in [127i8, -128] {
        let q = vec![v; k];
        for p in platforms() {
            let mut out = [0i32; 2];
            let id = p.q8_head_gemv(&w, 0..2, &q, &mut out).unwrap();
            let want = [
                127 * i64::from(v) * k as i64,
                -127 * i64::from(v) * k as i64,
            ];
            assert_eq!(out.map(i64::from), want, "{id} q={v}");
        }
    }
}

/// Random TQ weights of `m x k` in `qtype` with random f16 block scales;
/// TQ2_0 codes are kept ternary (0..=2), as its quantizer writes them.
fn tq_weights(rng: &mut Rng, qtype: QuantType, m: usize, k: usize) -> Vec<u8> {
    let bytes = match qtype {
        QuantType::TQ2_0 => BlockTq2_0::BYTES,
        _ => BlockTq1_0::BYTES,
    };
    let mut w = rng.bytes(m * k / QK_K * bytes);
    for blk in w.chunks_exact_mut(bytes) {
        if qtype == QuantType::TQ2_0 {
            for b in &mut blk[..64] {
                // Every 2-bit field 3 becomes 2.
                let both = *b & (*b >> 1) & 0x55;
                *b ^= both;
            }
        }
        blk[bytes - 2..].copy_from_slice(&f16_scale(rng));
    }
    w
}

#[test]
fn tl_from_tq_every_tier_equals_tq() {
    let mut rng = Rng(17);
    type WeightRef = fn(&[u8], usize) -> i32;
    let formats: [(QuantType, usize, WeightRef); 2] = [
        (QuantType::TQ2_0, BlockTq2_0::BYTES, tq2_weight_ref),
        (QuantType::TQ1_0, BlockTq1_0::BYTES, tq1_weight_ref),
    ];
    for (qtype, bytes, weight) in formats {
        for k in TQ_KS {
            for m in ROWS.into_iter().chain([64, 65, 97, 129]) {
                let row_bytes = k / QK_K * bytes;
                let w = tq_weights(&mut rng, qtype, m, k);
                let act = q8k_blocks(&mut rng, k);
                for kind in [TlKind::Tl1, TlKind::Tl2] {
                    let packed = TlBlocks::from_tq(&w, qtype, m, k, kind).unwrap();
                    let mut tables = vec![0i8; packed.tables_len()];
                    packed.build_tables(&act, &mut tables).unwrap();
                    for p in platforms() {
                        for rows in [0..m, m / 2..m, m / 3..m / 3 + 1] {
                            let mut out = vec![f32::NAN; rows.len()];
                            let id = packed
                                .gemv(p, rows.clone(), &act, &tables, &mut out)
                                .unwrap();
                            assert!(id.starts_with(kind.name()), "{id}");
                            for (i, r) in rows.clone().enumerate() {
                                let row = &w[r * row_bytes..(r + 1) * row_bytes];
                                let want = tq_dot_ref(row, &act, bytes, weight);
                                assert_eq!(
                                    out[i].to_bits(),
                                    want.to_bits(),
                                    "{qtype} {id} k={k} m={m} r={r}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn tl_from_tq_extreme_values_and_linear() {
    // All -1 / all +1 weights against all -128 / 127 activations: the
    // largest per-block sums; then QuantizedLinear with batches.
    let mut rng = Rng(18);
    for k in [256, 2560] {
        for code in [0x00u8, 0xaa] {
            let mut w = vec![code; 33 * k / QK_K * BlockTq2_0::BYTES];
            for blk in w.chunks_exact_mut(BlockTq2_0::BYTES) {
                blk[64..].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
            }
            for v in [-128i8, 127] {
                let act = vec![
                    BlockQ8K {
                        d: 0.25,
                        qs: [v; QK_K],
                        bsums: [i16::from(v) * 16; QK_K / 16],
                    };
                    k / QK_K
                ];
                for kind in [TlKind::Tl1, TlKind::Tl2] {
                    let packed = TlBlocks::from_tq(&w, QuantType::TQ2_0, 33, k, kind).unwrap();
                    let mut tables = vec![0i8; packed.tables_len()];
                    packed.build_tables(&act, &mut tables).unwrap();
                    for p in platforms() {
                        let mut out = vec![f32::NAN; 33];
                        packed.gemv(p, 0..33, &act, &tables, &mut out).unwrap();
                        let row = &w[..k / QK_K * BlockTq2_0::BYTES];
                        let want = vec_dot_tq2_0_q8_k(row, &act).unwrap();
                        assert!(out.iter().all(|o| o.to_bits() == want.to_bits()), "{p:?}");
                    }
                }
            }
        }
    }
    let mut scratch = ActScratch::new();
    for qtype in [QuantType::TQ2_0, QuantType::TQ1_0] {
        let (m, k) = (67, 512);
        let w = tq_weights(&mut rng, qtype, m, k);
        let plain = QuantizedLinear::new(&w, qtype, m, k).unwrap();
        // A TQ matrix keeps the tiles whatever layout is asked for.
        for (kind, layout) in TL_VARIANTS {
            let mut tl = plain.clone();
            assert!(tl.repack_tl(kind, layout).unwrap());
            for batch in [1, 3] {
                let x: Vec<f32> = (0..batch * k).map(|_| rng.unit() * 5.0).collect();
                let mut want = vec![0.0f32; batch * m];
                plain
                    .forward_with(Platform::portable(), &x, &mut want, &mut scratch)
                    .unwrap();
                for p in platforms() {
                    let mut got = vec![f32::NAN; batch * m];
                    let id = tl.forward_with(p, &x, &mut got, &mut scratch).unwrap();
                    assert!(id.starts_with(kind.name()), "{id}");
                    assert_eq!(
                        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{qtype} {id} batch={batch}"
                    );
                }
            }
        }
    }
}

#[test]
fn tl_from_tq_rejects_bad_input() {
    let mut w = vec![0x55u8; 2 * BlockTq2_0::BYTES];
    // Row 1, weight 32 * 2 + 5: code 3 (weight +2) is not ternary.
    w[BlockTq2_0::BYTES + 5] = 0x55 | (3 << 4);
    assert_eq!(
        TlBlocks::from_tq(&w, QuantType::TQ2_0, 2, 256, TlKind::Tl2),
        Err(QuantError::NotTernary {
            index: 256 + 69,
            value: 2
        })
    );
    assert!(TlBlocks::from_tq(&w[..65], QuantType::TQ2_0, 1, 256, TlKind::Tl1).is_err());
    assert!(TlBlocks::from_tq(&w, QuantType::TQ2_0, 1, 300, TlKind::Tl1).is_err());
    assert!(TlBlocks::from_tq(&w, QuantType::I2S, 1, 256, TlKind::Tl1).is_err());
    assert!(TlBlocks::from_tq(&w, QuantType::TQ2_0, 0, 256, TlKind::Tl1).is_err());
    let ok = TlBlocks::from_tq(&w[..66], QuantType::TQ2_0, 1, 256, TlKind::Tl1).unwrap();
    let act = [BlockQ8K::ZERO];
    let mut t = vec![0i8; ok.tables_len()];
    assert!(ok.build_tables(&act, &mut t[1..]).is_err());
    assert!(ok.build_tables(&[], &mut t).is_err());
    ok.build_tables(&act, &mut t).unwrap();
    for p in platforms() {
        assert!(ok.gemv(p, 0..2, &act, &t, &mut [0.0; 2]).is_err());
        assert!(ok.gemv(p, 0..1, &act, &t, &mut [0.0; 2]).is_err());
        assert!(ok.gemv(p, 0..1, &act, &t[..32], &mut [0.0; 1]).is_err());
    }
}
