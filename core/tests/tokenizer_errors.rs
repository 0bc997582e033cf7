//! Untrusted tokenizer metadata: every malformed array, id or merge is a
//! clear error naming the offending value, never a panic.

use bitnet_core::gguf::{Gguf, GgufWriter, OwnedArray, OwnedValue};
use bitnet_core::tokenizer::{
    DecodeOptions, EncodeOptions, NO_TOKEN, Tokenizer, TokenizerError, Vocab, VocabKind,
};
use std::path::PathBuf;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A tiny valid BPE vocabulary: bytes a, b, space (Ġ) and merges.
fn bpe() -> Vocab {
    let mut v = Vocab::new(VocabKind::Bpe);
    v.tokens = strings(&["a", "b", "Ġ", "ab", "Ġab", "<|end|>"]);
    v.token_types = Some(vec![1, 1, 1, 1, 1, 3]);
    v.merges = strings(&["a b", "Ġ ab"]);
    v.pre = Some("gpt-2".into());
    v
}

fn spm() -> Vocab {
    let mut v = Vocab::new(VocabKind::Spm);
    v.tokens = strings(&["<unk>", "<s>", "</s>", "<0x41>", "▁", "a", "▁a"]);
    v.scores = Some(vec![0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -0.5]);
    v.token_types = Some(vec![2, 3, 3, 6, 1, 1, 1]);
    v
}

fn err(v: Vocab) -> TokenizerError {
    Tokenizer::new(v).expect_err("must be rejected")
}

#[test]
fn valid_vocabularies_work() {
    let t = Tokenizer::new(bpe()).expect("bpe");
    assert_eq!(t.encode("ab ab", EncodeOptions::default()).unwrap(), [3, 4]);
    let t = Tokenizer::new(spm()).expect("spm");
    // "A" has no token: byte fallback <0x41>.
    assert_eq!(t.encode("aA", EncodeOptions::default()).unwrap(), [6, 3]);
    assert_eq!(t.special_tokens().bos, Some(1));
}

#[test]
fn per_token_arrays_must_match_vocab_size() {
    let mut v = spm();
    v.scores = Some(vec![0.0; 6]);
    assert_eq!(
        err(v),
        TokenizerError::LengthMismatch {
            key: "tokenizer.ggml.scores",
            len: 6,
            vocab_size: 7
        }
    );
    let mut v = bpe();
    v.token_types = Some(vec![1; 9]);
    assert!(matches!(
        err(v),
        TokenizerError::LengthMismatch {
            len: 9,
            vocab_size: 6,
            ..
        }
    ));
}

#[test]
fn bad_token_types_and_byte_tokens() {
    let mut v = bpe();
    v.token_types = Some(vec![1, 1, 1, 7, 1, 3]);
    assert_eq!(err(v), TokenizerError::InvalidTokenType { id: 3, value: 7 });
    let mut v = spm();
    v.tokens[3] = "<0xZZ>".into();
    let e = err(v);
    assert!(matches!(&e, TokenizerError::InvalidByteToken { id: 3, text } if text == "<0xZZ>"));
    assert!(e.to_string().contains("<0xZZ>"), "{e}");
}

#[test]
fn special_ids_out_of_range_except_sentinel() {
    let mut v = spm();
    v.special.eos = Some(7);
    let e = err(v);
    assert_eq!(
        e,
        TokenizerError::SpecialTokenOutOfRange {
            key: "tokenizer.ggml.eos_token_id",
            id: 7,
            vocab_size: 7
        }
    );
    assert!(e.to_string().contains("eos_token_id = 7"), "{e}");
    let mut v = spm();
    v.special.pad = Some(NO_TOKEN);
    v.special.bos = Some(NO_TOKEN);
    let t = Tokenizer::new(v).expect("sentinel means none");
    assert_eq!(t.special_tokens().pad, None);
    assert_eq!(
        t.encode(
            "a",
            EncodeOptions {
                add_bos: true,
                ..Default::default()
            }
        ),
        Err(TokenizerError::MissingSpecialToken { which: "bos" })
    );
}

#[test]
fn bad_merges() {
    let mut v = bpe();
    v.merges.push("a x".into());
    let e = err(v);
    assert_eq!(
        e,
        TokenizerError::MergeUnknownToken {
            index: 2,
            token: "x".into()
        }
    );
    assert!(
        e.to_string().contains("merge 2") && e.to_string().contains("\"x\""),
        "{e}"
    );
    let mut v = bpe();
    v.merges.push("ab".into());
    assert_eq!(
        err(v),
        TokenizerError::MalformedMerge {
            index: 2,
            merge: "ab".into()
        }
    );
    let mut v = bpe();
    v.merges.push("b a".into());
    assert_eq!(
        err(v),
        TokenizerError::MergeResultUnknown {
            index: 2,
            merged: "ba".into()
        }
    );
}

#[test]
fn unknown_pre_tokenizer_and_empty_vocab() {
    let mut v = bpe();
    v.pre = Some("qwen2".into());
    assert_eq!(
        err(v),
        TokenizerError::UnknownPreTokenizer {
            pre: "qwen2".into()
        }
    );
    let mut v = bpe();
    v.tokens.clear();
    assert_eq!(err(v), TokenizerError::EmptyVocab);
}

#[test]
fn decode_rejects_ids_outside_vocab() {
    let t = Tokenizer::new(bpe()).unwrap();
    assert_eq!(
        t.decode(&[0, 6], DecodeOptions::default()),
        Err(TokenizerError::TokenIdOutOfRange {
            id: 6,
            vocab_size: 6
        })
    );
}

fn gguf_with(kvs: Vec<(&str, OwnedValue)>) -> Result<Tokenizer, TokenizerError> {
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.kv(k, v);
    }
    let bytes = w.to_bytes().expect("write gguf");
    let g = Gguf::parse(&bytes).expect("parse gguf");
    Tokenizer::from_gguf(&g)
}

fn base_kvs() -> Vec<(&'static str, OwnedValue)> {
    vec![
        ("tokenizer.ggml.model", OwnedValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            OwnedValue::Array(OwnedArray::String(spm().tokens)),
        ),
    ]
}

#[test]
fn gguf_wrong_types_and_missing_keys() {
    assert!(gguf_with(base_kvs()).is_ok());
    let mut kvs = base_kvs();
    kvs[1].1 = OwnedValue::Array(OwnedArray::U32(vec![1, 2, 3]));
    assert_eq!(
        gguf_with(kvs).err(),
        Some(TokenizerError::WrongType {
            key: "tokenizer.ggml.tokens",
            expected: "an array of strings"
        })
    );
    let mut kvs = base_kvs();
    kvs.push((
        "tokenizer.ggml.scores",
        OwnedValue::Array(OwnedArray::I32(vec![0; 7])),
    ));
    assert!(matches!(
        gguf_with(kvs),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.scores",
            ..
        })
    ));
    let mut kvs = base_kvs();
    kvs.push((
        "tokenizer.ggml.bos_token_id",
        OwnedValue::String("1".into()),
    ));
    assert!(matches!(
        gguf_with(kvs),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.bos_token_id",
            ..
        })
    ));
    let mut kvs = base_kvs();
    kvs.push(("tokenizer.ggml.unknown_token_id", OwnedValue::U32(4000)));
    assert!(matches!(
        gguf_with(kvs),
        Err(TokenizerError::SpecialTokenOutOfRange { id: 4000, .. })
    ));
    let mut kvs = base_kvs();
    kvs.push(("tokenizer.ggml.padding_token_id", OwnedValue::U32(NO_TOKEN)));
    assert!(gguf_with(kvs).is_ok());
    let mut kvs = base_kvs();
    kvs.remove(1);
    assert_eq!(
        gguf_with(kvs).err(),
        Some(TokenizerError::MissingKey {
            key: "tokenizer.ggml.tokens"
        })
    );
    let mut kvs = base_kvs();
    kvs[0].1 = OwnedValue::String("bert".into());
    assert_eq!(
        gguf_with(kvs).err(),
        Some(TokenizerError::UnknownModel {
            model: "bert".into()
        })
    );
    // A gpt2 vocabulary needs merges.
    let mut kvs = base_kvs();
    kvs[0].1 = OwnedValue::String("gpt2".into());
    assert_eq!(
        gguf_with(kvs).err(),
        Some(TokenizerError::MissingKey {
            key: "tokenizer.ggml.merges"
        })
    );
}

fn data(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("BITNET_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
    };
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn real_model_vocabulary_loads() {
    // stories260K: SPM, 512 tokens, pad/sep stored as the 0xFFFFFFFF sentinel.
    let bytes = data("stories260K.gguf");
    let t = Tokenizer::from_gguf(&Gguf::parse(&bytes).expect("gguf")).expect("tokenizer");
    assert_eq!((t.kind(), t.vocab_size()), (VocabKind::Spm, 512));
    assert_eq!(t.special_tokens().pad, None);
    let ids = t
        .encode("Once upon a time", t.default_encode_options())
        .unwrap();
    assert_eq!(ids.first(), Some(&1));
    let strip = DecodeOptions {
        render_special: false,
        strip_leading_space: true,
    };
    assert_eq!(t.decode_lossy(&ids, strip).unwrap(), "Once upon a time");
}
