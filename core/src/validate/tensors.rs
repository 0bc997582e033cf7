//! Tensor rules: norm weights, float and ternary projections, per-tensor
//! and per-block scales, zero fractions, layer-to-layer consistency, the
//! embedding.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Ctx;
use super::Mode;
use super::envelope::{
    Band, EMBD_RMS, LAYER_RATIO, MIN_LAYERS_FOR_CONSISTENCY, NormKind, PROJ_ABSMEAN, PROJ_RMS,
    WeightFormat, ZERO_FRACTION, norm_rms,
};
use super::policy::{AppliedCorrection, Correction};
use super::rule::{RuleId, Severity};
use super::stats::{
    FloatStats, ScaleStats, TernaryStats, float_stats, i2s_stats, tq1_0_stats, tq2_0_stats,
};
use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::model::{Arch, Config};

/// Projection names of a block.
const PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// What a tensor is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role<'n> {
    Norm(NormKind),
    /// A projection: its name in the block (`output` for the LM head) and
    /// its layer.
    Proj(&'n str, Option<usize>),
    /// A one-element `blk.N.<proj>.scale`.
    Scale,
    Embd,
    Other,
}

fn classify(name: &str) -> Role<'_> {
    match name {
        "output_norm.weight" => return Role::Norm(NormKind::Output),
        "token_embd.weight" => return Role::Embd,
        "output.weight" => return Role::Proj("output", None),
        _ => {}
    }
    let Some((layer, rest)) = name
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .and_then(|(l, rest)| Some((l.parse::<usize>().ok()?, rest)))
    else {
        return Role::Other;
    };
    match rest {
        "attn_norm.weight" | "ffn_norm.weight" => Role::Norm(NormKind::Block),
        "attn_sub_norm.weight" | "ffn_sub_norm.weight" => Role::Norm(NormKind::Sub),
        _ => match rest.split_once('.') {
            Some((p, "weight")) if PROJECTIONS.contains(&p) => {
                let p = PROJECTIONS.iter().copied().find(|&q| q == p).unwrap_or("");
                Role::Proj(p, Some(layer))
            }
            Some((p, "scale")) if PROJECTIONS.contains(&p) => Role::Scale,
            _ => Role::Other,
        },
    }
}

fn format_of(t: GgmlType) -> WeightFormat {
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => WeightFormat::Float,
        GgmlType::I2S | GgmlType::TQ1_0 | GgmlType::TQ2_0 => WeightFormat::Ternary,
        _ => WeightFormat::OtherQuant,
    }
}

/// Keeps the policy's corrections that can be applied to `g`; an
/// impossible one (unknown tensor, bad factor) is an error finding and is
/// dropped.
pub(super) fn accept_corrections(
    g: &Gguf<'_>,
    matched: Vec<AppliedCorrection>,
    ctx: &mut Ctx,
) -> Vec<AppliedCorrection> {
    let mut out = Vec::new();
    for m in matched {
        if let Correction::Rescale { tensor, .. } = &m.correction {
            let role = g.tensor(tensor).map(|t| classify(t.name));
            let problem = if let Err(e) = m.correction.check() {
                Some(e.to_string())
            } else if !matches!(role, Some(Role::Norm(_) | Role::Proj(_, Some(_)))) {
                Some(String::from(
                    "not a norm or block projection weight of this file",
                ))
            } else {
                None
            };
            if let Some(p) = problem {
                ctx.push(RuleId::PolicyCorrection, Severity::Error, tensor, p);
                continue;
            }
        }
        ctx.push(
            RuleId::PolicyCorrection,
            Severity::Info,
            m.correction.target(),
            format!(
                "applied correction {} {} (matched by {}: {})",
                m.correction.kind(),
                m.correction.value_text(),
                m.matched_by,
                m.reason
            ),
        );
        out.push(m);
    }
    out
}

/// One projection's magnitude in one layer, for the consistency rule.
struct Magnitude<'n> {
    layer: usize,
    tensor: &'n str,
    value: f64,
}

/// Runs the tensor rules.
pub(super) fn check(g: &Gguf<'_>, cfg: Option<&Config>, mode: Mode, ctx: &mut Ctx) {
    let full = mode == Mode::Full;
    let arch = cfg
        .map(|c| c.arch)
        .or_else(|| g.architecture().and_then(Arch::from_name))
        .unwrap_or(Arch::Llama);
    let format = g
        .tensors()
        .iter()
        .find(|t| matches!(classify(t.name), Role::Proj(_, Some(_))))
        .map_or(WeightFormat::Float, |t| format_of(t.ggml_type));

    // `blk.N.<proj>.scale` values, multiplied onto the projections' scales.
    let mut scale_tensors: BTreeMap<&str, f64> = BTreeMap::new();
    let mut magnitudes: BTreeMap<&str, Vec<Magnitude<'_>>> = BTreeMap::new();
    for t in g.tensors() {
        if classify(t.name) == Role::Scale
            && let Some(v) = scale_tensor(g, t, ctx)
        {
            let weight = t.name.strip_suffix(".scale").unwrap_or(t.name);
            scale_tensors.insert(weight, v);
        }
    }
    for t in g.tensors() {
        match classify(t.name) {
            Role::Norm(kind) => norm(g, t, norm_rms(arch, format, kind), arch, format, ctx),
            Role::Proj(proj, layer) => {
                let base = t.name.strip_suffix(".weight").unwrap_or(t.name);
                let extra = scale_tensors.get(base).copied().unwrap_or(1.0);
                let m = projection(g, t, full, ctx).map(|v| v * extra * ctx.factor(t.name));
                if let (Some(value), Some(layer)) = (m, layer) {
                    magnitudes.entry(proj).or_default().push(Magnitude {
                        layer,
                        tensor: t.name,
                        value,
                    });
                }
            }
            Role::Embd if full => embedding(g, t, ctx),
            _ => {}
        }
    }
    for list in magnitudes.values_mut() {
        consistency(list, ctx);
    }
}

/// A one-element scale tensor: finite and > 0. Its value, when it is.
fn scale_tensor(g: &Gguf<'_>, t: &TensorInfo<'_>, ctx: &mut Ctx) -> Option<f64> {
    let value = first_f32(g, t)?;
    if t.n_elements() == 1 && value.is_finite() && value > 0.0 {
        return Some(f64::from(value));
    }
    let f = ctx.push(
        RuleId::QuantScale,
        Severity::Error,
        t.name,
        format!(
            "a scale tensor holds one finite number > 0; this one has {} elements, the first {value}",
            t.n_elements()
        ),
    );
    f.measured = Some(f64::from(value));
    None
}

/// The first element of a float tensor.
fn first_f32(g: &Gguf<'_>, t: &TensorInfo<'_>) -> Option<f32> {
    let b = g.tensor_data(t);
    Some(match t.ggml_type {
        GgmlType::F32 => f32::from_le_bytes(b.get(..4)?.try_into().ok()?),
        GgmlType::F16 => {
            half::f16::from_bits(u16::from_le_bytes(b.get(..2)?.try_into().ok()?)).to_f32()
        }
        GgmlType::BF16 => {
            half::bf16::from_bits(u16::from_le_bytes(b.get(..2)?.try_into().ok()?)).to_f32()
        }
        _ => return None,
    })
}

/// The error finding of `rule` when a float tensor holds NaN or infinite
/// elements: how many, and the first.
fn non_finite(s: &FloatStats, rule: RuleId, tensor: &str, ctx: &mut Ctx) {
    if let Some((i, v)) = s.first_non_finite {
        let f = ctx.push(
            rule,
            Severity::Error,
            tensor,
            format!(
                "{} of {} elements are not finite (first: element {i} = {v})",
                s.non_finite(),
                s.n
            ),
        );
        f.measured = Some(s.non_finite() as f64);
    }
}

/// Norm weights: finite, RMS inside the band of (arch, format, kind).
fn norm(
    g: &Gguf<'_>,
    t: &TensorInfo<'_>,
    band: Band,
    arch: Arch,
    format: WeightFormat,
    ctx: &mut Ctx,
) {
    // A norm of another type is the loader's refusal (meta.tensor_type).
    let Some(s) = float_stats(t.ggml_type, g.tensor_data(t)) else {
        return;
    };
    non_finite(&s, RuleId::NormFinite, t.name, ctx);
    let rms = s.rms() * libm::fabs(ctx.factor(t.name));
    ctx.judge(
        RuleId::NormRms,
        t.name,
        rms,
        band,
        &format!("RMS ({} norm, {} weights)", arch.name(), format.name()),
    );
}

/// A projection's rules; returns its magnitude (ternary scale or float RMS)
/// when measured.
fn projection(g: &Gguf<'_>, t: &TensorInfo<'_>, full: bool, ctx: &mut Ctx) -> Option<f64> {
    let bytes = g.tensor_data(t);
    let factor = ctx.factor(t.name);
    match t.ggml_type {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            if !full {
                return None;
            }
            let s = float_stats(t.ggml_type, bytes)?;
            non_finite(&s, RuleId::ProjFinite, t.name, ctx);
            let rms = s.rms() * factor;
            ctx.judge(RuleId::ProjRms, t.name, rms, PROJ_RMS, "RMS");
            ctx.judge(
                RuleId::ProjAbsmean,
                t.name,
                s.absmean() * factor,
                PROJ_ABSMEAN,
                "mean |w|",
            );
            Some(rms)
        }
        GgmlType::I2S => ternary(t, i2s_stats(bytes, t.n_elements(), full), "tensor", ctx),
        GgmlType::TQ2_0 if full => ternary(t, tq2_0_stats(bytes, true), "block", ctx),
        GgmlType::TQ1_0 if full => ternary(t, tq1_0_stats(bytes, true), "block", ctx),
        _ => None,
    }
}

/// Scales, codes and zero fraction of a ternary tensor; its mean good scale.
fn ternary(t: &TensorInfo<'_>, s: TernaryStats, unit: &str, ctx: &mut Ctx) -> Option<f64> {
    scales(t, &s.scales, unit, ctx);
    if s.invalid > 0 {
        let f = ctx.push(
            RuleId::QuantTernaryCode,
            Severity::Error,
            t.name,
            format!(
                "{} weights carry the unused 2-bit code 3 (first in tensor byte {}); only -1, 0, \
                 +1 are ternary",
                s.invalid,
                s.first_invalid.unwrap_or(0)
            ),
        );
        f.measured = Some(s.invalid as f64);
    }
    if let Some(z) = s.zero_fraction() {
        ctx.judge(
            RuleId::QuantZeroFraction,
            t.name,
            z,
            ZERO_FRACTION,
            "fraction of zero weights",
        );
    }
    s.scales.mean_good()
}

fn scales(t: &TensorInfo<'_>, s: &ScaleStats, unit: &str, ctx: &mut Ctx) {
    if let Some((i, v)) = s.first_bad {
        let f = ctx.push(
            RuleId::QuantScale,
            Severity::Error,
            t.name,
            format!(
                "{} of {} {unit} scales are not finite and > 0 (first: {unit} {i} = {v})",
                s.bad, s.count
            ),
        );
        f.measured = Some(f64::from(v));
    }
}

/// The embedding (full mode): finite, RMS inside [`EMBD_RMS`].
fn embedding(g: &Gguf<'_>, t: &TensorInfo<'_>, ctx: &mut Ctx) {
    let Some(s) = float_stats(t.ggml_type, g.tensor_data(t)) else {
        return;
    };
    non_finite(&s, RuleId::EmbdRms, t.name, ctx);
    ctx.judge(RuleId::EmbdRms, t.name, s.rms(), EMBD_RMS, "RMS");
}

/// Each layer's magnitude against the median of the same projection.
fn consistency(list: &mut [Magnitude<'_>], ctx: &mut Ctx) {
    if list.len() < MIN_LAYERS_FOR_CONSISTENCY {
        return;
    }
    let mut values: Vec<f64> = list.iter().map(|m| m.value).collect();
    values.sort_by(f64::total_cmp);
    let median = values[(values.len() - 1) / 2];
    if !(median.is_finite() && median > 0.0) {
        return;
    }
    list.sort_by_key(|m| m.layer);
    for m in list.iter() {
        let ratio = if m.value > 0.0 {
            (m.value / median).max(median / m.value)
        } else {
            f64::INFINITY
        };
        ctx.judge(
            RuleId::ProjLayerConsistency,
            m.tensor,
            ratio,
            LAYER_RATIO,
            &format!(
                "magnitude {:.4e} vs the layers' median {median:.4e}: ratio",
                m.value
            ),
        );
    }
}
