//! Tiny valid models (a few KiB each, one per weight format and
//! architecture) and the malformed suite derived from them: truncations,
//! huge counts and lengths, huge dimensions, bad alignment, unknown types,
//! overlapping or out-of-file tensor data.
//!
//! Used by core/tests/hostile_inputs.rs (native and wasm32) and by
//! std-ext/tests/hostile_limits.rs (the CLI under a memory cap); the tiny
//! models are also the checked-in seeds of the `model_load` fuzz target
//! (tests/fuzz-seeds/model_load/, kept current by a test).
#![allow(dead_code)]

use bitnet_core::gguf::{GgmlType, Gguf, GgufWriter, OwnedValue, TensorSpec};
use bitnet_core::quant::f16::f32_to_f16_row;
use bitnet_core::quant::i2s::quantize_i2s;
use bitnet_core::quant::tq1_0::quantize_row_tq1_0;
use bitnet_core::quant::tq2_0::quantize_row_tq2_0;
use bitnet_core::tokenizer::{SpecialIds, Vocab, VocabKind};

/// How a tiny model stores its projections.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Proj {
    F32,
    I2s,
    Tq2,
    Tq1,
}

/// A tiny model: name, architecture, projection format, model width.
pub const TINY: [(&str, &str, Proj, usize); 4] = [
    ("tiny-llama-f32.gguf", "llama", Proj::F32, 8),
    ("tiny-b158-i2s.gguf", "bitnet-b1.58", Proj::I2s, 128),
    ("tiny-bitnet-tq2_0.gguf", "bitnet", Proj::Tq2, 256),
    ("tiny-bitnet-tq1_0.gguf", "bitnet", Proj::Tq1, 256),
];

const VOCAB: usize = 16;
const LAYERS: usize = 1;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;

/// Deterministic filler: a small linear congruential stream (no RNG crate
/// needed; the values only have to be varied and reproducible).
struct Fill(u64);

impl Fill {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    /// In [-0.5, 0.5).
    fn f(&mut self) -> f32 {
        (self.next() % 1000) as f32 / 1000.0 - 0.5
    }
    fn ternary(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 3) as i8 - 1).collect()
    }
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(f32::to_le_bytes).collect()
}

fn spec(name: String, ggml_type: GgmlType, dims: &[usize], data: Vec<u8>) -> TensorSpec {
    TensorSpec {
        name,
        ggml_type,
        dims: dims.iter().map(|&d| d as u64).collect(),
        data,
    }
}

/// A SentencePiece vocabulary of 16 tokens (unk, bos, eos, the space
/// marker, letters).
fn vocab() -> Vocab {
    let mut v = Vocab::new(VocabKind::Spm);
    v.tokens = ["<unk>", "<s>", "</s>", "\u{2581}"]
        .into_iter()
        .map(String::from)
        .chain(('a'..='l').map(String::from))
        .collect();
    v.scores = Some((0..VOCAB).map(|i| -(i as f32)).collect());
    v.token_types = Some(
        (0..VOCAB)
            .map(|i| match i {
                0 => 2,
                1 | 2 => 3,
                _ => 1,
            })
            .collect(),
    );
    v.special = SpecialIds {
        unk: Some(0),
        bos: Some(1),
        eos: Some(2),
        ..SpecialIds::default()
    };
    v
}

/// One projection `rows x cols` (out x in) in format `p`.
fn projection(f: &mut Fill, p: Proj, rows: usize, cols: usize) -> (GgmlType, Vec<u8>) {
    let w = f.ternary(rows * cols);
    let scale = 0.05;
    let scaled: Vec<f32> = w.iter().map(|&x| f32::from(x) * scale).collect();
    match p {
        Proj::F32 => (GgmlType::F32, f32_bytes(scaled)),
        Proj::I2s => (
            GgmlType::I2S,
            quantize_i2s(&w, scale, rows, cols).expect("I2_S shape"),
        ),
        Proj::Tq2 => {
            let mut out = vec![0u8; rows * cols / 256 * 66];
            quantize_row_tq2_0(&scaled, &mut out).expect("TQ2_0 shape");
            (GgmlType::TQ2_0, out)
        }
        Proj::Tq1 => {
            let mut out = vec![0u8; rows * cols / 256 * 54];
            quantize_row_tq1_0(&scaled, &mut out).expect("TQ1_0 shape");
            (GgmlType::TQ1_0, out)
        }
    }
}

/// The tiny model `TINY[i]` as GGUF bytes.
pub fn tiny_model(i: usize) -> Vec<u8> {
    let (name, arch, p, dim) = TINY[i];
    let (head_dim, ff) = (dim / HEADS, dim);
    let (q_dim, kv_dim) = (HEADS * head_dim, KV_HEADS * head_dim);
    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String(arch.into()));
    w.kv("general.name", OwnedValue::String(name.into()));
    w.kv("general.alignment", OwnedValue::U32(32));
    for (k, v) in [
        ("context_length", 8),
        ("embedding_length", dim),
        ("block_count", LAYERS),
        ("feed_forward_length", ff),
        ("attention.head_count", HEADS),
        ("attention.head_count_kv", KV_HEADS),
        ("rope.dimension_count", head_dim),
    ] {
        w.kv(&format!("{arch}.{k}"), OwnedValue::U32(v as u32));
    }
    w.kv(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(1e-5),
    );
    w.kv(&format!("{arch}.rope.freq_base"), OwnedValue::F32(10000.0));
    vocab().write_gguf(&mut w);
    let mut f = Fill(i as u64 + 1);
    let emb = (0..VOCAB * dim).map(|_| f.f()).collect::<Vec<_>>();
    let emb = match p {
        // As the real 2B-4T file: an F16 tied embedding next to I2_S.
        Proj::I2s => {
            let mut h = vec![Default::default(); emb.len()];
            f32_to_f16_row(&emb, &mut h).expect("same length");
            let bytes = h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
            (GgmlType::F16, bytes)
        }
        _ => (GgmlType::F32, f32_bytes(emb)),
    };
    w.tensor(spec(
        "token_embd.weight".into(),
        emb.0,
        &[dim, VOCAB],
        emb.1,
    ));
    let norm = |f: &mut Fill, n: usize| f32_bytes((0..n).map(|_| 1.0 + 0.1 * f.f()));
    w.tensor(spec(
        "output_norm.weight".into(),
        GgmlType::F32,
        &[dim],
        norm(&mut f, dim),
    ));
    for l in 0..LAYERS {
        let b = format!("blk.{l}.");
        let mut norms = vec![("attn_norm", dim), ("ffn_norm", dim)];
        if arch != "llama" {
            norms.extend([("attn_sub_norm", q_dim), ("ffn_sub_norm", ff)]);
        }
        for (n, len) in norms {
            w.tensor(spec(
                format!("{b}{n}.weight"),
                GgmlType::F32,
                &[len],
                norm(&mut f, len),
            ));
        }
        for (n, rows, cols) in [
            ("attn_q", q_dim, dim),
            ("attn_k", kv_dim, dim),
            ("attn_v", kv_dim, dim),
            ("attn_output", dim, q_dim),
            ("ffn_gate", ff, dim),
            ("ffn_up", ff, dim),
            ("ffn_down", dim, ff),
        ] {
            let (ty, data) = projection(&mut f, p, rows, cols);
            w.tensor(spec(format!("{b}{n}.weight"), ty, &[cols, rows], data));
        }
    }
    w.to_bytes().expect("tiny model writes")
}

/// `model` (a valid GGUF file, e.g. [`tiny_model`]) with the per-tensor
/// scale of the I2_S tensor `tensor` (the f32 at byte `n_elements / 4` of its
/// data, DESIGN.md §4) replaced by `scale`.
pub fn with_i2s_scale(model: &[u8], tensor: &str, scale: f32) -> Vec<u8> {
    let g = Gguf::parse(model).expect("a valid model");
    let t = g.tensor(tensor).expect("the tensor is in the model");
    assert_eq!(t.ggml_type, GgmlType::I2S, "{tensor} is not I2_S");
    let at = usize::try_from(g.data_offset() + t.offset + t.n_elements() / 4).unwrap();
    let mut b = model.to_vec();
    b[at..at + 4].copy_from_slice(&scale.to_le_bytes());
    b
}

/// Offsets of the GGUF header fields (v3): magic, version, tensor count,
/// kv count; the first key's length follows.
const TENSOR_COUNT_AT: usize = 8;
const KV_COUNT_AT: usize = 16;
const FIRST_KEY_LEN_AT: usize = 24;

/// Byte offset of the first occurrence of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offset just past the name of the tensor info for `name` (its n_dims
/// field), found by the length-prefixed name.
fn tensor_info(b: &[u8], name: &str) -> Option<usize> {
    let mut pat = (name.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(name.as_bytes());
    // Tensor infos come after the metadata: take the last occurrence.
    let mut at = None;
    let mut from = 0;
    while let Some(p) = find(&b[from..], &pat) {
        at = Some(from + p + pat.len());
        from += p + 1;
    }
    at
}

/// The malformed suite for one valid model: (case name, bytes).
pub fn malformed(model: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut case = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = model.to_vec();
        f(&mut b);
        out.push((name.to_string(), b));
    };
    // Truncations: inside the header, the metadata, the tensor infos, the
    // data; and the empty file.
    for n in [0, 3, 4, 7, 8, 15, 16, 23, 24, 25, 40, 100, 300, 1000] {
        case(&format!("truncated to {n} bytes"), &|b| b.truncate(n));
    }
    for frac in [2, 3, 5] {
        case(&format!("truncated to 1/{frac}"), &|b| {
            b.truncate(b.len() / frac)
        });
    }
    case("last byte missing", &|b| {
        b.pop();
    });
    case("bad magic", &|b| b[0] = b'X');
    case("version 1", &|b| put_u32(b, 4, 1));
    case("version 99", &|b| put_u32(b, 4, 99));
    for (what, v) in [
        ("2^32", 1u64 << 32),
        ("2^60", 1 << 60),
        ("u64::MAX", u64::MAX),
    ] {
        case(&format!("tensor count {what}"), &|b| {
            put_u64(b, TENSOR_COUNT_AT, v)
        });
        case(&format!("kv count {what}"), &|b| put_u64(b, KV_COUNT_AT, v));
        case(&format!("first key length {what}"), &|b| {
            put_u64(b, FIRST_KEY_LEN_AT, v)
        });
    }
    // ~7e10: the length `corrupt-mangled-llama-spm.gguf` decodes to.
    case("first key length 7e10", &|b| {
        put_u64(b, FIRST_KEY_LEN_AT, 70_000_000_000)
    });
    if let Some(at) = find(model, b"tokenizer.ggml.tokens") {
        // type (u32 = 9: array), element type (u32), element count (u64).
        let count_at = at + "tokenizer.ggml.tokens".len() + 8;
        for (what, v) in [
            ("2^31", 1u64 << 31),
            ("2^61", 1 << 61),
            ("u64::MAX", u64::MAX),
        ] {
            case(&format!("token array length {what}"), &|b| {
                put_u64(b, count_at, v)
            });
        }
        case("token array of unknown type", &|b| {
            put_u32(b, count_at - 4, 77)
        });
        case("first token length 2^62", &|b| {
            put_u64(b, count_at + 8, 1 << 62)
        });
        case("key value type 99", &|b| put_u32(b, count_at - 8, 99));
    }
    if let Some(at) = find(model, b"general.alignment") {
        let v = at + "general.alignment".len() + 4;
        for a in [0u32, 3, 1 << 31] {
            case(&format!("alignment {a}"), &|b| put_u32(b, v, a));
        }
    }
    if let Some(at) = tensor_info(model, "blk.0.attn_q.weight") {
        // n_dims (u32), dims (u64 each), type (u32), offset (u64).
        let n_dims = u32::from_le_bytes(model[at..at + 4].try_into().unwrap()) as usize;
        let dims = at + 4;
        let ty = dims + 8 * n_dims;
        let off = ty + 4;
        for n in [0u32, 5, 1 << 31] {
            case(&format!("n_dims {n}"), &|b| put_u32(b, at, n));
        }
        for (what, v) in [
            ("2^32", 1u64 << 32),
            ("2^62", 1 << 62),
            ("u64::MAX", u64::MAX),
            ("0", 0),
        ] {
            case(&format!("dim 0 = {what}"), &|b| put_u64(b, dims, v));
            case(&format!("dim 1 = {what}"), &|b| put_u64(b, dims + 8, v));
        }
        case("dims 2^32 x 2^32", &|b| {
            put_u64(b, dims, 1 << 32);
            put_u64(b, dims + 8, 1 << 32);
        });
        for t in [13u32, 39, 200, u32::MAX] {
            case(&format!("type id {t}"), &|b| put_u32(b, ty, t));
        }
        for (what, v) in [("1", 1u64), ("2^40", 1 << 40), ("u64::MAX", u64::MAX)] {
            case(&format!("data offset {what}"), &|b| put_u64(b, off, v));
        }
        case("data offset of the previous tensor (overlap)", &|b| {
            put_u64(b, off, 0)
        });
    }
    case("metadata key renamed: no architecture", &|b| {
        if let Some(at) = find(b, b"general.architecture") {
            b[at] = b'x';
        }
    });
    case("tensor renamed: token_embd missing", &|b| {
        if let Some(at) = tensor_info(b, "token_embd.weight") {
            b[at - 3] = b'X';
        }
    });
    for (key, v) in [
        ("embedding_length", u32::MAX),
        ("block_count", u32::MAX),
        ("context_length", u32::MAX),
        ("attention.head_count", 0),
        ("attention.head_count_kv", 7),
        ("feed_forward_length", u32::MAX),
        ("rope.dimension_count", 3),
    ] {
        case(&format!("{key} = {v}"), &|b| {
            if let Some(at) = find(b, format!(".{key}").as_bytes()) {
                // type (u32 = 4: u32) then the value.
                let val = at + key.len() + 1 + 4;
                put_u32(b, val, v);
            }
        });
    }
    out
}
