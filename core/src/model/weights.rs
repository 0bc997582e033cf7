//! [`Weights`]: the model's tensors, borrowed zero-copy from the GGUF bytes
//! and checked against the [`Config`] on load.
//!
//! Matrices stay in their file format and are multiplied through
//! [`QuantizedLinear`]. Only the small vectors (norm weights, `dim` or
//! `hidden_dim` floats each, and one-element scales) are decoded to f32 at
//! load, which also lets F16/BF16 norms and unaligned file bytes work
//! without `unsafe`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use half::{bf16, f16};

use super::config::{Arch, Config};
use super::error::{ModelError, zeroed};
use crate::gguf::{GgmlType, Gguf, TensorInfo, Value};
use crate::kernels::Platform;
use crate::parallel::Join;
use crate::quant::i2s::i2s_scale;
use crate::quant::q8_0::dequantize_row_q8_0;
use crate::quant::tq1_0::dequantize_row_tq1_0;
use crate::quant::tq2_0::dequantize_row_tq2_0;
use crate::quant::{ActScratch, QuantType, QuantizedLinear};

/// A projection: a borrowed weight matrix and an optional per-tensor scale
/// (`blk.N.<proj>.scale`, `bitnet` archs) multiplied onto its output.
#[derive(Debug, Clone)]
pub struct Linear<'a> {
    /// Tensor name (for errors).
    pub name: &'a str,
    /// The weight matrix, `rows x cols` = out features x in features.
    pub matrix: QuantizedLinear<'a>,
    /// The one-element `.scale` tensor's value, if present.
    pub scale: Option<f32>,
}

impl Linear<'_> {
    /// `out = (x W^T) * scale` for `x` of `batch x cols` and `out` of
    /// `batch x rows`, with `platform`'s kernels and rows split through `J`;
    /// returns the id of the kernel that ran.
    pub fn forward_in<J: Join>(
        &self,
        platform: Platform,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut ActScratch,
    ) -> Result<&'static str, ModelError> {
        let id = self
            .matrix
            .forward_in::<J>(platform, x, out, scratch)
            .map_err(|source| ModelError::Quant {
                name: self.name.to_string(),
                source,
            })?;
        self.apply_scale(out);
        Ok(id)
    }

    /// `N` linears of one input `x` (Q, K and V; gate and up), as
    /// [`forward_in`](Self::forward_in) on each, with one parallel region
    /// for all where the kernels allow
    /// ([`QuantizedLinear::forward_many_in`]); returns the kernel ids.
    pub fn forward_many_in<J: Join, const N: usize>(
        platform: Platform,
        lins: [&Self; N],
        x: &[f32],
        mut outs: [&mut [f32]; N],
        scratch: &mut ActScratch,
    ) -> Result<[&'static str; N], ModelError> {
        let matrices = lins.map(|l| &l.matrix);
        let ids = QuantizedLinear::forward_many_in::<J, N>(
            platform,
            matrices,
            x,
            outs.each_mut().map(|o| &mut **o),
            scratch,
        )
        .map_err(|source| ModelError::Quant {
            name: lins.map(|l| l.name).join(", "),
            source,
        })?;
        for (l, o) in lins.iter().zip(outs) {
            l.apply_scale(o);
        }
        Ok(ids)
    }

    /// Multiplies `out` by the `.scale` tensor's value, if any.
    fn apply_scale(&self, out: &mut [f32]) {
        if let Some(s) = self.scale {
            for o in out.iter_mut() {
                *o *= s;
            }
        }
    }
}

/// The token embedding table, `vocab x dim` (row per token), borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Embedding<'a> {
    /// Raw bytes of `token_embd.weight`.
    bytes: &'a [u8],
    /// Element type.
    ggml_type: GgmlType,
    /// Bytes per row (one token).
    row_bytes: usize,
    /// Row length (`dim`).
    dim: usize,
    /// Rows (`vocab_size`).
    vocab: usize,
}

impl Embedding<'_> {
    /// Writes the embedding of `token` into `out` (`dim` floats), decoding
    /// only that row.
    pub fn row(&self, token: u32, out: &mut [f32]) -> Result<(), ModelError> {
        let t = usize::try_from(token).unwrap_or(usize::MAX);
        if t >= self.vocab {
            return Err(ModelError::TokenOutOfRange {
                token,
                vocab: self.vocab,
            });
        }
        if out.len() != self.dim {
            return Err(ModelError::BadRunState {
                reason: "embedding output length differs from dim",
            });
        }
        let start = t * self.row_bytes;
        let row =
            self.bytes
                .get(start..start + self.row_bytes)
                .ok_or(ModelError::TokenOutOfRange {
                    token,
                    vocab: self.vocab,
                })?;
        let quant = |r: Result<(), crate::quant::QuantError>| {
            r.map_err(|source| ModelError::Quant {
                name: "token_embd.weight".to_string(),
                source,
            })
        };
        match self.ggml_type {
            GgmlType::F32 => {
                for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            GgmlType::F16 => {
                for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            GgmlType::BF16 => {
                for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            GgmlType::Q8_0 => quant(dequantize_row_q8_0(row, out))?,
            GgmlType::TQ1_0 => quant(dequantize_row_tq1_0(row, out))?,
            GgmlType::TQ2_0 => quant(dequantize_row_tq2_0(row, out))?,
            // Refused at load time.
            other => {
                return Err(ModelError::UnsupportedType {
                    name: "token_embd.weight".to_string(),
                    ggml_type: other.name(),
                });
            }
        }
        Ok(())
    }
}

/// One transformer block's weights. Shapes as `[rows x cols]` of the
/// matrix product (`out x in`); GGUF dims are the reverse (ne0 = in).
#[derive(Debug, Clone)]
pub struct LayerWeights<'a> {
    /// `attn_norm.weight`: `[dim]`.
    pub attn_norm: Vec<f32>,
    /// `attn_q`: `[n_heads * head_dim x dim]`.
    pub wq: Linear<'a>,
    /// `attn_k`: `[n_kv_heads * head_dim x dim]`.
    pub wk: Linear<'a>,
    /// `attn_v`: `[n_kv_heads * head_dim x dim]`.
    pub wv: Linear<'a>,
    /// `attn_sub_norm.weight` (bitnet archs): `[n_heads * head_dim]`.
    pub attn_sub_norm: Option<Vec<f32>>,
    /// `attn_output`: `[dim x n_heads * head_dim]`.
    pub wo: Linear<'a>,
    /// `ffn_norm.weight`: `[dim]`.
    pub ffn_norm: Vec<f32>,
    /// `ffn_gate`: `[hidden_dim x dim]`.
    pub w_gate: Linear<'a>,
    /// `ffn_up`: `[hidden_dim x dim]`.
    pub w_up: Linear<'a>,
    /// `ffn_sub_norm.weight` (bitnet archs): `[hidden_dim]`.
    pub ffn_sub_norm: Option<Vec<f32>>,
    /// `ffn_down`: `[dim x hidden_dim]`.
    pub w_down: Linear<'a>,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// `token_embd.weight`: `[vocab_size x dim]`.
    pub token_embd: Embedding<'a>,
    /// The blocks, `n_layers` of them.
    pub layers: Vec<LayerWeights<'a>>,
    /// `output_norm.weight`: `[dim]`.
    pub output_norm: Vec<f32>,
    /// LM head: `output.weight` or the tied `token_embd.weight`,
    /// `[vocab_size x dim]`.
    pub lm_head: Linear<'a>,
}

/// Tensor name suffixes of llama.cpp features this engine does not
/// implement; their presence would silently change the output.
const UNSUPPORTED_LAYER_TENSORS: [&str; 8] = [
    "attn_q.bias",
    "attn_k.bias",
    "attn_v.bias",
    "attn_output.bias",
    "ffn_gate.bias",
    "ffn_up.bias",
    "ffn_down.bias",
    "ffn_gate_inp.weight",
];

impl<'a> Weights<'a> {
    /// Borrows every tensor of `g` that `cfg` needs, checking dims against the
    /// metadata, the vocabulary size against the embedding rows, and norm
    /// weights, `*.scale` tensors and I2_S per-tensor scales for finiteness.
    /// Sets `cfg.vocab_size`.
    pub fn from_gguf(g: &Gguf<'a>, cfg: &mut Config) -> Result<Self, ModelError> {
        for name in ["rope_freqs.weight", "blk.0.rope_freqs.weight"] {
            if g.tensor(name).is_some() {
                return Err(ModelError::UnsupportedTensor {
                    name: name.to_string(),
                    reason: "per-dimension RoPE frequencies are not implemented",
                });
            }
        }
        let (dim, ff, q_dim, kv_dim) = (cfg.dim, cfg.hidden_dim, cfg.q_dim(), cfg.kv_dim());

        let emb_info = tensor(g, "token_embd.weight")?;
        let vocab = match emb_info.dims.as_slice() {
            [d, v] if *d == dim as u64 && *v > 0 => usize::try_from(*v).unwrap_or(usize::MAX),
            _ => {
                return Err(ModelError::ShapeMismatch {
                    name: emb_info.name.to_string(),
                    expected: vec![dim as u64, emb_info.dims.get(1).copied().unwrap_or(0)],
                    actual: emb_info.dims.clone(),
                });
            }
        };
        check_vocab(g, cfg.arch, vocab)?;
        cfg.vocab_size = vocab;
        let token_embd = embedding(g, emb_info, dim, vocab)?;

        let mut layers = Vec::new();
        layers
            .try_reserve_exact(cfg.n_layers)
            .map_err(|_| ModelError::AllocFailed {
                bytes: cfg.n_layers,
            })?;
        let sub = cfg.arch.has_sub_norms();
        for l in 0..cfg.n_layers {
            let p = format!("blk.{l}.");
            for s in UNSUPPORTED_LAYER_TENSORS {
                let name = format!("{p}{s}");
                if g.tensor(&name).is_some() {
                    return Err(ModelError::UnsupportedTensor {
                        name,
                        reason: "biases and mixture-of-experts are not implemented",
                    });
                }
            }
            let lin = |s: &str, rows: usize, cols: usize| linear(g, cfg.arch, &p, s, rows, cols);
            let nrm = |s: &str, n: usize| norm(g, &format!("{p}{s}.weight"), n);
            layers.push(LayerWeights {
                attn_norm: nrm("attn_norm", dim)?,
                wq: lin("attn_q", q_dim, dim)?,
                wk: lin("attn_k", kv_dim, dim)?,
                wv: lin("attn_v", kv_dim, dim)?,
                attn_sub_norm: if sub {
                    Some(nrm("attn_sub_norm", q_dim)?)
                } else {
                    None
                },
                wo: lin("attn_output", dim, q_dim)?,
                ffn_norm: nrm("ffn_norm", dim)?,
                w_gate: lin("ffn_gate", ff, dim)?,
                w_up: lin("ffn_up", ff, dim)?,
                ffn_sub_norm: if sub {
                    Some(nrm("ffn_sub_norm", ff)?)
                } else {
                    None
                },
                w_down: lin("ffn_down", dim, ff)?,
            });
        }
        let output_norm = norm(g, "output_norm.weight", dim)?;
        let head_info = match g.tensor("output.weight") {
            Some(t) if cfg.arch.may_have_output_weight() => t,
            _ => emb_info,
        };
        let lm_head = Linear {
            name: head_info.name,
            matrix: matrix(g, head_info, vocab, dim)?,
            scale: None,
        };
        Ok(Self {
            token_embd,
            layers,
            output_norm,
            lm_head,
        })
    }
}

impl Weights<'_> {
    /// Repacks every ternary (I2_S, TQ1_0, TQ2_0) projection of the blocks into `kind`'s
    /// lookup-table layout (owned buffers; see
    /// [`QuantizedLinear::repack_tl`]) so that the matmuls run the TL
    /// kernels with identical results. Other formats (and the LM head) stay
    /// as they are. `layout` is the I2_S matrices' byte arrangement
    /// ([`crate::kernels::Platform::tl_layout`] gives the fastest here).
    /// Returns how many matrices were repacked.
    pub fn repack_tl(
        &mut self,
        kind: crate::quant::tl::TlKind,
        layout: crate::quant::tl::TlLayout,
    ) -> Result<usize, ModelError> {
        let mut n = 0;
        for l in &mut self.layers {
            for lin in [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ] {
                let name = lin.name;
                if lin
                    .matrix
                    .repack_tl(kind, layout)
                    .map_err(|source| ModelError::Quant {
                        name: name.to_string(),
                        source,
                    })?
                {
                    n += 1;
                }
            }
        }
        Ok(n)
    }
}

impl Weights<'_> {
    /// `--lm-head q8`: quantizes a float LM head (the tied F16 embedding or
    /// `output.weight`) to int8 per row for the output projection only;
    /// embedding look-ups stay exact. **Changes numerics** (see
    /// [`crate::quant::q8_head`]). Returns `false` when the head is not a
    /// float matrix (then nothing changes).
    pub fn quantize_lm_head_q8(&mut self) -> Result<bool, ModelError> {
        let name = self.lm_head.name;
        self.lm_head
            .matrix
            .quantize_q8()
            .map_err(|source| ModelError::Quant {
                name: name.to_string(),
                source,
            })
    }
}

fn tensor<'g, 'a>(g: &'g Gguf<'a>, name: &str) -> Result<&'g TensorInfo<'a>, ModelError> {
    g.tensor(name).ok_or_else(|| ModelError::MissingTensor {
        name: name.to_string(),
    })
}

fn check_dims(t: &TensorInfo<'_>, expected: &[usize]) -> Result<(), ModelError> {
    let ok =
        t.dims.len() == expected.len() && t.dims.iter().zip(expected).all(|(&a, &e)| a == e as u64);
    if ok {
        Ok(())
    } else {
        Err(ModelError::ShapeMismatch {
            name: t.name.to_string(),
            expected: expected.iter().map(|&e| e as u64).collect(),
            actual: t.dims.clone(),
        })
    }
}

/// Vocabulary size: embedding rows must equal the tokenizer's token count
/// and `{arch}.vocab_size` where those exist.
fn check_vocab(g: &Gguf<'_>, arch: Arch, rows: usize) -> Result<(), ModelError> {
    if let Some(Value::Array(a)) = g.get("tokenizer.ggml.tokens")
        && a.len() != rows
    {
        return Err(ModelError::VocabMismatch {
            embedding_rows: rows,
            source: "tokenizer.ggml.tokens",
            value: a.len(),
        });
    }
    let key = format!("{}.vocab_size", arch.name());
    if g.get(&key).is_some() {
        let v = g.get_usize(&key)?;
        if v != rows {
            return Err(ModelError::VocabMismatch {
                embedding_rows: rows,
                source: "{arch}.vocab_size",
                value: v,
            });
        }
    }
    Ok(())
}

fn embedding<'a>(
    g: &Gguf<'a>,
    t: &TensorInfo<'a>,
    dim: usize,
    vocab: usize,
) -> Result<Embedding<'a>, ModelError> {
    let ggml_type = t.ggml_type;
    let qt = match ggml_type {
        GgmlType::F32 => QuantType::F32,
        GgmlType::F16 => QuantType::F16,
        GgmlType::BF16 => QuantType::BF16,
        GgmlType::Q8_0 => QuantType::Q8_0,
        GgmlType::TQ1_0 => QuantType::TQ1_0,
        GgmlType::TQ2_0 => QuantType::TQ2_0,
        other => {
            return Err(ModelError::UnsupportedType {
                name: t.name.to_string(),
                ggml_type: other.name(),
            });
        }
    };
    let quant = |source| ModelError::Quant {
        name: t.name.to_string(),
        source,
    };
    let row_bytes = qt.row_bytes(dim).map_err(quant)?;
    let bytes = g.tensor_data(t);
    let want = qt.tensor_bytes(vocab, dim).map_err(quant)?;
    if bytes.len() != want {
        return Err(quant(crate::quant::QuantError::LengthMismatch {
            what: "embedding bytes",
            expected: want,
            actual: bytes.len(),
        }));
    }
    Ok(Embedding {
        bytes,
        ggml_type,
        row_bytes,
        dim,
        vocab,
    })
}

/// A `rows x cols` matrix (GGUF dims `[cols, rows]`).
fn matrix<'a>(
    g: &Gguf<'a>,
    t: &TensorInfo<'a>,
    rows: usize,
    cols: usize,
) -> Result<QuantizedLinear<'a>, ModelError> {
    check_dims(t, &[cols, rows])?;
    let qt = QuantType::try_from(t.ggml_type).map_err(|_| ModelError::UnsupportedType {
        name: t.name.to_string(),
        ggml_type: t.ggml_type.name(),
    })?;
    let quant = |source| ModelError::Quant {
        name: t.name.to_string(),
        source,
    };
    let bytes = g.tensor_data(t);
    let m = QuantizedLinear::new(bytes, qt, rows, cols).map_err(quant)?;
    if qt == QuantType::I2S {
        // The tail's one f32 multiplies every output of the matrix: NaN or
        // inf there turns every logit into garbage. O(1) per tensor, read by
        // the same helper as the kernels. (The per-block f16 scales of
        // TQ1_0/TQ2_0/Q8_0 are not scanned here: that would touch every
        // block of the file at load; `bitnet validate`'s quant.scale does.)
        let value = i2s_scale(bytes, rows, cols).map_err(quant)?;
        if !value.is_finite() {
            return Err(ModelError::ScaleNotFinite {
                name: t.name.to_string(),
                value,
            });
        }
    }
    Ok(m)
}

/// `{prefix}{proj}.weight` as a `rows x cols` matrix, with the optional
/// `{prefix}{proj}.scale` for architectures that have them.
fn linear<'a>(
    g: &Gguf<'a>,
    arch: Arch,
    prefix: &str,
    proj: &str,
    rows: usize,
    cols: usize,
) -> Result<Linear<'a>, ModelError> {
    let t = tensor(g, &format!("{prefix}{proj}.weight"))?;
    let matrix = matrix(g, t, rows, cols)?;
    let scale_name = format!("{prefix}{proj}.scale");
    let scale = match g.tensor(&scale_name) {
        Some(s) if arch.has_projection_scales() => {
            check_dims(s, &[1])?;
            let v = floats(g, s)?;
            Some(v.first().copied().unwrap_or(1.0))
        }
        _ => None,
    };
    Ok(Linear {
        name: t.name,
        matrix,
        scale,
    })
}

/// A norm weight vector of `n` elements, decoded to f32.
fn norm(g: &Gguf<'_>, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
    let t = tensor(g, name)?;
    check_dims(t, &[n])?;
    floats(g, t)
}

/// A small F32/F16/BF16 tensor decoded to f32, every element finite.
fn floats(g: &Gguf<'_>, t: &TensorInfo<'_>) -> Result<Vec<f32>, ModelError> {
    let bytes = g.tensor_data(t);
    let n = usize::try_from(t.n_elements()).unwrap_or(usize::MAX);
    let width = match t.ggml_type {
        GgmlType::F32 => 4,
        GgmlType::F16 | GgmlType::BF16 => 2,
        other => {
            return Err(ModelError::UnsupportedType {
                name: t.name.to_string(),
                ggml_type: other.name(),
            });
        }
    };
    if bytes.len() / width != n {
        return Err(ModelError::Quant {
            name: t.name.to_string(),
            source: crate::quant::QuantError::LengthMismatch {
                what: "tensor bytes",
                expected: n.saturating_mul(width),
                actual: bytes.len(),
            },
        });
    }
    let mut out: Vec<f32> = zeroed(n)?;
    for (i, (o, b)) in out.iter_mut().zip(bytes.chunks_exact(width)).enumerate() {
        let v = match t.ggml_type {
            GgmlType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            _ => bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
        };
        if !v.is_finite() {
            return Err(ModelError::NotFinite {
                name: String::from(t.name),
                index: i,
                value: v,
            });
        }
        *o = v;
    }
    Ok(out)
}
