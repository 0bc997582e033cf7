//! The tiny seeded fixtures (tests/models, `cargo xtask gen-fixtures`)
//! against references nobody here wrote the forward pass of: llama.cpp for
//! the `bitnet` arch (F32, TQ2_0, TQ1_0) and the numpy oracle for the
//! `bitnet-b1.58` I2_S model that llama.cpp cannot load.
//! Goldens: tests/golden/*.json (`bash ci/reference/make_goldens.sh`).

mod common;

use bitnet_core::gguf::Gguf;
use bitnet_core::kernels::{Isa, Platform};
use bitnet_core::model::{Arch, Generator, Logits, Model};
use bitnet_core::quant::{QuantType, QuantizedLinear};
use bitnet_core::sample::{Sampler, SamplerParams};

/// Max |logit difference| against llama.cpp for the `bitnet` fixtures
/// (issue 4). Ternary formats: both sides quantize activations to Q8_K
/// identically and compute the integer dots exactly; what remains is f32
/// summation order in the float parts (dot lanes, attention, SiLU's expf),
/// measured at a few 1e-6.
const LLAMA_CPP_LOGIT_TOL: f32 = 1e-4;

/// Max |logit difference| against the numpy oracle for I2_S (issue 4):
/// the integer dots are exact on both sides; float parts differ in
/// summation order only (measured a few 1e-6). Issue 4: "Any larger
/// difference must be traced to a single int8 rounding flip at a tie;
/// report how many there are." What this test checks is the logits only:
/// it counts the prompt positions whose max |diff| exceeds this tolerance,
/// prints the count, and requires it to be 0, so there is no larger
/// difference to trace. It does not count flips themselves: that needs the
/// engine's int8 activations per layer and projection input, which no hook
/// of the forward pass exposes; a nonzero count would have to be traced by
/// hand.
const ORACLE_LOGIT_TOL: f32 = 1e-3;

/// Positions (rows of `got`, `want.len()` of them) whose max |logit diff|
/// exceeds `tol`, with that difference.
fn positions_beyond(got: &[f32], want: &[Vec<f32>], tol: f32) -> Vec<(usize, f32)> {
    let vocab = want[0].len();
    assert_eq!(got.len(), vocab * want.len(), "logit count");
    got.chunks_exact(vocab)
        .zip(want)
        .enumerate()
        .filter_map(|(i, (g, w))| {
            let d = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            (d > tol).then_some((i, d))
        })
        .collect()
}

fn run(fixture: &str, golden: &str, tol: f32, expect: QuantType, arch: Arch) {
    let bytes = common::fixture(fixture);
    let golden_json = common::golden(golden);
    common::check_sha(&golden_json, &bytes, golden);
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    assert_eq!(model.config.arch, arch);
    assert_eq!(model.weights.layers[0].wq.matrix.qtype(), expect);

    let tokens = common::u32s(&golden_json["tokens"]);
    assert_eq!(tokens.len(), 24);
    let want = common::rows(&golden_json["logits"]);
    let mut state = model.new_state(32, 128).unwrap();
    let got = model.forward(&mut state, &tokens, 0, Logits::All).unwrap();
    let d = common::max_abs_diff(got, &want);
    let beyond = positions_beyond(got, &want, tol);
    println!(
        "{fixture} vs {golden}: max |logit diff| over 24 positions = {d:e}; \
         positions beyond {tol:e}: {}",
        beyond.len()
    );
    if expect == QuantType::I2S {
        println!(
            "{fixture}: differences beyond {tol:e} to trace to an int8 tie flip: {} \
             (activations are not compared; see ORACLE_LOGIT_TOL)",
            beyond.len()
        );
    }
    assert!(
        beyond.is_empty(),
        "{fixture}: (position, max |diff|) beyond {tol}: {beyond:?}; issue 4 asks that each \
         such difference be traced to a single int8 rounding flip at a tie"
    );
    assert!(d <= tol, "{fixture}: max |diff| {d} > {tol}");
    // The projection kernels that ran are this format's (ids such as
    // `tq2_0_gemv_avx2`, `i2s_gemm_avx512vnni`).
    let prefix = match expect {
        QuantType::I2S => String::from("i2s_"),
        other => format!("{}_", other.name().to_lowercase()),
    };
    let kernels = state.counters().kernels();
    assert!(
        kernels.iter().any(|k| k.id.starts_with(&prefix)),
        "{kernels:?}"
    );

    // Greedy continuation through the generator (prefill + 32 decode steps).
    let greedy = common::u32s(&golden_json["greedy"]);
    assert_eq!(greedy.len(), 32);
    let mut state = model.new_state(8, 128).unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let got: Vec<u32> = Generator::new(&model, &mut state, &mut sampler, &tokens, 32, &[])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, greedy, "{fixture}: greedy continuation");
}

#[test]
fn bitnet_f32_matches_llama_cpp() {
    run(
        "bitnet-f32.gguf",
        "bitnet-f32.json",
        LLAMA_CPP_LOGIT_TOL,
        QuantType::F32,
        Arch::Bitnet,
    );
}

#[test]
fn bitnet_tq2_0_matches_llama_cpp() {
    run(
        "bitnet-tq2_0.gguf",
        "bitnet-tq2_0.json",
        LLAMA_CPP_LOGIT_TOL,
        QuantType::TQ2_0,
        Arch::Bitnet,
    );
}

#[test]
fn bitnet_tq1_0_matches_llama_cpp() {
    run(
        "bitnet-tq1_0.gguf",
        "bitnet-tq1_0.json",
        LLAMA_CPP_LOGIT_TOL,
        QuantType::TQ1_0,
        Arch::Bitnet,
    );
}

#[test]
fn bitnet_tq2_0_matches_the_oracle_too() {
    run(
        "bitnet-tq2_0.gguf",
        "bitnet-tq2_0.oracle.json",
        LLAMA_CPP_LOGIT_TOL,
        QuantType::TQ2_0,
        Arch::Bitnet,
    );
}

#[test]
fn bitnet_b158_i2s_matches_the_oracle() {
    run(
        "bitnet-b1.58-i2s.gguf",
        "bitnet-b1.58-i2s.oracle.json",
        ORACLE_LOGIT_TOL,
        QuantType::I2S,
        Arch::BitnetB158,
    );
}

#[test]
fn tq2_0_fixture_carries_scale_tensors() {
    let bytes = common::fixture("bitnet-tq2_0.gguf");
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let f32_bytes = common::fixture("bitnet-f32.gguf");
    let gf = Gguf::parse(&f32_bytes).unwrap();
    let mf = Model::from_gguf(&gf).unwrap();
    for (l, lf) in model.weights.layers.iter().zip(&mf.weights.layers) {
        assert!(l.wq.scale.is_some() && l.w_down.scale.is_some());
        assert!(lf.wq.scale.is_none());
    }
}

/// Issue 7's compute_path evidence through the real forward pass: the I2_S
/// fixture's generation is "real"; the same model with one projection of
/// one layer swapped for an F32 copy (a non-quantized path) is partial,
/// though every other projection still runs quantized.
#[test]
fn a_float_projection_in_one_layer_makes_the_run_partial() {
    let bytes = common::fixture("bitnet-b1.58-i2s.gguf");
    let g = Gguf::parse(&bytes).unwrap();
    let mut model = Model::from_gguf(&g).unwrap();
    let layers = model.config.n_layers;
    assert!(layers >= 2);
    let generate = |model: &Model<'_>| {
        let mut state = model.new_state(8, 64).unwrap();
        let mut sampler = Sampler::new(SamplerParams::greedy());
        let tokens: Vec<u32> = Generator::new(model, &mut state, &mut sampler, &[1, 2, 3], 4, &[])
            .collect::<Result<_, _>>()
            .unwrap();
        let n = tokens.len() as u64;
        (
            state.counters().is_real(n),
            state.counters().partial_passes(),
        )
    };
    assert_eq!(generate(&model), (true, 0));

    let up = &model.weights.layers[layers - 1].w_up.matrix;
    let (rows, cols) = (up.rows(), up.cols());
    let mut w = vec![0f32; rows * cols];
    bitnet_core::quant::i2s::dequantize_i2s(up.weight(), rows, cols, &mut w).unwrap();
    let f32_bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    model.weights.layers[layers - 1].w_up.matrix =
        QuantizedLinear::new(&f32_bytes, QuantType::F32, rows, cols).unwrap();
    let (real, partial) = generate(&model);
    assert!(!real);
    assert!(partial > 0);
}

/// Logits bits of `tokens`, a 16-token greedy continuation and the kernel
/// ids that ran, on `platform`.
fn tier_run(
    model: &Model<'_>,
    platform: Platform,
    tokens: &[u32],
) -> (Vec<u32>, Vec<u32>, Vec<String>) {
    let mut state = model.new_state(32, 64).unwrap();
    state.set_platform(platform);
    let logits = model.forward(&mut state, tokens, 0, Logits::All).unwrap();
    let bits = logits.iter().map(|v| v.to_bits()).collect();
    let mut state = model.new_state(8, 64).unwrap();
    state.set_platform(platform);
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let greedy = Generator::new(model, &mut state, &mut sampler, tokens, 16, &[])
        .collect::<Result<_, _>>()
        .unwrap();
    let ids = state
        .counters()
        .kernels()
        .iter()
        .map(|k| k.id.to_string())
        .collect();
    (bits, greedy, ids)
}

/// Every kernel tier of this build (the simd128 ones under
/// `cargo xtask cross-test wasm32`) gives the portable kernels' logits bit
/// for bit and the same greedy tokens on the ternary fixtures, F16 heads
/// included (DESIGN.md §5).
#[test]
fn every_tier_matches_portable_on_the_ternary_fixtures() {
    for fixture in [
        "bitnet-tq2_0.gguf",
        "shakespeare-tq2_0.gguf",
        "bitnet-tq1_0.gguf",
        "shakespeare-i2s.gguf",
    ] {
        let bytes = common::fixture(fixture);
        let g = Gguf::parse(&bytes).unwrap();
        let model = Model::from_gguf(&g).unwrap();
        let vocab = model.config.vocab_size as u32;
        let tokens: Vec<u32> = (0..12u32).map(|i| (i * 7919 + 5) % vocab).collect();
        let (want, want_greedy, _) = tier_run(&model, Platform::portable(), &tokens);
        for p in Platform::available() {
            let (got, greedy, ids) = tier_run(&model, p, &tokens);
            println!("{fixture} {}: {}", p.isa().name(), ids.join(" "));
            // The 12-token prefill runs the TQ GEMM where the tier has one.
            if fixture.contains("tq") && matches!(p.isa(), Isa::Avx2 | Isa::Avx512) {
                assert!(
                    ids.iter()
                        .any(|id| id.starts_with("tq") && id.contains("_gemm_")),
                    "{fixture} {p:?}: {ids:?}"
                );
            }
            assert!(got == want, "{fixture} {p:?}: logits differ from portable");
            assert_eq!(greedy, want_greedy, "{fixture} {p:?}: greedy");
        }
    }
}
