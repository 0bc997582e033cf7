//! `bitnet run`, `logits`, `chat` and `bench`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bitnet_core::kernels::KernelChoice;
use bitnet_core::model::{Generator, Logits, Model, RunState};
use bitnet_core::sample::{Sampler, SamplerParams};
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer};
use bitnet_std::bench::{BenchSpec, bench};
use bitnet_std::engine::{
    LmHead, Loaded, ThreadJoin, default_threads, parse_kernel, parse_lm_head, platform, prepare,
    prepare_head, with_threads,
};
use bitnet_std::receipt::{ReceiptBuilder, write_receipt};
use bitnet_std::validate_cmd::ValidationOptions;
use bitnet_std::{Error, ModelFile};
use clap::Args;
use serde::Serialize;

/// Context length when neither `-c` nor a smaller model limit applies.
const DEFAULT_CTX: usize = 4096;
/// Prompt positions evaluated per forward step.
const PREFILL_BATCH: usize = 512;

/// The model shipped in the repo (a BitNet b1.58 trained on
/// tinyshakespeare, xtask/train/), used when `-m` is not given.
const DEFAULT_MODEL: &str = "tests/models/shakespeare-i2s.gguf";

/// `-m`, or the shipped model: relative to the working directory, else to
/// the source tree this binary was built from.
fn model_path(m: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = m {
        return p.clone();
    }
    let here = PathBuf::from(DEFAULT_MODEL);
    if here.exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEFAULT_MODEL)
}

/// Options shared by the commands that run a model.
#[derive(Args, Debug, Clone)]
pub struct ModelOpts {
    /// The GGUF model file (default: the shipped tests/models/shakespeare-i2s.gguf).
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Kernel: auto, scalar, avx2, avx512, or the lookup-table families tl1,
    /// tl2 (I2_S, TQ1_0 and TQ2_0 weights repacked at load); results are identical.
    #[arg(long, default_value = "auto", value_parser = parse_kernel)]
    pub kernel: bitnet_core::kernels::KernelChoice,
    /// LM head: f16 (exact, the default) or q8 (int8 per row; CHANGES
    /// NUMERICS, recorded as q8_head_* kernels in receipts).
    #[arg(long = "lm-head", default_value = "f16", value_parser = parse_lm_head)]
    pub lm_head: LmHead,
    #[command(flatten)]
    pub validation: ValidationFlags,
}

/// Validation on load (docs/howto/validate-models.md).
#[derive(Args, Debug, Clone, Default)]
pub struct ValidationFlags {
    /// Run every validation rule and refuse (exit 3) on an error-level
    /// finding; also BITNET_STRICT=1.
    #[arg(long)]
    pub strict: bool,
    /// A correction policy (YAML).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Apply the policy's corrections; also BITNET_ALLOW_CORRECTIONS=1.
    #[arg(long)]
    pub allow_corrections: bool,
}

impl ValidationFlags {
    fn options(&self) -> Result<ValidationOptions, Error> {
        ValidationOptions::new(self.strict, self.allow_corrections, self.policy.as_deref())
            .map_err(|e| Error::Usage(e.to_string()))
    }

    /// Loads `file` under these flags.
    fn load<'f>(&self, file: &'f ModelFile) -> Result<Loaded<'f>, Error> {
        Loaded::checked(file, &self.options()?).map(|(l, _)| l)
    }
}

impl ModelOpts {
    fn path(&self) -> PathBuf {
        model_path(&self.model)
    }

    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(default_threads).max(1)
    }
}

/// Sampling options (llama.cpp's flags and defaults).
#[derive(Args, Debug, Clone)]
pub struct SampleOpts {
    /// Temperature (0: greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temp: f32,
    /// Keep the k most likely tokens (0: all).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: usize,
    /// Keep the smallest set with this probability mass (1: all).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below this fraction of the top probability.
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty on recently seen tokens (1: none).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed (default: from the clock).
    #[arg(short = 's', long = "seed")]
    pub seed: Option<u64>,
}

impl SampleOpts {
    fn params(&self) -> SamplerParams {
        let seed = self.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        SamplerParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed,
            ..SamplerParams::default()
        }
    }
}

/// `bitnet run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelOpts,
    #[command(flatten)]
    sample: SampleOpts,
    /// The prompt (BOS is added when the file says add_bos_token).
    #[arg(short = 'p', long = "prompt", conflicts_with = "tokens")]
    prompt: Option<String>,
    /// Prompt token ids, comma-separated, used as given (no BOS).
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Context length (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Print one JSON object (prompt_tokens, generated_tokens, text) only.
    #[arg(long)]
    json: bool,
    /// Where the model runs: cpu, or cuda (the whole model on the GPU;
    /// needs a build with `--features cuda` and a CUDA device; there is
    /// no fallback to the CPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: Device,
    /// Layers on the GPU, as llama.cpp's `-ngl`: 0 keeps the CPU; the
    /// model's layer count or more (e.g. 99) puts the whole model on CUDA.
    /// Splitting a model between CPU and GPU is refused.
    #[arg(long = "n-gpu-layers", alias = "ngl")]
    n_gpu_layers: Option<usize>,
}

/// Where `bitnet run` evaluates the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU kernels.
    Cpu,
    /// The CUDA backend, the whole model on the GPU.
    Cuda,
}

/// Parses `--device`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Ok(Device::Cuda),
        other => Err(format!("unknown device '{other}' (cpu or cuda)")),
    }
}

/// The device `--device` and `--n-gpu-layers` select for a model of
/// `n_layers` blocks.
pub fn resolve_device(
    device: Device,
    n_gpu_layers: Option<usize>,
    n_layers: usize,
) -> Result<Device, Error> {
    match (device, n_gpu_layers) {
        (d, None) => Ok(d),
        (Device::Cpu, Some(0)) => Ok(Device::Cpu),
        (Device::Cuda, Some(0)) => Err(Error::Usage(
            "--device cuda with --n-gpu-layers 0: choose one".into(),
        )),
        (_, Some(n)) if n >= n_layers => Ok(Device::Cuda),
        (_, Some(n)) => Err(Error::Usage(format!(
            "--n-gpu-layers {n} of {n_layers} layers: splitting a model between CPU and \
             GPU is not supported; use 0 (CPU) or {n_layers} or more (all on CUDA)"
        ))),
    }
}

/// Greedy (temperature <= 0, no repeat penalty) on the device, else sampled
/// on the host from the device's logits; stops at a stop token (not
/// returned), as the CPU generator does.
#[cfg(feature = "cuda")]
fn generate_cuda(
    model: &Model<'_>,
    ids: &[u32],
    n_predict: usize,
    params: SamplerParams,
    stop: &[u32],
) -> Result<Vec<u32>, Error> {
    use bitnet_std::cuda::{CudaModel, HostModel, receipt::generate};
    let host = HostModel::from_model(model)?;
    let mut gm = CudaModel::new(&host, ids.len() + n_predict)?;
    let greedy = params.temperature <= 0.0 && params.repeat_penalty == 1.0;
    let g = generate(&mut gm, ids, n_predict, (!greedy).then_some(params))?;
    let end = g
        .ids
        .iter()
        .position(|t| stop.contains(t))
        .unwrap_or(g.ids.len());
    Ok(g.ids[..end].to_vec())
}

/// Without the `cuda` feature there is no GPU path: an error, never the CPU.
#[cfg(not(feature = "cuda"))]
fn generate_cuda(
    _model: &Model<'_>,
    _ids: &[u32],
    _n_predict: usize,
    _params: SamplerParams,
    _stop: &[u32],
) -> Result<Vec<u32>, Error> {
    Err(Error::Usage(
        "--device cuda: this bitnet was built without the CUDA backend \
         (build with `--features cuda`)"
            .into(),
    ))
}

fn ctx_len(model: &Model<'_>, ctx: Option<usize>) -> usize {
    ctx.unwrap_or(DEFAULT_CTX).min(model.config.seq_len).max(1)
}

fn prompt_ids(
    l: &Loaded<'_>,
    prompt: Option<&str>,
    tokens: Option<&[u32]>,
) -> Result<Vec<u32>, Error> {
    if let Some(t) = tokens {
        return Ok(t.to_vec());
    }
    let tok = l.tokenizer()?;
    let text = prompt.unwrap_or("");
    let opts = EncodeOptions {
        add_bos: tok.add_bos(),
        add_eos: false,
        parse_special: false,
    };
    let ids = tok.encode(text, opts)?;
    if ids.is_empty() {
        return Err(Error::Usage(
            "the prompt is empty and the model adds no BOS; pass -p or --tokens".into(),
        ));
    }
    Ok(ids)
}

/// Runs `bitnet run`.
pub fn run(a: RunArgs) -> Result<(), Error> {
    let file = ModelFile::open(a.model.path())?;
    let mut l = a.model.validation.load(&file)?;
    let device = resolve_device(a.device, a.n_gpu_layers, l.model.config.n_layers)?;
    if device == Device::Cuda
        && (a.model.kernel != KernelChoice::Auto || a.model.lm_head != LmHead::Exact)
    {
        return Err(Error::Usage(
            "--kernel and --lm-head choose CPU kernels; the CUDA backend has its own".into(),
        ));
    }
    prepare(&mut l.model, a.model.kernel)?;
    prepare_head(&mut l.model, a.model.lm_head)?;
    let ids = prompt_ids(&l, a.prompt.as_deref(), a.tokens.as_deref())?;
    let n_ctx = ctx_len(&l.model, a.ctx);
    if ids.len() + a.n_predict > n_ctx {
        return Err(Error::Usage(format!(
            "prompt ({}) + n_predict ({}) exceeds the context length {n_ctx}",
            ids.len(),
            a.n_predict
        )));
    }
    if device == Device::Cuda {
        let t0 = Instant::now();
        let generated = generate_cuda(
            &l.model,
            &ids,
            a.n_predict,
            a.sample.params(),
            &l.stop_tokens(),
        )?;
        let secs = t0.elapsed().as_secs_f64();
        if !a.json {
            let mut out = std::io::stdout().lock();
            if let Some(p) = prompt_echo(&l, a.prompt.as_deref(), &ids)? {
                let _ = out.write_all(p.as_bytes());
            }
            if let Some(t) = l.tokenizer.as_ref() {
                let text = t.decode_lossy(&generated, DecodeOptions::default())?;
                let _ = out.write_all(text.as_bytes());
            }
            let _ = writeln!(out);
        }
        return finish_run(&l, a.json, &ids, &generated, secs);
    }
    let mut state = l
        .model
        .new_state(PREFILL_BATCH.min(ids.len()).max(1), n_ctx)?;
    state.set_platform(platform(a.model.kernel)?);
    let mut sampler = Sampler::new(a.sample.params());
    let stop = l.stop_tokens();
    let json = a.json;
    let tokenizer = l.tokenizer.as_ref();
    let prompt_echo = prompt_echo(&l, a.prompt.as_deref(), &ids)?;
    let model = &l.model;
    let t0 = Instant::now();
    let generated = with_threads(a.model.threads(), || {
        let mut out = std::io::stdout().lock();
        if let (false, Some(p)) = (json, prompt_echo.as_deref()) {
            // Echo the prompt, as llama.cpp does, so the output reads on.
            let _ = out.write_all(p.as_bytes());
            let _ = out.flush();
        }
        let mut stream = tokenizer.map(|t| StreamDecoder::new(t, DecodeOptions::default()));
        let mut generated = Vec::new();
        let gen_iter = Generator::<ThreadJoin>::new_in(
            model,
            &mut state,
            &mut sampler,
            &ids,
            a.n_predict,
            &stop,
        );
        for t in gen_iter {
            let t = t?;
            generated.push(t);
            if let (false, Some(s)) = (json, stream.as_mut()) {
                let piece = s.push(t)?;
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
            }
        }
        if let (false, Some(s)) = (json, stream.as_mut()) {
            let _ = out.write_all(s.finish().as_bytes());
            let _ = writeln!(out);
        }
        Ok::<_, Error>(generated)
    })??;
    finish_run(&l, json, &ids, &generated, t0.elapsed().as_secs_f64())
}

/// The prompt as `bitnet run` echoes it: as given, else decoded.
fn prompt_echo(l: &Loaded<'_>, prompt: Option<&str>, ids: &[u32]) -> Result<Option<String>, Error> {
    Ok(match (prompt, l.tokenizer.as_ref()) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(t)) => Some(t.decode_lossy(ids, DecodeOptions::default())?),
        (None, None) => None,
    })
}

/// `bitnet run --json`'s one object. A struct, not `serde_json::json!`
/// (whose map sorts keys): issue 4 gives the key order
/// `{"prompt_tokens":[..],"generated_tokens":[..],"text":".."}`.
#[derive(Serialize)]
struct RunJson<'a> {
    prompt_tokens: &'a [u32],
    generated_tokens: &'a [u32],
    text: &'a str,
}

/// The end of `bitnet run`: the JSON object, or the summary line.
fn finish_run(
    l: &Loaded<'_>,
    json: bool,
    ids: &[u32],
    generated: &[u32],
    secs: f64,
) -> Result<(), Error> {
    if json {
        let text = match l.tokenizer.as_ref() {
            Some(t) => t.decode_lossy(generated, DecodeOptions::default())?,
            None => String::new(),
        };
        let obj = RunJson {
            prompt_tokens: ids,
            generated_tokens: generated,
            text: &text,
        };
        let line = serde_json::to_string(&obj).map_err(|e| Error::Render(e.to_string()))?;
        println!("{line}");
    } else {
        eprintln!(
            "\n[{} prompt + {} generated tokens in {:.2} s]",
            ids.len(),
            generated.len(),
            secs
        );
    }
    Ok(())
}

/// `bitnet logits`.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelOpts,
    /// Token ids, comma-separated, evaluated as given (no BOS).
    #[arg(long, value_delimiter = ',', required = true)]
    tokens: Vec<u32>,
    /// Output `.npy` (float32, shape [n_tokens, n_vocab]).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

/// A float32 C-order `.npy` (format version 1.0) of `rows x cols`.
pub fn npy_f32(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' padded to 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Runs `bitnet logits`.
pub fn logits(a: LogitsArgs) -> Result<(), Error> {
    let file = ModelFile::open(a.model.path())?;
    let mut l = a.model.validation.load(&file)?;
    prepare(&mut l.model, a.model.kernel)?;
    prepare_head(&mut l.model, a.model.lm_head)?;
    let n = a.tokens.len();
    if n == 0 {
        return Err(Error::Usage("--tokens is empty".into()));
    }
    let mut state = l.model.new_state(n, n)?;
    state.set_platform(platform(a.model.kernel)?);
    let vocab = l.model.config.vocab_size;
    let model = &l.model;
    let data = with_threads(a.model.threads(), || {
        model
            .forward_in::<ThreadJoin>(&mut state, &a.tokens, 0, Logits::All)
            .map(<[f32]>::to_vec)
    })??;
    std::fs::write(&a.output, npy_f32(&data, n, vocab)).map_err(|source| Error::Io {
        path: a.output.clone(),
        source,
    })?;
    eprintln!("wrote {} ({n} x {vocab} float32)", a.output.display());
    Ok(())
}

/// `bitnet chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelOpts,
    #[command(flatten)]
    sample: SampleOpts,
    /// System prompt.
    #[arg(long, default_value = "You are a helpful assistant.")]
    system: String,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n_predict: usize,
    /// Context length (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
}

/// The BitNet-b1.58-2B-4T chat turn (DESIGN.md §6): the system text only in
/// the first turn.
fn chat_turn(system: Option<&str>, user: &str) -> String {
    match system {
        Some(s) => format!("System: {s}User: {user}<|eot_id|>Assistant: "),
        None => format!("User: {user}<|eot_id|>Assistant: "),
    }
}

/// Feeds `new` at `*pos` and samples a reply until a stop token or `max`
/// tokens, streaming it to `out`; the reply's tokens stay in the cache.
#[allow(clippy::too_many_arguments)]
fn reply(
    model: &Model<'_>,
    state: &mut RunState,
    sampler: &mut Sampler,
    tok: &Tokenizer,
    pos: &mut usize,
    new: &[u32],
    max: usize,
    stop: &[u32],
    out: &mut impl Write,
) -> Result<(), Error> {
    let mut logits = model
        .forward_in::<ThreadJoin>(state, new, *pos, Logits::Last)?
        .to_vec();
    *pos += new.len();
    let mut stream = StreamDecoder::new(tok, DecodeOptions::default());
    for _ in 0..max {
        let t = sampler
            .sample(&logits)
            .map_err(|e| Error::Usage(format!("sampling failed: {e}")))?;
        sampler.accept(t);
        if stop.contains(&t) {
            // Keep the end-of-turn token in the cache, as the template has it.
            model.forward_in::<ThreadJoin>(state, &[t], *pos, Logits::None)?;
            *pos += 1;
            break;
        }
        let _ = out.write_all(stream.push(t)?.as_bytes());
        let _ = out.flush();
        logits.copy_from_slice(model.forward_in::<ThreadJoin>(state, &[t], *pos, Logits::Last)?);
        *pos += 1;
    }
    let _ = out.write_all(stream.finish().as_bytes());
    let _ = writeln!(out);
    Ok(())
}

/// Runs `bitnet chat`: reads user lines from stdin until EOF.
pub fn chat(a: ChatArgs) -> Result<(), Error> {
    let file = ModelFile::open(a.model.path())?;
    let mut l = a.model.validation.load(&file)?;
    prepare(&mut l.model, a.model.kernel)?;
    prepare_head(&mut l.model, a.model.lm_head)?;
    let tok = l.tokenizer()?;
    let n_ctx = ctx_len(&l.model, a.ctx);
    let mut state = l.model.new_state(PREFILL_BATCH, n_ctx)?;
    state.set_platform(platform(a.model.kernel)?);
    let mut sampler = Sampler::new(a.sample.params());
    let stop = l.stop_tokens();
    let model = &l.model;
    with_threads(a.model.threads(), || {
        let mut pos = 0usize;
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        let mut first = true;
        for line in stdin.lock().lines() {
            let line = line.map_err(|source| Error::Io {
                path: "<stdin>".into(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let text = chat_turn(first.then_some(a.system.as_str()), line.trim());
            let opts = EncodeOptions {
                add_bos: first && tok.add_bos(),
                add_eos: false,
                parse_special: true,
            };
            let ids = tok.encode(&text, opts)?;
            if pos + ids.len() + a.n_predict + 1 > n_ctx {
                return Err(Error::Usage(format!(
                    "the conversation exceeds the context length {n_ctx}"
                )));
            }
            first = false;
            reply(
                model,
                &mut state,
                &mut sampler,
                tok,
                &mut pos,
                &ids,
                a.n_predict,
                &stop,
                &mut out,
            )?;
        }
        Ok(())
    })?
}

/// `bitnet bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The GGUF model file (default: the shipped model).
    #[arg(short = 'm', long = "model")]
    model: Option<PathBuf>,
    /// Prompt tokens of the pp test (0: skip).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens of the tg test (0: skip).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Repetitions.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Worker threads (default: every core).
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Kernel: auto, scalar, avx2, avx512, tl1, tl2.
    #[arg(long, default_value = "auto", value_parser = parse_kernel)]
    kernel: bitnet_core::kernels::KernelChoice,
    /// LM head: f16 (exact) or q8 (int8 per row; changes numerics).
    #[arg(long = "lm-head", default_value = "f16", value_parser = parse_lm_head)]
    lm_head: LmHead,
    /// Output format: md or json.
    #[arg(short = 'o', long = "output", default_value = "md")]
    output: String,
    /// Write a receipt of the last tg repetition here.
    #[arg(long)]
    receipt: Option<PathBuf>,
    #[command(flatten)]
    validation: ValidationFlags,
}

/// Runs `bitnet bench`.
pub fn bench_cmd(a: BenchArgs) -> Result<(), Error> {
    if a.output != "md" && a.output != "json" {
        return Err(Error::Usage(format!(
            "unknown output format '{}' (md or json)",
            a.output
        )));
    }
    if a.reps == 0 {
        return Err(Error::Usage("-r must be at least 1".into()));
    }
    let t_load = Instant::now();
    let path = model_path(&a.model);
    let file = ModelFile::open(&path)?;
    let (mut l, report) = Loaded::checked(&file, &a.validation.options()?)?;
    prepare(&mut l.model, a.kernel)?;
    prepare_head(&mut l.model, a.lm_head)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;
    let threads = a.threads.unwrap_or_else(default_threads).max(1);
    let spec = BenchSpec {
        n_prompt: a.n_prompt,
        n_gen: a.n_gen,
        reps: a.reps,
        threads,
        platform: platform(a.kernel)?,
    };
    let bar = indicatif::ProgressBar::new(
        (a.reps * (usize::from(a.n_prompt > 0) + usize::from(a.n_gen > 0))) as u64,
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .map_err(|e| Error::Usage(e.to_string()))?,
    );
    let (rows, evidence) = bench(&l.model, &spec, |msg| {
        bar.set_message(msg.to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    if a.output == "json" {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| Error::Render(e.to_string()))?;
        println!("{text}");
    } else {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!("| model | threads | kernel | test | t/s |");
        println!("| --- | ---: | --- | ---: | ---: |");
        for r in &rows {
            println!(
                "| {name} | {} | {} | {} | {:.2} ± {:.2} |",
                r.n_threads,
                spec.platform.isa().name(),
                r.test,
                r.avg_ts,
                r.stddev_ts
            );
        }
    }
    if let Some(path) = a.receipt {
        let ev =
            evidence.ok_or_else(|| Error::Usage("--receipt needs a tg test (-n > 0)".into()))?;
        let facts = bitnet_std::bench::ModelFacts::of(&file, &l.model)?;
        let summary = format!(
            "cpu: {} kernels, {threads} threads (bitnet bench tg)",
            spec.platform.isa().name()
        );
        let run = bitnet_core::receipt::RunInfo {
            backend: bitnet_core::receipt::Backend::Cpu,
            backend_summary: &summary,
            deterministic: true,
            seed: 0,
            threads: threads as u32,
            model: bitnet_core::receipt::ModelInfo {
                name: &facts.name,
                arch: &facts.arch,
                sha256: facts.sha256,
                quant_types: &facts.quant_types,
                parameters: facts.parameters,
                layers: facts.layers,
            },
            prompt_tokens: 1,
            requested_tokens: a.n_gen as u32,
            generated_ids: &ev.ids,
            load_ms,
            prefill_ms: 0.0,
            decode_ms: ev.decode_ms,
        };
        let receipt = ReceiptBuilder::new(run)
            .build(ev.state.counters())
            .map_err(|e| Error::Usage(e.to_string()))?
            .with_corrections(report.corrections.iter().map(|c| c.receipt_fields()))
            .map_err(|e| Error::Usage(format!("receipt: {e:?}")))?;
        write_receipt(&path, &receipt).map_err(|e| Error::Usage(e.to_string()))?;
        eprintln!("wrote receipt {}", path.display());
    }
    Ok(())
}

/// `bitnet perplexity`.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelOpts,
    /// The text file to score.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Chunk (context) length.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
}

/// Runs `bitnet perplexity` (llama-perplexity's convention and output).
pub fn perplexity(a: PerplexityArgs) -> Result<(), Error> {
    let file = ModelFile::open(a.model.path())?;
    let mut l = a.model.validation.load(&file)?;
    prepare(&mut l.model, a.model.kernel)?;
    prepare_head(&mut l.model, a.model.lm_head)?;
    let tok = l.tokenizer()?;
    let text = std::fs::read_to_string(&a.file).map_err(|source| Error::Io {
        path: a.file.clone(),
        source,
    })?;
    let t0 = Instant::now();
    let opts = EncodeOptions {
        add_bos: tok.add_bos(),
        add_eos: false,
        parse_special: false,
    };
    let ids = tok.encode(&text, opts)?;
    eprintln!(
        "tokenized {} bytes into {} tokens in {:.2} s",
        text.len(),
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
    let bos = if tok.add_bos() {
        tok.special_tokens().bos
    } else {
        None
    };
    let n_chunks = ids.len() / a.ctx.max(1);
    eprintln!(
        "calculating perplexity over {n_chunks} chunks, n_ctx={}",
        a.ctx
    );
    let t = Instant::now();
    let r = bitnet_std::perplexity::perplexity(
        &l.model,
        &ids,
        a.ctx,
        bos,
        a.model.threads(),
        platform(a.model.kernel)?,
        |c, ppl| {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "[{c}]{ppl:.4},");
            let _ = out.flush();
        },
    )?;
    println!();
    println!("Final estimate: PPL = {:.4} +/- {:.5}", r.ppl, r.ppl_stderr);
    eprintln!(
        "{} tokens scored in {} chunks, mean NLL {:.6}, {:.2} s",
        r.n_scored,
        r.n_chunks,
        r.mean_nll,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
