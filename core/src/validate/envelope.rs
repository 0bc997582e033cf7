//! The envelopes: the ranges a measured value must lie in. Each is a
//! [`Band`]: outside `warn` gives a warning, outside `error` an error.
//!
//! Where the numbers come from is written beside each one and, with the
//! measurements, in docs/howto/validate-models.md. Two sources:
//! - measured: the fixtures in tests/models (`cargo xtask gen-fixtures`:
//!   norms `1 + 0.1 N(0,1)`, ternary weights with 1/3 zeros, tensor scales
//!   in [0.04, 0.1)) and the trained float Llama stories260K.gguf;
//! - published shapes and conventions of the real models (DESIGN.md §6:
//!   BitNet-b1.58-2B-4T, 1bitLLM bitnet_b1_58, Llama): hyper-parameters,
//!   RMSNorm weights initialised at 1, absmean ternarization. Where a number
//!   is an assumption rather than a measurement, the comment says so.

use crate::model::Arch;

use super::rule::Severity;

/// A closed range `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    /// Smallest accepted value.
    pub lo: f64,
    /// Largest accepted value.
    pub hi: f64,
}

impl Envelope {
    /// `[lo, hi]`.
    pub const fn new(lo: f64, hi: f64) -> Self {
        Self { lo, hi }
    }

    /// Whether `v` lies inside (NaN never does).
    pub fn contains(&self, v: f64) -> bool {
        v >= self.lo && v <= self.hi
    }
}

/// A warning range inside an error range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Outside: warning.
    pub warn: Envelope,
    /// Outside: error.
    pub error: Envelope,
}

impl Band {
    /// `warn` inside `error`.
    pub const fn new(warn: (f64, f64), error: (f64, f64)) -> Self {
        Self {
            warn: Envelope::new(warn.0, warn.1),
            error: Envelope::new(error.0, error.1),
        }
    }

    /// The severity of `v` and the envelope it broke, `None` when inside.
    pub fn judge(&self, v: f64) -> Option<(Severity, Envelope)> {
        if !self.error.contains(v) {
            Some((Severity::Error, self.error))
        } else if !self.warn.contains(v) {
            Some((Severity::Warning, self.warn))
        } else {
            None
        }
    }
}

/// How a file stores its projection matrices (the weight format axis of
/// the norm envelopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// F32 / F16 / BF16.
    Float,
    /// I2_S, TQ1_0, TQ2_0.
    Ternary,
    /// Any other quantization (Q8_0, ...).
    OtherQuant,
}

impl WeightFormat {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Ternary => "ternary",
            Self::OtherQuant => "quantized",
        }
    }
}

/// Which norm a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `attn_norm`, `ffn_norm`: before the attention / FFN input projections.
    Block,
    /// `attn_sub_norm`, `ffn_sub_norm` (bitnet archs): before `attn_output`
    /// / `ffn_down`.
    Sub,
    /// `output_norm`: before the LM head.
    Output,
}

/// RMS of a norm weight vector.
///
/// RMSNorm weights start at 1 and trained models keep them within about
/// an order of magnitude of it: measured 1.00 on every fixture norm
/// (`1 + 0.1 N(0,1)`), and on stories260K (trained float Llama) between the
/// values listed in docs/howto/validate-models.md. A norm scaled by 100 (a
/// converter that multiplied twice, or the wrong tensor) lies far outside.
///
/// Format axis: ternary files (I2_S, TQ*) come from a converter that
/// re-derives weights, and their sub-norms feed an absmax-requantized
/// ternary matmul; the bands are kept wider there (assumption: no published
/// per-tensor statistics of the 2B-4T norms to measure against, so the
/// error band is set where no RMSNorm-trained model plausibly goes).
pub const fn norm_rms(arch: Arch, format: WeightFormat, kind: NormKind) -> Band {
    match (arch, format, kind) {
        // Float Llamas: output norms grow during training (Llama-2 output_norm
        // weights are ~2); block norms can shrink well below 1.
        (Arch::Llama, WeightFormat::Float, _) => Band::new((0.02, 8.0), (0.002, 40.0)),
        (_, WeightFormat::Float, _) => Band::new((0.05, 8.0), (0.005, 40.0)),
        (_, _, NormKind::Sub) => Band::new((0.02, 20.0), (0.002, 60.0)),
        (_, _, _) => Band::new((0.02, 10.0), (0.002, 50.0)),
    }
}

/// RMS of a float projection matrix.
///
/// Trained float Llamas: weights start at std 0.02 (Llama init) and stay
/// near it (stories260K: see the how-to). Float exports of ternary models
/// store `scale * {-1, 0, 1}`: RMS `scale * sqrt(1 - zeros)`, about
/// 0.03-0.08 on the fixtures (scales 0.04-0.1). A zeroed matrix has RMS 0.
pub const PROJ_RMS: Band = Band::new((1e-3, 1.0), (1e-5, 10.0));

/// Mean |w| of a float projection matrix: the absmean of BitNet b1.58's
/// ternarization (`scale = mean |W|`). Same sources as [`PROJ_RMS`];
/// for a Gaussian matrix absmean = 0.80 RMS, for a ternary export
/// `sqrt(1 - zeros)` RMS.
pub const PROJ_ABSMEAN: Band = Band::new((7e-4, 0.8), (7e-6, 8.0));

/// Fraction of zero weights of a ternary projection.
///
/// Absmean ternarization of a Gaussian matrix zeroes `|w| < 0.5 mean|w|`,
/// i.e. `P(|z| < 0.399) = 0.31`; the fixtures draw 1/3 zeros. Published
/// analyses of BitNet b1.58 models report zero fractions of roughly a third
/// (assumption: not measured here on the 2B-4T file). A matrix of only zeros
/// (fraction 1) or with almost none is a broken conversion.
pub const ZERO_FRACTION: Band = Band::new((0.1, 0.7), (0.01, 0.95));

/// Ratio between a projection's magnitude (ternary scale, or float RMS) and
/// the median of the same projection over all layers (always >= 1: the
/// larger of `v / median` and `median / v`). Measured at most 2.5 on the
/// fixtures (scales drawn in [0.04, 0.1)); trained models vary by a few
/// times across depth (assumption for the 2B-4T). Needs at least
/// [`MIN_LAYERS_FOR_CONSISTENCY`] layers.
pub const LAYER_RATIO: Band = Band::new((1.0, 8.0), (1.0, 64.0));

/// Fewer layers give no meaningful median.
pub const MIN_LAYERS_FOR_CONSISTENCY: usize = 3;

/// RMS of the token embedding: Llama init std 0.02 to ~1 (the fixtures
/// draw `0.25 N(0,1)`).
pub const EMBD_RMS: Band = Band::new((1e-3, 4.0), (1e-5, 100.0));

/// `{arch}.attention.layer_norm_rms_epsilon`: 1e-5 (2B-4T, Llama-2/3,
/// stories260K, fixtures) or 1e-6 (Llama-1, some conversions). Zero risks a
/// division by zero on a zero row; above 1e-3 the norm no longer
/// normalizes.
pub const NORM_EPS: Band = Band::new((1e-7, 1e-4), (1e-12, 1e-2));

/// `{arch}.rope.freq_base`: 10000 (Llama-1/2, stories260K, 1bitLLM
/// bitnet), 500000 (Llama-3, 2B-4T); long-context models go to ~1e7.
pub const ROPE_BASE: Band = Band::new((1000.0, 5e7), (10.0, 1e10));

/// Head dimension: 128 (2B-4T, Llama), 64 (fixtures), 8 (stories260K, the
/// smallest trained model we know of). Odd or tiny head dims break RoPE
/// pairing; above 1024 nothing published exists.
pub const HEAD_DIM: Band = Band::new((8.0, 256.0), (2.0, 1024.0));
