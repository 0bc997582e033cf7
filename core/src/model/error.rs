//! [`ModelError`]: everything that can go wrong loading or running a model.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::gguf::GgufError;
use crate::quant::QuantError;

/// Why a model could not be loaded, or a forward pass / generation step
/// could not run. Every variant carries the offending names and values.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// `general.architecture` is missing or not a string.
    MissingArchitecture,
    /// An architecture this engine does not implement.
    UnknownArchitecture {
        /// The value of `general.architecture`.
        arch: String,
    },
    /// A metadata key is missing or has the wrong type.
    Metadata(GgufError),
    /// A hyper-parameter has an impossible value.
    BadHyperParameter {
        /// The metadata key (or derived quantity).
        key: String,
        /// Its value (floats as their integer part are not used: see `reason`).
        value: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A float hyper-parameter is not finite or out of range.
    BadFloatParameter {
        /// The metadata key.
        key: String,
        /// Its value.
        value: f32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `n_head` is not a multiple of `n_head_kv` (or either is zero).
    HeadsDoNotDivide {
        /// Query heads.
        n_head: usize,
        /// Key/value heads.
        n_head_kv: usize,
    },
    /// A tensor the architecture needs is not in the file.
    MissingTensor {
        /// The tensor name.
        name: String,
    },
    /// A tensor the engine cannot honour (e.g. a bias it would ignore).
    UnsupportedTensor {
        /// The tensor name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A tensor's dims disagree with the metadata.
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// The dims the metadata implies (ne0 first).
        expected: Vec<u64>,
        /// The dims in the file.
        actual: Vec<u64>,
    },
    /// The vocabulary size from one source disagrees with the embedding rows.
    VocabMismatch {
        /// Rows of `token_embd.weight`.
        embedding_rows: usize,
        /// Where the other number comes from.
        source: &'static str,
        /// The other number.
        value: usize,
    },
    /// A norm weight or scale is NaN or infinite.
    NotFinite {
        /// The tensor name.
        name: String,
        /// Element index.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A quantized matrix's own scale (I2_S: the f32 in the tensor's 32-byte
    /// tail, which multiplies every output) is NaN or infinite.
    ScaleNotFinite {
        /// The tensor name.
        name: String,
        /// The scale.
        value: f32,
    },
    /// A tensor type this engine cannot use in that role.
    UnsupportedType {
        /// The tensor name.
        name: String,
        /// The ggml type name.
        ggml_type: &'static str,
    },
    /// A quantized-matrix check or kernel failed for a tensor.
    Quant {
        /// The tensor name.
        name: String,
        /// The kernel's error.
        source: QuantError,
    },
    /// Evaluating `n_tokens` tokens at position `pos` would exceed the
    /// context of `n_ctx` positions.
    ContextFull {
        /// First position of the batch.
        pos: usize,
        /// Tokens in the batch.
        n_tokens: usize,
        /// Context length of the KV cache.
        n_ctx: usize,
    },
    /// A token id at or above the vocabulary size.
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// An empty batch of tokens (or an empty prompt).
    EmptyInput,
    /// Logits for every position were requested for more tokens than the
    /// run state's batch capacity.
    BatchTooLarge {
        /// Tokens passed.
        n_tokens: usize,
        /// The run state's `max_batch`.
        max_batch: usize,
    },
    /// A run state of the wrong size for this model, or a zero size.
    BadRunState {
        /// What is wrong.
        reason: &'static str,
    },
    /// Allocating `bytes` bytes of buffers failed.
    AllocFailed {
        /// The requested size.
        bytes: usize,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingArchitecture => {
                f.write_str("general.architecture is missing or not a string")
            }
            Self::UnknownArchitecture { arch } => write!(
                f,
                "architecture {arch:?} is not supported (supported: bitnet-b1.58, bitnet, llama)"
            ),
            Self::Metadata(e) => write!(f, "metadata: {e}"),
            Self::BadHyperParameter { key, value, reason } => {
                write!(f, "hyper-parameter {key} = {value}: {reason}")
            }
            Self::BadFloatParameter { key, value, reason } => {
                write!(f, "hyper-parameter {key} = {value}: {reason}")
            }
            Self::HeadsDoNotDivide { n_head, n_head_kv } => write!(
                f,
                "head count {n_head} is not a positive multiple of the KV head count {n_head_kv}"
            ),
            Self::MissingTensor { name } => write!(f, "tensor {name} is missing"),
            Self::UnsupportedTensor { name, reason } => {
                write!(f, "tensor {name} is not supported: {reason}")
            }
            Self::ShapeMismatch {
                name,
                expected,
                actual,
            } => write!(
                f,
                "tensor {name} has dims {actual:?}, the metadata implies {expected:?}"
            ),
            Self::VocabMismatch {
                embedding_rows,
                source,
                value,
            } => write!(
                f,
                "token_embd.weight has {embedding_rows} rows but {source} says {value}"
            ),
            Self::NotFinite { name, index, value } => {
                write!(f, "tensor {name} element {index} is {value}, not finite")
            }
            Self::ScaleNotFinite { name, value } => {
                write!(
                    f,
                    "tensor {name} has the per-tensor scale {value}, not finite"
                )
            }
            Self::UnsupportedType { name, ggml_type } => {
                write!(f, "tensor {name} has type {ggml_type}, not supported there")
            }
            Self::Quant { name, source } => write!(f, "tensor {name}: {source}"),
            Self::ContextFull {
                pos,
                n_tokens,
                n_ctx,
            } => write!(
                f,
                "context full: {n_tokens} tokens at position {pos} exceed the context of {n_ctx}"
            ),
            Self::TokenOutOfRange { token, vocab } => {
                write!(f, "token id {token} is outside the vocabulary of {vocab}")
            }
            Self::EmptyInput => f.write_str("no tokens to evaluate"),
            Self::BatchTooLarge {
                n_tokens,
                max_batch,
            } => write!(
                f,
                "logits for all {n_tokens} positions requested, but the run state holds {max_batch}"
            ),
            Self::BadRunState { reason } => write!(f, "run state: {reason}"),
            Self::AllocFailed { bytes } => write!(f, "allocating {bytes} bytes failed"),
        }
    }
}

impl core::error::Error for ModelError {}

impl From<GgufError> for ModelError {
    fn from(e: GgufError) -> Self {
        Self::Metadata(e)
    }
}

/// A zero-filled `Vec` of `len` elements, reporting allocation failure.
pub(crate) fn zeroed<T: Copy + Default>(len: usize) -> Result<Vec<T>, ModelError> {
    let bytes = len.saturating_mul(core::mem::size_of::<T>());
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| ModelError::AllocFailed { bytes })?;
    v.resize(len, T::default());
    Ok(v)
}

/// `a * b`, or a [`ModelError::BadHyperParameter`] naming `what`.
pub(crate) fn mul(what: &str, a: usize, b: usize) -> Result<usize, ModelError> {
    a.checked_mul(b)
        .ok_or_else(|| ModelError::BadHyperParameter {
            key: String::from(what),
            value: a as u64,
            reason: "size overflows usize",
        })
}
