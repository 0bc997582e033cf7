//! Kernel micro-benchmarks: I2_S GEMV and the F16 head GEMV (GB/s of
//! weight bytes, cache-cold) and I2_S GEMM (MAC/s), TL1/TL2, and
//! TQ2_0/TQ1_0 GEMM (MAC/s) and TQ1_0 GEMV, for every kernel tier this CPU
//! supports.
//!
//! `cargo bench -p bitnet-core --bench kernels`; results go to docs/perf.md.
//! Single thread. "Cache-cold": each iteration reads the next of several
//! copies of the weights, together larger than the last-level cache, so the
//! weights come from DRAM as in decode.

use std::hint::black_box;
use std::time::Duration;

use bitnet_core::kernels::{Isa, Platform};
use bitnet_core::quant::q8_k::{BlockQ8K, QK_K, quantize_row_q8_k};
use bitnet_core::quant::tl::{TL_VARIANTS, TlMatrix};
use bitnet_core::quant::tq1_0::BlockTq1_0;
use bitnet_core::quant::tq2_0::BlockTq2_0;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Bytes of weight copies cycled through for cache-cold runs (above the
/// 32 MiB L3 of the Zen 4 benchmark machine, and most desktop CPUs).
const COLD_BYTES: usize = 256 << 20;

/// splitmix64 for benchmark data.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as u8
        })
        .collect()
}

fn i2s_gemv(c: &mut Criterion) {
    // (M, K): attention/output 2560x2560, FFN gate/up 6912x2560, down 2560x6912.
    for (m, k) in [(2560, 2560), (6912, 2560), (2560, 6912)] {
        let bytes = m * k / 4;
        let copies = COLD_BYTES.div_ceil(bytes);
        let weights: Vec<Vec<u8>> = (0..copies).map(|i| data(bytes, i as u64)).collect();
        let q: Vec<i8> = data(k, 99).into_iter().map(|b| b as i8).collect();
        let mut out = vec![0i32; m];
        let mut g = c.benchmark_group(format!("i2s_gemv_{m}x{k}"));
        g.throughput(Throughput::Bytes(bytes as u64));
        for p in Platform::available() {
            let mut i = 0;
            let id = p.i2s_gemv(&weights[0], k, 0..m, &q, &mut out).unwrap();
            g.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 1) % copies;
                    p.i2s_gemv(black_box(&weights[i]), k, 0..m, &q, &mut out)
                        .unwrap();
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

fn f16_gemv(c: &mut Criterion) {
    // A slice of the 2B-4T tied head: 8192 of its 128256 rows of K = 2560.
    let (m, k) = (8192, 2560);
    let bytes = m * k * 2;
    let copies = COLD_BYTES.div_ceil(bytes);
    // Finite halves in [-1, 1): exponent bits below 15, any sign and mantissa.
    let weights: Vec<Vec<u8>> = (0..copies)
        .map(|i| {
            let mut w = data(bytes, 1000 + i as u64);
            for h in w.chunks_exact_mut(2) {
                h[1] &= 0xbb;
            }
            w
        })
        .collect();
    let x: Vec<f32> = data(k, 98)
        .into_iter()
        .map(|b| f32::from(b as i8) / 64.0)
        .collect();
    let mut out = vec![0f32; m];
    let mut g = c.benchmark_group(format!("f16_gemv_{m}x{k}"));
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut seen = Vec::new();
    for p in Platform::available() {
        let mut i = 0;
        let id = p.f16_gemv(&weights[0], k, 0..m, &x, &mut out).unwrap();
        // The AVX2 and AVX-512 tiers share the F16C kernel: bench it once
        // (criterion rejects a repeated ID).
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        g.bench_function(id, |b| {
            b.iter(|| {
                i = (i + 1) % copies;
                p.f16_gemv(black_box(&weights[i]), k, 0..m, &x, &mut out)
                    .unwrap();
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn i2s_gemm(c: &mut Criterion) {
    let (m, k, batch) = (2560, 2560, 16);
    let w = data(m * k / 4, 1);
    let q: Vec<i8> = data(batch * k, 2).into_iter().map(|b| b as i8).collect();
    let mut out = vec![0i32; m * batch];
    let mut g = c.benchmark_group(format!("i2s_gemm_{m}x{k}_batch{batch}"));
    // Elements = multiply-accumulates.
    g.throughput(Throughput::Elements((m * k * batch) as u64));
    for p in Platform::available() {
        let id = p.i2s_gemm(&w, k, 0..m, &q, &mut out).unwrap();
        g.bench_function(id, |b| {
            b.iter(|| {
                p.i2s_gemm(black_box(&w), k, 0..m, &q, &mut out).unwrap();
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// TL1 / TL2 GEMV (weights repacked from I2_S, cache-cold) with the table
/// build included, and TL GEMM at the I2_S GEMM shape; throughput in bytes
/// of the *I2_S* weights (`M * K / 4`) so the numbers compare with
/// `i2s_gemv` directly (TL2 reads 5/6 of them).
fn tl_gemv_gemm(c: &mut Criterion) {
    for (m, k) in [(2560, 2560), (6912, 2560), (2560, 6912)] {
        let bytes = m * k / 4;
        let copies = COLD_BYTES.div_ceil(bytes);
        let q: Vec<i8> = data(k, 99).into_iter().map(|b| b as i8).collect();
        let mut out = vec![0i32; m];
        let mut g = c.benchmark_group(format!("tl_gemv_{m}x{k}"));
        let mut seen = std::collections::HashSet::new();
        g.throughput(Throughput::Bytes(bytes as u64));
        for (kind, layout) in TL_VARIANTS {
            let packed: Vec<TlMatrix> = (0..copies)
                .map(|i| {
                    let mut w = data(bytes, i as u64);
                    w.extend_from_slice(&[0; 32]);
                    TlMatrix::from_i2s(&w, m, k, kind, layout).unwrap()
                })
                .collect();
            let mut tables = vec![0i8; packed[0].table_bytes()];
            for p in Platform::available() {
                let mut i = 0;
                let id = p.tl_gemm(&packed[0], 0..m, &tables, &mut out).unwrap();
                // TL1 on the AVX-512 tier is the AVX2 kernel: measured once.
                if !seen.insert(id) {
                    continue;
                }
                g.bench_function(id, |b| {
                    b.iter(|| {
                        i = (i + 1) % copies;
                        packed[i].build_tables(&q, &mut tables).unwrap();
                        p.tl_gemm(black_box(&packed[i]), 0..m, &tables, &mut out)
                            .unwrap();
                        black_box(&out);
                    })
                });
            }
        }
        g.finish();
    }
    let (m, k, batch) = (2560, 2560, 16);
    let mut w = data(m * k / 4, 1);
    w.extend_from_slice(&[0; 32]);
    let q: Vec<i8> = data(batch * k, 2).into_iter().map(|b| b as i8).collect();
    let mut out = vec![0i32; m * batch];
    let mut g = c.benchmark_group(format!("tl_gemm_{m}x{k}_batch{batch}"));
    let mut seen = std::collections::HashSet::new();
    g.throughput(Throughput::Elements((m * k * batch) as u64));
    for (kind, layout) in TL_VARIANTS {
        let packed = TlMatrix::from_i2s(&w, m, k, kind, layout).unwrap();
        let per = packed.table_bytes();
        let mut tables = vec![0i8; batch * per];
        for p in Platform::available() {
            let id = p.tl_gemm(&packed, 0..m, &tables, &mut out).unwrap();
            if !seen.insert(id) {
                continue;
            }
            g.bench_function(id, |b| {
                b.iter(|| {
                    for (qt, t) in q.chunks_exact(k).zip(tables.chunks_exact_mut(per)) {
                        packed.build_tables(qt, t).unwrap();
                    }
                    p.tl_gemm(black_box(&packed), 0..m, &tables, &mut out)
                        .unwrap();
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

/// TQ weights of `m x k` (`bytes` per 256-weight block) from seeded bytes,
/// every block scale 0.5 (the codes are whatever the bytes say).
fn tq_weights(m: usize, k: usize, bytes: usize, seed: u64) -> Vec<u8> {
    let mut w = data(m * k / QK_K * bytes, seed);
    for blk in w.chunks_exact_mut(bytes) {
        blk[bytes - 2..].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
    }
    w
}

/// `batch` tokens of `k` seeded activations as Q8_K blocks.
fn q8k(k: usize, batch: usize, seed: u64) -> Vec<BlockQ8K> {
    let x: Vec<f32> = data(batch * k, seed)
        .into_iter()
        .map(|b| f32::from(b as i8) / 32.0)
        .collect();
    let mut act = vec![BlockQ8K::ZERO; batch * k / QK_K];
    quantize_row_q8_k(&x, &mut act).unwrap();
    act
}

/// A TQ GEMM / GEMV dispatch entry.
type TqEntry = fn(
    Platform,
    &[u8],
    usize,
    std::ops::Range<usize>,
    &[BlockQ8K],
    &mut [f32],
) -> Result<&'static str, bitnet_core::quant::QuantError>;

/// TQ2_0 / TQ1_0 GEMM (prefill) at the I2_S GEMM shape, warm weights, in
/// MAC/s; against it, the path it replaces: the tier's GEMV once per token
/// (`..._per_token`). SIMD tiers only (the portable one runs the same
/// per-token dots either way).
fn tq_gemm(c: &mut Criterion) {
    let (m, k, batch) = (2560, 2560, 16);
    let nb = k / QK_K;
    let formats: [(&str, usize, TqEntry, TqEntry); 2] = [
        (
            "tq2_0",
            BlockTq2_0::BYTES,
            Platform::tq2_0_gemm,
            Platform::tq2_0_gemv,
        ),
        (
            "tq1_0",
            BlockTq1_0::BYTES,
            Platform::tq1_0_gemm,
            Platform::tq1_0_gemv,
        ),
    ];
    for (fmt, bytes, gemm, gemv) in formats {
        let w = tq_weights(m, k, bytes, 1);
        let act = q8k(k, batch, 2);
        let mut out = vec![0f32; m * batch];
        let mut g = c.benchmark_group(format!("{fmt}_gemm_{m}x{k}_batch{batch}"));
        g.throughput(Throughput::Elements((m * k * batch) as u64));
        let mut seen = std::collections::HashSet::new();
        for p in Platform::available().filter(|p| p.isa() != Isa::Scalar) {
            let id = gemm(p, &w, k, 0..m, &act, &mut out).unwrap();
            g.bench_function(id, |b| {
                b.iter(|| {
                    gemm(p, black_box(&w), k, 0..m, &act, &mut out).unwrap();
                    black_box(&out);
                })
            });
            let id = gemv(p, &w, k, 0..m, &act[..nb], &mut out[..m]).unwrap();
            // TQ1_0 on the AVX-512 tier is the AVX2 GEMV: measured once.
            if !seen.insert(id) {
                continue;
            }
            g.bench_function(format!("{id}_per_token"), |b| {
                b.iter(|| {
                    for (a, o) in act.chunks_exact(nb).zip(out.chunks_exact_mut(m)) {
                        gemv(p, black_box(&w), k, 0..m, a, o).unwrap();
                    }
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

/// TQ1_0 decode GEMV, one token, cache-cold (as `i2s_gemv`), GB/s of
/// weight bytes. SIMD tiers only.
fn tq1_0_gemv(c: &mut Criterion) {
    for (m, k) in [(2560, 2560), (6912, 2560), (2560, 6912)] {
        let bytes = m * k / QK_K * BlockTq1_0::BYTES;
        let copies = COLD_BYTES.div_ceil(bytes);
        let weights: Vec<Vec<u8>> = (0..copies)
            .map(|i| tq_weights(m, k, BlockTq1_0::BYTES, i as u64))
            .collect();
        let act = q8k(k, 1, 99);
        let mut out = vec![0f32; m];
        let mut g = c.benchmark_group(format!("tq1_0_gemv_{m}x{k}"));
        g.throughput(Throughput::Bytes(bytes as u64));
        for p in Platform::available().filter(|p| p.isa() != Isa::Scalar) {
            let mut i = 0;
            let id = p.tq1_0_gemv(&weights[0], k, 0..m, &act, &mut out).unwrap();
            g.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 1) % copies;
                    p.tq1_0_gemv(black_box(&weights[i]), k, 0..m, &act, &mut out)
                        .unwrap();
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = i2s_gemv, f16_gemv, i2s_gemm, tl_gemv_gemm, tq_gemm, tq1_0_gemv
}
criterion_main!(benches);
