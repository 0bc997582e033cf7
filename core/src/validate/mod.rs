//! Model validation: the policy rules that decide whether a GGUF model is
//! plausible enough to run, and explicit corrections for known-bad files.
//!
//! [`validate`] runs the rules over a parsed [`Gguf`] and returns a
//! [`ValidationReport`] of [`Finding`]s, each naming its [`RuleId`], a
//! [`Severity`], the tensor (or metadata key), the measured value and the
//! expected [`Envelope`]. This is the only copy of these rules: `bitnet
//! validate`, `bitnet inspect` and the model loader all call it.
//!
//! - [`Mode::Cheap`] reads metadata, the tokenizer, norm vectors and
//!   per-tensor scales: what every load runs.
//! - [`Mode::Full`] also reads every weight byte (float moments, ternary
//!   codes, block scales, zero fractions, the embedding): what strict loads
//!   and `bitnet validate` run.
//!
//! Strict mode refuses any error-level finding
//! ([`ValidationReport::refuses`]); non-strict callers print the findings
//! and run. A [`Policy`] (parsed from YAML by `bitnet-std`) names
//! corrections keyed to a [`ModelFingerprint`]; they are applied only when
//! the configuration also allows corrections, then reflected in the rules
//! (a rescaled norm is judged rescaled) and listed in
//! [`ValidationReport::corrections`] for the caller to apply
//! ([`apply_to_weights`]) and to record in its receipt.
//!
//! Rules never panic: every tensor is read through bounds-checked slices,
//! every count in saturating or checked arithmetic.

mod envelope;
mod metadata;
mod policy;
mod rule;
mod stats;
mod tensors;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::gguf::Gguf;
use crate::model::FfnActivation;

pub use envelope::{
    Band, EMBD_RMS, Envelope, HEAD_DIM, LAYER_RATIO, MIN_LAYERS_FOR_CONSISTENCY, NORM_EPS,
    NormKind, PROJ_ABSMEAN, PROJ_RMS, ROPE_BASE, WeightFormat, ZERO_FRACTION, norm_rms,
};
pub use metadata::HIDDEN_ACT_KEY;
pub use policy::{
    AppliedCorrection, ArchShape, Correction, CorrectionError, ModelFingerprint, Policy,
    PolicyEntry, activation_name, apply_to_weights, parse_activation,
};
pub use rule::{RuleId, Severity};

/// How much of the file the rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Metadata, tokenizer, norms, per-tensor scales.
    Cheap,
    /// Everything, including every weight byte.
    Full,
}

/// What to check and how; built with [`ValidationConfig::builder`].
#[derive(Debug, Clone, Copy)]
pub struct ValidationConfig<'p> {
    mode: Mode,
    strict: bool,
    policy: Option<&'p Policy>,
    allow_corrections: bool,
    file_sha256: Option<[u8; 32]>,
}

impl<'p> ValidationConfig<'p> {
    /// A builder: non-strict, cheap, no policy.
    pub fn builder() -> ValidationConfigBuilder<'p> {
        ValidationConfigBuilder::default()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether error-level findings refuse the model.
    pub fn strict(&self) -> bool {
        self.strict
    }
}

/// Builder of [`ValidationConfig`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidationConfigBuilder<'p> {
    mode: Option<Mode>,
    strict: bool,
    policy: Option<&'p Policy>,
    allow_corrections: bool,
    file_sha256: Option<[u8; 32]>,
}

impl<'p> ValidationConfigBuilder<'p> {
    /// The mode (default: [`Mode::Full`] when strict, else [`Mode::Cheap`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Strict: error-level findings refuse the model.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// A correction policy.
    pub fn policy(mut self, policy: &'p Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Permission to apply the policy's corrections (`--allow-corrections`,
    /// `BITNET_ALLOW_CORRECTIONS=1`). Without it a matching policy only
    /// produces a warning.
    pub fn allow_corrections(mut self, allow: bool) -> Self {
        self.allow_corrections = allow;
        self
    }

    /// The SHA-256 of the file, for `sha256` fingerprints (core has no
    /// hasher of its own; the caller computes it).
    pub fn file_sha256(mut self, digest: [u8; 32]) -> Self {
        self.file_sha256 = Some(digest);
        self
    }

    /// The configuration.
    pub fn build(self) -> ValidationConfig<'p> {
        ValidationConfig {
            mode: self
                .mode
                .unwrap_or(if self.strict { Mode::Full } else { Mode::Cheap }),
            strict: self.strict,
            policy: self.policy,
            allow_corrections: self.allow_corrections,
            file_sha256: self.file_sha256,
        }
    }
}

/// One thing a rule found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule.
    pub rule: RuleId,
    /// How bad.
    pub severity: Severity,
    /// The tensor name, or the metadata key for metadata rules.
    pub subject: String,
    /// The measured value, when the rule measures one.
    pub measured: Option<f64>,
    /// The envelope the value broke, when the rule has one.
    pub expected: Option<Envelope>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity, self.rule, self.subject, self.message
        )?;
        match (self.measured, self.expected) {
            (Some(m), Some(e)) => {
                write!(f, " (measured {m:.6e}, expected [{:e}, {:e}])", e.lo, e.hi)
            }
            (Some(m), None) => write!(f, " (measured {m})"),
            _ => Ok(()),
        }
    }
}

/// Everything [`validate`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationReport {
    /// The mode that ran.
    pub mode: Mode,
    /// Whether error-level findings refuse the model.
    pub strict: bool,
    /// The findings, in rule order (metadata, tokenizer, tensors).
    pub findings: Vec<Finding>,
    /// Corrections applied (policy matched and corrections allowed): the
    /// caller applies them to the loaded weights ([`apply_to_weights`]) and
    /// records them in its receipt.
    pub corrections: Vec<AppliedCorrection>,
    /// The file's architecture-and-shape fingerprint, when readable.
    pub fingerprint: Option<ArchShape>,
    /// The feed-forward activation the model declares (`{arch}.hidden_act`
    /// or a forced correction), when it declares a known one.
    pub declared_activation: Option<FfnActivation>,
}

impl ValidationReport {
    /// Findings of exactly `severity`.
    pub fn with_severity(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.with_severity(Severity::Error).next().is_some()
    }

    /// Whether the model must not run: strict and at least one error.
    pub fn refuses(&self) -> bool {
        self.strict && self.has_errors()
    }

    /// What a refusing loader reports ([`ValidationReport::refuses`]): the
    /// number of error-level findings and the first of them. `None` when
    /// the model may run.
    pub fn refusal(&self) -> Option<Refusal<'_>> {
        if !self.refuses() {
            return None;
        }
        let mut errors = self.with_severity(Severity::Error);
        let first = errors.next()?;
        Some(Refusal {
            errors: 1 + errors.count(),
            first,
        })
    }

    /// Whether some finding of `rule` exists (for tests and tools).
    pub fn has_rule(&self, rule: RuleId) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }
}

/// Why strict mode refuses a model ([`ValidationReport::refusal`]).
/// Displays as `N error-level finding(s); first: <finding>`, the finding
/// naming its rule and tensor: every loader's refusal message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal<'r> {
    /// Error-level findings.
    pub errors: usize,
    /// The first of them.
    pub first: &'r Finding,
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error-level finding(s); first: {}",
            self.errors, self.first
        )
    }
}

/// Findings collected while the rules run, plus the corrections in force.
pub(crate) struct Ctx {
    findings: Vec<Finding>,
    corrections: Vec<AppliedCorrection>,
}

impl Ctx {
    /// Records a finding.
    pub(crate) fn push(
        &mut self,
        rule: RuleId,
        severity: Severity,
        subject: &str,
        message: String,
    ) -> &mut Finding {
        self.findings.push(Finding {
            rule,
            severity,
            subject: String::from(subject),
            measured: None,
            expected: None,
            message,
        });
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }

    /// Records a measured value outside `band`, if it is.
    pub(crate) fn judge(&mut self, rule: RuleId, subject: &str, v: f64, band: Band, what: &str) {
        if let Some((severity, env)) = band.judge(v) {
            let f = self.push(
                rule,
                severity,
                subject,
                alloc::format!("{what} out of range"),
            );
            f.measured = Some(v);
            f.expected = Some(env);
        }
    }

    /// The product of the applied rescales of `tensor` (1 when none).
    pub(crate) fn factor(&self, tensor: &str) -> f64 {
        self.corrections
            .iter()
            .filter_map(|c| match &c.correction {
                Correction::Rescale { tensor: t, factor } if t == tensor => {
                    Some(f64::from(*factor))
                }
                _ => None,
            })
            .product()
    }

    /// The activation forced by an applied correction, if any.
    pub(crate) fn forced_activation(&self) -> Option<FfnActivation> {
        self.corrections.iter().find_map(|c| match c.correction {
            Correction::ForceActivation(a) => Some(a),
            _ => None,
        })
    }
}

/// Runs the rules of `cfg.mode()` over `g`.
pub fn validate(g: &Gguf<'_>, cfg: &ValidationConfig<'_>) -> ValidationReport {
    let fingerprint = ArchShape::of(g);
    let mut ctx = Ctx {
        findings: Vec::new(),
        corrections: Vec::new(),
    };
    if let Some(policy) = cfg.policy {
        let matched = policy.matching(cfg.file_sha256.as_ref(), fingerprint.as_ref());
        if !matched.is_empty() && !cfg.allow_corrections {
            for m in &matched {
                ctx.push(
                    RuleId::PolicyCorrection,
                    Severity::Warning,
                    m.correction.target(),
                    alloc::format!(
                        "policy correction {} {} matches this file ({}) but corrections are not \
                         allowed (--allow-corrections or BITNET_ALLOW_CORRECTIONS=1); not applied",
                        m.correction.kind(),
                        m.correction.value_text(),
                        m.matched_by
                    ),
                );
            }
        } else {
            ctx.corrections = tensors::accept_corrections(g, matched, &mut ctx);
        }
    }
    let config = metadata::check(g, &mut ctx);
    let declared_activation = metadata::activation(g, config.as_ref(), &mut ctx);
    metadata::tokenizer(g, &mut ctx);
    tensors::check(g, config.as_ref(), cfg.mode, &mut ctx);
    ValidationReport {
        mode: cfg.mode,
        strict: cfg.strict,
        findings: ctx.findings,
        corrections: ctx.corrections,
        fingerprint,
        declared_activation,
    }
}
