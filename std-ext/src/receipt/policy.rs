//! What the verifier's throughput rule compares against: bandwidth ceilings
//! per fingerprint, and the allowlist of GPUs known to go faster
//! (`ci/known_fast_gpus.yml`).
//!
//! Allowlist format (YAML, parsed with `saphyr`):
//!
//! ```yaml
//! fast_gpus:
//!   - gpu_cc: "9.0"            # compute capability, quoted
//!     min_tokens_per_sec: 20000
//! ```
//!
//! An entry says: GPUs of this compute capability are known to sustain at
//! least `min_tokens_per_sec` (e.g. models small enough to live in L2
//! cache), so a cuda receipt from such a GPU passes the ceiling rule up to
//! that rate even where bytes/token x tokens/s exceeds the memory bandwidth.

use std::path::Path;

use bitnet_core::receipt::{Policy, Receipt};
use saphyr::{LoadableYamlNode, Yaml};

use super::ReceiptError;

/// CPU (and wasm) socket ceiling, bytes/s: the DRAM bandwidth of a
/// 12-channel DDR5-6400 socket (12 x 51.2 GB/s = 614 GB/s), more than any
/// desktop or single-socket server sustains. Caches can beat DRAM, but only
/// for models small enough that bytes/token x tokens/s stays far below this.
/// A receipt's ceiling is also capped per thread ([`cpu_ceiling`]).
pub const CPU_CEILING_BYTES_PER_SEC: f64 = 614.4e9;
/// Per-core ceiling, bytes/s, when a thread's share of the weights is larger
/// than any L2 ([`L2_MAX_BYTES`]): each token then pulls every byte from L3
/// or DRAM, and a core's L3 read port moves at most 32 B per cycle (Zen 4/5:
/// 32 B/cycle L3->L2 per core; Intel's ring stop is no wider) at the fastest
/// shipping boost clock, 6.2 GHz: 198 GB/s. Measured single-core L3
/// bandwidth is about half of that, and one core streaming from DRAM gets
/// 20-35 GB/s (docs/perf.md: 11-13 GB/s for the I2_S GEMV on Zen 4).
pub const CORE_L3_CEILING_BYTES_PER_SEC: f64 = 200e9;
/// Per-core ceiling, bytes/s, when a thread's share fits in L2 but not in
/// L1 ([`L1_MAX_BYTES`]): the L2->L1 fill path moves one 64-byte line per
/// cycle (Zen 4/5, Golden Cove and later) at 6.2 GHz: 397 GB/s.
pub const CORE_L2_CEILING_BYTES_PER_SEC: f64 = 400e9;
/// A share at most this large may sit in one core's L1 data cache (Apple's
/// P-cores have 128 KiB, x86 cores 48 KiB; doubled for margin). Loads from
/// L1 are not capped per core: only the socket ceiling applies.
pub const L1_MAX_BYTES: u64 = 256 << 10;
/// A share at most this large may be read at L2 speed: x86 private L2s
/// reach 3 MB (Arrow Lake P-cores), Apple's cluster-shared L2 16 MB.
pub const L2_MAX_BYTES: u64 = 16 << 20;
/// GPU of unknown compute capability: above every HBM part we know (B200
/// HBM3e, 8 TB/s).
pub const UNKNOWN_GPU_CEILING_BYTES_PER_SEC: f64 = 8.0e12;
/// Peak memory bandwidth by compute capability: the fastest part of each
/// capability, from the vendors' data sheets.
pub const GPU_CEILINGS: [(&str, f64); 8] = [
    // V100 SXM2 32 GB, HBM2: 900 GB/s.
    ("7.0", 0.9e12),
    // T4, GDDR6: 320 GB/s.
    ("7.5", 0.32e12),
    // A100 SXM 80 GB, HBM2e: 2.04 TB/s.
    ("8.0", 2.04e12),
    // RTX 3090 Ti, GDDR6X: 1.01 TB/s.
    ("8.6", 1.01e12),
    // RTX 4090 GDDR6X 1.01 TB/s; L40S 864 GB/s.
    ("8.9", 1.01e12),
    // H100 SXM 3.35 TB/s; H200 (also 9.0) HBM3e 4.8 TB/s.
    ("9.0", 4.8e12),
    // B200 HBM3e: 8 TB/s.
    ("10.0", 8.0e12),
    // RTX 5090, GDDR7: 1.79 TB/s.
    ("12.0", 1.79e12),
];

/// The bandwidth ceiling for a receipt: by its fingerprint's `gpu_cc` on
/// cuda, [`cpu_ceiling`] otherwise.
pub fn bandwidth_ceiling(r: &Receipt) -> f64 {
    if r.backend != "cuda" {
        return cpu_ceiling(r.weight_bytes_per_token, r.threads);
    }
    let cc = r.fingerprint.as_ref().and_then(|f| f.gpu_cc.as_deref());
    cc.and_then(|cc| GPU_CEILINGS.iter().find(|(c, _)| *c == cc))
        .map_or(UNKNOWN_GPU_CEILING_BYTES_PER_SEC, |(_, b)| *b)
}

/// CPU ceiling of a run with `threads` workers (0 read as 1) reading
/// `bytes_per_token` weight bytes per token: `min(socket, threads x
/// per-core)`, the per-core ceiling chosen by the cache level one thread's
/// share (the rows of every matrix split over the threads) must stream from
/// on every token. A receipt claiming tokens/s x100 on one thread then
/// fails even where the socket's DRAM could carry it.
pub fn cpu_ceiling(bytes_per_token: u64, threads: u32) -> f64 {
    let threads = u64::from(threads.max(1));
    let share = bytes_per_token.div_ceil(threads);
    let per_core = if share > L2_MAX_BYTES {
        CORE_L3_CEILING_BYTES_PER_SEC
    } else if share > L1_MAX_BYTES {
        CORE_L2_CEILING_BYTES_PER_SEC
    } else {
        return CPU_CEILING_BYTES_PER_SEC;
    };
    (per_core * threads as f64).min(CPU_CEILING_BYTES_PER_SEC)
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FastGpu {
    /// Compute capability ("9.0").
    pub gpu_cc: String,
    /// Tokens/s such GPUs are known to reach.
    pub min_tokens_per_sec: f64,
}

/// `ci/known_fast_gpus.yml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allowlist {
    /// Its entries.
    pub fast_gpus: Vec<FastGpu>,
}

impl Allowlist {
    /// Reads and parses an allowlist file.
    pub fn load(path: &Path) -> Result<Self, ReceiptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReceiptError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| ReceiptError::Allowlist {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses allowlist YAML; the error says which entry or key is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
        let [doc] = docs.as_slice() else {
            return Err(format!("expected one YAML document, found {}", docs.len()));
        };
        let map = doc.as_mapping().ok_or("top level must be a mapping")?;
        let mut fast_gpus = None;
        for (k, v) in map {
            match k.as_str() {
                Some("fast_gpus") => fast_gpus = Some(v),
                other => return Err(format!("unknown top-level key {other:?}")),
            }
        }
        let list = fast_gpus.ok_or("missing key fast_gpus")?;
        let list = list.as_sequence().ok_or("fast_gpus must be a list")?;
        let fast_gpus = list
            .iter()
            .enumerate()
            .map(|(i, e)| parse_entry(e).map_err(|m| format!("fast_gpus[{i}]: {m}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { fast_gpus })
    }

    /// The entry covering a cuda receipt's fingerprint, if any.
    pub fn covering(&self, r: &Receipt) -> Option<&FastGpu> {
        if r.backend != "cuda" {
            return None;
        }
        let cc = r.fingerprint.as_ref()?.gpu_cc.as_deref()?;
        self.fast_gpus.iter().find(|e| e.gpu_cc == cc)
    }
}

fn parse_entry(e: &Yaml<'_>) -> Result<FastGpu, String> {
    let map = e.as_mapping().ok_or("entry must be a mapping")?;
    let (mut cc, mut min) = (None, None);
    for (k, v) in map {
        match k.as_str() {
            Some("gpu_cc") => {
                let s = v
                    .as_str()
                    .ok_or("gpu_cc must be a quoted string such as \"9.0\"")?;
                let valid = s.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
                });
                if !valid {
                    return Err(format!("gpu_cc {s:?} is not MAJOR.MINOR"));
                }
                cc = Some(s.to_owned());
            }
            Some("min_tokens_per_sec") => {
                let n = v
                    .as_integer()
                    .map(|i| i as f64)
                    .or_else(|| v.as_floating_point())
                    .ok_or("min_tokens_per_sec must be a number")?;
                if !(n.is_finite() && n > 0.0) {
                    return Err(format!("min_tokens_per_sec {n} must be positive"));
                }
                min = Some(n);
            }
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    Ok(FastGpu {
        gpu_cc: cc.ok_or("missing gpu_cc")?,
        min_tokens_per_sec: min.ok_or("missing min_tokens_per_sec")?,
    })
}

/// The verifier policy for `r`: its bandwidth ceiling and, when `allowlist`
/// has an entry for its GPU, the rate that entry vouches for.
pub fn policy_for(r: &Receipt, allowlist: Option<&Allowlist>, require_gpu_kernels: bool) -> Policy {
    Policy {
        require_gpu_kernels,
        bandwidth_ceiling_bytes_per_sec: bandwidth_ceiling(r),
        allowlisted_tokens_per_sec: allowlist
            .and_then(|a| a.covering(r))
            .map(|e| e.min_tokens_per_sec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ceiling_scales_with_threads_up_to_the_socket() {
        let big = 100 << 20;
        assert_eq!(cpu_ceiling(big, 1), CORE_L3_CEILING_BYTES_PER_SEC);
        assert_eq!(cpu_ceiling(big, 0), CORE_L3_CEILING_BYTES_PER_SEC);
        assert_eq!(cpu_ceiling(big, 2), 2.0 * CORE_L3_CEILING_BYTES_PER_SEC);
        assert_eq!(cpu_ceiling(big, 64), CPU_CEILING_BYTES_PER_SEC);
        // Shares that fit in L2, then in L1.
        assert_eq!(cpu_ceiling(L2_MAX_BYTES, 1), CORE_L2_CEILING_BYTES_PER_SEC);
        assert_eq!(
            cpu_ceiling(L1_MAX_BYTES + 1, 1),
            CORE_L2_CEILING_BYTES_PER_SEC
        );
        assert_eq!(cpu_ceiling(L1_MAX_BYTES, 1), CPU_CEILING_BYTES_PER_SEC);
    }

    #[test]
    fn parses_the_documented_format() {
        let a = Allowlist::parse(
            "fast_gpus:\n  - gpu_cc: \"9.0\"\n    min_tokens_per_sec: 20000\n  - {gpu_cc: \"8.0\", min_tokens_per_sec: 1.5e4}\n",
        )
        .unwrap();
        assert_eq!(a.fast_gpus.len(), 2);
        assert_eq!(a.fast_gpus[0].gpu_cc, "9.0");
        assert_eq!(a.fast_gpus[0].min_tokens_per_sec, 20000.0);
        assert_eq!(a.fast_gpus[1].min_tokens_per_sec, 15000.0);
        assert_eq!(
            Allowlist::parse("fast_gpus: []\n").unwrap(),
            Allowlist::default()
        );
    }

    #[test]
    fn rejects_malformed_allowlists() {
        for (yaml, needle) in [
            (
                "fast_gpus:\n  - gpu_cc: 9.0\n    min_tokens_per_sec: 1\n",
                "quoted",
            ),
            (
                "fast_gpus:\n  - gpu_cc: \"x\"\n    min_tokens_per_sec: 1\n",
                "MAJOR.MINOR",
            ),
            (
                "fast_gpus:\n  - gpu_cc: \"9.0\"\n",
                "missing min_tokens_per_sec",
            ),
            (
                "fast_gpus:\n  - gpu_cc: \"9.0\"\n    min_tokens_per_sec: -1\n",
                "positive",
            ),
            (
                "fast_gpus:\n  - gpu_cc: \"9.0\"\n    min_tokens_per_sec: 1\n    x: 1\n",
                "unknown key",
            ),
            ("gpus: []\n", "unknown top-level"),
            ("fast_gpus: 3\n", "must be a list"),
            ("[", ""),
        ] {
            let e = Allowlist::parse(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
    }
}
