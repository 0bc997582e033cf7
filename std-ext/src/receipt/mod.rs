//! Receipts on a host: [`ReceiptBuilder`] (core's [`Receipt::build`] plus
//! this host's timestamp and fingerprint), file I/O, and the verifier's
//! [`policy`] (bandwidth ceilings, allowlist).
//!
//! A benchmark fills a [`KernelCounters`] where its kernels run, measures
//! its phases, then:
//!
//! ```no_run
//! # use bitnet_core::receipt::{Backend, KernelCounters, ModelInfo, RunInfo};
//! # use bitnet_std::receipt::{ReceiptBuilder, sha256, write_receipt};
//! # fn run(counters: &KernelCounters, file: &[u8], ids: &[u32]) -> Result<(), bitnet_std::receipt::ReceiptError> {
//! let run = RunInfo {
//!     backend: Backend::Cpu,
//!     backend_summary: "cpu: avx2, 4 threads",
//!     deterministic: true,
//!     seed: 42,
//!     threads: 4,
//!     model: ModelInfo {
//!         name: "model.gguf",
//!         arch: "bitnet",
//!         sha256: sha256(file),
//!         quant_types: &["I2_S", "F16"],
//!         parameters: 2_400_000_000,
//!         layers: 30,
//!     },
//!     prompt_tokens: 8,
//!     requested_tokens: 128,
//!     generated_ids: ids,
//!     load_ms: 120.0,
//!     prefill_ms: 35.0,
//!     decode_ms: 2400.0,
//! };
//! let receipt = ReceiptBuilder::new(run).build(counters)?;
//! write_receipt("ci/inference.json".as_ref(), &receipt)?;
//! # Ok(()) }
//! ```

mod host;
pub mod policy;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use bitnet_core::receipt::{
    BuildError, KernelCounters, MAX_RECEIPT_BYTES, ParseError, Receipt, RunInfo,
};
pub use host::{
    GpuInfo, RUSTC_VERSION, cpu_id, cpu_id_from_cpuinfo, fit, host_fingerprint, os_id, rfc3339_utc,
};
pub use policy::{Allowlist, FastGpu, bandwidth_ceiling, policy_for};
use sha2::{Digest, Sha256};

/// What can go wrong writing or reading receipts.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The run does not fit a receipt.
    #[error("cannot build receipt: {0}")]
    Build(#[from] BuildError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A receipt file is not a receipt.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ParseError,
    },
    /// A receipt could not be rendered as JSON.
    #[error("cannot render receipt: {0}")]
    Render(String),
    /// An allowlist file is malformed.
    #[error("{path}: {reason}")]
    Allowlist {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// SHA-256 of `bytes` (the model file, for `ModelInfo::sha256`).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Builds receipts on this host: the caller's run and kernel counters,
/// plus the current time and this host's fingerprint.
#[derive(Debug, Clone)]
pub struct ReceiptBuilder<'a> {
    run: RunInfo<'a>,
    gpu: Option<GpuInfo>,
}

impl<'a> ReceiptBuilder<'a> {
    /// A builder for `run`.
    pub fn new(run: RunInfo<'a>) -> Self {
        Self { run, gpu: None }
    }

    /// The GPU the run used (cuda backend), for the fingerprint.
    pub fn gpu(mut self, gpu: GpuInfo) -> Self {
        self.gpu = Some(gpu);
        self
    }

    /// A schema 1.1.0 receipt from `counters`, stamped now.
    pub fn build(&self, counters: &KernelCounters) -> Result<Receipt, ReceiptError> {
        let now = rfc3339_utc(SystemTime::now());
        let fp = host_fingerprint(self.gpu.as_ref());
        Ok(Receipt::build(&self.run, counters, &now, fp)?)
    }
}

/// Writes `r` as pretty JSON (one key a line) to `path`, creating its
/// directory.
pub fn write_receipt(path: &Path, r: &Receipt) -> Result<(), ReceiptError> {
    let io = |source| ReceiptError::Io {
        path: path.to_owned(),
        source,
    };
    let mut text =
        serde_json::to_string_pretty(r).map_err(|e| ReceiptError::Render(e.to_string()))?;
    text.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// Reads a receipt file with core's parser (at most [`MAX_RECEIPT_BYTES`]
/// are read).
pub fn read_receipt(path: &Path) -> Result<Receipt, ReceiptError> {
    use std::io::Read;
    let io = |source| ReceiptError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // One byte past the limit so that an oversized file is reported as such.
    file.take(MAX_RECEIPT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    bitnet_core::receipt::parse(&bytes).map_err(|source| ReceiptError::Parse {
        path: path.to_owned(),
        source,
    })
}
