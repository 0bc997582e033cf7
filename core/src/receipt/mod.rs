//! Receipts (DESIGN.md §7): one type, [`Receipt`], used by every writer and
//! verifier.
//!
//! - [`KernelCounters`]: kernel ids, calls and weight bytes, recorded by the
//!   dispatch that ran each kernel, and per-pass evidence for
//!   `compute_path`.
//! - [`Receipt::build`]: a schema 1.1.0 receipt from counters, measured
//!   timings, the generated token ids, and the host's timestamp and
//!   [`Fingerprint`] (which `bitnet-std` supplies).
//! - [`parse`] / [`to_json`]: `serde-json-core`, fixed capacities, no panic
//!   on any input bytes.
//! - [`verify`]: the rules, each failing with its own [`Rejection`] and exit
//!   code.
//!
//! Schema 1.1.0 adds the host fingerprint; 1.0 / 1.0.0 receipts (the same
//! fields without it) still parse and verify. The generated token ids are
//! hashed with 64-bit FNV-1a ([`token_ids_fnv1a64`]).

mod builder;
mod counters;
mod schema;
mod verify;

use alloc::vec::Vec;
use core::fmt;

pub use builder::{Backend, BuildError, ModelInfo, RunInfo};
pub use counters::{KernelCount, KernelCounters, Projections};
pub use schema::*;
pub use verify::{
    BACKENDS, FAKE_KERNEL_MARKERS, GPU_KERNEL_SEGMENTS, KernelIdProblem, MAX_KERNEL_ID_LEN, Policy,
    QUANTIZED_KERNEL_PREFIXES, Rejection, THROUGHPUT_REL_TOLERANCE, is_gpu_kernel,
    is_quantized_kernel, verify,
};

/// Largest receipt file accepted (a full receipt is about 2 KiB).
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;
/// Deepest `{` / `[` nesting accepted. The schema nests 3 deep; the limit
/// keeps a hostile file from recursing through the parser.
pub const MAX_JSON_DEPTH: usize = 8;
/// Unescape buffer for one string value: the largest string capacity.
const UNESCAPE_BUF: usize = 256;

/// Why bytes are not a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The input is larger than [`MAX_RECEIPT_BYTES`].
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Brackets nest deeper than [`MAX_JSON_DEPTH`].
    TooDeep {
        /// Byte offset where the limit was passed.
        offset: usize,
    },
    /// Not JSON, or JSON that does not match the schema (missing or unknown
    /// field, wrong type, a value over its capacity).
    Json(serde_json_core::de::Error),
    /// A number too large for an f64 (JSON has no infinity or NaN, but an
    /// exponent like `1e999` overflows to one).
    NonFinite {
        /// The field, e.g. `timings.load_ms`.
        field: &'static str,
    },
}

impl ParseError {
    /// The process exit code for an unreadable receipt (rule codes start
    /// at 11, see [`Rejection::exit_code`]).
    pub const EXIT_CODE: u8 = 10;
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len } => {
                write!(f, "receipt is {len} bytes, more than {MAX_RECEIPT_BYTES}")
            }
            Self::TooDeep { offset } => write!(
                f,
                "receipt nests deeper than {MAX_JSON_DEPTH} levels at byte {offset}"
            ),
            Self::Json(e) => write!(f, "malformed receipt JSON: {e}"),
            Self::NonFinite { field } => {
                write!(f, "receipt field {field} is not a finite number")
            }
        }
    }
}

impl core::error::Error for ParseError {}

/// Rejects nesting deeper than [`MAX_JSON_DEPTH`], skipping string
/// contents. Malformed JSON is left to the parser.
fn check_depth(bytes: &[u8]) -> Result<(), ParseError> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (offset, &b) in bytes.iter().enumerate() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ParseError::TooDeep { offset });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses a receipt of any supported schema. Never panics; unknown fields
/// are errors.
pub fn parse(bytes: &[u8]) -> Result<Receipt, ParseError> {
    if bytes.len() > MAX_RECEIPT_BYTES {
        return Err(ParseError::TooLarge { len: bytes.len() });
    }
    check_depth(bytes)?;
    let mut buf = [0u8; UNESCAPE_BUF];
    let (r, _): (Receipt, _) =
        serde_json_core::from_slice_escaped(bytes, &mut buf).map_err(ParseError::Json)?;
    let t = &r.timings;
    for (field, v) in [
        ("timings.load_ms", t.load_ms),
        ("timings.prefill_ms", t.prefill_ms),
        ("timings.decode_ms", t.decode_ms),
        ("timings.tokens_per_sec", t.tokens_per_sec),
    ] {
        if !v.is_finite() {
            return Err(ParseError::NonFinite { field });
        }
    }
    Ok(r)
}

/// Serializes a receipt as compact JSON.
pub fn to_json(r: &Receipt) -> Result<Vec<u8>, serde_json_core::ser::Error> {
    let mut buf = alloc::vec![0u8; MAX_RECEIPT_BYTES];
    let n = serde_json_core::to_slice(r, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests;
