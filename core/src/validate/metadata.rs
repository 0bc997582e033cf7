//! Metadata and tokenizer rules: architecture, hyper-parameters and their
//! envelopes, tensor shapes against them, vocabulary sizes, the declared
//! activation, tokenizer arrays and special ids.
//!
//! The hard checks are the loaders' own ([`Config::from_gguf`],
//! [`Weights::from_gguf`], [`Tokenizer::from_gguf`]): their refusals become
//! findings here, so the checks exist once.

use alloc::format;
use alloc::string::ToString;

use super::Ctx;
use super::envelope::{HEAD_DIM, NORM_EPS, ROPE_BASE};
use super::policy::{activation_name, check_activation, parse_activation};
use super::rule::{RuleId, Severity};
use crate::gguf::{Gguf, Value};
use crate::model::{Arch, Config, FfnActivation, ModelError, Weights};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// The metadata key (suffix after `{arch}.`) that declares the feed-forward
/// activation, named after Hugging Face `config.json`'s `hidden_act`.
/// Optional: absent, the architecture's activation is assumed. Values:
/// `silu` (`swish`, `swiglu`) for `llama` / `bitnet`, `relu2`
/// (`relu_squared`, `squared_relu`, `relu^2`) for `bitnet-b1.58`.
pub const HIDDEN_ACT_KEY: &str = "hidden_act";

/// Architecture, hyper-parameters, shapes and vocabulary. Returns the
/// config (with `vocab_size` set when the weights load) for the tensor
/// rules, `None` when the hyper-parameters cannot be read.
pub(super) fn check(g: &Gguf<'_>, ctx: &mut Ctx) -> Option<Config> {
    let arch_key = "general.architecture";
    let Some(name) = g.architecture() else {
        ctx.push(
            RuleId::MetaArch,
            Severity::Error,
            arch_key,
            "general.architecture is missing or not a string".to_string(),
        );
        return None;
    };
    if Arch::from_name(name).is_none() {
        ctx.push(
            RuleId::MetaArch,
            Severity::Error,
            arch_key,
            format!("architecture {name:?} is not one this engine runs"),
        );
        return None;
    }
    let mut cfg = match Config::from_gguf(g) {
        Ok(c) => c,
        Err(e) => {
            let subject = match &e {
                ModelError::BadHyperParameter { key, .. }
                | ModelError::BadFloatParameter { key, .. } => key.clone(),
                ModelError::Metadata(m) => m.to_string(),
                _ => format!("{name}.*"),
            };
            ctx.push(
                RuleId::MetaHparams,
                Severity::Error,
                &subject,
                e.to_string(),
            );
            return None;
        }
    };
    let p = cfg.arch.name();
    let eps_key = format!("{p}.attention.layer_norm_rms_epsilon");
    ctx.judge(
        RuleId::MetaEps,
        &eps_key,
        f64::from(cfg.norm_eps),
        NORM_EPS,
        "RMSNorm epsilon",
    );
    ctx.judge(
        RuleId::MetaRope,
        &format!("{p}.rope.freq_base"),
        f64::from(cfg.rope_freq_base),
        ROPE_BASE,
        "RoPE base",
    );
    ctx.judge(
        RuleId::MetaHeads,
        &format!("{p}.attention.head_count"),
        cfg.head_dim as f64,
        HEAD_DIM,
        "head dimension",
    );
    if cfg.q_dim() != cfg.dim {
        ctx.push(
            RuleId::MetaHeads,
            Severity::Warning,
            &format!("{p}.attention.head_count"),
            format!(
                "heads x head dim = {} differs from the hidden size {} (unusual for {p})",
                cfg.q_dim(),
                cfg.dim
            ),
        );
    }
    let mut loaded = cfg.clone();
    match Weights::from_gguf(g, &mut loaded) {
        Ok(_) => cfg = loaded,
        Err(e) => weights_error(e, p, ctx),
    }
    Some(cfg)
}

/// A refusal of [`Weights::from_gguf`] as a finding. Non-finite norms and
/// scales are left to the tensor rules, which report every one of them.
fn weights_error(e: ModelError, arch: &str, ctx: &mut Ctx) {
    let (rule, subject) = match &e {
        ModelError::NotFinite { .. } | ModelError::ScaleNotFinite { .. } => return,
        ModelError::MissingTensor { name } => (RuleId::MetaTensorMissing, name.clone()),
        ModelError::ShapeMismatch { name, .. } => (RuleId::MetaShape, name.clone()),
        ModelError::VocabMismatch { source, .. } => (RuleId::MetaVocab, source.to_string()),
        ModelError::UnsupportedType { name, .. } | ModelError::UnsupportedTensor { name, .. } => {
            (RuleId::MetaTensorType, name.clone())
        }
        ModelError::Quant { name, .. } => (RuleId::MetaShape, name.clone()),
        ModelError::BadHyperParameter { key, .. } => (RuleId::MetaHparams, key.clone()),
        _ => (RuleId::MetaLoad, "weights".to_string()),
    };
    // The loader names the key generically.
    let subject = if subject == "{arch}.vocab_size" {
        format!("{arch}.vocab_size")
    } else {
        subject
    };
    ctx.push(rule, Severity::Error, &subject, e.to_string());
}

/// The declared activation (`{arch}.hidden_act`, or a forced correction)
/// against the one the architecture runs.
pub(super) fn activation(
    g: &Gguf<'_>,
    cfg: Option<&Config>,
    ctx: &mut Ctx,
) -> Option<FfnActivation> {
    let cfg = cfg?;
    let key = format!("{}.{HIDDEN_ACT_KEY}", cfg.arch.name());
    let runs = cfg.arch.ffn_activation();
    if let Some(forced) = ctx.forced_activation() {
        if let Err(e) = check_activation(forced, cfg) {
            ctx.push(
                RuleId::PolicyCorrection,
                Severity::Error,
                &key,
                e.to_string(),
            );
        }
        return Some(forced);
    }
    let declared = match g.get(&key)? {
        Value::String(s) => s,
        other => {
            ctx.push(
                RuleId::MetaActivation,
                Severity::Error,
                &key,
                format!("expected a string, found {}", other.value_type().name()),
            );
            return None;
        }
    };
    let Some(act) = parse_activation(declared) else {
        ctx.push(
            RuleId::MetaActivation,
            Severity::Error,
            &key,
            format!(
                "unknown activation {declared:?}; {} runs {}",
                cfg.arch.name(),
                activation_name(runs)
            ),
        );
        return None;
    };
    if act != runs {
        ctx.push(
            RuleId::MetaActivation,
            Severity::Error,
            &key,
            format!(
                "declares {} but {} runs {}",
                activation_name(act),
                cfg.arch.name(),
                activation_name(runs)
            ),
        );
    }
    Some(act)
}

/// Tokenizer metadata: types, lengths, special ids, content, through
/// [`Tokenizer::from_gguf`].
pub(super) fn tokenizer(g: &Gguf<'_>, ctx: &mut Ctx) {
    if g.get("tokenizer.ggml.model").is_none() {
        ctx.push(
            RuleId::TokenizerTypes,
            Severity::Warning,
            "tokenizer.ggml.model",
            "the file has no tokenizer: text prompts cannot be encoded".to_string(),
        );
        return;
    }
    let Err(e) = Tokenizer::from_gguf(g) else {
        return;
    };
    use TokenizerError as E;
    let (rule, subject) = match &e {
        E::UnknownModel { .. } => (RuleId::TokenizerTypes, "tokenizer.ggml.model"),
        E::UnknownPreTokenizer { .. } => (RuleId::TokenizerTypes, "tokenizer.ggml.pre"),
        E::MissingKey { key } | E::WrongType { key, .. } | E::Metadata { key, .. } => {
            (RuleId::TokenizerTypes, *key)
        }
        E::EmptyVocab | E::VocabTooLarge { .. } => {
            (RuleId::TokenizerLengths, "tokenizer.ggml.tokens")
        }
        E::LengthMismatch { key, .. } => (RuleId::TokenizerLengths, *key),
        E::SpecialTokenOutOfRange { key, .. } => (RuleId::TokenizerSpecialIds, *key),
        E::InvalidTokenType { .. } => (RuleId::TokenizerContent, "tokenizer.ggml.token_type"),
        E::MalformedMerge { .. } | E::MergeUnknownToken { .. } | E::MergeResultUnknown { .. } => {
            (RuleId::TokenizerContent, "tokenizer.ggml.merges")
        }
        _ => (RuleId::TokenizerContent, "tokenizer.ggml.tokens"),
    };
    ctx.push(rule, Severity::Error, subject, e.to_string());
}
