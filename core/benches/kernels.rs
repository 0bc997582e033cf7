//! Kernel micro-benchmarks: I2_S GEMV and the F16 head GEMV (GB/s of
//! weight bytes, cache-cold), GEMM (MAC/s) and the TL kernels, for every
//! kernel tier this CPU supports.
//!
//! `cargo bench -p bitnet-core --bench kernels`; results go to docs/perf.md.
//! Single thread. "Cache-cold": each iteration reads the next of several
//! copies of the weights, together larger than the last-level cache, so the
//! weights come from DRAM as in decode.

use std::hint::black_box;
use std::time::Duration;

use bitnet_core::kernels::Platform;
use bitnet_core::quant::tl::{TL_TABLE_BYTES, TlKind, TlMatrix, tl_build_tables};
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
    for p in Platform::available() {
        let mut i = 0;
        let id = p.f16_gemv(&weights[0], k, 0..m, &x, &mut out).unwrap();
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
        for kind in [TlKind::Tl1, TlKind::Tl2] {
            let packed: Vec<TlMatrix> = (0..copies)
                .map(|i| {
                    let mut w = data(bytes, i as u64);
                    w.extend_from_slice(&[0; 32]);
                    TlMatrix::from_i2s(&w, m, k, kind).unwrap()
                })
                .collect();
            let mut tables = vec![0i8; kind.groups(k) * TL_TABLE_BYTES];
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
                        tl_build_tables(kind, &q, &mut tables).unwrap();
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
    for kind in [TlKind::Tl1, TlKind::Tl2] {
        let packed = TlMatrix::from_i2s(&w, m, k, kind).unwrap();
        let per = kind.groups(k) * TL_TABLE_BYTES;
        let mut tables = vec![0i8; batch * per];
        for p in Platform::available() {
            let id = p.tl_gemm(&packed, 0..m, &tables, &mut out).unwrap();
            if !seen.insert(id) {
                continue;
            }
            g.bench_function(id, |b| {
                b.iter(|| {
                    for (qt, t) in q.chunks_exact(k).zip(tables.chunks_exact_mut(per)) {
                        tl_build_tables(kind, qt, t).unwrap();
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

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = i2s_gemv, f16_gemv, i2s_gemm, tl_gemv_gemm
}
criterion_main!(benches);
