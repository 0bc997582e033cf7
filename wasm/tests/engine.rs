//! The browser engine on the host: chunked loading, the size limit,
//! generation equal to core's `Generator`, stopping, and receipts.

use bitnet_core::gguf::Gguf;
use bitnet_core::model::{Generator, Model};
use bitnet_core::receipt::{Policy, verify};
use bitnet_core::sample::{Sampler, SamplerParams};
use bitnet_wasm::engine::{
    Error, GenerateOptions, HostInfo, LoadedModel, Loader, MAX_MODEL_BYTES, PREFILL_BATCH,
};

const STORIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/models/stories260K.gguf"
);
const I2S: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/models/bitnet-b1.58-i2s.gguf"
);

fn load(path: &str, chunk: usize) -> LoadedModel {
    let bytes = std::fs::read(path).unwrap();
    let mut l = Loader::new(bytes.len() as u64).unwrap();
    for c in bytes.chunks(chunk) {
        l.push(c).unwrap();
    }
    l.finish("model.gguf").unwrap()
}

fn greedy(max_new: usize) -> GenerateOptions {
    GenerateOptions {
        sampler: SamplerParams::greedy(),
        max_new,
        stop_at_eos: false,
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

#[test]
fn bad_and_oversized_files_fail_with_messages() {
    let e = Loader::new(MAX_MODEL_BYTES + 1).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }));
    assert!(e.to_string().contains("4 GiB"), "{e}");

    let mut l = Loader::new(8).unwrap();
    l.push(b"GGUF").unwrap();
    assert!(l.push(b"12345").is_err(), "more bytes than announced");
    let e = l.finish("x.gguf").unwrap_err();
    assert!(e.to_string().contains("incomplete"), "{e}");

    let mut l = Loader::new(8).unwrap();
    l.push(b"NOTAGGUF").unwrap();
    let e = l.finish("x.gguf").unwrap_err();
    assert!(e.to_string().contains("GGUF"), "{e}");
}
