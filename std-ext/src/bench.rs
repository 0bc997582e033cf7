//! Benchmarks that run the real model: llama-bench-style prompt (pp) and
//! generation (tg) throughput, and the deterministic receipt run of
//! `cargo xtask benchmark`. Every number comes from timing actual forward
//! passes; every receipt from the kernel counters of the run state that ran.

use std::time::Instant;

use bitnet_core::kernels::Platform;
use bitnet_core::model::{Logits, Model, RunState};
use bitnet_core::receipt::{Backend, ModelInfo, Receipt, RunInfo};
use bitnet_core::sample::{Rng, Sampler, SamplerParams, argmax};

use crate::engine::{ThreadJoin, with_threads};
use crate::receipt::{ReceiptBuilder, sha256};
use crate::{Error, ModelFile};

/// What `bitnet bench` measures.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    /// Prompt length of the pp test (0: skip it).
    pub n_prompt: usize,
    /// Tokens of the tg test (0: skip it).
    pub n_gen: usize,
    /// Measured repetitions (after one warm-up run).
    pub reps: usize,
    /// Worker threads.
    pub threads: usize,
    /// Kernels.
    pub platform: Platform,
}

/// One test's results, llama-bench's JSON fields plus the kernels that ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRow {
    /// `pp512`, `tg128`, ...
    pub test: String,
    /// Prompt tokens (pp test) or 0.
    pub n_prompt: usize,
    /// Generated tokens (tg test) or 0.
    pub n_gen: usize,
    /// Threads.
    pub n_threads: usize,
    /// Mean tokens per second.
    pub avg_ts: f64,
    /// Standard deviation of tokens per second.
    pub stddev_ts: f64,
    /// Tokens per second of each repetition.
    pub samples_ts: Vec<f64>,
    /// Kernel ids that ran in the last repetition.
    pub kernels: Vec<String>,
}

/// Deterministic pseudo-random prompt ids (llama-bench also uses random
/// tokens), avoiding nothing: every id is a valid token of the model.
fn bench_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn kernel_ids(s: &RunState) -> Vec<String> {
    s.counters()
        .kernels()
        .iter()
        .map(|k| k.id.to_string())
        .collect()
}

/// Times one pp run: the whole prompt in one batch, logits of the last
/// position (as llama-bench).
fn pp_once(
    model: &Model<'_>,
    tokens: &[u32],
    platform: Platform,
) -> Result<(f64, RunState), Error> {
    let mut s = model.new_state(tokens.len(), tokens.len())?;
    s.set_platform(platform);
    let t = Instant::now();
    model.forward_in::<ThreadJoin>(&mut s, tokens, 0, Logits::Last)?;
    Ok((t.elapsed().as_secs_f64(), s))
}

/// Times one tg run: `n` single-token steps from an empty cache, each
/// computing logits and feeding back their argmax. Returns the seconds,
/// the state and the generated ids.
fn tg_once(
    model: &Model<'_>,
    first: u32,
    n: usize,
    platform: Platform,
) -> Result<(f64, RunState, Vec<u32>), Error> {
    let mut s = model.new_state(1, n)?;
    s.set_platform(platform);
    let mut ids = Vec::with_capacity(n);
    let mut tok = first;
    let t = Instant::now();
    for pos in 0..n {
        let logits = model.forward_in::<ThreadJoin>(&mut s, &[tok], pos, Logits::Last)?;
        tok = argmax(logits).unwrap_or(0) as u32;
        ids.push(tok);
    }
    Ok((t.elapsed().as_secs_f64(), s, ids))
}

/// Runs the pp and tg tests of `spec` (warm-up first), calling `progress`
/// after every run. The state of the last tg repetition is returned for
/// its kernel evidence, with the ids it generated and its time.
pub fn bench(
    model: &Model<'_>,
    spec: &BenchSpec,
    mut progress: impl FnMut(&str) + Send,
) -> Result<(Vec<BenchRow>, Option<TgEvidence>), Error> {
    let vocab = model.config.vocab_size;
    with_threads(spec.threads, || {
        let mut rows = Vec::new();
        let mut evidence = None;
        if spec.n_prompt > 0 {
            let tokens = bench_tokens(spec.n_prompt, vocab, 1);
            pp_once(model, &tokens, spec.platform)?; // warm-up
            let mut samples = Vec::new();
            let mut last = None;
            for r in 0..spec.reps {
                let (secs, s) = pp_once(model, &tokens, spec.platform)?;
                samples.push(spec.n_prompt as f64 / secs);
                progress(&format!("pp{} run {}/{}", spec.n_prompt, r + 1, spec.reps));
                last = Some(s);
            }
            let (avg, sd) = mean_sd(&samples);
            rows.push(BenchRow {
                test: format!("pp{}", spec.n_prompt),
                n_prompt: spec.n_prompt,
                n_gen: 0,
                n_threads: spec.threads,
                avg_ts: avg,
                stddev_ts: sd,
                samples_ts: samples,
                kernels: last.as_ref().map(kernel_ids).unwrap_or_default(),
            });
        }
        if spec.n_gen > 0 {
            let first = bench_tokens(1, vocab, 2)[0];
            tg_once(model, first, spec.n_gen, spec.platform)?; // warm-up
            let mut samples = Vec::new();
            for r in 0..spec.reps {
                let (secs, s, ids) = tg_once(model, first, spec.n_gen, spec.platform)?;
                samples.push(spec.n_gen as f64 / secs);
                progress(&format!("tg{} run {}/{}", spec.n_gen, r + 1, spec.reps));
                evidence = Some(TgEvidence {
                    state: s,
                    ids,
                    decode_ms: secs * 1e3,
                });
            }
            let (avg, sd) = mean_sd(&samples);
            rows.push(BenchRow {
                test: format!("tg{}", spec.n_gen),
                n_prompt: 0,
                n_gen: spec.n_gen,
                n_threads: spec.threads,
                avg_ts: avg,
                stddev_ts: sd,
                samples_ts: samples,
                kernels: evidence
                    .as_ref()
                    .map(|e| kernel_ids(&e.state))
                    .unwrap_or_default(),
            });
        }
        Ok((rows, evidence))
    })?
}

/// The last tg repetition: its run state (kernel counters), the ids it
/// generated and its time.
pub struct TgEvidence {
    /// The run state, with its kernel counters.
    pub state: RunState,
    /// Token ids generated.
    pub ids: Vec<u32>,
    /// Decode time, ms.
    pub decode_ms: f64,
}

/// Facts about the model file for receipts.
pub struct ModelFacts {
    /// File name.
    pub name: String,
    /// `general.architecture`.
    pub arch: String,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
    /// Tensor type names, deduplicated, in file order.
    pub quant_types: Vec<&'static str>,
    /// Parameters (sum of element counts).
    pub parameters: u64,
    /// Transformer layers.
    pub layers: u32,
}

impl ModelFacts {
    /// Reads the facts of `file` (hashes the whole file).
    pub fn of(file: &ModelFile, model: &Model<'_>) -> Result<Self, Error> {
        let g = file.gguf()?;
        let mut quant_types: Vec<&'static str> = Vec::new();
        for t in g.tensors() {
            let n = t.ggml_type.name();
            if !quant_types.contains(&n) {
                quant_types.push(n);
            }
        }
        Ok(Self {
            name: file
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: g.architecture().unwrap_or("").to_string(),
            sha256: sha256(file.bytes()),
            quant_types,
            parameters: g.tensors().iter().map(|t| t.n_elements()).sum(),
            layers: model.config.n_layers as u32,
        })
    }
}

/// Settings of a receipt run.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptRunSpec {
    /// Tokens to generate (exactly; stop tokens do not end the run).
    pub n_gen: usize,
    /// Worker threads.
    pub threads: usize,
    /// Kernels.
    pub platform: Platform,
    /// Greedy (deterministic) or sampled with `seed`.
    pub deterministic: bool,
    /// Sampling seed (recorded either way).
    pub seed: u64,
    /// Time it took to load the model, ms (measured by the caller).
    pub load_ms: f64,
}

/// The outcome of [`receipt_run`].
pub struct ReceiptRun {
    /// The receipt, built from the run's kernel counters.
    pub receipt: Receipt,
    /// The generated ids.
    pub generated: Vec<u32>,
}

/// Evaluates `prompt` and generates exactly `spec.n_gen` tokens, timing
/// prefill (all prompt tokens but the last) and decode (the last prompt
/// token and every fed-back token, so each generated token is one timed
/// pass), then builds the receipt from the run state's kernel counters.
pub fn receipt_run(
    file: &ModelFile,
    model: &Model<'_>,
    prompt: &[u32],
    spec: &ReceiptRunSpec,
) -> Result<ReceiptRun, Error> {
    let (head, last) = match prompt.split_last() {
        Some((last, head)) => (head, *last),
        None => return Err(Error::Usage("the prompt is empty".into())),
    };
    let n_ctx = prompt.len() + spec.n_gen;
    let mut s = model.new_state(prompt.len().max(1), n_ctx)?;
    s.set_platform(spec.platform);
    let params = if spec.deterministic {
        SamplerParams::greedy()
    } else {
        SamplerParams {
            seed: spec.seed,
            ..SamplerParams::default()
        }
    };
    let mut sampler = Sampler::new(params);
    let (prefill_ms, decode_ms, generated) = with_threads(spec.threads, || {
        let t = Instant::now();
        if !head.is_empty() {
            model.forward_in::<ThreadJoin>(&mut s, head, 0, Logits::None)?;
        }
        let prefill_ms = t.elapsed().as_secs_f64() * 1e3;
        for &p in prompt {
            sampler.accept(p);
        }
        let t = Instant::now();
        let mut generated = Vec::with_capacity(spec.n_gen);
        let mut tok = last;
        for i in 0..spec.n_gen {
            let pos = head.len() + i;
            let logits = model.forward_in::<ThreadJoin>(&mut s, &[tok], pos, Logits::Last)?;
            tok = sampler
                .sample(logits)
                .map_err(|e| Error::Usage(format!("sampling failed: {e}")))?;
            sampler.accept(tok);
            generated.push(tok);
        }
        Ok::<_, Error>((prefill_ms, t.elapsed().as_secs_f64() * 1e3, generated))
    })??;
    let facts = ModelFacts::of(file, model)?;
    let summary = format!(
        "cpu: {} kernels, {} threads",
        spec.platform.isa().name(),
        spec.threads
    );
    let run = RunInfo {
        backend: Backend::Cpu,
        backend_summary: &summary,
        deterministic: spec.deterministic,
        seed: spec.seed,
        threads: spec.threads as u32,
        model: ModelInfo {
            name: &facts.name,
            arch: &facts.arch,
            sha256: facts.sha256,
            quant_types: &facts.quant_types,
            parameters: facts.parameters,
            layers: facts.layers,
        },
        prompt_tokens: prompt.len() as u32,
        requested_tokens: spec.n_gen as u32,
        generated_ids: &generated,
        load_ms: spec.load_ms,
        prefill_ms,
        decode_ms,
    };
    let receipt = ReceiptBuilder::new(run)
        .build(s.counters())
        .map_err(|e| Error::Usage(e.to_string()))?
        .with_prompt_ids(prompt)
        .map_err(|e| Error::Usage(format!("receipt: {e:?}")))?;
    Ok(ReceiptRun { receipt, generated })
}
