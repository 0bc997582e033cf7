//! The receipt's fields (DESIGN.md §7) as fixed-capacity `heapless` types,
//! so that parsing never allocates beyond the named capacities below and a
//! hostile file can only produce an error.
//!
//! Capacities are parse limits. The verifier applies its own, tighter rules
//! (e.g. [`super::verify::MAX_KERNEL_ID_LEN`]) so that an over-long kernel id
//! is reported as such rather than as a parse failure.

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// A string of at most `N` bytes, as the receipt's text fields store them.
pub type FixedString<const N: usize> = String<N>;
/// A list of at most `N` items, as the receipt's list fields store them.
pub type FixedVec<T, const N: usize> = Vec<T, N>;

/// The schema this crate writes.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// Older spellings of the schema that still parse and verify; the host
/// fingerprint is optional there.
pub const LEGACY_SCHEMA_VERSIONS: [&str; 2] = ["1.0", "1.0.0"];

/// `schema_version`: "1.1.0" is 5 bytes; room for a longer unknown value to
/// be reported by the verifier.
pub const SCHEMA_VERSION_CAP: usize = 16;
/// `timestamp`: RFC 3339 with nanoseconds and an offset is 35 bytes.
pub const TIMESTAMP_CAP: usize = 40;
/// `compute_path`: "real", or whatever a tampered file says.
pub const COMPUTE_PATH_CAP: usize = 16;
/// `backend`: "cpu", "cuda", "wasm", or an unknown value to report.
pub const BACKEND_CAP: usize = 16;
/// `backend_summary`: a line such as "cpu: i2s portable, 8 threads".
pub const BACKEND_SUMMARY_CAP: usize = 160;
/// One kernel id as parsed (the verifier allows fewer bytes).
pub const KERNEL_ID_CAP: usize = 128;
/// Distinct kernel ids in one receipt; also the capacity of
/// [`super::KernelCounters`].
pub const MAX_KERNELS: usize = 32;
/// `model.name` (file name or `general.name`).
pub const MODEL_NAME_CAP: usize = 128;
/// `model.arch` (`general.architecture`).
pub const MODEL_ARCH_CAP: usize = 32;
/// Lower-case hex of a SHA-256 digest.
pub const SHA256_HEX_LEN: usize = 64;
/// One quant type name ("I2_S", "TQ2_0", ...).
pub const QUANT_TYPE_CAP: usize = 16;
/// Distinct quant types in one model.
pub const MAX_QUANT_TYPES: usize = 8;
/// Lower-case hex of a 64-bit FNV-1a hash.
pub const TOKEN_HASH_HEX_LEN: usize = 16;
/// `fingerprint.gpu_cc` ("9.0", "12.0").
pub const GPU_CC_CAP: usize = 8;
/// `fingerprint.gpu_name`, `cpu_id`, `os`, `rustc`: one line each.
pub const FINGERPRINT_LINE_CAP: usize = 128;
/// `fingerprint.bitnet_version`.
pub const VERSION_CAP: usize = 32;
/// Corrections one receipt records.
pub const MAX_CORRECTIONS: usize = 16;
/// Most prompt token ids a receipt records (for `--recompute`); longer
/// prompts are not recorded.
pub const MAX_PROMPT_IDS: usize = 256;
/// `corrections[].kind` ("rescale", "force_activation").
pub const CORRECTION_KIND_CAP: usize = 24;
/// `corrections[].target`: a tensor name or "ffn_activation".
pub const CORRECTION_TARGET_CAP: usize = 128;
/// `corrections[].value`: a factor or an activation name.
pub const CORRECTION_VALUE_CAP: usize = 32;
/// `corrections[].matched_by` ("sha256", "arch_shape").
pub const CORRECTION_MATCH_CAP: usize = 16;

/// One receipt: what a run executed and measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`SCHEMA_VERSION`] or one of [`LEGACY_SCHEMA_VERSIONS`].
    pub schema_version: String<SCHEMA_VERSION_CAP>,
    /// When the run finished, RFC 3339 UTC.
    pub timestamp: String<TIMESTAMP_CAP>,
    /// "real" only when quantized kernels ran for every layer of every
    /// generated token (see [`super::KernelCounters::is_real`]).
    pub compute_path: String<COMPUTE_PATH_CAP>,
    /// "cpu", "cuda" or "wasm".
    pub backend: String<BACKEND_CAP>,
    /// Free text for people: ISA, threads, device.
    pub backend_summary: String<BACKEND_SUMMARY_CAP>,
    /// Kernels that ran, recorded at dispatch, in first-use order.
    pub kernels: Vec<KernelRecord, MAX_KERNELS>,
    /// Greedy / seeded sampling that reproduces the same tokens.
    pub deterministic: bool,
    /// Sampling seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: u32,
    /// The model file.
    pub model: ModelRecord,
    /// Token counts and the hash of the generated ids.
    pub tokens: TokenRecord,
    /// Wall-clock timings measured by the caller.
    pub timings: Timings,
    /// Weight bytes the kernels read per generated token (all layers, LM
    /// head included), from the counters of single-token decode passes.
    pub weight_bytes_per_token: u64,
    /// Host fingerprint: required from 1.1.0, absent in 1.0 receipts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Corrections from a policy that the run applied to the model
    /// (`bitnet_core::validate`). Optional in every schema version and
    /// absent when none were applied, so 1.0 / 1.1.0 receipts without it
    /// parse unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrections: Option<Vec<CorrectionRecord, MAX_CORRECTIONS>>,
    /// The prompt token ids, so a third party can re-run the model and
    /// check the generated-token hash (`verify-receipt --recompute`).
    /// Optional in every schema version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ids: Option<Vec<u32, MAX_PROMPT_IDS>>,
}

/// One applied model correction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionRecord {
    /// "rescale" or "force_activation".
    pub kind: String<CORRECTION_KIND_CAP>,
    /// The tensor, or "ffn_activation".
    pub target: String<CORRECTION_TARGET_CAP>,
    /// The factor or the activation, as text.
    pub value: String<CORRECTION_VALUE_CAP>,
    /// Which fingerprint of the policy matched: "sha256" or "arch_shape".
    pub matched_by: String<CORRECTION_MATCH_CAP>,
}

/// One kernel id and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelRecord {
    /// e.g. `i2s_gemv_scalar`, `i2s_gemv_cuda_dp4a`.
    pub id: String<KERNEL_ID_CAP>,
    /// Times the dispatch ran it.
    pub calls: u64,
    /// Weight bytes it read, summed over calls.
    pub bytes: u64,
}

/// The model a receipt ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRecord {
    /// File name or `general.name`.
    pub name: String<MODEL_NAME_CAP>,
    /// `general.architecture`.
    pub arch: String<MODEL_ARCH_CAP>,
    /// SHA-256 of the model file, lower-case hex.
    pub sha256: String<SHA256_HEX_LEN>,
    /// Quant types of its tensors.
    pub quant_types: Vec<String<QUANT_TYPE_CAP>, MAX_QUANT_TYPES>,
    /// Parameter count.
    pub parameters: u64,
    /// Transformer layers (the unit of the `compute_path` rule).
    pub layers: u32,
}

/// Token counts of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Prompt tokens evaluated (prefill).
    pub prompt: u32,
    /// Tokens the caller asked to generate.
    pub requested: u32,
    /// Tokens generated.
    pub generated: u32,
    /// [`token_ids_fnv1a64`] of the generated ids, 16 lower-case hex digits.
    pub generated_ids_fnv1a64: String<TOKEN_HASH_HEX_LEN>,
}

/// Timings in milliseconds, measured by the caller (core has no clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Loading and preparing the model.
    pub load_ms: f64,
    /// Evaluating the prompt.
    pub prefill_ms: f64,
    /// Generating all tokens after the prompt.
    pub decode_ms: f64,
    /// `tokens.generated / (decode_ms / 1000)`.
    pub tokens_per_sec: f64,
}

/// The host that produced a receipt (schema 1.1.0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// CUDA compute capability ("9.0"), none without a GPU.
    pub gpu_cc: Option<String<GPU_CC_CAP>>,
    /// GPU product name, none without a GPU.
    pub gpu_name: Option<String<FINGERPRINT_LINE_CAP>>,
    /// CPU model (`/proc/cpuinfo` "model name" on Linux).
    pub cpu_id: String<FINGERPRINT_LINE_CAP>,
    /// OS, kernel release and architecture.
    pub os: String<FINGERPRINT_LINE_CAP>,
    /// `rustc -V` of the compiler that built the writer.
    pub rustc: String<FINGERPRINT_LINE_CAP>,
    /// Version of the bitnet crate that wrote the receipt.
    pub bitnet_version: String<VERSION_CAP>,
}

/// FNV-1a offset basis, 64-bit (FNV spec, draft-eastlake-fnv).
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV 64-bit prime.
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over the little-endian bytes of each token id, in order.
///
/// Not a cryptographic hash: it detects a changed token sequence between a
/// receipt and a re-run, which is all `--recompute` needs.
pub fn token_ids_fnv1a64(ids: &[u32]) -> u64 {
    ids.iter()
        .flat_map(|id| id.to_le_bytes())
        .fold(FNV64_OFFSET, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(FNV64_PRIME)
        })
}

/// Writes `bytes` as lower-case hex into a string of capacity `N`
/// (`N >= 2 * bytes.len()`, checked by the callers' types).
pub(crate) fn hex<const N: usize>(bytes: &[u8]) -> Option<String<N>> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)])).ok()?;
        s.push(char::from(DIGITS[usize::from(b & 0x0f)])).ok()?;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // FNV-1a 64 of "" and of "a" (draft-eastlake-fnv test vectors); one
        // token id 0x61 hashes the bytes 61 00 00 00.
        assert_eq!(token_ids_fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        let mut h = FNV64_OFFSET;
        for b in [0x61u8, 0, 0, 0] {
            h = (h ^ u64::from(b)).wrapping_mul(FNV64_PRIME);
        }
        assert_eq!(token_ids_fnv1a64(&[0x61]), h);
        assert_eq!(
            (FNV64_OFFSET ^ 0x61).wrapping_mul(FNV64_PRIME),
            0xaf63_dc4c_8601_ec8c
        );
        assert_ne!(token_ids_fnv1a64(&[1, 2]), token_ids_fnv1a64(&[2, 1]));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex::<4>(&[0xab, 0x01]).unwrap().as_str(), "ab01");
        assert!(hex::<3>(&[0xab, 0x01]).is_none());
    }
}
