//! Correction policy files (YAML, parsed with `saphyr`) into
//! [`bitnet_core::validate::Policy`]. What a correction means and how it is
//! applied lives in core; this file only reads the format.
//!
//! ```yaml
//! corrections:
//!   - match:                      # exactly one file ...
//!       sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//!     reason: "norms exported x100 by converter 1.2"
//!     apply:
//!       - rescale: {tensor: blk.0.attn_norm.weight, factor: 0.01}
//!   - match:                      # ... or every file of an arch and shape
//!       arch: bitnet-b1.58
//!       dim: 2560
//!       layers: 30
//!       heads: 20
//!       kv_heads: 5
//!       ff: 6912
//!       vocab: 128256
//!     reason: "hidden_act mislabelled gelu"
//!     apply:
//!       - force_activation: relu2
//! ```
//!
//! Unknown keys are errors, so a typo cannot silently disable a
//! correction.

use std::path::{Path, PathBuf};

use bitnet_core::validate::{
    ArchShape, Correction, ModelFingerprint, Policy, PolicyEntry, parse_activation,
};
use saphyr::{LoadableYamlNode, Yaml};

/// A policy file that cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The YAML does not follow the format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Which entry or key is wrong.
        reason: String,
    },
}

/// Reads and parses a policy file.
pub fn load_policy(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_policy(&text).map_err(|reason| PolicyError::Format {
        path: path.to_owned(),
        reason,
    })
}

/// Parses policy YAML; the error says which entry or key is wrong.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let docs = Yaml::load_from_str(text).map_err(|e| e.to_string())?;
    let [doc] = docs.as_slice() else {
        return Err(format!("expected one YAML document, found {}", docs.len()));
    };
    let map = doc.as_mapping().ok_or("top level must be a mapping")?;
    let mut list = None;
    for (k, v) in map {
        match k.as_str() {
            Some("corrections") => list = Some(v),
            other => return Err(format!("unknown top-level key {other:?}")),
        }
    }
    let list = list
        .ok_or("missing key corrections")?
        .as_sequence()
        .ok_or("corrections must be a list")?;
    let entries = list
        .iter()
        .enumerate()
        .map(|(i, e)| entry(e).map_err(|m| format!("corrections[{i}]: {m}")))
        .collect::<Result<_, _>>()?;
    Ok(Policy { entries })
}

fn entry(e: &Yaml<'_>) -> Result<PolicyEntry, String> {
    let map = e.as_mapping().ok_or("entry must be a mapping")?;
    let (mut fingerprint, mut reason, mut apply) = (None, None, None);
    for (k, v) in map {
        match k.as_str() {
            Some("match") => {
                fingerprint = Some(fingerprint_of(v).map_err(|m| format!("match: {m}"))?)
            }
            Some("reason") => {
                reason = Some(v.as_str().ok_or("reason must be a string")?.to_owned())
            }
            Some("apply") => {
                let seq = v.as_sequence().ok_or("apply must be a list")?;
                let list = seq
                    .iter()
                    .enumerate()
                    .map(|(i, c)| correction(c).map_err(|m| format!("apply[{i}]: {m}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if list.is_empty() {
                    return Err("apply is empty".into());
                }
                apply = Some(list);
            }
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    Ok(PolicyEntry {
        fingerprint: fingerprint.ok_or("missing match")?,
        reason: reason.ok_or("missing reason")?,
        corrections: apply.ok_or("missing apply")?,
    })
}

fn fingerprint_of(v: &Yaml<'_>) -> Result<ModelFingerprint, String> {
    let map = v.as_mapping().ok_or("must be a mapping")?;
    let mut sha = None;
    let mut arch = None;
    let mut nums: [(&str, Option<usize>); 6] = [
        ("dim", None),
        ("layers", None),
        ("heads", None),
        ("kv_heads", None),
        ("ff", None),
        ("vocab", None),
    ];
    for (k, v) in map {
        let key = k.as_str().unwrap_or("");
        match key {
            "sha256" => sha = Some(hex32(v.as_str().ok_or("sha256 must be a string")?)?),
            "arch" => arch = Some(v.as_str().ok_or("arch must be a string")?.to_owned()),
            _ => {
                let slot = nums
                    .iter_mut()
                    .find(|(n, _)| *n == key)
                    .ok_or_else(|| format!("unknown key {key:?}"))?;
                let n = v
                    .as_integer()
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{key} must be a positive integer"))?;
                slot.1 = Some(n);
            }
        }
    }
    match (sha, arch) {
        (Some(d), None) if nums.iter().all(|(_, v)| v.is_none()) => Ok(ModelFingerprint::Sha256(d)),
        (None, Some(arch)) => {
            let get = |i: usize| {
                nums[i]
                    .1
                    .ok_or_else(|| format!("an arch match needs {}", nums[i].0))
            };
            Ok(ModelFingerprint::ArchShape(ArchShape {
                arch,
                dim: get(0)?,
                n_layers: get(1)?,
                n_heads: get(2)?,
                n_kv_heads: get(3)?,
                hidden_dim: get(4)?,
                vocab: get(5)?,
            }))
        }
        _ => Err(
            "give either sha256 alone, or arch with dim, layers, heads, kv_heads, ff, vocab".into(),
        ),
    }
}

fn hex32(s: &str) -> Result<[u8; 32], String> {
    let bad = || format!("sha256 {s:?} is not 64 hex digits");
    if s.len() != 64 || !s.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *o = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn correction(c: &Yaml<'_>) -> Result<Correction, String> {
    let map = c.as_mapping().ok_or("a correction is a one-key mapping")?;
    let mut it = map.iter();
    let (Some((k, v)), None) = (it.next(), it.next()) else {
        return Err("a correction is a one-key mapping (rescale or force_activation)".into());
    };
    match k.as_str() {
        Some("rescale") => {
            let m = v.as_mapping().ok_or("rescale needs {tensor, factor}")?;
            let (mut tensor, mut factor) = (None, None);
            for (k, v) in m {
                match k.as_str() {
                    Some("tensor") => {
                        tensor = Some(v.as_str().ok_or("tensor must be a string")?.to_owned())
                    }
                    Some("factor") => {
                        let f = v
                            .as_floating_point()
                            .or_else(|| v.as_integer().map(|i| i as f64))
                            .ok_or("factor must be a number")?;
                        factor = Some(f as f32);
                    }
                    other => return Err(format!("unknown rescale key {other:?}")),
                }
            }
            Correction::rescale(
                tensor.ok_or("rescale needs tensor")?,
                factor.ok_or("rescale needs factor")?,
            )
            .map_err(|e| e.to_string())
        }
        Some("force_activation") => {
            let name = v.as_str().ok_or("force_activation must be a string")?;
            parse_activation(name)
                .map(Correction::ForceActivation)
                .ok_or_else(|| format!("unknown activation {name:?} (silu, relu2)"))
        }
        other => Err(format!("unknown correction {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_core::model::FfnActivation;

    #[test]
    fn parses_the_documented_format() {
        let p = parse_policy(
            "corrections:\n  - match: {sha256: \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}\n    reason: r1\n    apply:\n      - rescale: {tensor: blk.0.attn_norm.weight, factor: 0.01}\n      - rescale: {tensor: output_norm.weight, factor: 2}\n  - match: {arch: bitnet-b1.58, dim: 2560, layers: 30, heads: 20, kv_heads: 5, ff: 6912, vocab: 128256}\n    reason: r2\n    apply:\n      - force_activation: relu2\n",
        )
        .unwrap();
        assert_eq!(p.entries.len(), 2);
        let ModelFingerprint::Sha256(d) = &p.entries[0].fingerprint else {
            panic!("sha256 expected")
        };
        assert_eq!((d[0], d[31]), (0x00, 0xff));
        assert_eq!(
            p.entries[0].corrections[1],
            Correction::Rescale {
                tensor: "output_norm.weight".into(),
                factor: 2.0
            }
        );
        let ModelFingerprint::ArchShape(s) = &p.entries[1].fingerprint else {
            panic!("arch shape expected")
        };
        assert_eq!(
            (s.dim, s.vocab, s.arch.as_str()),
            (2560, 128256, "bitnet-b1.58")
        );
        assert_eq!(
            p.entries[1].corrections,
            [Correction::ForceActivation(FfnActivation::ReluSquared)]
        );
    }

    #[test]
    fn rejects_malformed_policies() {
        for (text, needle) in [
            ("corrections: {}\n", "must be a list"),
            ("correction: []\n", "unknown top-level key"),
            (
                "corrections:\n  - reason: x\n    apply: [{force_activation: silu}]\n",
                "missing match",
            ),
            (
                "corrections:\n  - match: {sha256: \"12\"}\n    reason: x\n    apply: [{force_activation: silu}]\n",
                "64 hex",
            ),
            (
                "corrections:\n  - match: {arch: bitnet, dim: 1}\n    reason: x\n    apply: [{force_activation: silu}]\n",
                "needs layers",
            ),
            (
                "corrections:\n  - match: {arch: bitnet, dimm: 1}\n    reason: x\n    apply: [{force_activation: silu}]\n",
                "unknown key \"dimm\"",
            ),
            (
                "corrections:\n  - match: {sha256: \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}\n    reason: x\n    apply: [{rescale: {tensor: a, factor: -1}}]\n",
                "finite and > 0",
            ),
            (
                "corrections:\n  - match: {sha256: \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}\n    reason: x\n    apply: [{force_activation: gelu}]\n",
                "unknown activation",
            ),
            (
                "corrections:\n  - match: {sha256: \"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}\n    reason: x\n    apply: []\n",
                "apply is empty",
            ),
            ("corrections: [\n", ""),
        ] {
            let e = parse_policy(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
