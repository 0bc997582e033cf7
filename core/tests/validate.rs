//! `bitnet_core::validate`: the good fixtures produce no error; a suite of
//! deliberately broken variants (built here in memory from the good
//! fixtures with `GgufWriter`) is each caught by the expected rule on the
//! expected tensor; corrections apply only with a matching policy *and*
//! permission, change the loaded weights exactly, and reach the receipt.

mod common;

use bitnet_core::gguf::{GgmlType, Gguf, GgufWriter, OwnedArray, OwnedValue, TensorSpec};
use bitnet_core::model::{FfnActivation, Logits, Model};
use bitnet_core::receipt::{self, Receipt};
use bitnet_core::sample::Rng;
use bitnet_core::validate::{
    ArchShape, Correction, Mode, ModelFingerprint, Policy, PolicyEntry, RuleId, Severity,
    ValidationConfig, ValidationReport, apply_to_weights, validate,
};
use sha2::{Digest, Sha256};

/// The generated fixtures, the trained float Llama and the trained BitNet
/// b1.58 model in both of its formats (the one model whose statistics are
/// a real training run's, not generated).
const GOOD: [&str; 7] = [
    "bitnet-f32.gguf",
    "bitnet-tq2_0.gguf",
    "bitnet-tq1_0.gguf",
    "bitnet-b1.58-i2s.gguf",
    "stories260K.gguf",
    "shakespeare-i2s.gguf",
    "shakespeare-tq2_0.gguf",
];

/// A copy of a fixture's metadata and tensors, to mutate and re-encode.
struct Mutant {
    kvs: Vec<(String, OwnedValue)>,
    tensors: Vec<TensorSpec>,
}

impl Mutant {
    fn of(name: &str) -> Self {
        let bytes = common::fixture(name);
        let g = Gguf::parse(&bytes).unwrap();
        Self {
            kvs: g
                .metadata()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_owned_value().unwrap()))
                .collect(),
            tensors: g
                .tensors()
                .iter()
                .map(|t| TensorSpec {
                    name: t.name.to_string(),
                    ggml_type: t.ggml_type,
                    dims: t.dims.clone(),
                    data: g.tensor_data(t).to_vec(),
                })
                .collect(),
        }
    }

    fn kv(mut self, key: &str, v: OwnedValue) -> Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.kvs.push((key.to_string(), v)),
        }
        self
    }

    fn bytes_of(mut self, tensor: &str, f: impl FnOnce(&mut Vec<u8>)) -> Self {
        let t = self
            .tensors
            .iter_mut()
            .find(|t| t.name == tensor)
            .unwrap_or_else(|| panic!("no tensor {tensor}"));
        f(&mut t.data);
        self
    }

    /// Applies `f` to every element of an F32 tensor.
    fn f32s(self, tensor: &str, f: impl Fn(f32) -> f32) -> Self {
        self.bytes_of(tensor, |d| {
            for c in d.chunks_exact_mut(4) {
                let v = f(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                c.copy_from_slice(&v.to_le_bytes());
            }
        })
    }

    /// Drops the last `n` entries of the tokenizer's per-token arrays.
    fn truncate_vocab(mut self, n: usize) -> Self {
        for (k, v) in &mut self.kvs {
            if !k.starts_with("tokenizer.ggml.") {
                continue;
            }
            if let OwnedValue::Array(a) = v {
                match a {
                    OwnedArray::String(s) if k == "tokenizer.ggml.tokens" => {
                        s.truncate(s.len() - n)
                    }
                    OwnedArray::F32(s) => s.truncate(s.len() - n),
                    OwnedArray::I32(s) => s.truncate(s.len() - n),
                    _ => {}
                }
            }
        }
        self
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &self.kvs {
            w.kv(k, v.clone());
        }
        for t in &self.tensors {
            w.tensor(t.clone());
        }
        w.to_bytes().unwrap()
    }
}

fn strict() -> ValidationConfig<'static> {
    ValidationConfig::builder().strict(true).build()
}

fn run(bytes: &[u8], cfg: &ValidationConfig<'_>) -> ValidationReport {
    validate(&Gguf::parse(bytes).unwrap(), cfg)
}

/// Offset of the I2_S scale of a `rows x cols` tensor.
fn i2s_scale_at(n: usize) -> usize {
    n / 4
}

#[test]
fn strict_defaults_to_full_and_plain_to_cheap() {
    assert_eq!(strict().mode(), Mode::Full);
    assert!(strict().strict());
    assert_eq!(ValidationConfig::builder().build().mode(), Mode::Cheap);
    let c = ValidationConfig::builder()
        .strict(true)
        .mode(Mode::Cheap)
        .build();
    assert_eq!(c.mode(), Mode::Cheap);
}

#[test]
fn good_fixtures_have_no_error_findings() {
    for name in GOOD {
        let bytes = common::fixture(name);
        for mode in [Mode::Cheap, Mode::Full] {
            let cfg = ValidationConfig::builder().strict(true).mode(mode).build();
            let r = run(&bytes, &cfg);
            let errors: Vec<String> = r
                .with_severity(Severity::Error)
                .map(|f| f.to_string())
                .collect();
            assert!(errors.is_empty(), "{name} ({mode:?}): {errors:#?}");
            assert!(!r.refuses());
            // Warnings would be noise on every load of a good model.
            let warnings: Vec<String> = r
                .with_severity(Severity::Warning)
                .map(|f| f.to_string())
                .collect();
            assert!(warnings.is_empty(), "{name} ({mode:?}): {warnings:#?}");
        }
    }
}

/// One broken variant: fixture, what was done, expected rule and subject.
struct Broken {
    what: &'static str,
    bytes: Vec<u8>,
    rule: RuleId,
    subject: &'static str,
}

fn broken_suite() -> Vec<Broken> {
    let nan_tail = |d: &mut Vec<u8>| {
        let at = i2s_scale_at(256 * 256);
        d[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    };
    vec![
        Broken {
            what: "norm x100 (float export)",
            bytes: Mutant::of("bitnet-f32.gguf")
                .f32s("blk.0.attn_norm.weight", |v| v * 100.0)
                .encode(),
            rule: RuleId::NormRms,
            subject: "blk.0.attn_norm.weight",
        },
        Broken {
            what: "sub-norm x100 (I2_S)",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .f32s("blk.2.ffn_sub_norm.weight", |v| v * 100.0)
                .encode(),
            rule: RuleId::NormRms,
            subject: "blk.2.ffn_sub_norm.weight",
        },
        Broken {
            what: "norm x100 (stories260K)",
            bytes: Mutant::of("stories260K.gguf")
                .f32s("output_norm.weight", |v| v * 100.0)
                .encode(),
            rule: RuleId::NormRms,
            subject: "output_norm.weight",
        },
        Broken {
            what: "NaN in a norm",
            bytes: Mutant::of("bitnet-tq1_0.gguf")
                .f32s(
                    "blk.1.ffn_norm.weight",
                    |v| if v > 1.1 { f32::NAN } else { v },
                )
                .encode(),
            rule: RuleId::NormFinite,
            subject: "blk.1.ffn_norm.weight",
        },
        Broken {
            what: "NaN I2_S tensor scale",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .bytes_of("blk.1.attn_q.weight", nan_tail)
                .encode(),
            rule: RuleId::QuantScale,
            subject: "blk.1.attn_q.weight",
        },
        Broken {
            what: "NaN .scale tensor (TQ2_0)",
            bytes: Mutant::of("bitnet-tq2_0.gguf")
                .f32s("blk.0.ffn_up.scale", |_| f32::NAN)
                .encode(),
            rule: RuleId::QuantScale,
            subject: "blk.0.ffn_up.scale",
        },
        Broken {
            what: "NaN TQ1_0 block scale",
            bytes: Mutant::of("bitnet-tq1_0.gguf")
                .bytes_of("blk.0.attn_k.weight", |d| {
                    // Block 3's f16 scale: 0x7e00 is a NaN.
                    d[3 * 54 + 52..3 * 54 + 54].copy_from_slice(&0x7e00u16.to_le_bytes());
                })
                .encode(),
            rule: RuleId::QuantScale,
            subject: "blk.0.attn_k.weight",
        },
        Broken {
            what: "negative TQ2_0 block scale",
            bytes: Mutant::of("bitnet-tq2_0.gguf")
                .bytes_of("blk.1.attn_v.weight", |d| {
                    d[64..66].copy_from_slice(&0xbc00u16.to_le_bytes()); // -1.0
                })
                .encode(),
            rule: RuleId::QuantScale,
            subject: "blk.1.attn_v.weight",
        },
        Broken {
            what: "I2_S code 3",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .bytes_of("blk.2.ffn_down.weight", |d| d[100] = 0xff)
                .encode(),
            rule: RuleId::QuantTernaryCode,
            subject: "blk.2.ffn_down.weight",
        },
        Broken {
            what: "TQ2_0 code 3",
            bytes: Mutant::of("bitnet-tq2_0.gguf")
                .bytes_of("blk.0.attn_q.weight", |d| d[7] |= 0b1100)
                .encode(),
            rule: RuleId::QuantTernaryCode,
            subject: "blk.0.attn_q.weight",
        },
        Broken {
            what: "zeroed projection (float export)",
            bytes: Mutant::of("bitnet-f32.gguf")
                .f32s("blk.1.ffn_down.weight", |_| 0.0)
                .encode(),
            rule: RuleId::ProjRms,
            subject: "blk.1.ffn_down.weight",
        },
        Broken {
            what: "zeroed projection (I2_S: every code 1)",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .bytes_of("blk.0.attn_v.weight", |d| {
                    let body = 256 * 128 / 4;
                    d[..body].fill(0x55);
                })
                .encode(),
            rule: RuleId::QuantZeroFraction,
            subject: "blk.0.attn_v.weight",
        },
        Broken {
            what: "zeroed projection (TQ1_0: every trit 1)",
            bytes: Mutant::of("bitnet-tq1_0.gguf")
                .bytes_of("blk.1.ffn_gate.weight", |d| {
                    // 11111 (base 3) = 121 -> ceil(121 * 256 / 243) = 128; the
                    // qh bytes' four trits 1111 + pad 0 = 120 -> 127.
                    for b in d.chunks_exact_mut(54) {
                        b[..48].fill(128);
                        b[48..52].fill(127);
                    }
                })
                .encode(),
            rule: RuleId::QuantZeroFraction,
            subject: "blk.1.ffn_gate.weight",
        },
        Broken {
            what: "scale x1000 in one layer (I2_S)",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .bytes_of("blk.1.ffn_gate.weight", |d| {
                    let at = i2s_scale_at(256 * 768);
                    let v = f32::from_le_bytes(d[at..at + 4].try_into().unwrap());
                    d[at..at + 4].copy_from_slice(&(v * 1000.0).to_le_bytes());
                })
                .encode(),
            rule: RuleId::ProjLayerConsistency,
            subject: "blk.1.ffn_gate.weight",
        },
        Broken {
            what: "vocab mismatch ({arch}.vocab_size)",
            bytes: Mutant::of("bitnet-f32.gguf")
                .kv("bitnet.vocab_size", OwnedValue::U32(600))
                .encode(),
            rule: RuleId::MetaVocab,
            subject: "bitnet.vocab_size",
        },
        Broken {
            what: "vocab mismatch (tokenizer shorter than the embedding)",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .truncate_vocab(3)
                .encode(),
            rule: RuleId::MetaVocab,
            subject: "tokenizer.ggml.tokens",
        },
        Broken {
            what: "unknown activation",
            bytes: Mutant::of("bitnet-b1.58-i2s.gguf")
                .kv(
                    "bitnet-b1.58.hidden_act",
                    OwnedValue::String("gelu_fancy".into()),
                )
                .encode(),
            rule: RuleId::MetaActivation,
            subject: "bitnet-b1.58.hidden_act",
        },
        Broken {
            what: "activation of another architecture",
            bytes: Mutant::of("bitnet-f32.gguf")
                .kv("bitnet.hidden_act", OwnedValue::String("relu2".into()))
                .encode(),
            rule: RuleId::MetaActivation,
            subject: "bitnet.hidden_act",
        },
        Broken {
            what: "special id out of range",
            bytes: Mutant::of("stories260K.gguf")
                .kv("tokenizer.ggml.eos_token_id", OwnedValue::U32(9999))
                .encode(),
            rule: RuleId::TokenizerSpecialIds,
            subject: "tokenizer.ggml.eos_token_id",
        },
        Broken {
            what: "tokenizer array of the wrong type",
            bytes: Mutant::of("bitnet-f32.gguf")
                .kv(
                    "tokenizer.ggml.scores",
                    OwnedValue::Array(OwnedArray::U32(vec![0; 512])),
                )
                .encode(),
            rule: RuleId::TokenizerTypes,
            subject: "tokenizer.ggml.scores",
        },
        Broken {
            what: "shape vs hyper-parameters",
            bytes: Mutant::of("bitnet-tq2_0.gguf")
                .kv("bitnet.feed_forward_length", OwnedValue::U32(768))
                .encode(),
            rule: RuleId::MetaShape,
            subject: "blk.0.ffn_gate.weight",
        },
        Broken {
            what: "epsilon",
            bytes: Mutant::of("stories260K.gguf")
                .kv(
                    "llama.attention.layer_norm_rms_epsilon",
                    OwnedValue::F32(0.5),
                )
                .encode(),
            rule: RuleId::MetaEps,
            subject: "llama.attention.layer_norm_rms_epsilon",
        },
        Broken {
            what: "head counts",
            bytes: Mutant::of("bitnet-f32.gguf")
                .kv("bitnet.attention.head_count_kv", OwnedValue::U32(3))
                .encode(),
            rule: RuleId::MetaHparams,
            subject: "bitnet.*",
        },
        Broken {
            what: "unknown architecture",
            bytes: Mutant::of("bitnet-f32.gguf")
                .kv(
                    "general.architecture",
                    OwnedValue::String("bitnet-9".into()),
                )
                .encode(),
            rule: RuleId::MetaArch,
            subject: "general.architecture",
        },
    ]
}

#[test]
fn every_broken_fixture_is_caught_by_its_rule() {
    for b in broken_suite() {
        let r = run(&b.bytes, &strict());
        assert!(r.refuses(), "{}: strict mode must refuse", b.what);
        let hit = r
            .findings
            .iter()
            .find(|f| f.rule == b.rule && f.severity == Severity::Error && f.subject == b.subject);
        assert!(
            hit.is_some(),
            "{}: expected an error of {} on {}, got {:#?}",
            b.what,
            b.rule,
            b.subject,
            r.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>()
        );
        // Non-strict: the same findings, but the model is not refused.
        let lax = run(
            &b.bytes,
            &ValidationConfig::builder().mode(Mode::Full).build(),
        );
        assert!(lax.has_errors() && !lax.refuses(), "{}", b.what);
    }
}

#[test]
fn cheap_mode_reads_no_weight_codes() {
    // Norms, per-tensor scales and metadata are cheap; codes are not.
    let cheap = ValidationConfig::builder().build();
    let norm = Mutant::of("bitnet-f32.gguf")
        .f32s("blk.0.attn_norm.weight", |v| v * 100.0)
        .encode();
    assert!(run(&norm, &cheap).has_rule(RuleId::NormRms));
    let nan = Mutant::of("bitnet-b1.58-i2s.gguf")
        .bytes_of("blk.1.attn_q.weight", |d| {
            let at = i2s_scale_at(256 * 256);
            d[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        })
        .encode();
    assert!(run(&nan, &cheap).has_rule(RuleId::QuantScale));
    let code3 = Mutant::of("bitnet-b1.58-i2s.gguf")
        .bytes_of("blk.2.ffn_down.weight", |d| d[100] = 0xff)
        .encode();
    assert!(!run(&code3, &cheap).has_errors());
    assert!(run(&code3, &strict()).has_rule(RuleId::QuantTernaryCode));
}

#[test]
fn findings_name_rule_tensor_measured_and_envelope() {
    let bytes = Mutant::of("bitnet-f32.gguf")
        .f32s("blk.0.attn_norm.weight", |v| v * 100.0)
        .encode();
    let r = run(&bytes, &strict());
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == RuleId::NormRms)
        .unwrap();
    let measured = f.measured.unwrap();
    assert!((measured - 100.06).abs() < 0.01, "{measured}");
    let env = f.expected.unwrap();
    assert!(env.hi < measured && env.lo < 1.0);
    let text = f.to_string();
    assert!(
        text.contains("norm.rms") && text.contains("blk.0.attn_norm.weight"),
        "{text}"
    );
}

/// The norm x128 variant (a power of two, so a 1/128 correction restores
/// the exact bits) and a policy entry for it.
fn rescaled_norm() -> (Vec<u8>, PolicyEntry) {
    let bytes = Mutant::of("bitnet-f32.gguf")
        .f32s("blk.1.ffn_norm.weight", |v| v * 128.0)
        .f32s("output_norm.weight", |v| v * 128.0)
        .encode();
    let shape = ArchShape::of(&Gguf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(
        shape.to_string(),
        "bitnet dim 256 layers 2 heads 4/2 ff 512 vocab 512"
    );
    let entry = PolicyEntry {
        fingerprint: ModelFingerprint::ArchShape(shape),
        reason: "norms exported x128".into(),
        corrections: vec![
            Correction::Rescale {
                tensor: "blk.1.ffn_norm.weight".into(),
                factor: 1.0 / 128.0,
            },
            Correction::Rescale {
                tensor: "output_norm.weight".into(),
                factor: 1.0 / 128.0,
            },
        ],
    };
    (bytes, entry)
}

#[test]
fn corrections_need_both_policy_and_permission() {
    let (bytes, entry) = rescaled_norm();
    let policy = Policy {
        entries: vec![entry],
    };
    // No policy: the norms are errors.
    let r = run(&bytes, &strict());
    assert!(r.refuses() && r.corrections.is_empty());
    // Permission without a policy: nothing to apply.
    let cfg = ValidationConfig::builder()
        .strict(true)
        .allow_corrections(true)
        .build();
    assert!(run(&bytes, &cfg).refuses());
    // A policy without permission: still refused, and a warning says why.
    let cfg = ValidationConfig::builder()
        .strict(true)
        .policy(&policy)
        .build();
    let r = run(&bytes, &cfg);
    assert!(r.refuses() && r.corrections.is_empty());
    assert!(
        r.findings
            .iter()
            .any(|f| f.rule == RuleId::PolicyCorrection && f.severity == Severity::Warning)
    );
    // Both: corrected, recorded, accepted.
    let cfg = ValidationConfig::builder()
        .strict(true)
        .policy(&policy)
        .allow_corrections(true)
        .build();
    let r = run(&bytes, &cfg);
    assert!(!r.has_errors(), "{:#?}", r.findings);
    assert_eq!(r.corrections.len(), 2);
    assert_eq!(
        r.corrections[0].receipt_fields(),
        [
            "rescale",
            "blk.1.ffn_norm.weight",
            "0.0078125",
            "arch_shape"
        ]
    );
    assert_eq!(r.with_severity(Severity::Info).count(), 2);
}

#[test]
fn sha256_fingerprints_match_only_their_file() {
    let (bytes, mut entry) = rescaled_norm();
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    entry.fingerprint = ModelFingerprint::Sha256(digest);
    let policy = Policy {
        entries: vec![entry],
    };
    let with = |d: [u8; 32]| {
        ValidationConfig::builder()
            .strict(true)
            .policy(&policy)
            .allow_corrections(true)
            .file_sha256(d)
            .build()
    };
    let r = run(&bytes, &with(digest));
    assert_eq!(r.corrections.len(), 2);
    assert!(!r.refuses());
    assert_eq!(r.corrections[0].matched_by, "sha256");
    let r = run(&bytes, &with([0; 32]));
    assert!(r.corrections.is_empty() && r.refuses());
}

#[test]
fn applied_corrections_restore_the_model_exactly() {
    let (bytes, entry) = rescaled_norm();
    let policy = Policy {
        entries: vec![entry],
    };
    let cfg = ValidationConfig::builder()
        .policy(&policy)
        .allow_corrections(true)
        .build();
    let g = Gguf::parse(&bytes).unwrap();
    let report = validate(&g, &cfg);
    let mut model = Model::from_gguf(&g).unwrap();
    apply_to_weights(&report.corrections, &model.config, &mut model.weights).unwrap();

    let good_bytes = common::fixture("bitnet-f32.gguf");
    let good_g = Gguf::parse(&good_bytes).unwrap();
    let good = Model::from_gguf(&good_g).unwrap();
    assert_eq!(model.weights.output_norm, good.weights.output_norm);
    assert_eq!(
        model.weights.layers[1].ffn_norm,
        good.weights.layers[1].ffn_norm
    );
    let tokens = [1u32, 5, 42, 7];
    let mut s1 = model.new_state(4, 16).unwrap();
    let mut s2 = good.new_state(4, 16).unwrap();
    let a = model.forward(&mut s1, &tokens, 0, Logits::Last).unwrap();
    let b = good.forward(&mut s2, &tokens, 0, Logits::Last).unwrap();
    assert_eq!(a, b);
}

#[test]
fn projection_rescale_goes_through_the_output_scale() {
    let bytes = Mutant::of("bitnet-f32.gguf")
        .f32s("blk.0.ffn_down.weight", |v| v * 4.0)
        .encode();
    let g = Gguf::parse(&bytes).unwrap();
    let policy = Policy {
        entries: vec![PolicyEntry {
            fingerprint: ModelFingerprint::ArchShape(ArchShape::of(&g).unwrap()),
            reason: "ffn_down x4".into(),
            corrections: vec![Correction::Rescale {
                tensor: "blk.0.ffn_down.weight".into(),
                factor: 0.25,
            }],
        }],
    };
    let cfg = ValidationConfig::builder()
        .policy(&policy)
        .allow_corrections(true)
        .build();
    let report = validate(&g, &cfg);
    let mut model = Model::from_gguf(&g).unwrap();
    apply_to_weights(&report.corrections, &model.config, &mut model.weights).unwrap();
    assert_eq!(model.weights.layers[0].w_down.scale, Some(0.25));
    let good_bytes = common::fixture("bitnet-f32.gguf");
    let good_g = Gguf::parse(&good_bytes).unwrap();
    let good = Model::from_gguf(&good_g).unwrap();
    let tokens = [3u32, 9, 27];
    let mut s1 = model.new_state(3, 8).unwrap();
    let mut s2 = good.new_state(3, 8).unwrap();
    let a = model
        .forward(&mut s1, &tokens, 0, Logits::Last)
        .unwrap()
        .to_vec();
    let b = good.forward(&mut s2, &tokens, 0, Logits::Last).unwrap();
    // (4w)x * 0.25 vs wx: exact in every product, summation order equal.
    assert_eq!(a, b);
}

#[test]
fn forced_activation_resolves_a_bad_declaration_and_refuses_another_arch() {
    let bytes = Mutant::of("bitnet-b1.58-i2s.gguf")
        .kv("bitnet-b1.58.hidden_act", OwnedValue::String("gelu".into()))
        .encode();
    let g = Gguf::parse(&bytes).unwrap();
    let shape = ArchShape::of(&g).unwrap();
    let policy = |a| Policy {
        entries: vec![PolicyEntry {
            fingerprint: ModelFingerprint::ArchShape(shape.clone()),
            reason: "hidden_act mislabelled".into(),
            corrections: vec![Correction::ForceActivation(a)],
        }],
    };
    let p = policy(FfnActivation::ReluSquared);
    let cfg = ValidationConfig::builder()
        .strict(true)
        .policy(&p)
        .allow_corrections(true)
        .build();
    let r = validate(&g, &cfg);
    assert!(!r.has_errors(), "{:#?}", r.findings);
    assert_eq!(r.declared_activation, Some(FfnActivation::ReluSquared));
    let p = policy(FfnActivation::Silu);
    let cfg = ValidationConfig::builder()
        .strict(true)
        .policy(&p)
        .allow_corrections(true)
        .build();
    let r = validate(&g, &cfg);
    assert!(r.refuses());
    assert!(r.has_rule(RuleId::PolicyCorrection));
    let mut model = Model::from_gguf(&g).unwrap();
    assert!(apply_to_weights(&r.corrections, &model.config, &mut model.weights).is_err());
}

#[test]
fn impossible_corrections_are_errors_not_applied() {
    let bytes = common::fixture("bitnet-f32.gguf");
    let g = Gguf::parse(&bytes).unwrap();
    let policy = Policy {
        entries: vec![PolicyEntry {
            fingerprint: ModelFingerprint::ArchShape(ArchShape::of(&g).unwrap()),
            reason: "bad".into(),
            corrections: vec![
                Correction::Rescale {
                    tensor: "token_embd.weight".into(),
                    factor: 2.0,
                },
                Correction::Rescale {
                    tensor: "blk.0.attn_norm.weight".into(),
                    factor: f32::NAN,
                },
            ],
        }],
    };
    let cfg = ValidationConfig::builder()
        .policy(&policy)
        .allow_corrections(true)
        .build();
    let r = validate(&g, &cfg);
    assert!(r.corrections.is_empty());
    assert_eq!(
        r.findings
            .iter()
            .filter(|f| f.rule == RuleId::PolicyCorrection && f.severity == Severity::Error)
            .count(),
        2
    );
}

#[test]
fn corrections_are_recorded_in_the_receipt() {
    let (bytes, entry) = rescaled_norm();
    let policy = Policy {
        entries: vec![entry],
    };
    let cfg = ValidationConfig::builder()
        .policy(&policy)
        .allow_corrections(true)
        .build();
    let r = run(&bytes, &cfg);
    let mut counters = receipt::KernelCounters::new();
    counters.record("f32_gemv_scalar", 10);
    counters.end_pass(1, 2);
    let run_info = receipt::RunInfo {
        backend: receipt::Backend::Cpu,
        backend_summary: "cpu",
        deterministic: true,
        seed: 1,
        threads: 1,
        model: receipt::ModelInfo {
            name: "x.gguf",
            arch: "bitnet",
            sha256: [1; 32],
            quant_types: &["F32"],
            parameters: 1,
            layers: 2,
        },
        prompt_tokens: 1,
        requested_tokens: 1,
        generated_ids: &[1],
        load_ms: 1.0,
        prefill_ms: 1.0,
        decode_ms: 1.0,
    };
    let fp = receipt::Fingerprint {
        gpu_cc: None,
        gpu_name: None,
        cpu_id: "cpu".try_into().unwrap(),
        os: "os".try_into().unwrap(),
        rustc: "rustc".try_into().unwrap(),
        bitnet_version: "0".try_into().unwrap(),
    };
    let plain = Receipt::build(&run_info, &counters, "2026-01-01T00:00:00Z", fp).unwrap();
    let json = receipt::to_json(&plain).unwrap();
    assert!(!String::from_utf8_lossy(&json).contains("corrections"));
    let corrected = plain
        .with_corrections(r.corrections.iter().map(|c| c.receipt_fields()))
        .unwrap();
    let json = receipt::to_json(&corrected).unwrap();
    let back = receipt::parse(&json).unwrap();
    let list = back.corrections.expect("corrections recorded");
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].target, "output_norm.weight");
    assert_eq!(list[1].value, "0.0078125");
    assert_eq!(list[1].matched_by, "arch_shape");
}

#[test]
fn hostile_variants_never_panic() {
    // Random byte flips of every fixture; whatever still parses is validated
    // in full mode, with a policy that matches it.
    let mut rng = Rng::new(10);
    for name in GOOD {
        let good = common::fixture(name);
        let g = Gguf::parse(&good).unwrap();
        let policy = Policy {
            entries: vec![PolicyEntry {
                fingerprint: ModelFingerprint::ArchShape(ArchShape::of(&g).unwrap()),
                reason: "fuzz".into(),
                corrections: vec![Correction::Rescale {
                    tensor: "output_norm.weight".into(),
                    factor: 2.0,
                }],
            }],
        };
        let cfg = ValidationConfig::builder()
            .strict(true)
            .policy(&policy)
            .allow_corrections(true)
            .build();
        for _ in 0..40 {
            let mut b = good.clone();
            for _ in 0..1 + rng.next_u64() % 16 {
                let at = (rng.next_u64() % b.len() as u64) as usize;
                b[at] = rng.next_u64() as u8;
            }
            if let Ok(g) = Gguf::parse(&b) {
                let _ = validate(&g, &cfg);
            }
        }
    }
    // A norm of a type no norm can have.
    let mut m = Mutant::of("bitnet-f32.gguf");
    for t in &mut m.tensors {
        if t.name == "output_norm.weight" {
            t.ggml_type = GgmlType::I8;
            t.data.truncate(256);
        }
    }
    let r = run(&m.encode(), &strict());
    assert!(r.has_rule(RuleId::MetaTensorType), "{:#?}", r.findings);
}
