//! [`bitnet_status`]: the result code of every fallible function, and the
//! crate-internal [`Error`] (a status plus the message that
//! `bitnet_last_error` returns).

use core::ffi::c_char;

use bitnet_core::gguf::GgufError;
use bitnet_core::kernels::KernelUnavailable;
use bitnet_core::model::ModelError;
use bitnet_core::quant::QuantError;
use bitnet_core::sample::SampleError;
use bitnet_core::tokenizer::TokenizerError;

/// Result of every fallible `bitnet_*` function. `BITNET_STATUS_OK` is 0;
/// every error code lies above 7000 so it cannot be mistaken for a count, an
/// errno value or a boolean. `bitnet_status_str` names a code and
/// `bitnet_last_error` gives the message of the last failure on this thread.
///
/// Codes 7100..7199 correspond one to one to the engine's error types
/// (bitnet-core's `GgufError`, `TokenizerError`, `ModelError`, `QuantError`,
/// `SampleError`); a `ModelError` that wraps a GGUF or quant error reports
/// the wrapped type's code. Codes are never renumbered (ABI).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum bitnet_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument is NULL.
    NullArg = 7001,
    /// An argument has an impossible value (unknown enum value, zero size,
    /// token id outside the vocabulary, ...).
    InvalidArg = 7002,
    /// The caller's buffer is too small; the required size was written to the
    /// length output.
    BufferTooSmall = 7003,
    /// Text or a path is not valid UTF-8.
    Utf8 = 7004,
    /// A file could not be opened, mapped or read.
    Io = 7005,
    /// A Rust panic was caught at the API boundary. The object the call
    /// worked on may be inconsistent: reset a session (which clears this) or
    /// free it.
    Panic = 7006,
    /// The load was cancelled by the progress callback.
    Cancelled = 7007,
    /// A forced kernel tier (`bitnet_model_params.kernel`) is not supported
    /// by this CPU.
    KernelUnavailable = 7008,
    /// The model file has no tokenizer metadata.
    NoTokenizer = 7009,
    /// The call is not possible in the object's current state (logits asked
    /// for before any evaluation or after a reset, ...).
    InvalidState = 7010,
    /// A session was used from two threads at once, or from inside its own
    /// callback.
    Busy = 7011,
    /// A receipt could not be built or rendered.
    Receipt = 7012,
    /// A strict load (`bitnet_model_params.strict`, `BITNET_STRICT=1`)
    /// refused the model: a validation rule found an error-level problem
    /// (the last error names the rule and the tensor). Added in ABI
    /// version 3.
    Validation = 7013,
    /// The GGUF container is malformed or lacks a value (`GgufError`).
    Gguf = 7100,
    /// The tokenizer metadata is unusable or encoding/decoding failed
    /// (`TokenizerError`).
    Tokenizer = 7101,
    /// The model cannot be loaded or evaluated: unsupported architecture,
    /// missing tensor, context full, ... (`ModelError`).
    Model = 7102,
    /// A quantized tensor or kernel refused its arguments (`QuantError`).
    Quant = 7103,
    /// Sampling failed (`SampleError`).
    Sample = 7104,
}

impl bitnet_status {
    /// Every status, for `bitnet_status_str` and the tests.
    pub(crate) const ALL: [Self; 19] = [
        Self::Ok,
        Self::NullArg,
        Self::InvalidArg,
        Self::BufferTooSmall,
        Self::Utf8,
        Self::Io,
        Self::Panic,
        Self::Cancelled,
        Self::KernelUnavailable,
        Self::NoTokenizer,
        Self::InvalidState,
        Self::Busy,
        Self::Receipt,
        Self::Validation,
        Self::Gguf,
        Self::Tokenizer,
        Self::Model,
        Self::Quant,
        Self::Sample,
    ];

    /// A static, NUL-terminated description.
    pub(crate) const fn description(self) -> &'static core::ffi::CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullArg => c"a required pointer argument is NULL",
            Self::InvalidArg => c"invalid argument",
            Self::BufferTooSmall => c"buffer too small",
            Self::Utf8 => c"invalid UTF-8",
            Self::Io => c"I/O error",
            Self::Panic => c"internal panic caught at the API boundary",
            Self::Cancelled => c"cancelled by the progress callback",
            Self::KernelUnavailable => c"kernel tier not supported by this CPU",
            Self::NoTokenizer => c"the model has no tokenizer",
            Self::InvalidState => c"not possible in the object's current state",
            Self::Busy => c"session in use by another call",
            Self::Receipt => c"receipt error",
            Self::Validation => c"refused by strict validation",
            Self::Gguf => c"GGUF error",
            Self::Tokenizer => c"tokenizer error",
            Self::Model => c"model error",
            Self::Quant => c"quantized kernel error",
            Self::Sample => c"sampling error",
        }
    }
}

/// Returns a static, NUL-terminated description of `status` (a
/// `bitnet_status` value; unknown values give "unknown status").
///
/// Thread-safe; never fails. The string must not be freed.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_status_str(status: u32) -> *const c_char {
    const UNKNOWN: &core::ffi::CStr = c"unknown status";
    crate::boundary::ffi_infallible("bitnet_status_str", UNKNOWN.as_ptr(), || {
        bitnet_status::ALL
            .iter()
            .find(|s| **s as u32 == status)
            .map_or(UNKNOWN, |s| s.description())
            .as_ptr()
    })
}

/// A failed call: the status to return and the message for
/// `bitnet_last_error`.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) status: bitnet_status,
    pub(crate) message: String,
}

impl Error {
    pub(crate) fn new(status: bitnet_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(bitnet_status::InvalidArg, message)
    }
}

pub(crate) type Result<T> = core::result::Result<T, Error>;

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Self::new(bitnet_status::Gguf, e.to_string())
    }
}

impl From<TokenizerError> for Error {
    fn from(e: TokenizerError) -> Self {
        Self::new(bitnet_status::Tokenizer, e.to_string())
    }
}

impl From<QuantError> for Error {
    fn from(e: QuantError) -> Self {
        Self::new(bitnet_status::Quant, e.to_string())
    }
}

impl From<SampleError> for Error {
    fn from(e: SampleError) -> Self {
        Self::new(bitnet_status::Sample, e.to_string())
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        let status = match &e {
            ModelError::Metadata(_) => bitnet_status::Gguf,
            ModelError::Quant { .. } => bitnet_status::Quant,
            _ => bitnet_status::Model,
        };
        Self::new(status, e.to_string())
    }
}

impl From<KernelUnavailable> for Error {
    fn from(e: KernelUnavailable) -> Self {
        Self::new(bitnet_status::KernelUnavailable, e.to_string())
    }
}

impl From<bitnet_std::Error> for Error {
    fn from(e: bitnet_std::Error) -> Self {
        use bitnet_std::Error as E;
        let status = match &e {
            E::Io { .. } => bitnet_status::Io,
            E::Gguf { .. } => bitnet_status::Gguf,
            E::Tokenizer(_) => bitnet_status::Tokenizer,
            E::Model(m) => return m.clone().into(),
            E::Render(_) => bitnet_status::Receipt,
            _ => bitnet_status::InvalidArg,
        };
        Self::new(status, e.to_string())
    }
}
