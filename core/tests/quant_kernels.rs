//! Portable kernels against readable references written here from the
//! format descriptions (DESIGN.md §4-5, llama.cpp's reference routines), on
//! edge-case shapes and seeded random data. Integer parts are compared bit
//! for bit; float results either exactly (same operation order) or within a
//! named tolerance.

use bitnet_core::kernels::Platform;
use bitnet_core::quant::bf16::dot_bf16_f32;
use bitnet_core::quant::f16::dot_f16_f32;
use bitnet_core::quant::f32::dot_f32;
use bitnet_core::quant::i2s::{i2s_dot_i32, i2s_scale, quantize_act_i2s, quantize_i2s};
use bitnet_core::quant::q8_0::{
    BlockQ8_0, quantize_q8_0_bytes, quantize_row_q8_0, vec_dot_q8_0_q8_0,
};
use bitnet_core::quant::q8_k::{BlockQ8K, QK_K, quantize_row_q8_k};
use bitnet_core::quant::tq1_0::{
    BlockTq1_0, dequantize_row_tq1_0, quantize_row_tq1_0, vec_dot_tq1_0_q8_k,
};
use bitnet_core::quant::tq2_0::{
    BlockTq2_0, dequantize_row_tq2_0, quantize_row_tq2_0, vec_dot_tq2_0_q8_k,
};
use bitnet_core::quant::{ActScratch, QuantError, QuantType, QuantizedLinear};

/// Row lengths for the ternary kernels (block multiples, incl. BitNet-2B's
/// hidden size 2560).
const TERNARY_KS: [usize; 4] = [128, 256, 384, 2560];
/// Row counts, hitting SIMD-style tails.
const ROWS: [usize; 13] = [1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67];
/// Lengths for the float kernels (lane tails).
const FLOAT_LENS: [usize; 18] = [
    0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 255, 1023,
];
/// Float dot tolerance relative to `sum |w x|`: any summation order of n f32
/// products errs by at most about `n * eps * sum |w x|` (Higham, "Accuracy
/// and Stability of Numerical Algorithms", §3.1); lengths here are <= 1023.
const FLOAT_DOT_REL_TOL: f64 = 1024.0 * f32::EPSILON as f64;

/// A float dot kernel: weight row bytes, f32 activations.
type FloatDot = fn(&[u8], &[f32]) -> Result<f32, QuantError>;
/// Rounds an f32 weight to the stored precision.
type RoundWeight = fn(f32) -> f32;

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
    fn ternary(&mut self) -> i8 {
        (self.next() % 3) as i8 - 1
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
}

/// I2_S weight `i` of a row, decoded straight from DESIGN.md §4's formula.
fn i2s_weight_ref(row: &[u8], i: usize) -> i32 {
    let (b, j, p) = (i / 128, (i % 128) / 32, i % 32);
    let code = (row[32 * b + p] >> (6 - 2 * j)) & 3;
    match code {
        0 => -1,
        2 => 1,
        _ => 0,
    }
}

/// DESIGN.md §5 activation quantization, with std's round_ties_even.
fn act_ref(x: &[f32]) -> (Vec<i8>, f32) {
    let m = x.iter().fold(1e-5f32, |m, v| m.max(v.abs()));
    let s = (127.0f64 / f64::from(m)) as f32;
    let q = x
        .iter()
        .map(|&v| (v * s).round_ties_even().clamp(-128.0, 127.0) as i8)
        .collect();
    (q, s)
}

#[test]
fn i2s_dot_matches_reference() {
    let mut rng = Rng(1);
    for k in TERNARY_KS {
        for rows in ROWS {
            let w: Vec<i8> = (0..rows * k).map(|_| rng.ternary()).collect();
            let t = quantize_i2s(&w, 0.5, rows, k).unwrap();
            assert_eq!(t.len(), rows * k / 4 + 32);
            let q: Vec<i8> = (0..k).map(|_| rng.i8()).collect();
            for (r, row) in t[..rows * k / 4].chunks_exact(k / 4).enumerate() {
                let mut want = 0i64;
                for i in 0..k {
                    let wr = i2s_weight_ref(row, i);
                    assert_eq!(wr, i32::from(w[r * k + i]), "k={k} r={r} i={i}: packing");
                    want += i64::from(wr) * i64::from(q[i]);
                }
                assert_eq!(
                    i64::from(i2s_dot_i32(row, &q).unwrap()),
                    want,
                    "k={k} rows={rows} r={r}"
                );
            }
        }
    }
}

#[test]
fn i2s_dot_extremes() {
    // All +1 against all -128 and all -1 against all 127: largest magnitudes.
    for k in TERNARY_KS {
        let plus = quantize_i2s(&vec![1; k], 1.0, 1, k).unwrap();
        let minus = quantize_i2s(&vec![-1; k], 1.0, 1, k).unwrap();
        let n = k as i32;
        assert_eq!(i2s_dot_i32(&plus[..k / 4], &vec![-128; k]), Ok(-128 * n));
        assert_eq!(i2s_dot_i32(&minus[..k / 4], &vec![-128; k]), Ok(128 * n));
        assert_eq!(i2s_dot_i32(&minus[..k / 4], &vec![127; k]), Ok(-127 * n));
    }
}

#[test]
fn i2s_activation_quantization_matches_reference() {
    let mut rng = Rng(2);
    for k in [1, 7, 128, 2560] {
        for scale in [1e-7f32, 1e-3, 1.0, 37.5, 1e6] {
            let x: Vec<f32> = (0..k).map(|_| rng.unit() * scale).collect();
            let mut q = vec![0i8; k];
            let s = quantize_act_i2s(&x, &mut q).unwrap();
            let (q_ref, s_ref) = act_ref(&x);
            assert_eq!(s.to_bits(), s_ref.to_bits(), "k={k} scale={scale}");
            assert_eq!(q, q_ref, "k={k} scale={scale}");
            assert!(
                q.iter().all(|&v| v >= -127),
                "finite input never reaches -128"
            );
        }
    }
}

#[test]
fn i2s_linear_matches_reference() {
    let mut rng = Rng(3);
    let mut scratch = ActScratch::new();
    for (k, rows, batch) in [(128, 1, 1), (256, 67, 3), (2560, 5, 2), (384, 17, 1)] {
        let w: Vec<i8> = (0..rows * k).map(|_| rng.ternary()).collect();
        let w_scale = 0.75f32;
        let t = quantize_i2s(&w, w_scale, rows, k).unwrap();
        assert_eq!(i2s_scale(&t, rows, k), Ok(w_scale));
        let x: Vec<f32> = (0..batch * k).map(|_| rng.unit() * 3.0).collect();
        let lin = QuantizedLinear::new(&t, QuantType::I2S, rows, k).unwrap();
        let mut out = vec![0.0f32; batch * rows];
        assert_eq!(
            lin.forward_with(Platform::portable(), &x, &mut out, &mut scratch),
            Ok("i2s_gemv_scalar")
        );
        for b in 0..batch {
            let (q, s) = act_ref(&x[b * k..(b + 1) * k]);
            for r in 0..rows {
                let dot: i64 = (0..k)
                    .map(|i| i64::from(w[r * k + i]) * i64::from(q[i]))
                    .sum();
                let want = (dot as f32 / s) * w_scale;
                assert_eq!(
                    out[b * rows + r].to_bits(),
                    want.to_bits(),
                    "k={k} b={b} r={r}"
                );
            }
        }
    }
}

/// llama.cpp's quantize_row_q8_K_ref, restated (nearest_int is round half
/// to even for the |v| <= 127 it sees here).
fn q8k_ref(x: &[f32]) -> Vec<BlockQ8K> {
    x.chunks_exact(QK_K)
        .map(|xb| {
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in xb {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            let mut b = BlockQ8K::ZERO;
            if amax == 0.0 {
                return b;
            }
            let iscale = -127.0f32 / max;
            for (q, &v) in b.qs.iter_mut().zip(xb) {
                *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
            }
            for (j, s) in b.bsums.iter_mut().enumerate() {
                *s = b.qs[16 * j..16 * j + 16]
                    .iter()
                    .map(|&q| i16::from(q))
                    .sum();
            }
            b.d = 1.0 / iscale;
            b
        })
        .collect()
}

/// Ternary weights times a per-block scale; returns (floats, trits).
fn ternary_rows(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<i8>) {
    let w: Vec<i8> = (0..n).map(|_| rng.ternary()).collect();
    let scales: Vec<f32> = (0..n / QK_K).map(|_| 0.01 + rng.unit().abs()).collect();
    let x = w
        .iter()
        .enumerate()
        .map(|(i, &t)| f32::from(t) * scales[i / QK_K])
        .collect();
    (x, w)
}

/// Reference TQ dot: integer per block from the original trits, combined as
/// llama.cpp's generic kernels do.
fn tq_dot_ref(w: &[i8], d_w: &[f32], act: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for ((wb, &dw), a) in w.chunks_exact(QK_K).zip(d_w).zip(act) {
        let sumi: i32 = wb
            .iter()
            .zip(&a.qs)
            .map(|(&t, &q)| i32::from(t) * i32::from(q))
            .sum();
        sumf += sumi as f32 * (a.d * dw);
    }
    sumf
}

#[test]
fn tq_dots_match_reference() {
    let mut rng = Rng(4);
    for k in [256, 512, 2560] {
        for rows in ROWS {
            let (x_w, w) = ternary_rows(&mut rng, rows * k);
            let nb = k / QK_K;
            let mut t1 = vec![0u8; rows * nb * BlockTq1_0::BYTES];
            let mut t2 = vec![0u8; rows * nb * BlockTq2_0::BYTES];
            quantize_row_tq1_0(&x_w, &mut t1).unwrap();
            quantize_row_tq2_0(&x_w, &mut t2).unwrap();
            // The block scale is max|x| of the block rounded to f16.
            let d_w: Vec<f32> = x_w
                .chunks_exact(QK_K)
                .map(|b| half::f16::from_f32(b.iter().fold(0.0f32, |m, v| m.max(v.abs()))).to_f32())
                .collect();
            let mut deq = vec![0.0f32; rows * k];
            for (bytes, which) in [(&t1, 1), (&t2, 2)] {
                if which == 1 {
                    dequantize_row_tq1_0(bytes, &mut deq).unwrap();
                } else {
                    dequantize_row_tq2_0(bytes, &mut deq).unwrap();
                }
                for (i, (&v, &t)) in deq.iter().zip(&w).enumerate() {
                    assert_eq!(v, f32::from(t) * d_w[i / QK_K], "tq{which}_0 k={k} i={i}");
                }
            }
            let x: Vec<f32> = (0..k).map(|_| rng.unit() * 5.0).collect();
            let mut act = vec![BlockQ8K::ZERO; nb];
            quantize_row_q8_k(&x, &mut act).unwrap();
            assert_eq!(act, q8k_ref(&x));
            for r in 0..rows {
                let want = tq_dot_ref(&w[r * k..(r + 1) * k], &d_w[r * nb..(r + 1) * nb], &act);
                let row1 = &t1[r * nb * BlockTq1_0::BYTES..(r + 1) * nb * BlockTq1_0::BYTES];
                let row2 = &t2[r * nb * BlockTq2_0::BYTES..(r + 1) * nb * BlockTq2_0::BYTES];
                assert_eq!(
                    vec_dot_tq1_0_q8_k(row1, &act).map(f32::to_bits),
                    Ok(want.to_bits()),
                    "tq1 k={k} r={r}"
                );
                assert_eq!(
                    vec_dot_tq2_0_q8_k(row2, &act).map(f32::to_bits),
                    Ok(want.to_bits()),
                    "tq2 k={k} r={r}"
                );
            }
        }
    }
}

#[test]
fn tq1_0_decodes_every_byte_like_ggml() {
    // Every byte value (including the never-written 243..=255) decodes to
    // the trits ggml's multiply-shift extraction gives.
    for byte in 0..=255u8 {
        let mut block = [byte; BlockTq1_0::BYTES];
        let d = half::f16::from_f32(1.0).to_bits().to_le_bytes();
        block[BlockTq1_0::BYTES - 2..].copy_from_slice(&d);
        let mut y = [0.0f32; QK_K];
        dequantize_row_tq1_0(&block, &mut y).unwrap();
        for n in 0..5 {
            let q = byte.wrapping_mul([1u8, 3, 9, 27, 81][n]);
            let want = ((u16::from(q) * 3) >> 8) as f32 - 1.0;
            assert_eq!(y[32 * n], want, "byte {byte} trit {n}");
            assert_eq!(y[160 + 16 * n], want, "byte {byte} trit {n}");
            if n < 4 {
                assert_eq!(y[240 + 4 * n], want, "byte {byte} trit {n}");
            }
        }
    }
}

#[test]
fn q8_0_dot_matches_reference() {
    let mut rng = Rng(5);
    for k in [32, 64, 96, 2560] {
        let w: Vec<f32> = (0..k).map(|_| rng.unit() * 2.0).collect();
        let x: Vec<f32> = (0..k).map(|_| rng.unit() * 9.0).collect();
        let row = quantize_q8_0_bytes(&w).unwrap();
        let mut act = vec![BlockQ8_0::ZERO; k / 32];
        quantize_row_q8_0(&x, &mut act).unwrap();
        let mut want = 0.0f32;
        for (wb, a) in row.chunks_exact(34).zip(&act) {
            let dw = half::f16::from_bits(u16::from_le_bytes([wb[0], wb[1]])).to_f32();
            let sumi: i32 = wb[2..]
                .iter()
                .zip(&a.qs)
                .map(|(&q, &p)| i32::from(q as i8) * i32::from(p))
                .sum();
            want += sumi as f32 * (dw * a.d.to_f32());
        }
        assert_eq!(
            vec_dot_q8_0_q8_0(&row, &act).map(f32::to_bits),
            Ok(want.to_bits()),
            "k={k}"
        );
        let lin = QuantizedLinear::new(&row, QuantType::Q8_0, 1, k).unwrap();
        let mut out = [0.0f32];
        assert_eq!(
            lin.forward(&x, &mut out, &mut ActScratch::new()),
            Ok("q8_0_gemv_scalar")
        );
        assert_eq!(out[0].to_bits(), want.to_bits());
    }
}

#[test]
fn float_dots_within_tolerance() {
    let mut rng = Rng(6);
    for n in FLOAT_LENS {
        let w: Vec<f32> = (0..n).map(|_| rng.unit() * 4.0).collect();
        let x: Vec<f32> = (0..n).map(|_| rng.unit() * 4.0).collect();
        let f32b: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16b: Vec<u8> = w
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let bf16b: Vec<u8> = w
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        let cases: [(&[u8], FloatDot, RoundWeight); 3] = [
            (&f32b, dot_f32, |v| v),
            (&f16b, dot_f16_f32, |v| half::f16::from_f32(v).to_f32()),
            (&bf16b, dot_bf16_f32, |v| half::bf16::from_f32(v).to_f32()),
        ];
        for (bytes, dot, round) in cases {
            let exact: f64 = w
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(round(a)) * f64::from(b))
                .sum();
            let mag: f64 = w
                .iter()
                .zip(&x)
                .map(|(&a, &b)| (f64::from(round(a)) * f64::from(b)).abs())
                .sum();
            let got = f64::from(dot(bytes, &x).unwrap());
            assert!(
                (got - exact).abs() <= FLOAT_DOT_REL_TOL * mag,
                "n={n}: {got} vs {exact}"
            );
        }
    }
}

#[test]
fn linear_float_types_equal_row_dots() {
    let mut rng = Rng(7);
    let (rows, k, batch) = (5, 67, 3);
    let w: Vec<f32> = (0..rows * k).map(|_| rng.unit()).collect();
    let x: Vec<f32> = (0..batch * k).map(|_| rng.unit()).collect();
    let f32b: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16b: Vec<u8> = w
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = w
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let mut scratch = ActScratch::default();
    let cases: [(&[u8], QuantType, FloatDot, usize); 3] = [
        (&f32b, QuantType::F32, dot_f32, 4),
        (&f16b, QuantType::F16, dot_f16_f32, 2),
        (&bf16b, QuantType::BF16, dot_bf16_f32, 2),
    ];
    for (bytes, qtype, dot, width) in cases {
        let lin = QuantizedLinear::new(bytes, qtype, rows, k).unwrap();
        let mut out = vec![0.0f32; batch * rows];
        assert_eq!(
            lin.forward_with(Platform::portable(), &x, &mut out, &mut scratch),
            Ok(qtype.scalar_kernel_id())
        );
        for b in 0..batch {
            for r in 0..rows {
                let want = dot(
                    &bytes[r * k * width..(r + 1) * k * width],
                    &x[b * k..(b + 1) * k],
                )
                .unwrap();
                assert_eq!(
                    out[b * rows + r].to_bits(),
                    want.to_bits(),
                    "{qtype} b={b} r={r}"
                );
            }
        }
    }
}

#[test]
fn tq_linear_equals_row_dots() {
    let mut rng = Rng(8);
    let (rows, k, batch) = (7, 512, 2);
    let (x_w, _) = ternary_rows(&mut rng, rows * k);
    let mut t1 = vec![0u8; rows * 2 * BlockTq1_0::BYTES];
    let mut t2 = vec![0u8; rows * 2 * BlockTq2_0::BYTES];
    quantize_row_tq1_0(&x_w, &mut t1).unwrap();
    quantize_row_tq2_0(&x_w, &mut t2).unwrap();
    let x: Vec<f32> = (0..batch * k).map(|_| rng.unit()).collect();
    let mut scratch = ActScratch::new();
    for (bytes, qtype, row_bytes) in [(&t1, QuantType::TQ1_0, 108), (&t2, QuantType::TQ2_0, 132)] {
        let lin = QuantizedLinear::new(bytes, qtype, rows, k).unwrap();
        let mut out = vec![0.0f32; batch * rows];
        lin.forward(&x, &mut out, &mut scratch).unwrap();
        for b in 0..batch {
            let act = q8k_ref(&x[b * k..(b + 1) * k]);
            for r in 0..rows {
                let row = &bytes[r * row_bytes..(r + 1) * row_bytes];
                let want = match qtype {
                    QuantType::TQ1_0 => vec_dot_tq1_0_q8_k(row, &act),
                    _ => vec_dot_tq2_0_q8_k(row, &act),
                };
                assert_eq!(
                    Ok(out[b * rows + r].to_bits()),
                    want.map(f32::to_bits),
                    "{qtype} b={b} r={r}"
                );
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let t = quantize_i2s(&[0; 256], 1.0, 2, 128).unwrap();
    assert_eq!(
        QuantizedLinear::new(&t[1..], QuantType::I2S, 2, 128).err(),
        Some(QuantError::LengthMismatch {
            what: "weight bytes",
            expected: 96,
            actual: 95
        })
    );
    assert_eq!(
        QuantizedLinear::new(&t, QuantType::I2S, 0, 128).err(),
        Some(QuantError::EmptyShape { rows: 0, cols: 128 })
    );
    assert!(QuantizedLinear::new(&t, QuantType::I2S, 1, 100).is_err());
    assert!(QuantizedLinear::new(&t, QuantType::TQ2_0, usize::MAX, 256).is_err());
    assert!(QuantizedLinear::new(&t, QuantType::F32, usize::MAX, usize::MAX).is_err());
    let lin = QuantizedLinear::new(&t, QuantType::I2S, 2, 128).unwrap();
    let mut scratch = ActScratch::new();
    let mut out = [0.0f32; 2];
    assert!(lin.forward(&[0.0; 127], &mut out, &mut scratch).is_err());
    assert!(lin.forward(&[0.0; 256], &mut out, &mut scratch).is_err());
    assert!(
        lin.forward(&[0.0; 128], &mut out[..1], &mut scratch)
            .is_err()
    );
    assert!(lin.forward(&[0.0; 128], &mut out, &mut scratch).is_ok());
    assert_eq!(out, [0.0, 0.0]);
    // Every type at every small length: quantizers and dots return errors.
    for n in 0..70usize {
        let bytes = vec![0u8; n];
        let x = vec![0.0f32; n];
        let _ = dequantize_row_tq1_0(&bytes, &mut vec![0.0; n]);
        let _ = dequantize_row_tq2_0(&bytes, &mut vec![0.0; n]);
        let _ = quantize_row_tq1_0(&x, &mut vec![0; n]);
        let _ = quantize_row_tq2_0(&x, &mut vec![0; n]);
        let _ = quantize_q8_0_bytes(&x);
        let _ = vec_dot_q8_0_q8_0(&bytes, &[BlockQ8_0::ZERO]);
        let _ = vec_dot_tq1_0_q8_k(&bytes, &[BlockQ8K::ZERO]);
        let _ = vec_dot_tq2_0_q8_k(&bytes, &[BlockQ8K::ZERO]);
        let _ = dot_f16_f32(&bytes, &x[..n / 2]);
        let _ = i2s_dot_i32(&bytes, &vec![0; 4 * n]);
        for qt in [
            QuantType::F32,
            QuantType::F16,
            QuantType::BF16,
            QuantType::Q8_0,
            QuantType::TQ1_0,
            QuantType::TQ2_0,
            QuantType::I2S,
        ] {
            if let Ok(lin) = QuantizedLinear::new(&bytes, qt, 1, n.max(1)) {
                let mut out = [0.0f32; 1];
                let _ = lin.forward(&x, &mut out, &mut scratch);
            }
        }
    }
    assert_eq!(
        QuantError::NotBlockMultiple {
            what: "I2_S row length",
            len: 100,
            block: 128
        }
        .to_string(),
        "I2_S row length has length 100, not a multiple of the block length 128"
    );
}
