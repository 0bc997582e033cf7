//! Tokenizer encode/decode on fuzzed text with the real vocabularies:
//! never panics, decode(encode(x)) == x for byte-level BPE, streaming
//! decode equals one-shot decode.
#![no_main]

use std::sync::OnceLock;

use bitnet_core::gguf::Gguf;
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, StreamDecoder, Tokenizer};
use libfuzzer_sys::fuzz_target;

fn load(name: &str) -> Tokenizer {
    let dir = std::env::var("BITNET_SHARED_DATA")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data").to_string());
    let bytes = std::fs::read(format!("{dir}/{name}")).expect("shared data (set BITNET_SHARED_DATA)");
    Tokenizer::from_gguf(&Gguf::parse(&bytes).expect("valid vocabulary")).expect("valid tokenizer")
}

fn tokenizers() -> &'static [Tokenizer; 2] {
    static T: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    T.get_or_init(|| [load("ggml-vocab-gpt-2.gguf"), load("ggml-vocab-llama-spm.gguf")])
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let tok = &tokenizers()[usize::from(flags & 1)];
    let opts = EncodeOptions { add_bos: flags & 2 != 0, add_eos: false, parse_special: flags & 4 != 0 };
    let Ok(ids) = tok.encode(&text, opts) else { return };
    let dec = DecodeOptions::default();
    let whole = tok.decode_lossy(&ids, dec).expect("ids from encode decode");
    if flags & 1 == 0 && flags & 6 == 0 {
        // Byte-level BPE without special tokens is lossless.
        assert_eq!(whole, text);
    }
    let mut stream = StreamDecoder::new(tok, dec);
    let mut streamed = String::new();
    for &id in &ids {
        streamed.push_str(stream.push(id).expect("valid id"));
    }
    streamed.push_str(stream.finish());
    assert_eq!(streamed, whole);
});
