//! Differential test against tiktoken (Llama-3) and sentencepiece (Llama-2).
//!
//! The reference ids are produced by `ci/reference/tokenizer_diff.py` and
//! checked in as `tests/tokenizer/reference_ids.json` (its header holds the
//! regenerate command), so `cargo test` needs no Python. Set
//! `BITNET_TOKENIZER_DIFF=/path/to/ids.json` to compare against another
//! output of the script (its input must then be `tests/tokenizer/corpus.json`,
//! or set `BITNET_TOKENIZER_CORPUS` too). CI does so with ids made live by
//! the pinned tiktoken and sentencepiece (`ci/reference/tokenizer_diff_live.sh`),
//! and checks that the checked-in files equal them.
//!
//! Every string must give exactly the reference ids, for both tokenizers,
//! and decode back to itself (issue 3: decode(encode(x)) == x).
//! The corpus includes words where Llama-3 tokens appear inside longer
//! words (`" nghiệs"`, `"xерату"`, `"xující"`): tiktoken merges any adjacent
//! pair whose concatenation is a token, so our merge list (built by
//! `Vocab::from_tiktoken`) must hold every such split, as Hugging Face's
//! conversion does, not one merge per token.

use bitnet_core::gguf::Gguf;
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, Tokenizer, Vocab};
use serde_json::Value;
use std::path::PathBuf;

const REGEN: &str = "python3 ci/reference/tokenizer_diff.py ids tests/tokenizer/corpus.json > tests/tokenizer/reference_ids.json";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn data(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("BITNET_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => repo().join("../shared/data"),
    };
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("list of ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

const PLAIN: EncodeOptions = EncodeOptions {
    add_bos: false,
    add_eos: false,
    parse_special: false,
};

/// Byte-level BPE is lossless as it stands.
const BPE_DECODE: DecodeOptions = DecodeOptions {
    render_special: false,
    strip_leading_space: false,
};

/// SentencePiece encodes with `add_space_prefix`: drop that space again.
const SPM_DECODE: DecodeOptions = DecodeOptions {
    render_special: false,
    strip_leading_space: true,
};

#[test]
fn tokenizer_matches_python_references() {
    let corpus_path = std::env::var_os("BITNET_TOKENIZER_CORPUS")
        .map_or_else(|| repo().join("tests/tokenizer/corpus.json"), PathBuf::from);
    let ref_path = std::env::var_os("BITNET_TOKENIZER_DIFF").map_or_else(
        || repo().join("tests/tokenizer/reference_ids.json"),
        PathBuf::from,
    );
    let corpus: Vec<String> = json(corpus_path)
        .as_array()
        .expect("corpus: list of strings")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect();
    eprintln!("reference ids: {}", ref_path.display());
    let reference = json(ref_path);
    let llama3_ref = reference["llama3"].as_array().expect("llama3 ids");
    let spm_ref = reference["llama2_spm"].as_array().expect("llama2_spm ids");
    assert!(
        llama3_ref.len() == corpus.len() && spm_ref.len() == corpus.len(),
        "reference ids are stale ({} / {} cases for {} strings); regenerate with: {REGEN}",
        llama3_ref.len(),
        spm_ref.len(),
        corpus.len()
    );

    let llama3_text = String::from_utf8(data("llama3-tokenizer.model")).expect("utf-8");
    let llama3 = Tokenizer::new(Vocab::llama3_from_tiktoken(&llama3_text).expect("vocab"))
        .expect("llama3 tokenizer");
    let spm_bytes = data("ggml-vocab-llama-spm.gguf");
    let spm = Tokenizer::from_gguf(&Gguf::parse(&spm_bytes).expect("gguf")).expect("spm tokenizer");

    let mut failures = Vec::new();
    let mut identical = [0usize; 2];
    let mut round_trips = [0usize; 2];
    for (i, text) in corpus.iter().enumerate() {
        for (which, tok, want, decode_opts, count) in [
            ("llama3", &llama3, ids(&llama3_ref[i]), BPE_DECODE, 0),
            ("llama2_spm", &spm, ids(&spm_ref[i]), SPM_DECODE, 1),
        ] {
            let got = tok.encode(text, PLAIN).expect("encode");
            if got == want {
                identical[count] += 1;
            } else {
                failures.push(format!(
                    "case {i} {which} {text:?}\n  reference {want:?}\n  ours      {got:?}"
                ));
            }
            let back = tok.decode(&got, decode_opts).expect("decode");
            if back == text.as_bytes() {
                round_trips[count] += 1;
            } else {
                failures.push(format!(
                    "case {i} {which} {text:?}: decode(encode(x)) is {:?}",
                    String::from_utf8_lossy(&back)
                ));
            }
        }
    }
    eprintln!(
        "identical: llama3 {}/{n}, llama2_spm {}/{n}; decode(encode(x)) == x: llama3 {}/{n}, llama2_spm {}/{n}",
        identical[0],
        identical[1],
        round_trips[0],
        round_trips[1],
        n = corpus.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
