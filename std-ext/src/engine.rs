//! Loading a model file for the CLI, the benchmarks and the C ABI: the
//! parsed container, the model view and its tokenizer, plus thread and
//! kernel selection.

use bitnet_core::gguf::Gguf;
use bitnet_core::kernels::{KernelChoice, Platform};
use bitnet_core::model::Model;
use bitnet_core::tokenizer::Tokenizer;

use bitnet_core::validate::{ValidationReport, apply_to_weights};

use crate::validate_cmd::{ValidateError, ValidationOptions, check_for_load};
use crate::{Error, ModelFile};

/// The `Join` the engine's threads use: rayon with the `rayon` feature,
/// else serial.
#[cfg(feature = "rayon")]
pub type ThreadJoin = crate::parallel::RayonJoin;
/// The `Join` the engine's threads use: rayon with the `rayon` feature,
/// else serial.
#[cfg(not(feature = "rayon"))]
pub type ThreadJoin = bitnet_core::parallel::SerialJoin;

/// A model file parsed and loaded: everything borrows the mapped bytes.
pub struct Loaded<'f> {
    /// The container.
    pub gguf: Gguf<'f>,
    /// The model (weights borrowed zero-copy).
    pub model: Model<'f>,
    /// The tokenizer, when the file has one.
    pub tokenizer: Option<Tokenizer>,
}

impl<'f> Loaded<'f> {
    /// Parses `file` and loads its model and tokenizer, running the cheap
    /// validation rules (findings go to stderr), or every rule and refusing
    /// errors when `BITNET_STRICT=1`, as the CLI does: the loader of tools
    /// without validation flags (`cargo xtask benchmark`, ...).
    pub fn new(file: &'f ModelFile) -> Result<Self, Error> {
        Self::checked(file, &ValidationOptions::without_policy(false, false)).map(|(l, _)| l)
    }

    /// [`Loaded::new`] under `opts`: the cheap rules always, every rule in
    /// strict mode (which refuses error-level findings), and the policy's
    /// corrections applied when allowed. Returns the report so receipts can
    /// record the corrections.
    pub fn checked(
        file: &'f ModelFile,
        opts: &ValidationOptions,
    ) -> Result<(Self, ValidationReport), Error> {
        let gguf = file.gguf()?;
        let report = check_for_load(file, &gguf, opts).map_err(|e| match e {
            ValidateError::Model(e) => e,
            ValidateError::Refused { .. } => Error::Refused(e.to_string()),
            other => Error::Usage(other.to_string()),
        })?;
        let mut model = Model::from_gguf(&gguf)?;
        apply_to_weights(&report.corrections, &model.config, &mut model.weights)
            .map_err(|e| Error::Usage(format!("correction policy: {e}")))?;
        let tokenizer = if gguf.get("tokenizer.ggml.model").is_some() {
            Some(Tokenizer::from_gguf(&gguf)?)
        } else {
            None
        };
        Ok((
            Self {
                gguf,
                model,
                tokenizer,
            },
            report,
        ))
    }

    /// The tokenizer, or an error saying the file has none.
    pub fn tokenizer(&self) -> Result<&Tokenizer, Error> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| Error::Usage("the model file has no tokenizer; pass --tokens".into()))
    }

    /// Token ids that end generation: EOS and EOT.
    pub fn stop_tokens(&self) -> Vec<u32> {
        self.tokenizer
            .as_ref()
            .map(|t| {
                let s = t.special_tokens();
                [s.eos, s.eot].into_iter().flatten().collect()
            })
            .unwrap_or_default()
    }
}

/// Parses a `--kernel` value: `auto`, `scalar`, `avx2`, `avx512`, `tl1`,
/// `tl2`.
pub fn parse_kernel(s: &str) -> Result<KernelChoice, String> {
    match s {
        "auto" => Ok(KernelChoice::Auto),
        "scalar" | "portable" => Ok(KernelChoice::Scalar),
        "avx2" => Ok(KernelChoice::Avx2),
        "avx512" | "avx512vnni" => Ok(KernelChoice::Avx512),
        "tl1" => Ok(KernelChoice::Tl1),
        "tl2" => Ok(KernelChoice::Tl2),
        other => Err(format!(
            "unknown kernel '{other}' (expected auto, scalar, avx2, avx512, tl1 or tl2)"
        )),
    }
}

/// The platform for a `--kernel` choice, or an error naming what this CPU
/// lacks.
pub fn platform(choice: KernelChoice) -> Result<Platform, Error> {
    Platform::with_choice(choice).map_err(|e| Error::Usage(e.to_string()))
}

/// Prepares `model` for a `--kernel` choice: for `tl1` / `tl2` repacks its
/// ternary (I2_S, TQ1_0, TQ2_0) projections into the lookup-table layout (owned copies; results
/// stay identical). Returns the number of matrices repacked.
pub fn prepare(model: &mut Model<'_>, choice: KernelChoice) -> Result<usize, Error> {
    match choice.lut() {
        Some(kind) => {
            let layout = platform(choice)?.tl_layout(kind);
            Ok(model.weights.repack_tl(kind, layout)?)
        }
        None => Ok(0),
    }
}

/// The LM head's numerics (`--lm-head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LmHead {
    /// The file's head as stored (F16 for the tied embedding): exact.
    #[default]
    Exact,
    /// Int8 per row, quantized at load (**changes numerics**; the kernel
    /// ids `q8_head_gemv_*` in receipts say so).
    Q8,
}

/// Parses a `--lm-head` value: `f16` / `exact`, or `q8`.
pub fn parse_lm_head(s: &str) -> Result<LmHead, String> {
    match s {
        "f16" | "exact" => Ok(LmHead::Exact),
        "q8" => Ok(LmHead::Q8),
        other => Err(format!("unknown LM head '{other}' (expected f16 or q8)")),
    }
}

/// Applies a `--lm-head` choice to `model` (q8: quantizes a float head to
/// int8 per row; embedding look-ups stay exact). Returns whether the head
/// changed.
pub fn prepare_head(model: &mut Model<'_>, head: LmHead) -> Result<bool, Error> {
    match head {
        LmHead::Exact => Ok(false),
        LmHead::Q8 => Ok(model.weights.quantize_lm_head_q8()?),
    }
}

/// Runs `f` with `threads` worker threads (0: one per core) for
/// [`ThreadJoin`].
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R, Error> {
    #[cfg(feature = "rayon")]
    {
        crate::parallel::with_threads(threads, f).map_err(Error::Usage)
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = threads;
        Ok(f())
    }
}

/// Default thread count: the cores this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
