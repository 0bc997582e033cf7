//! `bitnet validate FILE [--strict] [--policy P] [--allow-corrections]
//! [--json]`, and the same checks for every command that loads a model
//! ([`check_for_load`]). The rules themselves are
//! [`bitnet_core::validate`]; this file adds files, environment variables,
//! printing and exit codes.
//!
//! Exit codes of `bitnet validate` (and of any command refusing a model in
//! strict mode):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | no error-level finding, or non-strict (findings printed as warnings) |
//! | 1 | the model or policy file cannot be read or parsed |
//! | 2 | usage error (clap) |
//! | [`EXIT_REFUSED`] = 3 | strict mode and at least one error-level finding |
//!
//! Strict mode: `--strict` or `BITNET_STRICT=1`. Corrections: a policy
//! (`--policy P`) *and* `--allow-corrections` or
//! `BITNET_ALLOW_CORRECTIONS=1`.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use bitnet_core::gguf::Gguf;
use bitnet_core::validate::{
    Finding, Mode, Policy, Severity, ValidationConfig, ValidationReport, validate,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::correction_policy::{PolicyError, load_policy};
use crate::{Error, ModelFile};

/// Exit code when strict mode refuses a model.
pub const EXIT_REFUSED: u8 = 3;
/// Environment variable that turns strict mode on (`1`).
pub const STRICT_ENV: &str = "BITNET_STRICT";
/// Environment variable that allows policy corrections (`1`).
pub const ALLOW_CORRECTIONS_ENV: &str = "BITNET_ALLOW_CORRECTIONS";

/// Whether `var` is set to `1` (or `true`).
fn env_on(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Why validation could not run, or refused.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The model file cannot be opened or parsed.
    #[error(transparent)]
    Model(#[from] Error),
    /// The policy file cannot be read or parsed.
    #[error("policy {0}")]
    Policy(#[from] PolicyError),
    /// Strict mode and error-level findings.
    #[error("refusing {file}: {why}")]
    Refused {
        /// The model file.
        file: String,
        /// How many error-level findings, and the first
        /// ([`bitnet_core::validate::Refusal`]).
        why: String,
    },
}

impl ValidateError {
    /// The process exit code: [`EXIT_REFUSED`] for a refusal, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused { .. } => EXIT_REFUSED,
            _ => 1,
        }
    }
}

/// What a command that loads a model asks of validation: flags merged with
/// the environment.
#[derive(Debug, Clone, Default)]
pub struct ValidationOptions {
    /// `--strict` or `BITNET_STRICT=1`.
    pub strict: bool,
    /// `--allow-corrections` or `BITNET_ALLOW_CORRECTIONS=1`.
    pub allow_corrections: bool,
    /// The parsed `--policy` file.
    pub policy: Option<Policy>,
}

impl ValidationOptions {
    /// Flags plus environment; reads the policy file when given.
    pub fn new(
        strict: bool,
        allow_corrections: bool,
        policy: Option<&Path>,
    ) -> Result<Self, ValidateError> {
        Ok(Self {
            policy: policy.map(load_policy).transpose()?,
            ..Self::without_policy(strict, allow_corrections)
        })
    }

    /// Flags plus environment, no policy: what loaders without a policy
    /// flag use (the C ABI, `cargo xtask benchmark`, [`Loaded::new`]), so
    /// `BITNET_STRICT=1` makes every load strict.
    ///
    /// [`Loaded::new`]: crate::engine::Loaded::new
    pub fn without_policy(strict: bool, allow_corrections: bool) -> Self {
        Self {
            strict: strict || env_on(STRICT_ENV),
            allow_corrections: allow_corrections || env_on(ALLOW_CORRECTIONS_ENV),
            policy: None,
        }
    }

    /// Runs the rules over a file's `bytes` (parsed as `g`): `mode` when
    /// given, else full in strict mode and cheap otherwise. The bytes are
    /// hashed only when a policy needs their SHA-256.
    pub fn validate(&self, bytes: &[u8], g: &Gguf<'_>, mode: Option<Mode>) -> ValidationReport {
        let mut b = ValidationConfig::builder()
            .strict(self.strict)
            .allow_corrections(self.allow_corrections);
        if let Some(m) = mode {
            b = b.mode(m);
        }
        if let Some(p) = &self.policy {
            b = b.policy(p).file_sha256(Sha256::digest(bytes).into());
        }
        validate(g, &b.build())
    }
}

/// The checks every model load runs: cheap rules always, all rules in
/// strict mode. Prints warnings and errors to stderr; refuses (strict and
/// an error) with [`ValidateError::Refused`]. On success the caller applies
/// `report.corrections` ([`bitnet_core::validate::apply_to_weights`]) and
/// records them in its receipt.
pub fn check_for_load(
    mf: &ModelFile,
    g: &Gguf<'_>,
    opts: &ValidationOptions,
) -> Result<ValidationReport, ValidateError> {
    let report = opts.validate(mf.bytes(), g, None);
    let mut err = std::io::stderr().lock();
    for f in &report.findings {
        let _ = writeln!(err, "{}: {f}", mf.path().display());
    }
    refusal(mf.path().display(), &report)?;
    Ok(report)
}

/// [`ValidateError::Refused`] when the report refuses the model `file`
/// (a path, or a description such as "the model in memory"); its message
/// names the first error's rule and tensor.
pub fn refusal(file: impl fmt::Display, report: &ValidationReport) -> Result<(), ValidateError> {
    match report.refusal() {
        None => Ok(()),
        Some(why) => Err(ValidateError::Refused {
            file: file.to_string(),
            why: why.to_string(),
        }),
    }
}

/// One finding as `inspect` and `validate --json` print it.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    /// Rule id (`norm.rms`, ...).
    pub rule: &'static str,
    /// `info`, `warning` or `error`.
    pub severity: &'static str,
    /// Tensor name or metadata key.
    pub subject: String,
    /// The measured value.
    pub measured: Option<f64>,
    /// The envelope `[lo, hi]` it broke.
    pub expected: Option<[f64; 2]>,
    /// What is wrong.
    pub message: String,
}

impl From<&Finding> for FindingRow {
    fn from(f: &Finding) -> Self {
        Self {
            rule: f.rule.id(),
            severity: f.severity.name(),
            subject: f.subject.clone(),
            measured: f.measured.filter(|m| m.is_finite()),
            expected: f.expected.map(|e| [e.lo, e.hi]),
            message: f.message.clone(),
        }
    }
}

/// One applied correction in `validate --json`.
#[derive(Debug, Clone, Serialize)]
struct CorrectionRow {
    kind: &'static str,
    target: String,
    value: String,
    matched_by: &'static str,
    reason: String,
}

/// `validate --json` output.
#[derive(Debug, Serialize)]
struct JsonReport {
    file: String,
    mode: &'static str,
    strict: bool,
    refused: bool,
    errors: usize,
    warnings: usize,
    fingerprint: Option<String>,
    findings: Vec<FindingRow>,
    corrections: Vec<CorrectionRow>,
}

/// `bitnet validate`: runs every rule and prints the findings; the exit
/// code as in the module docs.
pub fn command(
    file: &Path,
    strict: bool,
    policy: Option<&Path>,
    allow_corrections: bool,
    json: bool,
) -> ExitCode {
    match run(file, strict, policy, allow_corrections, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(
    file: &Path,
    strict: bool,
    policy: Option<&Path>,
    allow_corrections: bool,
    json: bool,
) -> Result<(), ValidateError> {
    let opts = ValidationOptions::new(strict, allow_corrections, policy)?;
    let mf = ModelFile::open(file)?;
    let g = mf.gguf()?;
    let report = opts.validate(mf.bytes(), &g, Some(Mode::Full));
    let errors = report.with_severity(Severity::Error).count();
    let warnings = report.with_severity(Severity::Warning).count();
    if json {
        let out = JsonReport {
            file: file.display().to_string(),
            mode: "full",
            strict: report.strict,
            refused: report.refuses(),
            errors,
            warnings,
            fingerprint: report.fingerprint.as_ref().map(|f| f.to_string()),
            findings: report.findings.iter().map(FindingRow::from).collect(),
            corrections: report
                .corrections
                .iter()
                .map(|c| CorrectionRow {
                    kind: c.correction.kind(),
                    target: c.correction.target().to_string(),
                    value: c.value.clone(),
                    matched_by: c.matched_by,
                    reason: c.reason.clone(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&out).map_err(|e| Error::Render(e.to_string()))?;
        println!("{text}");
    } else {
        for f in &report.findings {
            println!("{f}");
        }
        for c in &report.corrections {
            println!(
                "correction applied: {} {} = {} (matched by {}: {})",
                c.correction.kind(),
                c.correction.target(),
                c.value,
                c.matched_by,
                c.reason
            );
        }
        let verdict = match (errors, report.strict) {
            (0, _) => "ok",
            (_, true) => "refused (strict)",
            (_, false) => "errors found; a strict load (--strict, BITNET_STRICT=1) would refuse",
        };
        println!(
            "{}: {errors} error(s), {warnings} warning(s): {verdict}",
            file.display()
        );
    }
    refusal(file.display(), &report)
}
