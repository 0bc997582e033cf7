//! The verifier's rules: pure functions of a parsed [`Receipt`] and a
//! [`Policy`] (the bandwidth ceiling and allowlist are decided by the
//! caller, which knows the host tables and files).
//!
//! Each rule has one [`Rejection`] variant carrying the offending values and
//! one process exit code ([`Rejection::exit_code`]).

use core::fmt;

use super::schema::{
    LEGACY_SCHEMA_VERSIONS, Receipt, SCHEMA_VERSION, SHA256_HEX_LEN, TOKEN_HASH_HEX_LEN,
};

/// Kernel id prefixes of the ternary / quantized weight formats.
pub const QUANTIZED_KERNEL_PREFIXES: [&str; 5] = ["i2s_", "tl1_", "tl2_", "tq1_", "tq2_"];
/// Underscore-separated segments that mark a GPU kernel id
/// (`i2s_gemv_cuda_dp4a`).
pub const GPU_KERNEL_SEGMENTS: [&str; 5] = ["cuda", "hip", "metal", "vulkan", "wgpu"];
/// Substrings that mark a kernel that did no real work (case-insensitive).
pub const FAKE_KERNEL_MARKERS: [&str; 5] = ["mock", "stub", "fake", "dummy", "noop"];
/// Longest kernel id the verifier accepts.
pub const MAX_KERNEL_ID_LEN: usize = 64;
/// `timings.tokens_per_sec` may differ from `generated / decode seconds` by
/// this relative amount: both come from the same two numbers through f64
/// arithmetic and a shortest round-trip JSON encoding, so only rounding of
/// the last bits can differ.
pub const THROUGHPUT_REL_TOLERANCE: f64 = 1e-9;
/// Backends a receipt may name.
pub const BACKENDS: [&str; 3] = ["cpu", "cuda", "wasm"];

/// Whether `id` is a quantized (ternary) kernel, by prefix.
pub fn is_quantized_kernel(id: &str) -> bool {
    QUANTIZED_KERNEL_PREFIXES.iter().any(|p| id.starts_with(p))
}

/// Whether `id` is a GPU kernel: one of its `_`-separated segments is in
/// [`GPU_KERNEL_SEGMENTS`].
pub fn is_gpu_kernel(id: &str) -> bool {
    id.split('_').any(|seg| GPU_KERNEL_SEGMENTS.contains(&seg))
}

/// What the caller decided for this receipt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Demand a GPU kernel whatever the backend (`--require-gpu-kernels`).
    pub require_gpu_kernels: bool,
    /// Memory bandwidth the receipt's hardware could plausibly sustain,
    /// bytes per second.
    pub bandwidth_ceiling_bytes_per_sec: f64,
    /// Tokens per second an allowlist entry vouches for on this receipt's
    /// fingerprint; throughput up to it passes the ceiling rule.
    pub allowlisted_tokens_per_sec: Option<f64>,
}

/// Why a kernel id is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelIdProblem {
    /// The id is "".
    Empty,
    /// Longer than [`MAX_KERNEL_ID_LEN`].
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside `[a-z0-9_]`, or a first character that is not
    /// a letter.
    BadChar {
        /// The character.
        ch: char,
    },
}

/// A verification failure: one variant per rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection<'a> {
    /// `schema_version` is neither 1.1.0 nor a 1.0 spelling.
    UnknownSchema {
        /// The value found.
        found: &'a str,
    },
    /// A 1.1.0 receipt without its host fingerprint.
    MissingFingerprint,
    /// `backend` is not one of [`BACKENDS`].
    UnknownBackend {
        /// The value found.
        found: &'a str,
    },
    /// `compute_path` is not "real".
    ComputePathNotReal {
        /// The value found.
        found: &'a str,
    },
    /// `kernels` is empty.
    NoKernels,
    /// A kernel id is empty, too long or has a bad character.
    MalformedKernelId {
        /// The id.
        id: &'a str,
        /// What is wrong with it.
        problem: KernelIdProblem,
    },
    /// A kernel id names a mock, stub or fake.
    FakeKernel {
        /// The id.
        id: &'a str,
        /// The marker it contains.
        marker: &'static str,
    },
    /// A kernel is listed with zero calls.
    KernelNeverCalled {
        /// The id.
        id: &'a str,
    },
    /// A CPU or wasm receipt without a quantized kernel call.
    NoQuantizedKernel {
        /// The backend.
        backend: &'a str,
    },
    /// A cuda receipt, or `--require-gpu-kernels`, without a GPU kernel.
    NoGpuKernel {
        /// The backend.
        backend: &'a str,
        /// Whether the flag demanded it (else the cuda backend did).
        required_by_flag: bool,
    },
    /// `tokens.generated != tokens.requested`.
    TokenCountMismatch {
        /// Tokens generated.
        generated: u32,
        /// Tokens requested.
        requested: u32,
    },
    /// A hash field is not lower-case hex of the right length.
    MalformedHash {
        /// The field.
        field: &'static str,
        /// Its value.
        value: &'a str,
    },
    /// `timings.decode_ms` is zero or negative.
    NonPositiveDecodeTime {
        /// The value.
        decode_ms: f64,
    },
    /// `timings.load_ms` or `prefill_ms` is negative.
    NegativeTiming {
        /// The field.
        field: &'static str,
        /// The value.
        ms: f64,
    },
    /// Fewer quantized kernel calls than layers x generated tokens: some
    /// token skipped some layer.
    QuantizedCallsTooFew {
        /// Quantized calls in the receipt.
        calls: u64,
        /// `max(layers, 1) * generated`.
        required: u64,
    },
    /// `weight_bytes_per_token` is zero, above all bytes read, or so low
    /// that the passes could not have read the recorded total.
    BytesPerTokenImplausible {
        /// The value.
        bytes_per_token: u64,
        /// Sum of the kernels' bytes.
        total_kernel_bytes: u64,
    },
    /// bytes per token x tokens/s is above the bandwidth ceiling and no
    /// allowlist entry covers it.
    ThroughputAboveCeiling {
        /// `timings.tokens_per_sec`.
        tokens_per_sec: f64,
        /// `weight_bytes_per_token`.
        bytes_per_token: u64,
        /// Their product.
        implied_bytes_per_sec: f64,
        /// The policy's ceiling.
        ceiling_bytes_per_sec: f64,
    },
    /// `tokens_per_sec` disagrees with `generated / decode seconds`.
    ThroughputInconsistent {
        /// `timings.tokens_per_sec`.
        tokens_per_sec: f64,
        /// `generated / (decode_ms / 1000)`.
        expected: f64,
    },
}

impl Rejection<'_> {
    /// The process exit code of this rule (10 is a parse failure, see
    /// [`super::ParseError::EXIT_CODE`]).
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::UnknownSchema { .. } => 11,
            Self::MissingFingerprint => 12,
            Self::UnknownBackend { .. } => 13,
            Self::ComputePathNotReal { .. } => 14,
            Self::NoKernels => 15,
            Self::MalformedKernelId { .. } => 16,
            Self::FakeKernel { .. } => 17,
            Self::KernelNeverCalled { .. } => 18,
            Self::NoQuantizedKernel { .. } => 19,
            Self::NoGpuKernel { .. } => 20,
            Self::TokenCountMismatch { .. } => 21,
            Self::MalformedHash { .. } => 22,
            Self::NonPositiveDecodeTime { .. } => 23,
            Self::NegativeTiming { .. } => 24,
            Self::QuantizedCallsTooFew { .. } => 25,
            Self::BytesPerTokenImplausible { .. } => 26,
            Self::ThroughputAboveCeiling { .. } => 27,
            Self::ThroughputInconsistent { .. } => 28,
        }
    }
}

impl fmt::Display for Rejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownSchema { found } => write!(
                f,
                "unknown schema_version {found:?} (expected {SCHEMA_VERSION:?}, \"1.0\" or \"1.0.0\")"
            ),
            Self::MissingFingerprint => {
                write!(f, "schema {SCHEMA_VERSION} receipt has no fingerprint")
            }
            Self::UnknownBackend { found } => {
                write!(f, "unknown backend {found:?} (expected cpu, cuda or wasm)")
            }
            Self::ComputePathNotReal { found } => {
                write!(f, "compute_path is {found:?}, not \"real\"")
            }
            Self::NoKernels => write!(f, "no kernels recorded"),
            Self::MalformedKernelId { id, problem } => match problem {
                KernelIdProblem::Empty => write!(f, "malformed kernel id: empty"),
                KernelIdProblem::TooLong { len } => write!(
                    f,
                    "malformed kernel id {id:?}: {len} bytes, at most {MAX_KERNEL_ID_LEN}"
                ),
                KernelIdProblem::BadChar { ch } => write!(
                    f,
                    "malformed kernel id {id:?}: character {ch:?} (ids are [a-z][a-z0-9_]*)"
                ),
            },
            Self::FakeKernel { id, marker } => {
                write!(f, "kernel id {id:?} names a {marker} kernel")
            }
            Self::KernelNeverCalled { id } => write!(f, "kernel {id:?} listed with 0 calls"),
            Self::NoQuantizedKernel { backend } => write!(
                f,
                "{backend} receipt has no quantized kernel (i2s_/tl1_/tl2_/tq1_/tq2_)"
            ),
            Self::NoGpuKernel {
                backend,
                required_by_flag,
            } => {
                let why = if *required_by_flag {
                    "--require-gpu-kernels"
                } else {
                    "backend cuda"
                };
                write!(f, "{backend} receipt has no GPU kernel ({why})")
            }
            Self::TokenCountMismatch {
                generated,
                requested,
            } => write!(
                f,
                "generated {generated} tokens but {requested} were requested"
            ),
            Self::MalformedHash { field, value } => {
                write!(
                    f,
                    "{field} {value:?} is not lower-case hex of the right length"
                )
            }
            Self::NonPositiveDecodeTime { decode_ms } => {
                write!(f, "decode time {decode_ms} ms is not positive")
            }
            Self::NegativeTiming { field, ms } => write!(f, "{field} {ms} ms is negative"),
            Self::QuantizedCallsTooFew { calls, required } => write!(
                f,
                "{calls} quantized kernel calls, fewer than layers x generated tokens = {required}"
            ),
            Self::BytesPerTokenImplausible {
                bytes_per_token,
                total_kernel_bytes,
            } => write!(
                f,
                "weight_bytes_per_token {bytes_per_token} is implausible for {total_kernel_bytes} kernel bytes in total"
            ),
            Self::ThroughputAboveCeiling {
                tokens_per_sec,
                bytes_per_token,
                implied_bytes_per_sec,
                ceiling_bytes_per_sec,
            } => write!(
                f,
                "throughput above the hardware ceiling: {tokens_per_sec} tokens/s x {bytes_per_token} bytes/token = {:.3} GB/s > {:.3} GB/s, and no allowlist entry covers it",
                implied_bytes_per_sec / 1e9,
                ceiling_bytes_per_sec / 1e9
            ),
            Self::ThroughputInconsistent {
                tokens_per_sec,
                expected,
            } => write!(
                f,
                "tokens_per_sec {tokens_per_sec} disagrees with generated / decode time = {expected}"
            ),
        }
    }
}

impl core::error::Error for Rejection<'_> {}

fn check_kernel_id(id: &str) -> Result<(), Rejection<'_>> {
    let malformed = |problem| Rejection::MalformedKernelId { id, problem };
    if id.is_empty() {
        return Err(malformed(KernelIdProblem::Empty));
    }
    let contains_ignore_case = |m: &str| {
        id.as_bytes()
            .windows(m.len())
            .any(|w| w.eq_ignore_ascii_case(m.as_bytes()))
    };
    if let Some(marker) = FAKE_KERNEL_MARKERS.iter().find(|m| contains_ignore_case(m)) {
        return Err(Rejection::FakeKernel { id, marker });
    }
    if id.len() > MAX_KERNEL_ID_LEN {
        return Err(malformed(KernelIdProblem::TooLong { len: id.len() }));
    }
    for (i, ch) in id.chars().enumerate() {
        let ok = ch.is_ascii_lowercase() || (i > 0 && (ch.is_ascii_digit() || ch == '_'));
        if !ok {
            return Err(malformed(KernelIdProblem::BadChar { ch }));
        }
    }
    Ok(())
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Applies every rule in order and returns the first that fails.
pub fn verify<'a>(r: &'a Receipt, policy: &Policy) -> Result<(), Rejection<'a>> {
    let schema = r.schema_version.as_str();
    if schema == SCHEMA_VERSION {
        if r.fingerprint.is_none() {
            return Err(Rejection::MissingFingerprint);
        }
    } else if !LEGACY_SCHEMA_VERSIONS.contains(&schema) {
        return Err(Rejection::UnknownSchema { found: schema });
    }
    let backend = r.backend.as_str();
    if !BACKENDS.contains(&backend) {
        return Err(Rejection::UnknownBackend { found: backend });
    }
    if r.compute_path != "real" {
        return Err(Rejection::ComputePathNotReal {
            found: &r.compute_path,
        });
    }

    if r.kernels.is_empty() {
        return Err(Rejection::NoKernels);
    }
    for k in &r.kernels {
        check_kernel_id(&k.id)?;
        if k.calls == 0 {
            return Err(Rejection::KernelNeverCalled { id: &k.id });
        }
    }
    let has = |pred: fn(&str) -> bool| r.kernels.iter().any(|k| pred(&k.id));
    if backend != "cuda" && !has(is_quantized_kernel) {
        return Err(Rejection::NoQuantizedKernel { backend });
    }
    if (backend == "cuda" || policy.require_gpu_kernels) && !has(is_gpu_kernel) {
        return Err(Rejection::NoGpuKernel {
            backend,
            required_by_flag: backend != "cuda",
        });
    }

    let t = &r.tokens;
    if t.generated != t.requested {
        return Err(Rejection::TokenCountMismatch {
            generated: t.generated,
            requested: t.requested,
        });
    }
    if !is_lower_hex(&r.model.sha256, SHA256_HEX_LEN) {
        return Err(Rejection::MalformedHash {
            field: "model.sha256",
            value: &r.model.sha256,
        });
    }
    if !is_lower_hex(&t.generated_ids_fnv1a64, TOKEN_HASH_HEX_LEN) {
        return Err(Rejection::MalformedHash {
            field: "tokens.generated_ids_fnv1a64",
            value: &t.generated_ids_fnv1a64,
        });
    }

    let tm = &r.timings;
    // NaN is not representable in JSON, but the type can be built in code.
    if tm.decode_ms.is_nan() || tm.decode_ms <= 0.0 {
        return Err(Rejection::NonPositiveDecodeTime {
            decode_ms: tm.decode_ms,
        });
    }
    for (field, ms) in [("load_ms", tm.load_ms), ("prefill_ms", tm.prefill_ms)] {
        if ms.is_nan() || ms < 0.0 {
            return Err(Rejection::NegativeTiming { field, ms });
        }
    }

    let generated = u64::from(t.generated);
    let quantized: u64 = r
        .kernels
        .iter()
        .filter(|k| is_quantized_kernel(&k.id))
        .fold(0, |n, k| n.saturating_add(k.calls));
    let required = u64::from(r.model.layers.max(1)).saturating_mul(generated);
    if quantized < required {
        return Err(Rejection::QuantizedCallsTooFew {
            calls: quantized,
            required,
        });
    }

    // A pass reads at most `weight_bytes_per_token` bytes, and there are at
    // most prompt + generated + 1 passes (prefill chunks, decode steps and
    // one for the last token).
    let bpt = r.weight_bytes_per_token;
    let total = r
        .kernels
        .iter()
        .fold(0u64, |n, k| n.saturating_add(k.bytes));
    let max_passes = u64::from(t.prompt)
        .saturating_add(generated)
        .saturating_add(1);
    if bpt == 0 || bpt > total || bpt.saturating_mul(max_passes) < total {
        return Err(Rejection::BytesPerTokenImplausible {
            bytes_per_token: bpt,
            total_kernel_bytes: total,
        });
    }

    let implied = bpt as f64 * tm.tokens_per_sec;
    let vouched = policy
        .allowlisted_tokens_per_sec
        .is_some_and(|max| tm.tokens_per_sec <= max);
    if (implied.is_nan() || implied > policy.bandwidth_ceiling_bytes_per_sec) && !vouched {
        return Err(Rejection::ThroughputAboveCeiling {
            tokens_per_sec: tm.tokens_per_sec,
            bytes_per_token: bpt,
            implied_bytes_per_sec: implied,
            ceiling_bytes_per_sec: policy.bandwidth_ceiling_bytes_per_sec,
        });
    }
    let expected = generated as f64 / (tm.decode_ms / 1000.0);
    let off = (tm.tokens_per_sec - expected).abs();
    if off.is_nan() || off > THROUGHPUT_REL_TOLERANCE * expected {
        return Err(Rejection::ThroughputInconsistent {
            tokens_per_sec: tm.tokens_per_sec,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_id_rules() {
        assert!(check_kernel_id("i2s_gemv_avx512vnni").is_ok());
        assert!(matches!(
            check_kernel_id(""),
            Err(Rejection::MalformedKernelId {
                problem: KernelIdProblem::Empty,
                ..
            })
        ));
        assert!(matches!(
            check_kernel_id("i2s_MockGemv"),
            Err(Rejection::FakeKernel { marker: "mock", .. })
        ));
        assert!(matches!(
            check_kernel_id("i2s gemv"),
            Err(Rejection::MalformedKernelId {
                problem: KernelIdProblem::BadChar { ch: ' ' },
                ..
            })
        ));
        assert!(matches!(
            check_kernel_id("2s_gemv"),
            Err(Rejection::MalformedKernelId {
                problem: KernelIdProblem::BadChar { ch: '2' },
                ..
            })
        ));
        let long = "a".repeat(MAX_KERNEL_ID_LEN + 1);
        assert!(matches!(
            check_kernel_id(&long),
            Err(Rejection::MalformedKernelId {
                problem: KernelIdProblem::TooLong { len: 65 },
                ..
            })
        ));
    }

    #[test]
    fn kernel_classes() {
        assert!(is_quantized_kernel("tq2_0_gemv_scalar"));
        assert!(!is_quantized_kernel("q8_0_gemv_scalar"));
        assert!(is_gpu_kernel("i2s_gemv_cuda_dp4a"));
        assert!(!is_gpu_kernel("i2s_gemv_avx2"));
        assert!(!is_gpu_kernel("i2s_gemv_cudax"));
    }

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            Rejection::UnknownSchema { found: "" },
            Rejection::MissingFingerprint,
            Rejection::UnknownBackend { found: "" },
            Rejection::ComputePathNotReal { found: "" },
            Rejection::NoKernels,
            Rejection::MalformedKernelId {
                id: "",
                problem: KernelIdProblem::Empty,
            },
            Rejection::FakeKernel {
                id: "",
                marker: "mock",
            },
            Rejection::KernelNeverCalled { id: "" },
            Rejection::NoQuantizedKernel { backend: "" },
            Rejection::NoGpuKernel {
                backend: "",
                required_by_flag: false,
            },
            Rejection::TokenCountMismatch {
                generated: 0,
                requested: 0,
            },
            Rejection::MalformedHash {
                field: "",
                value: "",
            },
            Rejection::NonPositiveDecodeTime { decode_ms: 0.0 },
            Rejection::NegativeTiming { field: "", ms: 0.0 },
            Rejection::QuantizedCallsTooFew {
                calls: 0,
                required: 0,
            },
            Rejection::BytesPerTokenImplausible {
                bytes_per_token: 0,
                total_kernel_bytes: 0,
            },
            Rejection::ThroughputAboveCeiling {
                tokens_per_sec: 0.0,
                bytes_per_token: 0,
                implied_bytes_per_sec: 0.0,
                ceiling_bytes_per_sec: 0.0,
            },
            Rejection::ThroughputInconsistent {
                tokens_per_sec: 0.0,
                expected: 0.0,
            },
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(usize::from(a.exit_code()), 11 + i, "{a}");
        }
    }
}
