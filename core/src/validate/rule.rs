//! [`RuleId`]: the name of every validation rule, and [`Severity`].

use core::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A fact worth showing (e.g. a correction that was applied).
    Info,
    /// Unusual but runnable: non-strict loads print it, strict loads too.
    Warning,
    /// The file is broken or implausible: strict mode refuses to run it.
    Error,
}

impl Severity {
    /// Lower-case name (`info`, `warning`, `error`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! rules {
    ($($(#[$doc:meta])* $variant:ident = $id:literal;)*) => {
        /// Every rule. [`RuleId::id`] is the stable name printed in reports
        /// and matched by tests; docs/howto/validate-models.md lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $($(#[$doc])* $variant,)*
        }

        impl RuleId {
            /// All rules, in report order.
            pub const ALL: &'static [RuleId] = &[$(Self::$variant,)*];

            /// The stable id, e.g. `norm.rms`.
            pub const fn id(self) -> &'static str {
                match self {
                    $(Self::$variant => $id,)*
                }
            }
        }
    };
}

rules! {
    /// `general.architecture` missing or not one this engine runs.
    MetaArch = "meta.arch";
    /// A hyper-parameter the model loader refuses (missing, zero, too large,
    /// heads that do not divide, ...).
    MetaHparams = "meta.hparams";
    /// `{arch}.attention.layer_norm_rms_epsilon` outside its envelope.
    MetaEps = "meta.eps";
    /// `{arch}.rope.freq_base` outside its envelope.
    MetaRope = "meta.rope";
    /// Head dimension / head counts outside their envelope.
    MetaHeads = "meta.heads";
    /// `{arch}.hidden_act` names an activation the architecture does not use.
    MetaActivation = "meta.activation";
    /// A tensor the architecture needs is missing.
    MetaTensorMissing = "meta.tensor_missing";
    /// A tensor's dims disagree with the hyper-parameters.
    MetaShape = "meta.shape";
    /// A tensor type the engine cannot use in that role, or a tensor it
    /// would have to ignore.
    MetaTensorType = "meta.tensor_type";
    /// Vocabulary size: embedding rows vs tokens vs `{arch}.vocab_size`.
    MetaVocab = "meta.vocab";
    /// Any other refusal of the model loader.
    MetaLoad = "meta.load";
    /// Tokenizer metadata of the wrong type, missing or unknown.
    TokenizerTypes = "tokenizer.types";
    /// Tokenizer arrays of inconsistent lengths, or an empty vocabulary.
    TokenizerLengths = "tokenizer.lengths";
    /// A special token id (BOS, EOS, ...) outside the vocabulary.
    TokenizerSpecialIds = "tokenizer.special_ids";
    /// Token texts, token types or merges the tokenizer refuses.
    TokenizerContent = "tokenizer.content";
    /// A norm weight is NaN or infinite.
    NormFinite = "norm.finite";
    /// A norm weight's RMS is outside its envelope.
    NormRms = "norm.rms";
    /// A float projection has NaN or infinite elements.
    ProjFinite = "proj.finite";
    /// A float projection's RMS is outside its envelope.
    ProjRms = "proj.rms";
    /// A float projection's mean |w| is outside its envelope.
    ProjAbsmean = "proj.absmean";
    /// A projection's magnitude (scale or RMS) is far from the same
    /// projection's median over the layers.
    ProjLayerConsistency = "proj.layer_consistency";
    /// A quantized scale (per tensor or per block, or a `*.scale` tensor)
    /// is NaN, infinite, zero or negative.
    QuantScale = "quant.scale";
    /// A 2-bit code outside {-1, 0, +1} (I2_S / TQ2_0 code 3).
    QuantTernaryCode = "quant.ternary_code";
    /// The fraction of zero weights of a ternary tensor is implausible.
    QuantZeroFraction = "quant.zero_fraction";
    /// The token embedding has non-finite elements or an implausible RMS.
    EmbdRms = "embd.rms";
    /// A correction policy matches this file but was not applied (no
    /// permission), or names something that cannot be corrected.
    PolicyCorrection = "policy.correction";
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
