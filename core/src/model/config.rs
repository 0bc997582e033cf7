//! [`Config`]: every hyper-parameter, read from GGUF metadata under the
//! architecture's key prefix (`{arch}.embedding_length`, ...).

use alloc::format;
use alloc::string::{String, ToString};

use super::error::ModelError;
use crate::gguf::{Gguf, GgufError, Value};

/// The architectures this engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Standard Llama (`llama`).
    Llama,
    /// 1bitLLM BitNet b1.58 conversions (`bitnet`).
    Bitnet,
    /// Microsoft BitNet-b1.58-2B-4T (`bitnet-b1.58`).
    BitnetB158,
}

/// How RoPE pairs dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Interleaved: dimension `2i` pairs with `2i + 1` (llama.cpp
    /// `LLAMA_ROPE_TYPE_NORM`).
    Norm,
    /// Halves: dimension `i` pairs with `i + n_rot / 2` (llama.cpp
    /// `LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// The gate activation of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnActivation {
    /// `silu(gate) * up` (SwiGLU).
    Silu,
    /// `relu(gate)^2 * up`.
    ReluSquared,
}

impl Arch {
    /// The architecture named by `general.architecture`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "bitnet" => Some(Self::Bitnet),
            "bitnet-b1.58" => Some(Self::BitnetB158),
            _ => None,
        }
    }

    /// The GGUF name, which is also the metadata key prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Bitnet => "bitnet",
            Self::BitnetB158 => "bitnet-b1.58",
        }
    }

    /// RoPE pairing.
    pub const fn rope_style(self) -> RopeStyle {
        match self {
            Self::Llama => RopeStyle::Norm,
            Self::Bitnet | Self::BitnetB158 => RopeStyle::Neox,
        }
    }

    /// Whether the block has `attn_sub_norm` / `ffn_sub_norm`.
    pub const fn has_sub_norms(self) -> bool {
        !matches!(self, Self::Llama)
    }

    /// Whether one-element `*.scale` tensors multiply projection outputs.
    pub const fn has_projection_scales(self) -> bool {
        !matches!(self, Self::Llama)
    }

    /// The feed-forward gate activation.
    pub const fn ffn_activation(self) -> FfnActivation {
        match self {
            Self::BitnetB158 => FfnActivation::ReluSquared,
            Self::Llama | Self::Bitnet => FfnActivation::Silu,
        }
    }

    /// Whether `output.weight` is used as LM head when present (`bitnet`
    /// always ties the head to `token_embd`, as upstream llama.cpp does).
    pub const fn may_have_output_weight(self) -> bool {
        !matches!(self, Self::Bitnet)
    }
}

/// The model's hyper-parameters. Tensor shapes are checked against these in
/// [`super::Weights::from_gguf`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The architecture.
    pub arch: Arch,
    /// Hidden size `n_embd` (`{arch}.embedding_length`).
    pub dim: usize,
    /// Transformer blocks (`{arch}.block_count`).
    pub n_layers: usize,
    /// Query heads (`{arch}.attention.head_count`).
    pub n_heads: usize,
    /// Key/value heads (`{arch}.attention.head_count_kv`, default `n_heads`).
    pub n_kv_heads: usize,
    /// Dimension of one head (`{arch}.attention.key_length`, default
    /// `dim / n_heads`).
    pub head_dim: usize,
    /// Rotated dimensions per head (`{arch}.rope.dimension_count`, default
    /// `head_dim`); even and at most `head_dim`.
    pub n_rot: usize,
    /// Feed-forward size (`{arch}.feed_forward_length`).
    pub hidden_dim: usize,
    /// Vocabulary size: rows of `token_embd.weight`.
    pub vocab_size: usize,
    /// Training context (`{arch}.context_length`).
    pub seq_len: usize,
    /// RMSNorm epsilon (`{arch}.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// RoPE base (`{arch}.rope.freq_base`, default 10000).
    pub rope_freq_base: f32,
    /// RoPE position multiplier: `1 / {arch}.rope.scaling.factor` for linear
    /// scaling, 1 otherwise.
    pub rope_freq_scale: f32,
    /// Attention logit scale (`{arch}.attention.scale`, default
    /// `1 / sqrt(head_dim)` as llama.cpp computes it in f32).
    pub attn_scale: f32,
}

/// Caps that keep every derived size far from overflow on 32-bit targets
/// while admitting any real model.
const MAX_DIM: usize = 1 << 16;
/// Most transformer layers (`{arch}.block_count`) a model may have; also the
/// capacity of the receipts' per-layer evidence
/// ([`crate::receipt::KernelCounters`]).
pub const MAX_LAYERS: usize = 1 << 10;
const MAX_CTX: usize = 1 << 24;

impl Config {
    /// Reads the hyper-parameters of `g`. `vocab_size` is taken from the
    /// embedding rows (checked against metadata in [`super::Weights`]).
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Self, ModelError> {
        let arch_name = g.architecture().ok_or(ModelError::MissingArchitecture)?;
        let arch = Arch::from_name(arch_name).ok_or_else(|| ModelError::UnknownArchitecture {
            arch: arch_name.to_string(),
        })?;
        let p = arch.name();
        let key = |s: &str| format!("{p}.{s}");
        let req = |s: &str, max: usize| -> Result<usize, ModelError> {
            let k = key(s);
            let v = g.get_usize(&k)?;
            positive(&k, v, max)
        };
        let opt = |s: &str, default: usize, max: usize| -> Result<usize, ModelError> {
            let k = key(s);
            match g.get(&k) {
                None => Ok(default),
                Some(_) => positive(&k, g.get_usize(&k)?, max),
            }
        };
        let dim = req("embedding_length", MAX_DIM)?;
        let n_layers = req("block_count", MAX_LAYERS)?;
        let n_heads = req("attention.head_count", MAX_DIM)?;
        let n_kv_heads = opt("attention.head_count_kv", n_heads, MAX_DIM)?;
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(ModelError::HeadsDoNotDivide {
                n_head: n_heads,
                n_head_kv: n_kv_heads,
            });
        }
        let default_head_dim = if dim % n_heads == 0 { dim / n_heads } else { 0 };
        let head_dim = opt("attention.key_length", default_head_dim, MAX_DIM)?;
        if head_dim == 0 {
            return Err(ModelError::BadHyperParameter {
                key: key("embedding_length"),
                value: dim as u64,
                reason: "not a multiple of attention.head_count (and no attention.key_length)",
            });
        }
        let value_len = opt("attention.value_length", head_dim, MAX_DIM)?;
        if value_len != head_dim {
            return Err(ModelError::BadHyperParameter {
                key: key("attention.value_length"),
                value: value_len as u64,
                reason: "differs from attention.key_length (not supported)",
            });
        }
        if n_heads.checked_mul(head_dim).is_none_or(|q| q > MAX_DIM) {
            return Err(ModelError::BadHyperParameter {
                key: key("attention.head_count"),
                value: n_heads as u64,
                reason: "head_count * head_dim is too large",
            });
        }
        let n_rot = opt("rope.dimension_count", head_dim, MAX_DIM)?;
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ModelError::BadHyperParameter {
                key: key("rope.dimension_count"),
                value: n_rot as u64,
                reason: "must be even and at most the head dimension",
            });
        }
        let hidden_dim = req("feed_forward_length", 1 << 20)?;
        let seq_len = req("context_length", MAX_CTX)?;
        let norm_eps = float(g, &key("attention.layer_norm_rms_epsilon"), None)?;
        if norm_eps < 0.0 {
            return Err(bad_float(
                key("attention.layer_norm_rms_epsilon"),
                norm_eps,
                "negative",
            ));
        }
        let rope_freq_base = float(g, &key("rope.freq_base"), Some(10000.0))?;
        if rope_freq_base <= 0.0 {
            return Err(bad_float(
                key("rope.freq_base"),
                rope_freq_base,
                "not positive",
            ));
        }
        let rope_freq_scale = rope_scale(g, &key)?;
        let attn_scale = match float(g, &key("attention.scale"), Some(0.0))? {
            // llama.cpp: `1.0f/sqrtf(float(n_embd_head))`.
            0.0 => 1.0 / libm::sqrtf(head_dim as f32),
            s => s,
        };
        Ok(Self {
            arch,
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            n_rot,
            hidden_dim,
            vocab_size: 0,
            seq_len,
            norm_eps,
            rope_freq_base,
            rope_freq_scale,
            attn_scale,
        })
    }

    /// Width of all query heads together (`n_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of all key (or value) heads together (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

fn positive(key: &str, v: usize, max: usize) -> Result<usize, ModelError> {
    if v == 0 || v > max {
        return Err(ModelError::BadHyperParameter {
            key: key.to_string(),
            value: v as u64,
            reason: if v == 0 { "zero" } else { "too large" },
        });
    }
    Ok(v)
}

fn bad_float(key: String, value: f32, reason: &'static str) -> ModelError {
    ModelError::BadFloatParameter { key, value, reason }
}

/// A finite float at `key`, or `default` when absent (`None`: required).
fn float(g: &Gguf<'_>, key: &str, default: Option<f32>) -> Result<f32, ModelError> {
    let v = match (g.get(key), default) {
        (None, Some(d)) => return Ok(d),
        (None, None) => {
            return Err(ModelError::Metadata(GgufError::MissingKey {
                key: key.to_string(),
            }));
        }
        (Some(_), _) => g.get_float(key)?,
    };
    if !v.is_finite() {
        return Err(bad_float(key.to_string(), v, "not finite"));
    }
    Ok(v)
}

/// `rope.scaling.type` none (or absent) gives 1; `linear` gives
/// `1 / rope.scaling.factor`; anything else is refused.
fn rope_scale(g: &Gguf<'_>, key: &dyn Fn(&str) -> String) -> Result<f32, ModelError> {
    let type_key = key("rope.scaling.type");
    let kind = match g.get(&type_key) {
        None => "none",
        Some(Value::String(s)) => s,
        Some(_) => g.get_str(&type_key)?,
    };
    let factor = float(g, &key("rope.scaling.factor"), Some(0.0))?;
    match kind {
        "none" => Ok(1.0),
        "linear" if factor > 0.0 => Ok(1.0 / factor),
        "linear" => Err(bad_float(
            key("rope.scaling.factor"),
            factor,
            "linear RoPE scaling needs a positive factor",
        )),
        _ => Err(ModelError::BadHyperParameter {
            key: type_key,
            value: 0,
            reason: "RoPE scaling type not supported (none and linear are)",
        }),
    }
}
