//! Errors of the std layer.

use std::path::PathBuf;

use bitnet_core::gguf::GgufError;
use bitnet_core::model::ModelError;
use bitnet_core::tokenizer::TokenizerError;

/// What can go wrong in `bitnet-std`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid GGUF container.
    #[error("{path}: {source}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: GgufError,
    },
    /// Output could not be rendered.
    #[error("cannot render output: {0}")]
    Render(String),
    /// The file's tokenizer metadata is unusable, or encoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// The model cannot be loaded or run.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// A command-line or API argument is unusable.
    #[error("{0}")]
    Usage(String),
    /// Strict validation refused the model (exit code 3).
    #[error("{0}")]
    Refused(String),
}
