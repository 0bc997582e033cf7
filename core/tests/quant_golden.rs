//! Quantizers and dequantizers against golden vectors made by references
//! nobody here wrote: gguf-py (`gguf/quants.py`, bit-exact with llama.cpp's
//! `quantize_row_*_ref`) for TQ1_0 / TQ2_0 / Q8_0 / BF16, numpy for F16, and
//! an independent plain-Python I2_S packer written from DESIGN.md §4.
//!
//! The file `tests/golden/quant/vectors.txt` is made by
//! `ci/reference/quant_vectors.py` and records an FNV-1a 64 hash of that
//! script: when the script changes without regenerating, the test fails and
//! names the regenerate command.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bitnet_core::quant::bf16::{dot_bf16_f32, f32_to_bf16_row};
use bitnet_core::quant::f16::{dot_f16_f32, f32_to_f16_row};
use bitnet_core::quant::i2s::{dequantize_i2s, quantize_i2s};
use bitnet_core::quant::q8_0::{dequantize_row_q8_0, quantize_q8_0_bytes};
use bitnet_core::quant::tq1_0::{dequantize_row_tq1_0, quantize_row_tq1_0};
use bitnet_core::quant::tq2_0::{dequantize_row_tq2_0, quantize_row_tq2_0};

const GOLDEN: &str = "tests/golden/quant/vectors.txt";
const GENERATOR: &str = "ci/reference/quant_vectors.py";
const REGENERATE: &str =
    "python3 ci/reference/quant_vectors.py (needs ci/reference/requirements.txt)";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One `case ... end` record.
struct Case {
    name: String,
    qtype: String,
    rows: usize,
    cols: usize,
    fields: BTreeMap<String, Vec<u8>>,
}

impl Case {
    fn field(&self, key: &str) -> &[u8] {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("case {} lacks {key}", self.name))
    }
}

/// Parses the golden file; checks that it was made by the current generator.
fn load() -> Vec<Case> {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join(GOLDEN))
        .unwrap_or_else(|e| panic!("cannot read {GOLDEN} ({e}); regenerate with: {REGENERATE}"));
    let script = std::fs::read(root.join(GENERATOR)).expect("generator script");
    let mut header = BTreeMap::new();
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match (key, current.as_mut()) {
            ("case", None) => {
                let parts: Vec<&str> = value.split(' ').collect();
                assert_eq!(parts.len(), 4, "bad case line {line}");
                current = Some(Case {
                    name: parts[0].to_owned(),
                    qtype: parts[1].to_owned(),
                    rows: parts[2].parse().expect("rows"),
                    cols: parts[3].parse().expect("cols"),
                    fields: BTreeMap::new(),
                });
            }
            ("end", Some(_)) => cases.extend(current.take()),
            (_, Some(case)) => {
                case.fields.insert(key.to_owned(), unhex(value));
            }
            (_, None) => {
                header.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    let recorded = header
        .get("generator_fnv1a64")
        .map(String::as_str)
        .unwrap_or("");
    let actual = format!("{:016x}", fnv1a64(&script));
    assert_eq!(
        recorded, actual,
        "{GOLDEN} is stale: {GENERATOR} changed since it was generated. Regenerate with: {REGENERATE}"
    );
    assert_eq!(
        header.get("generator").map(String::as_str),
        Some("python3 ci/reference/quant_vectors.py")
    );
    cases
}

fn assert_bits_eq(case: &str, what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{case}: {what} length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{case}: {what}[{i}] = {g}, golden {w}"
        );
    }
}

/// Decodes each 2-byte element through the portable dot with x = [1.0].
fn decode_by_dot(
    bytes: &[u8],
    dot: fn(&[u8], &[f32]) -> Result<f32, bitnet_core::quant::QuantError>,
) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|e| dot(e, &[1.0]).expect("dot"))
        .collect()
}

#[test]
fn golden_vectors_match_external_references() {
    let cases = load();
    let mut seen = BTreeMap::new();
    for case in &cases {
        let name = case.name.as_str();
        let bytes = case.field("bytes");
        let dequant = f32s(case.field("dequant_f32"));
        let n = case.rows * case.cols;
        let mut deq = vec![0.0f32; n];
        match case.qtype.as_str() {
            "TQ2_0" | "TQ1_0" | "Q8_0" => {
                let x = f32s(case.field("input_f32"));
                let ours = match case.qtype.as_str() {
                    "TQ2_0" => {
                        let mut out = vec![0u8; bytes.len()];
                        quantize_row_tq2_0(&x, &mut out).unwrap();
                        dequantize_row_tq2_0(bytes, &mut deq).unwrap();
                        out
                    }
                    "TQ1_0" => {
                        let mut out = vec![0u8; bytes.len()];
                        quantize_row_tq1_0(&x, &mut out).unwrap();
                        dequantize_row_tq1_0(bytes, &mut deq).unwrap();
                        out
                    }
                    _ => {
                        dequantize_row_q8_0(bytes, &mut deq).unwrap();
                        quantize_q8_0_bytes(&x).unwrap()
                    }
                };
                assert_eq!(ours, bytes, "{name}: quantized bytes differ from gguf-py");
            }
            "BF16" => {
                let x = f32s(case.field("input_f32"));
                let mut h = vec![half::bf16::ZERO; n];
                f32_to_bf16_row(&x, &mut h).unwrap();
                let ours: Vec<u8> = h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect();
                assert_eq!(ours, bytes, "{name}: bf16 bytes differ from gguf-py");
                deq = decode_by_dot(bytes, dot_bf16_f32);
            }
            "F16" => {
                let x = f32s(case.field("input_f32"));
                let mut h = vec![half::f16::ZERO; n];
                f32_to_f16_row(&x, &mut h).unwrap();
                let ours: Vec<u8> = h.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect();
                assert_eq!(ours, bytes, "{name}: f16 bytes differ from numpy");
                deq = decode_by_dot(bytes, dot_f16_f32);
            }
            "I2_S" => {
                let w: Vec<i8> = case.field("input_i8").iter().map(|&b| b as i8).collect();
                let s = case.field("scale_f32");
                let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                let ours = quantize_i2s(&w, scale, case.rows, case.cols).unwrap();
                assert_eq!(
                    ours, bytes,
                    "{name}: I2_S bytes differ from the Python packer"
                );
                dequantize_i2s(bytes, case.rows, case.cols, &mut deq).unwrap();
            }
            other => panic!("{name}: unknown type {other}; regenerate with: {REGENERATE}"),
        }
        assert_bits_eq(name, "dequantized", &deq, &dequant);
        *seen.entry(case.qtype.clone()).or_insert(0) += 1;
    }
    for t in ["TQ1_0", "TQ2_0", "Q8_0", "BF16", "F16", "I2_S"] {
        assert!(
            seen.contains_key(t),
            "no golden case for {t}; regenerate with: {REGENERATE}"
        );
    }
}
