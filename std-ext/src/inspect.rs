//! `bitnet inspect`: a readable (or JSON) summary of a GGUF container.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bitnet_core::gguf::{Array, Gguf, Value, ValueType};
use bitnet_core::tokenizer::Tokenizer;
use bitnet_core::validate::{ValidationConfig, validate};
use serde::Serialize;

use crate::validate_cmd::FindingRow;

/// Array values longer than this are abbreviated.
const ARRAY_PREVIEW: usize = 8;

/// Everything `inspect` reports.
#[derive(Debug, Serialize)]
pub struct Report {
    /// GGUF version.
    pub version: u32,
    /// Data alignment.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// File size in bytes.
    pub file_size: u64,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Tokenizer summary, when the file has one.
    pub tokenizer: Option<TokenizerSummary>,
    /// Every metadata entry, arrays abbreviated.
    pub metadata: Vec<MetadataEntry>,
    /// Every tensor.
    pub tensors: Vec<TensorRow>,
    /// Sum of all tensors' element counts.
    pub parameters: u64,
    /// Bytes per tensor type.
    pub bytes_by_type: BTreeMap<String, u64>,
    /// Findings of the cheap validation rules (`bitnet validate` runs all).
    pub findings: Vec<FindingRow>,
}

/// Tokenizer facts read from the metadata.
#[derive(Debug, Serialize)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model` (gpt2, llama, ...).
    pub model: String,
    /// `tokenizer.ggml.pre`, when present.
    pub pre: Option<String>,
    /// Number of tokens.
    pub n_tokens: usize,
    /// Number of merges (BPE).
    pub n_merges: Option<usize>,
    /// The BPE pre-tokenizer the engine uses and why, or the reason the
    /// tokenizer cannot be built.
    pub engine_pre_tokenizer: Option<String>,
}

/// One metadata entry.
#[derive(Debug, Serialize)]
pub struct MetadataEntry {
    /// Key.
    pub key: String,
    /// Type name (`u32`, `string`, `array[string; 512]`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Value rendered as text (arrays abbreviated).
    pub value: String,
}

/// One tensor.
#[derive(Debug, Serialize)]
pub struct TensorRow {
    /// Name.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Dimensions, ne0 first.
    pub shape: Vec<u64>,
    /// Byte size.
    pub bytes: u64,
    /// Offset within the data section.
    pub offset: u64,
}

fn scalar_text(v: &Value<'_>) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Array(a) => array_text(a),
    }
}

fn preview<T: ToString>(it: impl Iterator<Item = T>, len: usize) -> String {
    let mut s = String::from("[");
    for (i, x) in it.take(ARRAY_PREVIEW).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&x.to_string());
    }
    if len > ARRAY_PREVIEW {
        let _ = write!(s, ", ... ({} more)", len - ARRAY_PREVIEW);
    }
    s.push(']');
    s
}

fn array_text(a: &Array<'_>) -> String {
    let n = a.len();
    let none = || String::from("[]");
    match a.elem_type() {
        ValueType::U8 => a.iter_u8().map_or_else(none, |i| preview(i, n)),
        ValueType::I8 => a.iter_i8().map_or_else(none, |i| preview(i, n)),
        ValueType::U16 => a.iter_u16().map_or_else(none, |i| preview(i, n)),
        ValueType::I16 => a.iter_i16().map_or_else(none, |i| preview(i, n)),
        ValueType::U32 => a.iter_u32().map_or_else(none, |i| preview(i, n)),
        ValueType::I32 => a.iter_i32().map_or_else(none, |i| preview(i, n)),
        ValueType::F32 => a.iter_f32().map_or_else(none, |i| preview(i, n)),
        ValueType::Bool => a.iter_bool().map_or_else(none, |i| preview(i, n)),
        ValueType::U64 => a.iter_u64().map_or_else(none, |i| preview(i, n)),
        ValueType::I64 => a.iter_i64().map_or_else(none, |i| preview(i, n)),
        ValueType::F64 => a.iter_f64().map_or_else(none, |i| preview(i, n)),
        ValueType::String => a
            .iter_str()
            .map_or_else(none, |i| preview(i.map(|s| format!("{s:?}")), n)),
        ValueType::Array => none(),
    }
}

fn type_text(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("array[{}; {}]", a.elem_type().name(), a.len()),
        other => other.value_type().name().to_string(),
    }
}

/// What the engine's tokenizer makes of the file: the pre-tokenizer chosen
/// (saying when it was inferred because `tokenizer.ggml.pre` is absent), or
/// why the tokenizer cannot be built.
fn engine_pre_tokenizer(g: &Gguf<'_>) -> Option<String> {
    match Tokenizer::from_gguf(g) {
        Err(e) => Some(format!("unusable: {e}")),
        Ok(t) => t.pre_tokenizer().map(|p| {
            if p.inferred {
                format!("{} (inferred: tokenizer.ggml.pre is absent)", p.kind.name())
            } else {
                p.kind.name().to_string()
            }
        }),
    }
}

impl Report {
    /// Builds the report of a parsed file of `file_size` bytes.
    pub fn new(g: &Gguf<'_>, file_size: u64) -> Report {
        let metadata = g
            .metadata()
            .iter()
            .map(|(k, v)| MetadataEntry {
                key: k.to_string(),
                ty: type_text(v),
                value: scalar_text(v),
            })
            .collect();
        let mut bytes_by_type = BTreeMap::new();
        let mut parameters = 0u64;
        let tensors = g
            .tensors()
            .iter()
            .map(|t| {
                *bytes_by_type
                    .entry(t.ggml_type.name().to_string())
                    .or_insert(0) += t.size;
                parameters = parameters.saturating_add(t.n_elements());
                TensorRow {
                    name: t.name.to_string(),
                    ty: t.ggml_type.name().to_string(),
                    shape: t.dims.clone(),
                    bytes: t.size,
                    offset: t.offset,
                }
            })
            .collect();
        let tokenizer = g
            .get_str("tokenizer.ggml.model")
            .ok()
            .map(|model| TokenizerSummary {
                model: model.to_string(),
                pre: g.get_str("tokenizer.ggml.pre").ok().map(str::to_string),
                n_tokens: g.get_array("tokenizer.ggml.tokens").map_or(0, |a| a.len()),
                n_merges: g.get_array("tokenizer.ggml.merges").ok().map(|a| a.len()),
                engine_pre_tokenizer: engine_pre_tokenizer(g),
            });
        Report {
            version: g.version(),
            alignment: g.alignment(),
            data_offset: g.data_offset(),
            file_size,
            architecture: g.architecture().map(str::to_string),
            name: g.get_str("general.name").ok().map(str::to_string),
            tokenizer,
            metadata,
            tensors,
            parameters,
            bytes_by_type,
            findings: validate(g, &ValidationConfig::builder().build())
                .findings
                .iter()
                .map(FindingRow::from)
                .collect(),
        }
    }

    /// The human-readable rendering.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "GGUF v{}  alignment {}  data offset {}  file size {} bytes",
            self.version, self.alignment, self.data_offset, self.file_size
        );
        let _ = writeln!(
            s,
            "architecture: {}   name: {}",
            self.architecture.as_deref().unwrap_or("(none)"),
            self.name.as_deref().unwrap_or("(none)")
        );
        match &self.tokenizer {
            Some(t) => {
                let _ = write!(s, "tokenizer: {} with {} tokens", t.model, t.n_tokens);
                if let Some(m) = t.n_merges {
                    let _ = write!(s, ", {m} merges");
                }
                let _ = writeln!(
                    s,
                    ", pre-tokenizer: {}",
                    t.pre.as_deref().unwrap_or("(none)")
                );
                if let Some(p) = &t.engine_pre_tokenizer {
                    let _ = writeln!(s, "engine pre-tokenizer: {p}");
                }
            }
            None => s.push_str("tokenizer: (none)\n"),
        }
        let _ = writeln!(s, "\nmetadata ({} keys):", self.metadata.len());
        let kw = self.metadata.iter().map(|m| m.key.len()).max().unwrap_or(0);
        for m in &self.metadata {
            let _ = writeln!(s, "  {:kw$}  {:<20} {}", m.key, m.ty, m.value);
        }
        let _ = writeln!(s, "\ntensors ({}):", self.tensors.len());
        let nw = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            s,
            "  {:nw$}  {:<7} {:<22} {:>12} {:>12}",
            "name", "type", "shape", "bytes", "offset"
        );
        for t in &self.tensors {
            let shape = format!("{:?}", t.shape);
            let _ = writeln!(
                s,
                "  {:nw$}  {:<7} {:<22} {:>12} {:>12}",
                t.name, t.ty, shape, t.bytes, t.offset
            );
        }
        let _ = writeln!(s, "\nparameters: {}", self.parameters);
        for (ty, b) in &self.bytes_by_type {
            let _ = writeln!(s, "  {ty}: {b} bytes");
        }
        let _ = writeln!(
            s,
            "\nfindings ({}; cheap rules, `bitnet validate` runs all):",
            self.findings.len()
        );
        for f in &self.findings {
            let _ = write!(
                s,
                "  {} [{}] {}: {}",
                f.severity, f.rule, f.subject, f.message
            );
            if let (Some(m), Some([lo, hi])) = (f.measured, f.expected) {
                let _ = write!(s, " (measured {m:.6e}, expected [{lo:e}, {hi:e}])");
            }
            s.push('\n');
        }
        s
    }
}
