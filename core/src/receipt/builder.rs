//! [`Receipt::build`]: the only way this crate makes a receipt, from the
//! [`KernelCounters`] of a run and numbers the caller measured.

use core::fmt;

use heapless::{String, Vec};

use super::counters::KernelCounters;
use super::schema::{
    CorrectionRecord, Fingerprint, KernelRecord, ModelRecord, Receipt, SCHEMA_VERSION, Timings,
    TokenRecord, hex, token_ids_fnv1a64,
};

/// Where the kernels ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Host CPU.
    Cpu,
    /// NVIDIA GPU.
    Cuda,
    /// WebAssembly in a browser or runtime.
    Wasm,
}

impl Backend {
    /// The receipt spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Wasm => "wasm",
        }
    }
}

/// The model of a run.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo<'a> {
    /// File name or `general.name`.
    pub name: &'a str,
    /// `general.architecture`.
    pub arch: &'a str,
    /// SHA-256 digest of the model file.
    pub sha256: [u8; 32],
    /// Quant type names of its tensors.
    pub quant_types: &'a [&'a str],
    /// Parameter count.
    pub parameters: u64,
    /// Transformer layers.
    pub layers: u32,
}

/// Settings and measurements of one run; the kernel evidence comes
/// separately, from [`KernelCounters`].
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    /// Where the kernels ran.
    pub backend: Backend,
    /// Free text for people ("cpu: portable scalar kernels, 4 threads").
    pub backend_summary: &'a str,
    /// Whether sampling was deterministic.
    pub deterministic: bool,
    /// Sampling seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: u32,
    /// The model.
    pub model: ModelInfo<'a>,
    /// Prompt tokens evaluated.
    pub prompt_tokens: u32,
    /// Tokens asked for.
    pub requested_tokens: u32,
    /// Token ids generated, in order.
    pub generated_ids: &'a [u32],
    /// Model load time, ms.
    pub load_ms: f64,
    /// Prompt evaluation time, ms.
    pub prefill_ms: f64,
    /// Time to generate `generated_ids` after the prompt, ms.
    pub decode_ms: f64,
}

/// Why a receipt could not be built. The run's facts are written as they
/// are (a run that was not real gets `compute_path` "partial"); these errors
/// only say that they do not fit the receipt's types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// A text field is longer than its capacity.
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// More distinct kernel ids ran than a receipt holds.
    TooManyKernels {
        /// Calls of ids that did not fit.
        dropped_calls: u64,
    },
    /// More quant types than a receipt holds.
    TooManyQuantTypes {
        /// How many were given.
        count: usize,
    },
    /// More generated tokens than a `u32` counts.
    TooManyTokens {
        /// How many were given.
        count: usize,
    },
    /// A timing is NaN or infinite (JSON cannot carry it).
    NonFiniteTiming {
        /// The field.
        field: &'static str,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldTooLong { field, len } => {
                write!(f, "receipt field {field} is too long ({len} bytes)")
            }
            Self::TooManyKernels { dropped_calls } => write!(
                f,
                "more kernel ids ran than a receipt holds ({dropped_calls} calls not recorded)"
            ),
            Self::TooManyQuantTypes { count } => {
                write!(f, "{count} quant types do not fit a receipt")
            }
            Self::TooManyTokens { count } => write!(f, "{count} generated tokens overflow u32"),
            Self::NonFiniteTiming { field } => write!(f, "timing {field} is not finite"),
        }
    }
}

impl core::error::Error for BuildError {}

/// Copies `s` into a string of capacity `N`.
fn text<const N: usize>(field: &'static str, s: &str) -> Result<String<N>, BuildError> {
    String::try_from(s).map_err(|_| BuildError::FieldTooLong {
        field,
        len: s.len(),
    })
}

impl Receipt {
    /// Builds a schema [`SCHEMA_VERSION`] receipt.
    ///
    /// `kernels`, `compute_path` and `weight_bytes_per_token` come only from
    /// `counters`; `tokens_per_sec` is `generated / decode seconds`; the
    /// token hash is [`token_ids_fnv1a64`] of `run.generated_ids`.
    /// `timestamp` (RFC 3339) and `fingerprint` come from the host, which
    /// this crate cannot see.
    pub fn build(
        run: &RunInfo<'_>,
        counters: &KernelCounters,
        timestamp: &str,
        fingerprint: Fingerprint,
    ) -> Result<Self, BuildError> {
        if counters.dropped_calls() > 0 {
            return Err(BuildError::TooManyKernels {
                dropped_calls: counters.dropped_calls(),
            });
        }
        let generated =
            u32::try_from(run.generated_ids.len()).map_err(|_| BuildError::TooManyTokens {
                count: run.generated_ids.len(),
            })?;
        for (field, v) in [
            ("load_ms", run.load_ms),
            ("prefill_ms", run.prefill_ms),
            ("decode_ms", run.decode_ms),
        ] {
            if !v.is_finite() {
                return Err(BuildError::NonFiniteTiming { field });
            }
        }
        // decode_ms <= 0 is written as 0 tokens/s: the verifier rejects it
        // through the decode time rather than through a made-up rate.
        let rate = f64::from(generated) / (run.decode_ms / 1000.0);
        let tokens_per_sec = if run.decode_ms > 0.0 && rate.is_finite() {
            rate
        } else {
            0.0
        };
        let mut kernels = Vec::new();
        for k in counters.kernels() {
            let rec = KernelRecord {
                id: text("kernels[].id", k.id)?,
                calls: k.calls,
                bytes: k.bytes,
            };
            // Same capacity as the counters: cannot overflow.
            kernels.push(rec).map_err(|_| BuildError::TooManyKernels {
                dropped_calls: k.calls,
            })?;
        }
        let mut quant_types = Vec::new();
        for q in run.model.quant_types {
            quant_types
                .push(text("model.quant_types[]", q)?)
                .map_err(|_| BuildError::TooManyQuantTypes {
                    count: run.model.quant_types.len(),
                })?;
        }
        let real = counters.is_real(u64::from(generated));
        let sha = hex(&run.model.sha256).ok_or(BuildError::FieldTooLong {
            field: "model.sha256",
            len: 64,
        })?;
        let ids_hash = token_ids_fnv1a64(run.generated_ids).to_be_bytes();
        let ids_hash = hex(&ids_hash).ok_or(BuildError::FieldTooLong {
            field: "tokens.generated_ids_fnv1a64",
            len: 16,
        })?;
        Ok(Self {
            schema_version: text("schema_version", SCHEMA_VERSION)?,
            timestamp: text("timestamp", timestamp)?,
            compute_path: text("compute_path", if real { "real" } else { "partial" })?,
            backend: text("backend", run.backend.as_str())?,
            backend_summary: text("backend_summary", run.backend_summary)?,
            kernels,
            deterministic: run.deterministic,
            seed: run.seed,
            threads: run.threads,
            model: ModelRecord {
                name: text("model.name", run.model.name)?,
                arch: text("model.arch", run.model.arch)?,
                sha256: sha,
                quant_types,
                parameters: run.model.parameters,
                layers: run.model.layers,
            },
            tokens: TokenRecord {
                prompt: run.prompt_tokens,
                requested: run.requested_tokens,
                generated,
                generated_ids_fnv1a64: ids_hash,
            },
            timings: Timings {
                load_ms: run.load_ms,
                prefill_ms: run.prefill_ms,
                decode_ms: run.decode_ms,
                tokens_per_sec,
            },
            weight_bytes_per_token: counters.weight_bytes_per_token(),
            fingerprint: Some(fingerprint),
            corrections: None,
            prompt_ids: None,
        })
    }

    /// Records the prompt token ids (for `--recompute`); a prompt longer
    /// than [`super::schema::MAX_PROMPT_IDS`] is an error.
    pub fn with_prompt_ids(mut self, ids: &[u32]) -> Result<Self, BuildError> {
        let list = Vec::from_slice(ids).map_err(|_| BuildError::FieldTooLong {
            field: "prompt_ids",
            len: ids.len(),
        })?;
        self.prompt_ids = Some(list);
        Ok(self)
    }

    /// Records the model corrections the run applied (`kind`, `target`,
    /// `value`, `matched_by`, as `bitnet_core::validate::AppliedCorrection`
    /// describes them). An empty list leaves the field absent.
    pub fn with_corrections<'c>(
        mut self,
        corrections: impl IntoIterator<Item = [&'c str; 4]>,
    ) -> Result<Self, BuildError> {
        let mut list = Vec::new();
        for [kind, target, value, matched_by] in corrections {
            let rec = CorrectionRecord {
                kind: text("corrections[].kind", kind)?,
                target: text("corrections[].target", target)?,
                value: text("corrections[].value", value)?,
                matched_by: text("corrections[].matched_by", matched_by)?,
            };
            list.push(rec).map_err(|_| BuildError::FieldTooLong {
                field: "corrections",
                len: list.len() + 1,
            })?;
        }
        self.corrections = (!list.is_empty()).then_some(list);
        Ok(self)
    }
}
