//! `bitnet-std`: the std side of bitnet — memory-mapped model files, the
//! `bitnet` command-line tool and (in later modules) threads, benchmarks
//! and receipts.

pub mod bench;
pub mod correction_policy;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod engine;
pub mod error;
pub mod inspect;
pub mod model_file;
pub mod parallel;
pub mod perplexity;
pub mod receipt;
pub mod validate_cmd;

pub use error::Error;
pub use model_file::ModelFile;
