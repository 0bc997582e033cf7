//! Correction policies: explicit, named fixes for known-bad files, keyed to
//! a model fingerprint. The policy *file* (YAML) is parsed in `bitnet-std`;
//! this module holds what it means and how it is applied.
//!
//! A correction is applied only when the caller passes a policy *and*
//! allows corrections ([`super::ValidationConfigBuilder::allow_corrections`]);
//! the report lists what was applied ([`super::ValidationReport::corrections`])
//! so that receipts can record it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::gguf::Gguf;
use crate::model::{Config, FfnActivation, LayerWeights, Linear, Weights};

/// A model's architecture and shape: a fingerprint that survives
/// re-quantization of the same checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchShape {
    /// `general.architecture`.
    pub arch: String,
    /// Hidden size.
    pub dim: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Feed-forward size.
    pub hidden_dim: usize,
    /// Rows of `token_embd.weight`.
    pub vocab: usize,
}

impl ArchShape {
    /// The fingerprint of `g`, `None` when its hyper-parameters or embedding
    /// cannot be read.
    pub fn of(g: &Gguf<'_>) -> Option<Self> {
        let c = Config::from_gguf(g).ok()?;
        let vocab = match g.tensor("token_embd.weight")?.dims.as_slice() {
            [_, v] => usize::try_from(*v).ok()?,
            _ => return None,
        };
        Some(Self {
            arch: String::from(c.arch.name()),
            dim: c.dim,
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            hidden_dim: c.hidden_dim,
            vocab,
        })
    }
}

impl fmt::Display for ArchShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dim {} layers {} heads {}/{} ff {} vocab {}",
            self.arch,
            self.dim,
            self.n_layers,
            self.n_heads,
            self.n_kv_heads,
            self.hidden_dim,
            self.vocab
        )
    }
}

/// Which files a policy entry applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFingerprint {
    /// Exactly the file with this SHA-256.
    Sha256([u8; 32]),
    /// Any file of this architecture and shape.
    ArchShape(ArchShape),
}

/// One explicit correction.
#[derive(Debug, Clone, PartialEq)]
pub enum Correction {
    /// Multiply a norm weight vector, or a projection's output (through its
    /// per-tensor scale), by `factor` (finite, > 0).
    Rescale {
        /// The tensor (`blk.N.<norm>.weight`, `output_norm.weight` or
        /// `blk.N.<proj>.weight`).
        tensor: String,
        /// The factor.
        factor: f32,
    },
    /// Declare the feed-forward activation: overrides `{arch}.hidden_act`
    /// for the activation rule. Only the architecture's own activation can
    /// be run ([`crate::model::Arch::ffn_activation`]); another one is
    /// refused by [`super::validate`].
    ForceActivation(FfnActivation),
}

impl Correction {
    /// A [`Correction::Rescale`] of `tensor` by `factor`, refused unless the
    /// factor is finite and > 0 ([`Correction::check`]).
    pub fn rescale(tensor: String, factor: f32) -> Result<Self, CorrectionError> {
        let c = Self::Rescale { tensor, factor };
        c.check()?;
        Ok(c)
    }

    /// What a correction needs whatever the file: a rescale factor finite
    /// and > 0 (a zero, negative or NaN factor would destroy the tensor
    /// rather than fix it). Whether the target exists is the file's
    /// business ([`apply_to_weights`], the `policy.correction` rule).
    pub fn check(&self) -> Result<(), CorrectionError> {
        match self {
            Self::Rescale { tensor, factor } if !(factor.is_finite() && *factor > 0.0) => {
                Err(CorrectionError::BadFactor {
                    tensor: tensor.clone(),
                    factor: *factor,
                })
            }
            _ => Ok(()),
        }
    }

    /// `rescale` or `force_activation`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Rescale { .. } => "rescale",
            Self::ForceActivation(_) => "force_activation",
        }
    }

    /// The tensor name, or `ffn_activation`.
    pub fn target(&self) -> &str {
        match self {
            Self::Rescale { tensor, .. } => tensor,
            Self::ForceActivation(_) => "ffn_activation",
        }
    }

    /// The factor or the activation's name, as text.
    pub fn value_text(&self) -> String {
        match self {
            Self::Rescale { factor, .. } => format!("{factor}"),
            Self::ForceActivation(a) => String::from(activation_name(*a)),
        }
    }
}

/// The canonical `{arch}.hidden_act` spelling of an activation (Hugging
/// Face `config.json` names: `silu`, `relu2`).
pub const fn activation_name(a: FfnActivation) -> &'static str {
    match a {
        FfnActivation::Silu => "silu",
        FfnActivation::ReluSquared => "relu2",
    }
}

/// The activation a `{arch}.hidden_act` / policy spelling names, `None`
/// when unknown to this engine.
pub fn parse_activation(name: &str) -> Option<FfnActivation> {
    match name {
        "silu" | "swish" | "swiglu" => Some(FfnActivation::Silu),
        "relu2" | "relu_squared" | "squared_relu" | "relu^2" => Some(FfnActivation::ReluSquared),
        _ => None,
    }
}

/// One policy entry: the files it matches and their corrections.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEntry {
    /// Which files.
    pub fingerprint: ModelFingerprint,
    /// Why (free text, shown in reports).
    pub reason: String,
    /// What to change.
    pub corrections: Vec<Correction>,
}

/// A parsed correction policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// Entries, tried in order; every matching entry applies.
    pub entries: Vec<PolicyEntry>,
}

/// A correction chosen for a file.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedCorrection {
    /// The correction.
    pub correction: Correction,
    /// The factor or activation as text ([`Correction::value_text`]).
    pub value: String,
    /// `sha256` or `arch_shape`: which fingerprint matched.
    pub matched_by: &'static str,
    /// The policy entry's reason.
    pub reason: String,
}

impl AppliedCorrection {
    /// `[kind, target, value, matched_by]`, the fields of a receipt's
    /// correction record: pass to [`crate::receipt::Receipt::with_corrections`].
    pub fn receipt_fields(&self) -> [&str; 4] {
        [
            self.correction.kind(),
            self.correction.target(),
            &self.value,
            self.matched_by,
        ]
    }
}

impl Policy {
    /// The corrections of every entry matching a file with digest `sha256`
    /// (when known) and fingerprint `shape` (when readable).
    pub fn matching(
        &self,
        sha256: Option<&[u8; 32]>,
        shape: Option<&ArchShape>,
    ) -> Vec<AppliedCorrection> {
        let mut out = Vec::new();
        for e in &self.entries {
            let matched_by = match &e.fingerprint {
                ModelFingerprint::Sha256(d) if Some(d) == sha256 => "sha256",
                ModelFingerprint::ArchShape(s) if Some(s) == shape => "arch_shape",
                _ => continue,
            };
            for c in &e.corrections {
                out.push(AppliedCorrection {
                    value: c.value_text(),
                    correction: c.clone(),
                    matched_by,
                    reason: e.reason.clone(),
                });
            }
        }
        out
    }
}

/// Why a correction cannot be applied to loaded weights.
#[derive(Debug, Clone, PartialEq)]
pub enum CorrectionError {
    /// The tensor is not a norm or projection of the model.
    UnknownTarget {
        /// The tensor name.
        tensor: String,
    },
    /// The factor is not finite and positive.
    BadFactor {
        /// The tensor name.
        tensor: String,
        /// The factor.
        factor: f32,
    },
    /// A forced activation the engine does not run for this architecture.
    ActivationNotRunnable {
        /// The forced activation.
        forced: &'static str,
        /// The architecture's activation.
        arch_runs: &'static str,
    },
}

impl fmt::Display for CorrectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTarget { tensor } => write!(
                f,
                "{tensor} is not a norm or projection weight of this model"
            ),
            Self::BadFactor { tensor, factor } => {
                write!(
                    f,
                    "rescale factor {factor} for {tensor} is not finite and > 0"
                )
            }
            Self::ActivationNotRunnable { forced, arch_runs } => write!(
                f,
                "forced activation {forced} cannot run: this architecture runs {arch_runs}"
            ),
        }
    }
}

impl core::error::Error for CorrectionError {}

/// Where a rescale lands in [`Weights`].
enum Slot<'w, 'a> {
    Norm(&'w mut Vec<f32>),
    Proj(&'w mut Linear<'a>),
}

/// The norm or projection of `w` that `tensor` names.
fn slot<'w, 'a>(w: &'w mut Weights<'a>, tensor: &str) -> Option<Slot<'w, 'a>> {
    if tensor == "output_norm.weight" {
        return Some(Slot::Norm(&mut w.output_norm));
    }
    let rest = tensor.strip_prefix("blk.")?;
    let (layer, name) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let l: &mut LayerWeights<'a> = w.layers.get_mut(layer)?;
    Some(match name {
        "attn_norm.weight" => Slot::Norm(&mut l.attn_norm),
        "ffn_norm.weight" => Slot::Norm(&mut l.ffn_norm),
        "attn_sub_norm.weight" => Slot::Norm(l.attn_sub_norm.as_mut()?),
        "ffn_sub_norm.weight" => Slot::Norm(l.ffn_sub_norm.as_mut()?),
        "attn_q.weight" => Slot::Proj(&mut l.wq),
        "attn_k.weight" => Slot::Proj(&mut l.wk),
        "attn_v.weight" => Slot::Proj(&mut l.wv),
        "attn_output.weight" => Slot::Proj(&mut l.wo),
        "ffn_gate.weight" => Slot::Proj(&mut l.w_gate),
        "ffn_up.weight" => Slot::Proj(&mut l.w_up),
        "ffn_down.weight" => Slot::Proj(&mut l.w_down),
        _ => return None,
    })
}

/// Applies `corrections` (from [`super::ValidationReport::corrections`]) to
/// loaded weights: a norm is multiplied element-wise, a projection through
/// its per-tensor output scale (the matrix stays zero-copy). Checks every
/// correction before changing anything.
pub fn apply_to_weights(
    corrections: &[AppliedCorrection],
    cfg: &Config,
    w: &mut Weights<'_>,
) -> Result<(), CorrectionError> {
    for c in corrections {
        match &c.correction {
            Correction::Rescale { tensor, .. } => {
                c.correction.check()?;
                if slot(w, tensor).is_none() {
                    return Err(CorrectionError::UnknownTarget {
                        tensor: tensor.clone(),
                    });
                }
            }
            Correction::ForceActivation(a) => check_activation(*a, cfg)?,
        }
    }
    for c in corrections {
        if let Correction::Rescale { tensor, factor } = &c.correction {
            match slot(w, tensor) {
                Some(Slot::Norm(v)) => v.iter_mut().for_each(|x| *x *= factor),
                Some(Slot::Proj(p)) => p.scale = Some(p.scale.unwrap_or(1.0) * factor),
                None => {}
            }
        }
    }
    Ok(())
}

/// A forced activation must be the one the engine runs for the architecture.
pub(crate) fn check_activation(a: FfnActivation, cfg: &Config) -> Result<(), CorrectionError> {
    let runs = cfg.arch.ffn_activation();
    if a == runs {
        Ok(())
    } else {
        Err(CorrectionError::ActivationNotRunnable {
            forced: activation_name(a),
            arch_runs: activation_name(runs),
        })
    }
}
