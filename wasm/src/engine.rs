//! The engine behind the JS API, in plain Rust so that it builds and is
//! tested on the host too: a model file held in memory, its tokenizer, and
//! generation through core's [`Generator`] with receipts.
//!
//! Ownership: [`LoadedModel`] owns the file bytes (`Box<[u8]>`, never moved
//! or mutated after loading) and keeps only owned data derived from them
//! (tokenizer, summary). The borrowed views core works on, [`Gguf`] and
//! [`Model`], are rebuilt from the bytes at the start of each generation
//! ([`LoadedModel::model`]): that re-reads the header and resolves tensor
//! slices, which costs a small fraction of one forward pass and spares any
//! self-referential struct or `unsafe`.

use alloc::boxed::Box;
use alloc::collections::TryReserveError;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::OnceCell;
use core::fmt;

use bitnet_core::gguf::{Gguf, GgufError};
use bitnet_core::model::{Model, ModelError, StopReason};
use bitnet_core::quant::q8_head::Q8Rows;
use bitnet_core::receipt::{
    Backend, Fingerprint, FixedString, KernelCounters, ModelInfo, Receipt, RunInfo,
};
use bitnet_core::sample::{Sampler, SamplerParams};
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer};
use bitnet_core::validate::{ValidationConfig, validate};
use sha2::{Digest, Sha256};

/// Largest model file accepted. wasm32 addresses 4 GiB in all; the file is
/// copied into that memory once, and the tokenizer, the run state and the
/// KV cache need room beside it.
pub const MAX_MODEL_BYTES: u64 = 3 << 30;

/// Positions per forward step during prefill (longer prompts run in
/// chunks). The native reference in `cargo xtask wasm --test` uses the same.
pub const PREFILL_BATCH: usize = 64;

/// Everything that can fail in this crate, each with its message.
#[derive(Debug)]
pub enum Error {
    /// The model file is larger than [`MAX_MODEL_BYTES`].
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// More bytes were pushed than the file size announced.
    Overfull {
        /// The announced size.
        expected: u64,
    },
    /// Fewer bytes were pushed than the file size announced.
    Incomplete {
        /// Bytes received.
        got: u64,
        /// The announced size.
        expected: u64,
    },
    /// wasm memory could not grow to hold `bytes`.
    OutOfMemory {
        /// The allocation that failed.
        bytes: u64,
    },
    /// The file is not a valid GGUF file.
    Gguf(GgufError),
    /// The model cannot run (shapes, tensors, context).
    Model(ModelError),
    /// A strict load refused the model: the validation rules found an
    /// error-level problem (the message names the rule and the tensor).
    Refused(String),
    /// Tokenizing or decoding failed.
    Tokenizer(String),
    /// A receipt could not be built.
    Receipt(String),
    /// A caller's argument is out of range.
    BadArgument(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes } => write!(
                f,
                "model file is {bytes} bytes ({:.2} GiB); wasm32 memory is 4 GiB, so the browser \
                 build loads models up to {MAX_MODEL_BYTES} bytes ({} GiB): use the native CLI",
                *bytes as f64 / f64::from(1u32 << 30),
                MAX_MODEL_BYTES >> 30
            ),
            Self::Overfull { expected } => {
                write!(f, "received more than the announced {expected} bytes")
            }
            Self::Incomplete { got, expected } => {
                write!(f, "model file incomplete: got {got} of {expected} bytes")
            }
            Self::OutOfMemory { bytes } => write!(
                f,
                "could not allocate {bytes} bytes of wasm memory (wasm32 is limited to 4 GiB)"
            ),
            Self::Gguf(e) => write!(f, "invalid GGUF file: {e}"),
            Self::Model(e) => write!(f, "{e}"),
            Self::Refused(e) => f.write_str(e),
            Self::Tokenizer(e) => write!(f, "tokenizer: {e}"),
            Self::Receipt(e) => write!(f, "receipt: {e}"),
            Self::BadArgument(e) => f.write_str(e),
        }
    }
}

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Self::Gguf(e)
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Self::Model(e)
    }
}

/// Collects a model file's bytes into one buffer reserved up front, so a
/// file streams into wasm memory without a second full copy in JS.
#[derive(Debug)]
pub struct Loader {
    buf: Vec<u8>,
    expected: u64,
}

impl Loader {
    /// A loader for a file of `expected` bytes; fails before allocating
    /// when it exceeds [`MAX_MODEL_BYTES`] or memory cannot grow.
    pub fn new(expected: u64) -> Result<Self, Error> {
        if expected > MAX_MODEL_BYTES {
            return Err(Error::TooLarge { bytes: expected });
        }
        let len = usize::try_from(expected).map_err(|_| Error::TooLarge { bytes: expected })?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_: TryReserveError| Error::OutOfMemory { bytes: expected })?;
        Ok(Self { buf, expected })
    }

    /// Appends the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if (self.buf.len() as u64).saturating_add(chunk.len() as u64) > self.expected {
            return Err(Error::Overfull {
                expected: self.expected,
            });
        }
        // Within the reserved capacity: no reallocation.
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Validates the complete file and prepares the model.
    pub fn finish(self, file_name: &str, opts: LoadOptions) -> Result<LoadedModel, Error> {
        if self.received() != self.expected {
            return Err(Error::Incomplete {
                got: self.received(),
                expected: self.expected,
            });
        }
        LoadedModel::new(self.buf.into_boxed_slice(), file_name, opts)
    }
}

/// How a model is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Strict validation, as the native `--strict`: every rule runs
    /// (reading every weight byte) and an error-level finding refuses the
    /// model ([`Error::Refused`]). Without it the cheap rules run and their
    /// findings are kept in [`ModelSummary::findings`].
    pub strict: bool,
}

/// What the page shows about a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// File name as given by the page.
    pub file_name: String,
    /// `general.name`, or the file name.
    pub name: String,
    /// `general.architecture`.
    pub arch: String,
    /// File size.
    pub file_bytes: u64,
    /// Parameters (elements of all tensors).
    pub parameters: u64,
    /// Distinct tensor types, in first-use order.
    pub quant_types: Vec<&'static str>,
    /// Transformer layers.
    pub layers: usize,
    /// Hidden size.
    pub dim: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Training context.
    pub context: usize,
    /// Tokenizer model (`llama` / `gpt2`).
    pub tokenizer: String,
    /// Beginning-of-sequence id, when the vocabulary has one.
    pub bos: Option<u32>,
    /// End-of-sequence id, when the vocabulary has one.
    pub eos: Option<u32>,
    /// SHA-256 of the file, lower-case hex.
    pub sha256_hex: String,
    /// The validation findings of the load, one line each
    /// (`SEVERITY [RULE] TENSOR: MESSAGE ...`); empty for a clean model.
    pub findings: Vec<String>,
}

/// The LM head's numerics, as the native CLI's `--lm-head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LmHead {
    /// The file's head as stored (F16 for the tied embedding): exact.
    #[default]
    Exact,
    /// An int8-per-row copy of a float head, made on first use and kept
    /// with the model (**changes numerics**; receipts name the
    /// `q8_head_gemv_*` kernel).
    Q8,
}

impl LmHead {
    /// Parses the option's value: `f16` (or `exact`) or `q8`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "f16" | "exact" => Ok(Self::Exact),
            "q8" => Ok(Self::Q8),
            other => Err(Error::BadArgument(format!(
                "option lmHead must be \"f16\" or \"q8\", not {other:?}"
            ))),
        }
    }
}

/// Sampling and length settings of one generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateOptions {
    /// Sampler settings (temperature <= 0: greedy).
    pub sampler: SamplerParams,
    /// Tokens to generate at most.
    pub max_new: usize,
    /// Stop at the vocabulary's EOS/EOT tokens.
    pub stop_at_eos: bool,
    /// The LM head's numerics.
    pub lm_head: LmHead,
}

/// The outcome of one generation, with what its receipt needs.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated ids, in order.
    pub generated: Vec<u32>,
    /// Text still held back when generation ended (the bytes of an
    /// incomplete UTF-8 sequence, as U+FFFD); follows the streamed text.
    pub tail: String,
    /// Tokens asked for.
    pub requested: usize,
    /// Why generation ended: "max_tokens", "stop_token", "context_full" or
    /// "stopped" (the callback asked to stop).
    pub stop: &'static str,
    /// Prompt evaluation and first token, ms.
    pub prefill_ms: f64,
    /// The remaining tokens, ms.
    pub decode_ms: f64,
    /// Sampler settings used.
    pub sampler: SamplerParams,
    /// The LM head used.
    pub lm_head: LmHead,
    /// Kernel evidence of the run (from the run state's counters).
    pub counters: KernelCounters,
}

impl RunRecord {
    /// Decode throughput: tokens after the first per second of
    /// [`decode_ms`](Self::decode_ms) (0 when nothing was decoded).
    pub fn decode_tokens_per_sec(&self) -> f64 {
        let n = self.generated.len().saturating_sub(1);
        if n == 0 || self.decode_ms <= 0.0 {
            0.0
        } else {
            n as f64 / (self.decode_ms / 1000.0)
        }
    }
}

/// A model file in memory plus its tokenizer.
pub struct LoadedModel {
    bytes: Box<[u8]>,
    tokenizer: Tokenizer,
    summary: ModelSummary,
    sha256: [u8; 32],
    /// The int8 LM head ([`LmHead::Q8`]), made by the first run that asks.
    q8_head: OnceCell<Arc<Q8Rows>>,
}

impl fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModel")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LoadedModel {
    /// Parses `bytes` (the whole file), runs the validation rules of
    /// `opts` (as every native load does: cheap always, all when strict)
    /// and prepares the model.
    pub fn new(bytes: Box<[u8]>, file_name: &str, opts: LoadOptions) -> Result<Self, Error> {
        let g = Gguf::parse(&bytes)?;
        let report = validate(&g, &ValidationConfig::builder().strict(opts.strict).build());
        if let Some(why) = report.refusal() {
            return Err(Error::Refused(format!("refusing {file_name}: {why}")));
        }
        let model = Model::from_gguf(&g)?;
        let tokenizer = Tokenizer::from_gguf(&g).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut quant_types: Vec<&'static str> = Vec::new();
        let mut parameters = 0u64;
        for t in g.tensors() {
            parameters = parameters.saturating_add(t.n_elements());
            let name = t.ggml_type.name();
            if !quant_types.contains(&name) {
                quant_types.push(name);
            }
        }
        let meta_str = |key: &str| g.get_str(key).ok().map(str::to_string);
        let arch = meta_str("general.architecture").unwrap_or_default();
        let c = &model.config;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let summary = ModelSummary {
            file_name: file_name.to_string(),
            name: meta_str("general.name").unwrap_or_else(|| file_name.to_string()),
            arch,
            file_bytes: bytes.len() as u64,
            parameters,
            quant_types,
            layers: c.n_layers,
            dim: c.dim,
            heads: c.n_heads,
            kv_heads: c.n_kv_heads,
            vocab: c.vocab_size,
            context: c.seq_len,
            tokenizer: meta_str("tokenizer.ggml.model").unwrap_or_default(),
            bos: tokenizer.special_tokens().bos,
            eos: tokenizer.special_tokens().eos,
            sha256_hex: hex(&sha256),
            findings: report.findings.iter().map(ToString::to_string).collect(),
        };
        // The views borrow `bytes`; end them before it moves into `Self`.
        drop(model);
        drop(g);
        Ok(Self {
            bytes,
            tokenizer,
            summary,
            sha256,
            q8_head: OnceCell::new(),
        })
    }

    /// The model's description.
    pub fn summary(&self) -> &ModelSummary {
        &self.summary
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Core's view of the bytes; validated once in [`LoadedModel::new`],
    /// so this only fails if memory runs out.
    fn model(&self) -> Result<Model<'_>, Error> {
        let g = Gguf::parse(&self.bytes)?;
        Ok(Model::from_gguf(&g)?)
    }

    /// Switches `model`'s LM head to int8, quantizing once per loaded model.
    fn use_q8_head(&self, model: &mut Model<'_>) -> Result<(), Error> {
        let head = &mut model.weights.lm_head;
        let quant = |source| {
            Error::Model(ModelError::Quant {
                name: head.name.to_string(),
                source,
            })
        };
        if let Some(q8) = self.q8_head.get() {
            return head.matrix.use_q8(Arc::clone(q8)).map_err(quant);
        }
        if !head.matrix.quantize_q8().map_err(quant)? {
            return Err(Error::BadArgument(format!(
                "option lmHead \"q8\" quantizes a float LM head; this model's head {} is {}",
                head.name,
                head.matrix.qtype().name()
            )));
        }
        if let Some(q8) = head.matrix.q8_shared() {
            // Unset before (checked above), so this always stores.
            let _ = self.q8_head.set(q8);
        }
        Ok(())
    }

    /// Prompt ids as generation encodes them: the vocabulary's BOS rule,
    /// special tokens parsed, no EOS.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, Error> {
        let opts = EncodeOptions {
            add_eos: false,
            ..self.tokenizer.default_encode_options()
        };
        self.encode(text, opts)
    }

    /// Encodes `text` with `opts`.
    pub fn encode(&self, text: &str, opts: EncodeOptions) -> Result<Vec<u32>, Error> {
        self.tokenizer
            .encode(text, opts)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Decodes `ids` to text (invalid UTF-8 as U+FFFD).
    pub fn decode(&self, ids: &[u32], opts: DecodeOptions) -> Result<String, Error> {
        self.tokenizer
            .decode_lossy(ids, opts)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Generates after `prompt` with core's [`Generator`] on one thread,
    /// calling `on_token(id, text)` for every token (`text` is what the
    /// token completes, possibly empty); generation stops early when it
    /// returns `false`. `now` is the host's clock in ms.
    ///
    /// [`Generator`]: bitnet_core::model::Generator
    pub fn generate(
        &self,
        prompt: &str,
        opts: GenerateOptions,
        now: &mut dyn FnMut() -> f64,
        on_token: &mut dyn FnMut(u32, &str) -> bool,
    ) -> Result<RunRecord, Error> {
        let prompt_ids = self.encode_prompt(prompt)?;
        if prompt_ids.is_empty() {
            return Err(Error::BadArgument(
                "the prompt encodes to no tokens: type some text".to_string(),
            ));
        }
        let mut model = self.model()?;
        if opts.lm_head == LmHead::Q8 {
            self.use_q8_head(&mut model)?;
        }
        let n_ctx = prompt_ids
            .len()
            .saturating_add(opts.max_new)
            .min(model.config.seq_len);
        if prompt_ids.len() >= n_ctx {
            return Err(Error::BadArgument(format!(
                "the prompt has {} tokens; the model's context is {}",
                prompt_ids.len(),
                model.config.seq_len
            )));
        }
        // The model's context bounds the run: it ends there ("context_full").
        let max_new = opts.max_new.min(n_ctx - prompt_ids.len());
        let mut state = model.new_state(PREFILL_BATCH.min(prompt_ids.len()), n_ctx)?;
        let mut sampler = Sampler::new(opts.sampler);
        let stop_ids: Vec<u32> = if opts.stop_at_eos {
            let s = self.tokenizer.special_tokens();
            [s.eos, s.eot].into_iter().flatten().collect()
        } else {
            Vec::new()
        };
        let decode_opts = DecodeOptions {
            render_special: false,
            strip_leading_space: false,
        };
        let mut text = StreamDecoder::new(&self.tokenizer, decode_opts);
        let mut generated = Vec::new();
        let mut stop = "max_tokens";
        let t0 = now();
        let mut t_first = None;
        let mut run = bitnet_core::model::Generator::new(
            &model,
            &mut state,
            &mut sampler,
            &prompt_ids,
            max_new,
            &stop_ids,
        );
        for step in run.by_ref() {
            let id = step?;
            t_first.get_or_insert_with(&mut *now);
            generated.push(id);
            let piece = text.push(id).map_err(|e| Error::Tokenizer(e.to_string()))?;
            if !on_token(id, piece) {
                stop = "stopped";
                break;
            }
        }
        match run.stop_reason() {
            Some(StopReason::StopToken(_)) => stop = "stop_token",
            Some(StopReason::MaxTokens) if max_new < opts.max_new => stop = "context_full",
            _ => {}
        }
        let tail = text.finish().to_string();
        let t_end = now();
        let t_first = t_first.unwrap_or(t_end);
        Ok(RunRecord {
            prompt_ids,
            generated,
            tail,
            requested: opts.max_new,
            stop,
            prefill_ms: t_first - t0,
            decode_ms: t_end - t_first,
            sampler: opts.sampler,
            lm_head: opts.lm_head,
            counters: state.counters().clone(),
        })
    }

    /// The receipt of `run` (backend "wasm"). `timestamp` (RFC 3339) and the
    /// host lines come from the page; `load_ms` is the page's load time.
    pub fn receipt(
        &self,
        run: &RunRecord,
        load_ms: f64,
        timestamp: &str,
        host: &HostInfo,
    ) -> Result<Receipt, Error> {
        let kernels: Vec<&str> = run.counters.kernels().iter().map(|k| k.id).collect();
        let isa = match (
            cfg!(target_feature = "simd128"),
            cfg!(target_feature = "relaxed-simd"),
        ) {
            (true, true) => "simd128 + relaxed-simd kernels",
            (true, false) => "simd128 kernels",
            _ => "portable kernels",
        };
        let head = match run.lm_head {
            LmHead::Exact => "",
            LmHead::Q8 => ", int8 LM head (lmHead q8, changes numerics)",
        };
        let summary = format!(
            "wasm32: {isa}, 1 thread (Web Worker){head}; ran {}",
            kernels.join("+")
        );
        let summary = truncate(&summary, bitnet_core::receipt::BACKEND_SUMMARY_CAP);
        let info = RunInfo {
            backend: Backend::Wasm,
            backend_summary: summary,
            deterministic: run.sampler.temperature <= 0.0,
            seed: run.sampler.seed,
            threads: 1,
            model: ModelInfo {
                name: truncate(
                    &self.summary.file_name,
                    bitnet_core::receipt::MODEL_NAME_CAP,
                ),
                arch: truncate(&self.summary.arch, bitnet_core::receipt::MODEL_ARCH_CAP),
                sha256: self.sha256,
                quant_types: &self.summary.quant_types,
                parameters: self.summary.parameters,
                layers: u32::try_from(self.summary.layers).unwrap_or(u32::MAX),
            },
            prompt_tokens: u32::try_from(run.prompt_ids.len()).unwrap_or(u32::MAX),
            requested_tokens: u32::try_from(run.requested).unwrap_or(u32::MAX),
            generated_ids: &run.generated,
            load_ms,
            prefill_ms: run.prefill_ms,
            decode_ms: run.decode_ms,
        };
        Receipt::build(&info, &run.counters, timestamp, host.fingerprint())
            .map_err(|e| Error::Receipt(e.to_string()))
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The browser side of a receipt's fingerprint.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// What identifies the CPU from a page (`navigator.hardwareConcurrency`
    /// and platform).
    pub cpu: String,
    /// The browser (`navigator.userAgent`).
    pub os: String,
}

/// `rustc -V` of the compiler that built this crate (see `build.rs`).
pub const RUSTC_VERSION: &str = env!("BITNET_RUSTC_VERSION");

impl HostInfo {
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            gpu_cc: None,
            gpu_name: None,
            cpu_id: fit(&self.cpu),
            os: fit(&self.os),
            rustc: fit(RUSTC_VERSION),
            bitnet_version: fit(env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `s` as a fixed-capacity receipt string, cut at a char boundary when
/// longer (a long user agent still identifies the browser).
fn fit<const N: usize>(s: &str) -> FixedString<N> {
    let mut out = FixedString::new();
    for ch in s.chars() {
        if out.push(ch).is_err() {
            break;
        }
    }
    out
}
