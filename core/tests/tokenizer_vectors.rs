//! llama.cpp's tokenizer test vectors (`ggml-vocab-*.gguf.inp/.out`, from
//! llama.cpp's `models/`, produced by its `test-tokenizer-0`): every case
//! must give exactly the reference ids. Encoding as the reference does:
//! no BOS/EOS, special tokens not parsed.

use bitnet_core::gguf::Gguf;
use bitnet_core::tokenizer::{
    DecodeOptions, EncodeOptions, PreTokenizer, TokenType, Tokenizer, Vocab, VocabKind,
};
use std::path::PathBuf;

fn data_dir() -> PathBuf {
    match std::env::var_os("BITNET_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
    }
}

fn read(name: &str) -> Vec<u8> {
    let path = data_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cases of a `.inp` file (separated by `\n__ggml_vocab_test__\n`,
/// as llama.cpp's `test-tokenizer-0.cpp` splits them) and the ids of the
/// `.out` file, one line per case.
fn cases(stem: &str) -> Vec<(String, Vec<u32>)> {
    let inp = String::from_utf8(read(&format!("{stem}.inp"))).expect("utf-8 .inp");
    let out = String::from_utf8(read(&format!("{stem}.out"))).expect("utf-8 .out");
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    assert_eq!(
        texts.pop(),
        Some(""),
        "{stem}.inp must end with a separator"
    );
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("id"))
                .collect()
        })
        .collect();
    assert_eq!(texts.len(), ids.len(), "{stem}: case count");
    texts.into_iter().map(String::from).zip(ids).collect()
}

const PLAIN: EncodeOptions = EncodeOptions {
    add_bos: false,
    add_eos: false,
    parse_special: false,
};

/// Encodes every case; returns the number that match and prints the others.
fn check(tok: &Tokenizer, stem: &str) -> (usize, usize) {
    let cases = cases(stem);
    let mut ok = 0;
    for (text, want) in &cases {
        let got = tok.encode(text, PLAIN).expect("encode");
        if &got == want {
            ok += 1;
        } else {
            eprintln!("{stem}: {text:?}\n  want {want:?}\n  got  {got:?}");
        }
    }
    eprintln!("{stem}: {ok}/{} cases match", cases.len());
    (ok, cases.len())
}

fn gguf_tokenizer(name: &str) -> Tokenizer {
    let bytes = read(name);
    let gguf = Gguf::parse(&bytes).expect("parse gguf");
    Tokenizer::from_gguf(&gguf).expect("tokenizer")
}

fn llama3() -> Tokenizer {
    let text = String::from_utf8(read("llama3-tokenizer.model")).expect("utf-8");
    Tokenizer::new(Vocab::llama3_from_tiktoken(&text).expect("vocab")).expect("tokenizer")
}

#[test]
fn llama_spm_vectors() {
    let tok = gguf_tokenizer("ggml-vocab-llama-spm.gguf");
    assert_eq!(tok.kind(), VocabKind::Spm);
    let (ok, n) = check(&tok, "ggml-vocab-llama-spm.gguf");
    assert_eq!(ok, n);
}

#[test]
fn gpt2_vectors() {
    let tok = gguf_tokenizer("ggml-vocab-gpt-2.gguf");
    let pre = tok.pre_tokenizer().expect("bpe");
    assert_eq!((pre.kind, pre.inferred), (PreTokenizer::Gpt2, false));
    let (ok, n) = check(&tok, "ggml-vocab-gpt-2.gguf");
    assert_eq!(ok, n);
}

#[test]
fn llama3_vectors() {
    let tok = llama3();
    assert_eq!(tok.vocab_size(), 128_256);
    assert_eq!(tok.token_type(128_009), Some(TokenType::Control));
    let (ok, n) = check(&tok, "ggml-vocab-llama-bpe.gguf");
    assert_eq!(ok, n);
}

#[test]
fn llama3_pre_tokenizer_is_inferred_without_pre() {
    let text = String::from_utf8(read("llama3-tokenizer.model")).expect("utf-8");
    let mut vocab = Vocab::llama3_from_tiktoken(&text).expect("vocab");
    vocab.pre = None;
    let tok = Tokenizer::new(vocab).expect("tokenizer");
    let pre = tok.pre_tokenizer().expect("bpe");
    assert_eq!((pre.kind, pre.inferred), (PreTokenizer::Llama3, true));
    let (ok, n) = check(&tok, "ggml-vocab-llama-bpe.gguf");
    assert_eq!(ok, n);
}

/// Decoding the reference ids gives back the case text (BPE is lossless;
/// SPM adds one leading space, which `strip_leading_space` removes).
#[test]
fn decode_reference_ids() {
    let strip = DecodeOptions {
        render_special: false,
        strip_leading_space: true,
    };
    for (tok, stem, opts) in [
        (
            gguf_tokenizer("ggml-vocab-gpt-2.gguf"),
            "ggml-vocab-gpt-2.gguf",
            DecodeOptions::default(),
        ),
        (
            llama3(),
            "ggml-vocab-llama-bpe.gguf",
            DecodeOptions::default(),
        ),
        (
            gguf_tokenizer("ggml-vocab-llama-spm.gguf"),
            "ggml-vocab-llama-spm.gguf",
            strip,
        ),
    ] {
        for (text, ids) in cases(stem) {
            let got = tok.decode(&ids, opts).expect("decode");
            assert_eq!(String::from_utf8_lossy(&got), text, "{stem}");
        }
    }
}

#[test]
fn special_tokens_parse_only_when_asked() {
    let tok = llama3();
    let text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
    let parsed = tok
        .encode(
            text,
            EncodeOptions {
                add_bos: true,
                add_eos: false,
                parse_special: true,
            },
        )
        .expect("encode");
    assert_eq!(parsed.first(), Some(&128_000));
    assert_eq!(parsed.get(1), Some(&128_006));
    assert_eq!(parsed.last(), Some(&128_009));
    let plain = tok.encode(text, PLAIN).expect("encode");
    assert!(plain.iter().all(|&id| id < 128_000), "{plain:?}");
    let rendered = DecodeOptions {
        render_special: true,
        strip_leading_space: false,
    };
    let back = tok.decode(&parsed[1..], rendered).expect("decode");
    assert_eq!(String::from_utf8_lossy(&back), text);
}
