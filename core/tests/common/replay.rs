//! The checks of the byte-input fuzz targets, in one place: the targets in
//! fuzz/fuzz_targets/ include this file, and core/tests/hostile_inputs.rs
//! replays the regression corpus (tests/fuzz-regressions/<target>/) and the
//! malformed suite through it, natively and on wasm32.
#![allow(dead_code)]

use bitnet_core::gguf::Gguf;
use bitnet_core::kernels::Platform;
use bitnet_core::model::{Logits, Model};
use bitnet_core::quant::tl::TL_VARIANTS;
use bitnet_core::receipt::{self, Policy};
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, Tokenizer};
use bitnet_core::validate::{Mode, ValidationConfig, apply_to_weights, validate};

/// `gguf_parse`: Ok or Err, never a panic; on Ok every accessor stays in
/// bounds.
pub fn gguf_parse(data: &[u8]) {
    if let Ok(g) = Gguf::parse(data) {
        for t in g.tensors() {
            assert_eq!(g.tensor_data(t).len() as u64, t.size);
        }
        for (k, v) in g.metadata() {
            assert!(g.get(k).is_some());
            let _ = v.to_owned_value();
        }
    }
}

/// What a model load does to untrusted bytes, as far as it gets: the
/// container, the validation rules a load runs (cheap, non-strict), the
/// model view, the tokenizer. `Ok` when everything loaded.
pub fn load(data: &[u8]) -> Result<(), String> {
    let g = Gguf::parse(data).map_err(|e| e.to_string())?;
    let report = validate(&g, &ValidationConfig::builder().build());
    let mut model = Model::from_gguf(&g).map_err(|e| e.to_string())?;
    apply_to_weights(&report.corrections, &model.config, &mut model.weights)
        .map_err(|e| e.to_string())?;
    if g.get("tokenizer.ggml.model").is_some() {
        Tokenizer::from_gguf(&g).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Logits of token 0 at position 0 as bit patterns (NaN canonicalized: its
/// payload is not part of the contract); `Err` when the step fails.
pub fn step(model: &Model<'_>, platform: Platform) -> Result<Vec<u32>, String> {
    let mut state = model.new_state(1, 1).map_err(|e| e.to_string())?;
    state.set_platform(platform);
    let logits = model
        .forward(&mut state, &[0], 0, Logits::Last)
        .map_err(|e| e.to_string())?;
    assert_eq!(logits.len(), model.config.vocab_size);
    Ok(logits
        .iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect())
}

/// `model_load`: the container, every validation rule (full mode, a
/// superset of what a load runs), the model view, the tokenizer, then one
/// forward step on every kernel tier and after the TL1 / TL2 repack, which
/// must all give the same logits bit for bit (DESIGN.md §5). Returns the
/// first error, or the logits.
///
/// Work is bounded by the input: every weight the step reads lies in the
/// file (`Weights::from_gguf` checks shapes against the tensors) and the
/// run state holds one position, so its buffers are a few rows of the
/// model's own dimensions.
pub fn model_load(data: &[u8]) -> Result<Vec<u32>, String> {
    let g = Gguf::parse(data).map_err(|e| e.to_string())?;
    let report = validate(&g, &ValidationConfig::builder().mode(Mode::Full).build());
    let tok = g
        .get("tokenizer.ggml.model")
        .and_then(|_| Tokenizer::from_gguf(&g).ok());
    if let Some(tok) = tok {
        let opts = EncodeOptions {
            add_bos: true,
            add_eos: true,
            parse_special: true,
        };
        if let Ok(ids) = tok.encode("Hello, world! <s> 42", opts) {
            tok.decode(&ids, DecodeOptions::default())
                .expect("ids from encode decode");
        }
    }
    let mut model = Model::from_gguf(&g).map_err(|e| e.to_string())?;
    apply_to_weights(&report.corrections, &model.config, &mut model.weights)
        .map_err(|e| e.to_string())?;
    let mut tiers = Platform::available();
    let first = tiers.next().expect("at least the portable tier");
    let want = step(&model, first);
    for p in tiers {
        assert_eq!(
            step(&model, p),
            want,
            "kernel tiers disagree: {p:?} vs {first:?}"
        );
    }
    for (kind, layout) in TL_VARIANTS {
        let mut tl = model.clone();
        if tl.weights.repack_tl(kind, layout).is_ok_and(|n| n > 0) {
            assert_eq!(
                step(&tl, first),
                want,
                "{kind:?} {layout:?} repack changes the logits"
            );
        }
    }
    let mut q8 = model.clone();
    if q8.weights.quantize_lm_head_q8().is_ok_and(|done| done) {
        // The int8 head changes numerics by design; it must still run.
        let _ = step(&q8, first);
    }
    want
}

/// `receipt_verify`: parse, verify under the policy shapes the CLI builds
/// (with and without `--require-gpu-kernels`, with and without an
/// allowlisted rate), and the writer's round trip: a parsed receipt
/// re-serializes to JSON that parses back to the same receipt.
pub fn receipt_verify(data: &[u8], bandwidth_ceiling: f64) {
    let Ok(r) = receipt::parse(data) else { return };
    for require_gpu_kernels in [false, true] {
        for allowlisted_tokens_per_sec in [None, Some(f64::MAX)] {
            let policy = Policy {
                require_gpu_kernels,
                bandwidth_ceiling_bytes_per_sec: bandwidth_ceiling,
                allowlisted_tokens_per_sec,
            };
            if let Err(e) = receipt::verify(&r, &policy) {
                // Rule codes lie above the parse error's.
                assert!(e.exit_code() > receipt::ParseError::EXIT_CODE);
                let _ = e.to_string();
            }
        }
    }
    if let Ok(json) = receipt::to_json(&r) {
        let back = receipt::parse(&json).expect("a written receipt parses");
        assert_eq!(back, r, "round trip through to_json changes the receipt");
    }
}
