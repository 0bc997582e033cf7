//! `cargo xtask export-model`: the trained model of xtask/train into GGUF
//! (arch `bitnet-b1.58`), once with I2_S projections (Microsoft's byte
//! layout, DESIGN.md §4) and once with TQ2_0 projections, through
//! bitnet-core's GGUF writer and quantizers.
//!
//! Input: the interchange that `xtask/train/dump.py` writes from a PyTorch
//! checkpoint, the only step that needs PyTorch:
//! - `model.json`: `format` = `"bitnet-train-dump"`, `version` = 1;
//!   `config` (train.py's: `vocab`, `n_embd`, `n_layer`, `n_head`,
//!   `n_head_kv`, `n_ff`, `ctx`, `eps`, `rope_base`); `tokenizer` (`model`
//!   = `"gpt2"`, `pre`, `tokens`, `merges`, `bos_token_id`,
//!   `eos_token_id`); `tensors`: `name`, `shape` (PyTorch order, last
//!   dimension contiguous: `[out, in]` for a projection), `dtype` (`"f32"`
//!   or `"ternary"`), `offset` into the blob, and for a ternary tensor
//!   `scale_offset`;
//! - `tensors.bin`: little-endian; an `f32` tensor is its values, a
//!   `ternary` one is one i8 in {-1, 0, 1} per weight plus, at
//!   `scale_offset`, its f32 scale (absmean).
//!
//! Output, for either format (what export_gguf.py wrote with gguf-py before,
//! so tests/models/shakespeare-{i2s,tq2_0}.gguf rebuild byte for byte; see
//! the test below): the hyper-parameter keys of [`metadata`], then
//! `vocab_size`, `general.file_type`, the `tokenizer.ggml.*` keys
//! ([`Vocab::write_gguf`]: `gpt2`, BOS / EOS as control tokens, add BOS, no
//! EOS); tensors `token_embd` (F16, the tied LM head), `output_norm` (F32),
//! then per layer the norms (F32) and projections in [`LAYER_ORDER`];
//! alignment 32 (the default, no `general.alignment` key).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bitnet_core::gguf::{GgmlType, GgufWriter, OwnedValue, TensorSpec};
use bitnet_core::tokenizer::{SpecialIds, TokenType, Tokenizer, Vocab, VocabKind};
use serde_json::Value;

use crate::gguf_build::{
    Proj, Shape, Ternary, f16_bytes, f32_bytes, metadata, projection, projections,
};

/// The architecture of the trained model.
pub const ARCH: &str = "bitnet-b1.58";
/// `general.name` without its format suffix.
pub const DEFAULT_NAME: &str = "shakespeare-bitnet-b1.58";
/// The manifest's `format` and `version`.
const DUMP_FORMAT: &str = "bitnet-train-dump";
const DUMP_VERSION: u64 = 1;

/// Tensors of one block in file order (the order export_gguf.py wrote).
pub const LAYER_ORDER: [&str; 11] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_sub_norm",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_sub_norm",
    "ffn_down",
];

/// The hyper-parameters of a checkpoint (train.py's `Config`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ff: usize,
    pub ctx: usize,
    pub eps: f32,
    pub rope_base: f32,
}

/// A checkpoint's tokenizer: byte-level BPE with GPT-2 conventions
/// (xtask/train/bpe.py).
#[derive(Debug, Clone, PartialEq)]
pub struct BpeTokenizer {
    pub pre: String,
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    pub bos: u32,
    pub eos: u32,
}

/// A tensor's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    F32(Vec<f32>),
    Ternary(Ternary),
}

/// A tensor: shape in PyTorch order (last dimension contiguous).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub weights: Weights,
}

/// Everything the GGUF files hold, as the checkpoint has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub config: Config,
    pub tokenizer: BpeTokenizer,
    pub tensors: HashMap<String, Tensor>,
}

/// The projection format of an exported file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    I2s,
    Tq2,
}

impl Format {
    /// Appended to `general.name`.
    fn suffix(self) -> &'static str {
        match self {
            Format::I2s => "i2_s",
            Format::Tq2 => "tq2_0",
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`; advisory, nothing
    /// here reads it). TQ2_0: 37, MOSTLY_TQ2_0. I2_S: 1 (MOSTLY_F16), what
    /// gguf-py's export wrote (gguf-py has no I2_S file type) and the
    /// shipped file holds; bitnet.cpp's converter writes 40
    /// (MOSTLY_I2_S). Kept at 1 so the shipped bytes reproduce.
    fn file_type(self) -> u32 {
        match self {
            Format::I2s => 1,
            Format::Tq2 => 37,
        }
    }

    /// How [`projection`] encodes the projections.
    fn proj(self) -> Proj {
        match self {
            Format::I2s => Proj::I2s,
            Format::Tq2 => Proj::Tq2,
        }
    }
}

/// Reads `dir/model.json` and `dir/tensors.bin`.
pub fn read_dump(dir: &Path) -> Result<Checkpoint, String> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let manifest = read("model.json")?;
    let blob = read("tensors.bin")?;
    parse_dump(&manifest, &blob).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Parses the interchange: the manifest's JSON bytes and the blob.
pub fn parse_dump(manifest: &[u8], blob: &[u8]) -> Result<Checkpoint, String> {
    let m: Value =
        serde_json::from_slice(manifest).map_err(|e| format!("model.json is not JSON: {e}"))?;
    let format = m.get("format").and_then(Value::as_str);
    let version = m.get("version").and_then(Value::as_u64);
    if format != Some(DUMP_FORMAT) || version != Some(DUMP_VERSION) {
        return Err(format!(
            "model.json: format {format:?} version {version:?}, expected \
             {DUMP_FORMAT:?} version {DUMP_VERSION} (xtask/train/dump.py)"
        ));
    }
    let c = field(&m, "config")?;
    let config = Config {
        vocab: usize_field(c, "vocab")?,
        n_embd: usize_field(c, "n_embd")?,
        n_layer: usize_field(c, "n_layer")?,
        n_head: usize_field(c, "n_head")?,
        n_head_kv: usize_field(c, "n_head_kv")?,
        n_ff: usize_field(c, "n_ff")?,
        ctx: usize_field(c, "ctx")?,
        eps: f32_field(c, "eps")?,
        rope_base: f32_field(c, "rope_base")?,
    };
    let t = field(&m, "tokenizer")?;
    let model = field(t, "model")?.as_str();
    if model != Some("gpt2") {
        return Err(format!(
            "tokenizer.model is {model:?}; the export writes byte-level BPE (\"gpt2\") only"
        ));
    }
    let tokenizer = BpeTokenizer {
        pre: str_field(t, "pre")?.to_string(),
        tokens: str_array(t, "tokens")?,
        merges: str_array(t, "merges")?,
        bos: u32_field(t, "bos_token_id")?,
        eos: u32_field(t, "eos_token_id")?,
    };
    let entries = field(&m, "tensors")?
        .as_array()
        .ok_or("model.json: \"tensors\" is not an array")?;
    let mut tensors = HashMap::new();
    for e in entries {
        let name = str_field(e, "name")?;
        let tensor = parse_tensor(e, blob).map_err(|err| format!("tensor '{name}': {err}"))?;
        if tensors.insert(name.to_string(), tensor).is_some() {
            return Err(format!("tensor '{name}' appears twice in model.json"));
        }
    }
    Ok(Checkpoint {
        config,
        tokenizer,
        tensors,
    })
}

fn parse_tensor(e: &Value, blob: &[u8]) -> Result<Tensor, String> {
    let shape = field(e, "shape")?
        .as_array()
        .ok_or("\"shape\" is not an array")?
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or("a dimension is not an unsigned integer")
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let offset = usize_field(e, "offset")?;
    let weights = match str_field(e, "dtype")? {
        "f32" => {
            let bytes = blob_slice(blob, offset, n.checked_mul(4).ok_or("size overflows")?)?;
            Weights::F32(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
        "ternary" => {
            let bytes = blob_slice(blob, offset, n)?;
            let w: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
            if let Some(i) = w.iter().position(|v| !(-1..=1).contains(v)) {
                return Err(format!("weight {i} is {}, not ternary", w[i]));
            }
            let s = blob_slice(blob, usize_field(e, "scale_offset")?, 4)?;
            let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            if !scale.is_finite() {
                return Err(format!("scale {scale} is not finite"));
            }
            Weights::Ternary(Ternary { w, scale })
        }
        other => return Err(format!("dtype {other:?} (expected \"f32\" or \"ternary\")")),
    };
    Ok(Tensor { shape, weights })
}

fn blob_slice(blob: &[u8], offset: usize, len: usize) -> Result<&[u8], String> {
    offset
        .checked_add(len)
        .and_then(|end| blob.get(offset..end))
        .ok_or_else(|| {
            format!(
                "bytes {offset}..+{len} lie outside tensors.bin ({} bytes)",
                blob.len()
            )
        })
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("missing \"{key}\""))
}

fn usize_field(v: &Value, key: &str) -> Result<usize, String> {
    field(v, key)?
        .as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| format!("\"{key}\" is not an unsigned integer"))
}

fn u32_field(v: &Value, key: &str) -> Result<u32, String> {
    field(v, key)?
        .as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| format!("\"{key}\" is not a u32"))
}

/// A JSON number rounded to f32 (as gguf-py's `add_float32` did).
fn f32_field(v: &Value, key: &str) -> Result<f32, String> {
    field(v, key)?
        .as_f64()
        .map(|x| x as f32)
        .ok_or_else(|| format!("\"{key}\" is not a number"))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| format!("\"{key}\" is not a string"))
}

fn str_array(v: &Value, key: &str) -> Result<Vec<String>, String> {
    field(v, key)?
        .as_array()
        .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect())
        .ok_or_else(|| format!("\"{key}\" is not an array of strings"))
}

/// The GGUF vocabulary: tokens, BOS and EOS as control tokens, merges,
/// BOS added to every prompt, EOS not. Checked by building the tokenizer.
fn vocab(t: &BpeTokenizer, n_vocab: usize) -> Result<Vocab, String> {
    if t.tokens.len() != n_vocab {
        return Err(format!(
            "{} tokens, config.vocab is {n_vocab}",
            t.tokens.len()
        ));
    }
    let mut v = Vocab::new(VocabKind::Bpe);
    v.tokens = t.tokens.clone();
    v.token_types = Some(
        (0..t.tokens.len())
            .map(|i| {
                let special = i == t.bos as usize || i == t.eos as usize;
                if special {
                    TokenType::Control as i32
                } else {
                    TokenType::Normal as i32
                }
            })
            .collect(),
    );
    v.merges = t.merges.clone();
    v.special = SpecialIds {
        bos: Some(t.bos),
        eos: Some(t.eos),
        ..SpecialIds::default()
    };
    v.add_bos = Some(true);
    v.add_eos = Some(false);
    v.pre = Some(t.pre.clone());
    Tokenizer::new(v.clone()).map_err(|e| format!("tokenizer: {e}"))?;
    Ok(v)
}

/// The GGUF file of `ck` with projections in `format`, `general.name` =
/// `{name}-{i2_s|tq2_0}`.
pub fn build_gguf(ck: &Checkpoint, format: Format, name: &str) -> Result<Vec<u8>, String> {
    let c = &ck.config;
    if c.n_head == 0 || c.n_head_kv == 0 || !c.n_embd.is_multiple_of(c.n_head) {
        return Err(format!(
            "config: n_embd {} with {} heads / {} KV heads",
            c.n_embd, c.n_head, c.n_head_kv
        ));
    }
    let shape = Shape {
        arch: ARCH,
        dim: c.n_embd,
        layers: c.n_layer,
        heads: c.n_head,
        kv_heads: c.n_head_kv,
        ff: c.n_ff,
        vocab: c.vocab,
        ctx: c.ctx,
        rope_base: c.rope_base,
        rms_eps: c.eps,
    };
    let mut w = GgufWriter::new();
    metadata(&mut w, &shape, &format!("{name}-{}", format.suffix()));
    w.kv(
        &format!("{ARCH}.vocab_size"),
        OwnedValue::U32(u32::try_from(c.vocab).map_err(|_| "config.vocab exceeds u32")?),
    );
    w.kv("general.file_type", OwnedValue::U32(format.file_type()));
    vocab(&ck.tokenizer, c.vocab)?.write_gguf(&mut w);

    let get = |key: &str, expect: &[usize]| -> Result<&Weights, String> {
        let t = ck
            .tensors
            .get(key)
            .ok_or_else(|| format!("the dump has no tensor '{key}'"))?;
        if t.shape != expect {
            return Err(format!(
                "tensor '{key}': shape {:?}, the config needs {expect:?}",
                t.shape
            ));
        }
        Ok(&t.weights)
    };
    let floats = |key: &str, expect: &[usize]| match get(key, expect)? {
        Weights::F32(v) => Ok(v),
        Weights::Ternary(_) => Err(format!("tensor '{key}' is ternary, expected f32")),
    };
    let spec = |name: String, ggml_type, shape: &[usize], data| TensorSpec {
        name,
        ggml_type,
        // GGUF lists ne0 (the contiguous dimension) first.
        dims: shape.iter().rev().map(|&d| d as u64).collect(),
        data,
    };
    let mut tensors = Vec::new();
    let emb_shape = [c.vocab, c.n_embd];
    let emb = floats("token_embd.weight", &emb_shape)?;
    tensors.push(spec(
        "token_embd.weight".into(),
        GgmlType::F16,
        &emb_shape,
        f16_bytes(emb),
    ));
    let norm = floats("output_norm.weight", &[c.n_embd])?;
    tensors.push(spec(
        "output_norm.weight".into(),
        GgmlType::F32,
        &[c.n_embd],
        f32_bytes(norm),
    ));
    let proj_shapes: HashMap<&str, (usize, usize)> = projections(&shape)
        .into_iter()
        .map(|(n, rows, cols)| (n, (rows, cols)))
        .collect();
    let norm_len = |n: &str| match n {
        "attn_sub_norm" => shape.heads * shape.head_dim(),
        "ffn_sub_norm" => shape.ff,
        _ => shape.dim,
    };
    for l in 0..c.n_layer {
        for n in LAYER_ORDER {
            let key = format!("blk.{l}.{n}.weight");
            if let Some(&(rows, cols)) = proj_shapes.get(n) {
                let Weights::Ternary(t) = get(&key, &[rows, cols])? else {
                    return Err(format!("tensor '{key}' is f32, expected ternary"));
                };
                let (ty, data, _) = projection(t, rows, cols, format.proj())
                    .map_err(|e| format!("tensor '{key}': {e}"))?;
                tensors.push(spec(key, ty, &[rows, cols], data));
            } else {
                let len = norm_len(n);
                let v = floats(&key, &[len])?;
                tensors.push(spec(key, GgmlType::F32, &[len], f32_bytes(v)));
            }
        }
    }
    let written: HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    let mut unused: Vec<&str> = ck
        .tensors
        .keys()
        .map(String::as_str)
        .filter(|k| !written.contains(*k))
        .collect();
    if !unused.is_empty() {
        unused.sort_unstable();
        return Err(format!(
            "the dump has tensors the model does not use: {unused:?}"
        ));
    }
    for t in tensors {
        w.tensor(t);
    }
    w.to_bytes().map_err(|e| e.to_string())
}

/// `cargo xtask export-model`: builds each requested file, loads it back
/// through our own loader, writes it and prints its size and SHA-256.
pub fn export_model(from: &Path, outputs: &[(&Path, Format)], name: &str) -> Result<(), String> {
    if outputs.is_empty() {
        return Err("nothing to write: pass --i2s and/or --tq2".into());
    }
    let ck = read_dump(from)?;
    for &(path, format) in outputs {
        let bytes = build_gguf(&ck, format, name)?;
        let g = bitnet_core::gguf::Gguf::parse(&bytes).map_err(|e| e.to_string())?;
        bitnet_core::model::Model::from_gguf(&g)
            .map_err(|e| format!("{}: does not load back: {e}", path.display()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let sha: String = bitnet_std::receipt::sha256(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!(
            "wrote {} ({} bytes, {}, sha256 {sha})",
            path.display(),
            bytes.len(),
            format.suffix()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_core::gguf::Gguf;
    use bitnet_core::quant::i2s::dequantize_i2s;

    fn shipped(name: &str) -> Vec<u8> {
        let path = crate::root().join("tests/models").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The checkpoint as the shipped I2_S file holds it: hyper-parameters
    /// and vocabulary from the metadata, F16 embedding widened to f32 (so
    /// exact again after the export's f16 rounding), ternary codes and f32
    /// scales decoded by bitnet-core's I2_S dequantizer.
    fn checkpoint_from_i2s(g: &Gguf<'_>) -> Checkpoint {
        let key = |k: &str| format!("{ARCH}.{k}");
        let u = |k: &str| g.get_usize(&key(k)).unwrap();
        let config = Config {
            vocab: u("vocab_size"),
            n_embd: u("embedding_length"),
            n_layer: u("block_count"),
            n_head: u("attention.head_count"),
            n_head_kv: u("attention.head_count_kv"),
            n_ff: u("feed_forward_length"),
            ctx: u("context_length"),
            eps: g.get_f32(&key("attention.layer_norm_rms_epsilon")).unwrap(),
            rope_base: g.get_f32(&key("rope.freq_base")).unwrap(),
        };
        let v = Vocab::from_gguf(g).unwrap();
        let tokenizer = BpeTokenizer {
            pre: v.pre.unwrap(),
            tokens: v.tokens,
            merges: v.merges,
            bos: v.special.bos.unwrap(),
            eos: v.special.eos.unwrap(),
        };
        let mut tensors = HashMap::new();
        for t in g.tensors() {
            let data = g.tensor_data(t);
            let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
            let weights = match t.ggml_type {
                GgmlType::F32 => Weights::F32(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                ),
                GgmlType::F16 => Weights::F32(
                    data.chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                ),
                GgmlType::I2S => {
                    let (rows, cols) = (shape[0], shape[1]);
                    let mut x = vec![0f32; rows * cols];
                    dequantize_i2s(data, rows, cols, &mut x).unwrap();
                    let scale = bitnet_core::quant::i2s::i2s_scale(data, rows, cols).unwrap();
                    assert!(scale > 0.0, "{}", t.name);
                    // x = w * scale with w in {-1, 0, 1}: the quotient is exact.
                    let w = x.iter().map(|&v| (v / scale) as i8).collect();
                    Weights::Ternary(Ternary { w, scale })
                }
                other => panic!("{}: unexpected type {other:?}", t.name),
            };
            tensors.insert(t.name.to_string(), Tensor { shape, weights });
        }
        Checkpoint {
            config,
            tokenizer,
            tensors,
        }
    }

    /// Fails naming the first differing byte (a Vec's assert_eq would print
    /// megabytes).
    fn assert_same(name: &str, shipped: &[u8], rebuilt: &[u8]) {
        if shipped != rebuilt {
            let at = shipped.iter().zip(rebuilt).position(|(a, b)| a != b);
            panic!(
                "{name} ({} bytes) differs from its rebuild ({} bytes), first at byte {at:?}",
                shipped.len(),
                rebuilt.len()
            );
        }
    }

    /// The writer path reproduces both shipped files byte for byte from the
    /// weights the I2_S file holds: same keys in the same order, tensor
    /// order, I2_S packing, TQ2_0 quantization, alignment and padding as
    /// the gguf-py export that first wrote them from
    /// xtask/train/runs/run2/a/best.pt.
    #[test]
    fn rebuilds_the_shipped_shakespeare_files_byte_for_byte() {
        let i2s = shipped("shakespeare-i2s.gguf");
        let ck = checkpoint_from_i2s(&Gguf::parse(&i2s).unwrap());
        assert_same(
            "shakespeare-i2s.gguf",
            &i2s,
            &build_gguf(&ck, Format::I2s, DEFAULT_NAME).unwrap(),
        );
        let tq2 = shipped("shakespeare-tq2_0.gguf");
        assert_same(
            "shakespeare-tq2_0.gguf",
            &tq2,
            &build_gguf(&ck, Format::Tq2, DEFAULT_NAME).unwrap(),
        );
    }

    /// A dump that does not fit its config is refused, naming the tensor.
    #[test]
    fn refuses_a_dump_that_does_not_fit_its_config() {
        let i2s = shipped("shakespeare-i2s.gguf");
        let ck = checkpoint_from_i2s(&Gguf::parse(&i2s).unwrap());
        let err = |ck: &Checkpoint| build_gguf(ck, Format::I2s, DEFAULT_NAME).unwrap_err();

        let mut missing = ck.clone();
        missing.tensors.remove("blk.5.ffn_down.weight");
        assert!(err(&missing).contains("no tensor 'blk.5.ffn_down.weight'"));

        let mut extra = ck.clone();
        let norm = extra.tensors["output_norm.weight"].clone();
        extra.tensors.insert("blk.6.attn_norm.weight".into(), norm);
        assert!(err(&extra).contains("\"blk.6.attn_norm.weight\""));

        let mut narrow = ck.clone();
        narrow.config.n_ff = 1024;
        assert!(err(&narrow).contains("tensor 'blk.0.ffn_gate.weight': shape [1536, 512]"));

        let mut swapped = ck.clone();
        let q = swapped.tensors["blk.0.attn_q.weight"].clone();
        swapped.tensors.insert("blk.0.attn_norm.weight".into(), q);
        assert!(err(&swapped).contains("'blk.0.attn_norm.weight': shape [512, 512]"));

        let mut tokens = ck;
        tokens.tokenizer.tokens.pop();
        assert!(err(&tokens).contains("1023 tokens, config.vocab is 1024"));
    }

    /// A hand-made two-tensor dump parses to the values it holds; damaged
    /// ones are rejected with the tensor named.
    #[test]
    fn parses_the_interchange_and_rejects_damage() {
        let mut blob = Vec::new();
        blob.extend([1.5f32, -2.0, 0.25].iter().flat_map(|x| x.to_le_bytes()));
        blob.extend([-1i8, 0, 1, 1, 0, -1].iter().map(|&w| w as u8));
        blob.extend(0.125f32.to_le_bytes());
        let manifest = |ternary_offset: usize| {
            serde_json::json!({
                "format": "bitnet-train-dump", "version": 1,
                "config": {"vocab": 4, "n_embd": 3, "n_layer": 1, "n_head": 1, "n_head_kv": 1,
                           "n_ff": 6, "ctx": 8, "eps": 1e-5, "rope_base": 10000.0},
                "tokenizer": {"model": "gpt2", "pre": "gpt2", "tokens": ["a", "b", "c", "d"],
                              "merges": ["a b"], "bos_token_id": 3, "eos_token_id": 2},
                "tensors": [
                    {"name": "n", "shape": [3], "dtype": "f32", "offset": 0},
                    {"name": "p", "shape": [2, 3], "dtype": "ternary",
                     "offset": ternary_offset, "scale_offset": 18},
                ],
            })
            .to_string()
        };
        let ck = parse_dump(manifest(12).as_bytes(), &blob).unwrap();
        assert_eq!(ck.config.eps, 1e-5f32);
        assert_eq!((ck.tokenizer.bos, ck.tokenizer.eos), (3, 2));
        assert_eq!(ck.tensors["n"].weights, Weights::F32(vec![1.5, -2.0, 0.25]));
        assert_eq!(
            ck.tensors["p"],
            Tensor {
                shape: vec![2, 3],
                weights: Weights::Ternary(Ternary {
                    w: vec![-1, 0, 1, 1, 0, -1],
                    scale: 0.125
                }),
            }
        );
        // Shifted by 4 bytes the codes read the scale's bytes: not ternary.
        let e = parse_dump(manifest(16).as_bytes(), &blob).unwrap_err();
        assert!(e.contains("tensor 'p'") && e.contains("not ternary"), "{e}");
        let e = parse_dump(manifest(20).as_bytes(), &blob).unwrap_err();
        assert!(e.contains("tensor 'p'") && e.contains("outside"), "{e}");
        let e = parse_dump(b"{\"format\": \"other\"}", &blob).unwrap_err();
        assert!(e.contains("dump.py"), "{e}");
    }
}
