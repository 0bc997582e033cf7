//! Model-level load and run errors on small GGUF files built with the
//! writer: every failure is a clear `ModelError`, never a panic.

#[path = "common/hostile.rs"]
mod hostile;

use bitnet_core::gguf::{GgmlType, Gguf, GgufWriter, OwnedArray, OwnedValue, TensorSpec};
use bitnet_core::model::{Logits, Model, ModelError};

const DIM: usize = 8;
const FF: usize = 16;
const VOCAB: usize = 5;

fn f32s(n: usize, v: f32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (v + i as f32 * 0.01).to_le_bytes())
        .collect()
}

fn t(name: &str, dims: &[usize], data: Vec<u8>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        ggml_type: GgmlType::F32,
        dims: dims.iter().map(|&d| d as u64).collect(),
        data,
    }
}

/// A one-layer F32 llama (2 heads, 1 KV head, head dim 4) with `edit`
/// applied to the tensor list before writing.
fn llama(arch: &str, heads: u32, edit: impl Fn(&mut Vec<TensorSpec>)) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", OwnedValue::String(arch.into()));
    for (k, v) in [
        ("context_length", 4u32),
        ("embedding_length", DIM as u32),
        ("block_count", 1),
        ("feed_forward_length", FF as u32),
        ("attention.head_count", heads),
        ("attention.head_count_kv", 1),
    ] {
        w.kv(&format!("{arch}.{k}"), OwnedValue::U32(v));
    }
    w.kv(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(1e-5),
    );
    w.kv(
        "tokenizer.ggml.tokens",
        OwnedValue::Array(OwnedArray::String(
            (0..VOCAB).map(|i| format!("t{i}")).collect(),
        )),
    );
    let mut ts = vec![
        t("token_embd.weight", &[DIM, VOCAB], f32s(DIM * VOCAB, 0.1)),
        t("output_norm.weight", &[DIM], f32s(DIM, 1.0)),
        t("blk.0.attn_norm.weight", &[DIM], f32s(DIM, 1.0)),
        t("blk.0.attn_q.weight", &[DIM, DIM], f32s(DIM * DIM, -0.2)),
        t("blk.0.attn_k.weight", &[DIM, 4], f32s(DIM * 4, 0.1)),
        t("blk.0.attn_v.weight", &[DIM, 4], f32s(DIM * 4, 0.3)),
        t(
            "blk.0.attn_output.weight",
            &[DIM, DIM],
            f32s(DIM * DIM, 0.05),
        ),
        t("blk.0.ffn_norm.weight", &[DIM], f32s(DIM, 1.0)),
        t("blk.0.ffn_gate.weight", &[DIM, FF], f32s(DIM * FF, 0.02)),
        t("blk.0.ffn_up.weight", &[DIM, FF], f32s(DIM * FF, -0.02)),
        t("blk.0.ffn_down.weight", &[FF, DIM], f32s(DIM * FF, 0.01)),
    ];
    edit(&mut ts);
    for s in ts {
        w.tensor(s);
    }
    w.to_bytes().unwrap()
}

fn load(bytes: &[u8]) -> Result<(), ModelError> {
    let g = Gguf::parse(bytes).unwrap();
    Model::from_gguf(&g).map(|_| ())
}

#[test]
fn the_base_file_loads_and_runs() {
    let b = llama("llama", 2, |_| {});
    let g = Gguf::parse(&b).unwrap();
    let m = Model::from_gguf(&g).unwrap();
    assert_eq!((m.config.head_dim, m.config.vocab_size), (4, VOCAB));
    let mut s = m.new_state(2, 4).unwrap();
    let l = m.forward(&mut s, &[1, 2, 3], 0, Logits::All).unwrap_err();
    assert_eq!(
        l,
        ModelError::BatchTooLarge {
            n_tokens: 3,
            max_batch: 2
        }
    );
    assert_eq!(
        m.forward(&mut s, &[1, 2, 3], 0, Logits::Last)
            .unwrap()
            .len(),
        VOCAB
    );
    // Position 3 is the last of a 4-token context.
    assert!(m.forward(&mut s, &[4], 3, Logits::Last).is_ok());
    let e = m.forward(&mut s, &[4], 4, Logits::Last).unwrap_err();
    assert_eq!(
        e,
        ModelError::ContextFull {
            pos: 4,
            n_tokens: 1,
            n_ctx: 4
        }
    );
    assert!(e.to_string().contains("context full"));
    let e = m.forward(&mut s, &[5], 0, Logits::Last).unwrap_err();
    assert_eq!(e, ModelError::TokenOutOfRange { token: 5, vocab: 5 });
    assert_eq!(
        m.forward(&mut s, &[], 0, Logits::Last).unwrap_err(),
        ModelError::EmptyInput
    );
    assert!(m.forward(&mut s, &[1], usize::MAX, Logits::Last).is_err());
    assert!(m.new_state(1, 5).is_err());
}

#[test]
fn unknown_architecture_is_named() {
    let e = load(&llama("gpt2", 2, |_| {})).unwrap_err();
    assert_eq!(
        e,
        ModelError::UnknownArchitecture {
            arch: "gpt2".into()
        }
    );
    assert!(e.to_string().contains("\"gpt2\""));
}

#[test]
fn missing_tensor_is_named() {
    let e = load(&llama("llama", 2, |ts| {
        ts.retain(|t| t.name != "blk.0.ffn_up.weight")
    }))
    .unwrap_err();
    assert_eq!(
        e,
        ModelError::MissingTensor {
            name: "blk.0.ffn_up.weight".into()
        }
    );
    // bitnet needs the sub-norms.
    let e = load(&llama("bitnet", 2, |_| {})).unwrap_err();
    assert_eq!(
        e,
        ModelError::MissingTensor {
            name: "blk.0.attn_sub_norm.weight".into()
        }
    );
}

#[test]
fn wrong_shapes_are_reported_with_both_dims() {
    let e = load(&llama("llama", 2, |ts| {
        ts[4] = t("blk.0.attn_k.weight", &[DIM, 8], f32s(DIM * 8, 0.1));
    }))
    .unwrap_err();
    assert_eq!(
        e,
        ModelError::ShapeMismatch {
            name: "blk.0.attn_k.weight".into(),
            expected: vec![8, 4],
            actual: vec![8, 8]
        }
    );
    let e = load(&llama("llama", 2, |ts| {
        ts[2] = t("blk.0.attn_norm.weight", &[DIM + 1], f32s(DIM + 1, 1.0));
    }))
    .unwrap_err();
    assert!(matches!(e, ModelError::ShapeMismatch { .. }), "{e}");
}

#[test]
fn heads_must_divide() {
    // 3 heads do not divide dim 8 (no key_length given).
    let e = load(&llama("llama", 3, |_| {})).unwrap_err();
    assert!(matches!(e, ModelError::BadHyperParameter { .. }), "{e}");
}

#[test]
fn vocab_must_match_the_embedding() {
    let e = load(&llama("llama", 2, |ts| {
        ts[0] = t("token_embd.weight", &[DIM, 6], f32s(DIM * 6, 0.1));
    }))
    .unwrap_err();
    assert_eq!(
        e,
        ModelError::VocabMismatch {
            embedding_rows: 6,
            source: "tokenizer.ggml.tokens",
            value: 5
        }
    );
}

#[test]
fn non_finite_norms_are_rejected() {
    let e = load(&llama("llama", 2, |ts| {
        let mut d = f32s(DIM, 1.0);
        d[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        ts[7] = t("blk.0.ffn_norm.weight", &[DIM], d);
    }))
    .unwrap_err();
    assert!(
        matches!(e, ModelError::NotFinite { ref name, index: 2, .. } if name == "blk.0.ffn_norm.weight"),
        "{e}"
    );
}

/// Issue 4: "scales ... finite" on load. An I2_S tensor's scale (the f32
/// in its 32-byte tail) multiplies every output; NaN or inf is refused,
/// naming the tensor, and the file next to it with a finite scale loads.
#[test]
fn non_finite_i2s_scales_are_rejected() {
    let (_, arch, proj, _) = hostile::TINY[1];
    assert_eq!((arch, proj), ("bitnet-b1.58", hostile::Proj::I2s));
    let model = hostile::tiny_model(1);
    load(&model).unwrap();
    for (tensor, bad) in [
        ("blk.0.attn_q.weight", f32::NAN),
        ("blk.0.ffn_down.weight", f32::INFINITY),
        ("blk.0.attn_output.weight", f32::NEG_INFINITY),
    ] {
        let e = load(&hostile::with_i2s_scale(&model, tensor, bad)).unwrap_err();
        assert!(
            matches!(e, ModelError::ScaleNotFinite { ref name, value } if name == tensor && value.to_bits() == bad.to_bits()),
            "{tensor}: {e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(tensor) && msg.contains("not finite"), "{msg}");
    }
    // A finite scale of any size or sign loads (what is plausible is
    // `bitnet validate`'s quant.scale rule, not the loader's).
    for ok in [0.0, -0.5, 1e30] {
        load(&hostile::with_i2s_scale(&model, "blk.0.attn_q.weight", ok)).unwrap();
    }
}

#[test]
fn biases_are_refused_not_ignored() {
    let e = load(&llama("llama", 2, |ts| {
        ts.push(t("blk.0.attn_q.bias", &[DIM], f32s(DIM, 0.0)));
    }))
    .unwrap_err();
    assert!(matches!(e, ModelError::UnsupportedTensor { .. }), "{e}");
}
