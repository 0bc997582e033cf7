//! The real GGUF files in ../shared/data, and writer -> reader round trips.

use std::path::PathBuf;

use bitnet_core::gguf::{
    GgmlType, Gguf, GgufError, GgufWriter, KeyContext, OwnedArray, OwnedValue, PeekError,
    TensorSpec, Value, peek_header,
};
use proptest::prelude::*;

fn shared_data(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = dir.join(name);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set BITNET_SHARED_DATA)", path.display()))
}

#[test]
fn stories260k_parses() {
    let b = shared_data("stories260K.gguf");
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.tensors().len(), 48);
    assert_eq!(g.metadata().len(), 19);
    assert_eq!(g.architecture(), Some("llama"));
    assert_eq!(g.get_u32("llama.embedding_length"), Ok(64));
    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.dims, [64, 512]);
    assert_eq!(emb.ggml_type, GgmlType::F32);
    assert_eq!(g.tensor_data(emb).len(), 131072);
    assert_eq!(g.get_str_array("tokenizer.ggml.tokens").unwrap().len(), 512);
    assert_eq!(g.get_f32_array("tokenizer.ggml.scores").unwrap().len(), 512);
}

#[test]
fn vocab_files_parse() {
    for (name, n_kv, n_tokens) in [
        ("ggml-vocab-gpt-2.gguf", 16, 50257),
        ("ggml-vocab-llama-spm.gguf", 22, 32000),
    ] {
        let b = shared_data(name);
        let g = Gguf::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(g.tensors().len(), 0, "{name}");
        assert_eq!(g.metadata().len(), n_kv, "{name}");
        assert_eq!(
            g.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
            n_tokens
        );
    }
}

#[test]
fn mangled_file_is_rejected_clearly() {
    // A text conversion replaced the f32 value of
    // llama.attention.layer_norm_rms_epsilon with two U+FFFD (6 bytes for
    // 4): the next key's length is read from the shifted bytes.
    let b = shared_data("corrupt-mangled-llama-spm.gguf");
    let damaged_after = "llama.attention.layer_norm_rms_epsilon";
    let e = Gguf::parse(&b).unwrap_err();
    assert!(
        matches!(
            &e,
            GgufError::StringTooLong {
                what: "metadata key",
                context: KeyContext::KeyAfter(key),
                ..
            } if key == damaged_after
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("offset"), "{msg}");
    assert!(msg.contains(damaged_after), "{msg}");
    // The header peek reports the same error.
    assert_eq!(peek_header(&b), Err(PeekError::Invalid(e)));
}

fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let scalar = prop_oneof![
        any::<u8>().prop_map(OwnedValue::U8),
        any::<i8>().prop_map(OwnedValue::I8),
        any::<u16>().prop_map(OwnedValue::U16),
        any::<i16>().prop_map(OwnedValue::I16),
        any::<u32>().prop_map(OwnedValue::U32),
        any::<i32>().prop_map(OwnedValue::I32),
        any::<u64>().prop_map(OwnedValue::U64),
        any::<i64>().prop_map(OwnedValue::I64),
        // Finite floats so that equality is meaningful.
        (-1e30f32..1e30).prop_map(OwnedValue::F32),
        (-1e300f64..1e300).prop_map(OwnedValue::F64),
        any::<bool>().prop_map(OwnedValue::Bool),
        ".{0,40}".prop_map(OwnedValue::String),
    ];
    let array = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..20).prop_map(OwnedArray::U8),
        prop::collection::vec(any::<i32>(), 0..20).prop_map(OwnedArray::I32),
        prop::collection::vec(-1e6f32..1e6, 0..20).prop_map(OwnedArray::F32),
        prop::collection::vec(any::<bool>(), 0..20).prop_map(OwnedArray::Bool),
        prop::collection::vec(".{0,12}", 0..20).prop_map(OwnedArray::String),
        prop::collection::vec(any::<u64>(), 0..20).prop_map(OwnedArray::U64),
    ]
    .prop_map(OwnedValue::Array);
    prop_oneof![scalar, array]
}

fn tensor_spec() -> impl Strategy<Value = (GgmlType, Vec<u64>)> {
    prop_oneof![
        prop::collection::vec(1u64..6, 0..4).prop_map(|d| (GgmlType::F32, d)),
        prop::collection::vec(1u64..6, 1..3).prop_map(|d| (GgmlType::F16, d)),
        (1u64..3, 1u64..4).prop_map(|(a, b)| (GgmlType::TQ2_0, vec![256 * a, b])),
        (1u64..3, 1u64..4).prop_map(|(a, b)| (GgmlType::Q8_0, vec![32 * a, b])),
    ]
}

proptest! {
    #[test]
    fn writer_reader_round_trip(
        kvs in prop::collection::btree_map("[a-z]{1,8}(\\.[a-z_]{1,8}){0,2}", owned_value(), 0..12),
        tensors in prop::collection::vec(tensor_spec(), 0..6),
        version in 2u32..4,
        seed in any::<u8>(),
    ) {
        let mut w = GgufWriter::new().version(version);
        // general.alignment is reserved for the alignment: keep it out of random keys.
        for (k, v) in kvs.iter().filter(|(k, _)| k.as_str() != "general.alignment") {
            w.kv(k, v.clone());
        }
        let mut specs = Vec::new();
        for (i, (ty, dims)) in tensors.into_iter().enumerate() {
            let n = ty.tensor_bytes(&dims).unwrap() as usize;
            let data = (0..n).map(|j| (j as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let spec = TensorSpec { name: format!("t{i}.weight"), ggml_type: ty, dims, data };
            w.tensor(spec.clone());
            specs.push(spec);
        }
        let bytes = w.to_bytes().unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        prop_assert_eq!(g.version(), version);
        let expected: Vec<_> = kvs.iter().filter(|(k, _)| k.as_str() != "general.alignment").collect();
        prop_assert_eq!(g.metadata().len(), expected.len());
        for (k, v) in expected {
            let got: Value<'_> = g.get(k).unwrap();
            prop_assert_eq!(&got.to_owned_value().unwrap(), v);
        }
        prop_assert_eq!(g.tensors().len(), specs.len());
        for s in &specs {
            let t = g.tensor(&s.name).unwrap();
            prop_assert_eq!(t.ggml_type, s.ggml_type);
            prop_assert_eq!(&t.dims, &s.dims);
            prop_assert_eq!(g.tensor_data(t), &s.data[..]);
        }
    }

    #[test]
    fn parse_never_panics_on_mutations(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut w = GgufWriter::new();
        w.kv("general.architecture", OwnedValue::String("bitnet-b1.58".into()));
        w.kv("tokenizer.ggml.tokens", OwnedValue::Array(OwnedArray::String(vec!["a".into(), "bc".into()])));
        w.tensor(TensorSpec { name: "w".into(), ggml_type: GgmlType::I2S, dims: vec![128, 2], data: vec![0x55; 96] });
        let mut bytes = w.to_bytes().unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        let end = cut.index(bytes.len() + 1);
        let _ = Gguf::parse(&bytes[..end]);
    }
}
