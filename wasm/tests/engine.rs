//! The browser engine on the host: chunked loading, the size limit,
//! validation on load, generation equal to core's `Generator`, stopping,
//! and receipts.

use bitnet_core::gguf::Gguf;
use bitnet_core::model::{Generator, Model};
use bitnet_core::receipt::{Policy, verify};
use bitnet_core::sample::{Sampler, SamplerParams};
use bitnet_wasm::engine::{
    Error, GenerateOptions, HostInfo, LmHead, LoadOptions, LoadedModel, Loader, MAX_MODEL_BYTES,
    PREFILL_BATCH,
};

const STORIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/models/stories260K.gguf"
);
const I2S: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/models/bitnet-b1.58-i2s.gguf"
);

fn load_bytes(bytes: &[u8], chunk: usize, opts: LoadOptions) -> Result<LoadedModel, Error> {
    let mut l = Loader::new(bytes.len() as u64).unwrap();
    for c in bytes.chunks(chunk) {
        l.push(c).unwrap();
    }
    l.finish("model.gguf", opts)
}

fn load(path: &str, chunk: usize) -> LoadedModel {
    load_bytes(&std::fs::read(path).unwrap(), chunk, LoadOptions::default()).unwrap()
}

fn greedy(max_new: usize) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerParams::greedy(),
        max_new,
        stop_at_eos: false,
        lm_head: LmHead::Exact,
    }
}

/// A clock that advances 1 ms per reading.
fn ticks() -> impl FnMut() -> f64 {
    let mut t = 0.0;
    move || {
        t += 1.0;
        t
    }
}

#[test]
fn generation_equals_core_generator_and_streams_the_decoded_text() {
    let m = load(STORIES, 4099);
    let mut streamed = String::new();
    let mut seen = Vec::new();
    let run = m
        .generate(
            "Once upon a time",
            greedy(32),
            &mut ticks(),
            &mut |id, t| {
                seen.push(id);
                streamed.push_str(t);
                true
            },
        )
        .unwrap();
    assert_eq!(run.generated.len(), 32);
    assert_eq!(seen, run.generated);
    assert_eq!(run.stop, "max_tokens");

    let bytes = std::fs::read(STORIES).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let prompt = m.encode_prompt("Once upon a time").unwrap();
    assert_eq!(prompt[0], 1, "stories260K adds BOS = 1");
    assert_eq!(run.prompt_ids, prompt);
    let mut state = model
        .new_state(PREFILL_BATCH.min(prompt.len()), prompt.len() + 32)
        .unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let ids: Vec<u32> = Generator::new(&model, &mut state, &mut sampler, &prompt, 32, &[])
        .map(Result::unwrap)
        .collect();
    assert_eq!(run.generated, ids);
    let decoded = m.decode(&ids, Default::default()).unwrap();
    assert_eq!(format!("{streamed}{}", run.tail), decoded);
    assert!(!decoded.trim().is_empty());
}

#[test]
fn the_callback_stops_generation() {
    let m = load(STORIES, 1 << 20);
    let mut n = 0;
    let run = m
        .generate("Once upon a time", greedy(50), &mut ticks(), &mut |_, _| {
            n += 1;
            n < 5
        })
        .unwrap();
    assert_eq!(run.generated.len(), 5);
    assert_eq!(run.stop, "stopped");
}

#[test]
fn an_i2s_run_gives_a_real_receipt_that_verifies() {
    let m = load(I2S, 65536);
    let run = m
        .generate("Once upon a time", greedy(8), &mut ticks(), &mut |_, _| {
            true
        })
        .unwrap();
    let host = HostInfo {
        cpu: "test host".into(),
        os: "test os".into(),
    };
    let r = m
        .receipt(&run, 12.0, "2026-01-01T00:00:00Z", &host)
        .unwrap();
    assert_eq!(r.backend, "wasm");
    assert_eq!(r.compute_path, "real");
    assert_eq!(r.tokens.generated, 8);
    assert!(r.kernels.iter().any(|k| k.id.starts_with("i2s_")));
    let policy = Policy {
        require_gpu_kernels: false,
        bandwidth_ceiling_bytes_per_sec: f64::INFINITY,
        allowlisted_tokens_per_sec: None,
    };
    verify(&r, &policy).unwrap();
}

/// `lmHead: "q8"`: the same tokens as core's generator with the native
/// `--lm-head q8` preparation, on the first run (which quantizes) and the
/// next (which reuses the copy); the receipt names the int8 head; bad
/// values and non-float heads are refused with messages.
#[test]
fn the_q8_lm_head_matches_native_and_is_recorded() {
    const PROMPT: &str = "Once upon a time";
    let m = load(I2S, 1 << 20);
    let q8 = GenerateOptions {
        lm_head: LmHead::Q8,
        ..greedy(12)
    };
    let runs: Vec<_> = (0..2)
        .map(|_| {
            m.generate(PROMPT, q8, &mut ticks(), &mut |_, _| true)
                .unwrap()
        })
        .collect();

    let bytes = std::fs::read(I2S).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut model = Model::from_gguf(&g).unwrap();
    assert!(model.weights.quantize_lm_head_q8().unwrap());
    let prompt = m.encode_prompt(PROMPT).unwrap();
    let mut state = model
        .new_state(PREFILL_BATCH.min(prompt.len()), prompt.len() + 12)
        .unwrap();
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let want: Vec<u32> = Generator::new(&model, &mut state, &mut sampler, &prompt, 12, &[])
        .collect::<Result<_, _>>()
        .unwrap();
    for run in &runs {
        assert_eq!(run.generated, want);
        assert_eq!(run.lm_head, LmHead::Q8);
        let ids: Vec<&str> = run.counters.kernels().iter().map(|k| k.id).collect();
        assert!(
            ids.iter().any(|id| id.starts_with("q8_head_gemv_")),
            "{ids:?}"
        );
    }
    let host = HostInfo::default();
    let r = m
        .receipt(&runs[1], 1.0, "2026-01-01T00:00:00Z", &host)
        .unwrap();
    assert!(r.kernels.iter().any(|k| k.id.starts_with("q8_head_gemv_")));
    assert!(
        r.backend_summary.contains("lmHead q8"),
        "{}",
        r.backend_summary
    );

    let exact = m
        .generate(PROMPT, greedy(4), &mut ticks(), &mut |_, _| true)
        .unwrap();
    assert!(
        !exact
            .counters
            .kernels()
            .iter()
            .any(|k| k.id.starts_with("q8_head_")),
        "the exact head after a q8 run"
    );

    assert_eq!(LmHead::parse("f16").unwrap(), LmHead::Exact);
    assert_eq!(LmHead::parse("exact").unwrap(), LmHead::Exact);
    assert_eq!(LmHead::parse("q8").unwrap(), LmHead::Q8);
    let e = LmHead::parse("int8").unwrap_err();
    assert!(
        e.to_string().contains("lmHead") && e.to_string().contains("int8"),
        "{e}"
    );
}

#[test]
fn bad_and_oversized_files_fail_with_messages() {
    let e = Loader::new(MAX_MODEL_BYTES + 1).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }));
    assert!(e.to_string().contains("4 GiB"), "{e}");

    let mut l = Loader::new(8).unwrap();
    l.push(b"GGUF").unwrap();
    assert!(l.push(b"12345").is_err(), "more bytes than announced");
    let e = l.finish("x.gguf", LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("incomplete"), "{e}");

    let mut l = Loader::new(8).unwrap();
    l.push(b"NOTAGGUF").unwrap();
    let e = l.finish("x.gguf", LoadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("GGUF"), "{e}");
}

/// The output norm of `path` multiplied by 100, in place in the file image
/// (what a converter with a wrong scale writes).
fn with_norm_x100(path: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let range = {
        let g = Gguf::parse(&bytes).unwrap();
        let data = g.tensor_data(g.tensor("output_norm.weight").unwrap());
        let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
        start..start + data.len()
    };
    for c in bytes[range].chunks_exact_mut(4) {
        let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * 100.0;
        c.copy_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Loads run the validation rules as native loads do: a clean model has no
/// findings, strict or not; a broken one loads with the finding when not
/// strict and is refused, naming the rule and the tensor, when strict.
#[test]
fn loads_validate_and_strict_refuses_a_broken_model() {
    let strict = LoadOptions { strict: true };
    let good = std::fs::read(I2S).unwrap();
    for opts in [LoadOptions::default(), strict] {
        let m = load_bytes(&good, 1 << 20, opts).unwrap();
        assert!(
            m.summary().findings.is_empty(),
            "{:?}",
            m.summary().findings
        );
    }

    let broken = with_norm_x100(I2S);
    let m = load_bytes(&broken, 1 << 20, LoadOptions::default()).unwrap();
    assert!(
        m.summary()
            .findings
            .iter()
            .any(|f| f.starts_with("error [norm.rms] output_norm.weight")),
        "{:?}",
        m.summary().findings
    );
    let e = load_bytes(&broken, 1 << 20, strict).unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("refusing model.gguf") && msg.contains("[norm.rms] output_norm.weight"),
        "{msg}"
    );
}
