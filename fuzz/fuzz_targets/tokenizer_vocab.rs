//! Fuzzed vocabularies (tokens, scores, types, merges, special ids, flags,
//! pre-tokenizer) with fuzzed text: building the tokenizer fails cleanly or
//! gives one that encodes and decodes without panicking, whose encoded ids
//! are all in range, whose streaming decode equals the one-shot decode,
//! and which survives the trip through GGUF metadata unchanged.
#![no_main]

use arbitrary::Arbitrary;
use bitnet_core::gguf::{Gguf, GgufWriter};
use bitnet_core::tokenizer::{
    DecodeOptions, EncodeOptions, SpecialIds, StreamDecoder, Tokenizer, Vocab, VocabKind,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    bpe: bool,
    tokens: Vec<String>,
    scores: Option<Vec<f32>>,
    types: Option<Vec<i8>>,
    merges: Vec<(u8, u8)>,
    special: [Option<u8>; 6],
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    add_space_prefix: Option<bool>,
    pre: Option<u8>,
    text: String,
    flags: u8,
}

const PRE: [&str; 4] = ["llama-bpe", "gpt-2", "default", "no-such-pre-tokenizer"];

fn vocab(input: &Input) -> Vocab {
    let mut v = Vocab::new(if input.bpe {
        VocabKind::Bpe
    } else {
        VocabKind::Spm
    });
    v.tokens = input.tokens.iter().take(256).cloned().collect();
    let n = v.tokens.len().max(1);
    v.scores = input.scores.clone();
    v.token_types = input
        .types
        .as_ref()
        .map(|t| t.iter().map(|&x| i32::from(x)).collect());
    // Merges (BPE only) name pairs of existing tokens, or "?".
    if input.bpe {
        v.merges = input
            .merges
            .iter()
            .take(256)
            .map(|&(a, b)| {
                let t = |i: u8| v.tokens.get(usize::from(i) % n).map_or("?", String::as_str);
                format!("{} {}", t(a), t(b))
            })
            .collect();
    }
    // Special ids near the vocabulary: in range or just past it.
    let id = |x: Option<u8>| x.map(|i| u32::from(i) % (n as u32 + 2));
    let [bos, eos, eot, unk, pad, sep] = input.special;
    v.special = SpecialIds {
        bos: id(bos),
        eos: id(eos),
        eot: id(eot),
        unk: id(unk),
        pad: id(pad),
        sep: id(sep),
    };
    v.add_bos = input.add_bos;
    v.add_eos = input.add_eos;
    v.add_space_prefix = input.add_space_prefix;
    v.pre = input
        .pre
        .map(|p| PRE[usize::from(p) % PRE.len()].to_string());
    v
}

fn encode_decode(tok: &Tokenizer, text: &str, flags: u8) -> Option<(Vec<u32>, String)> {
    let opts = EncodeOptions {
        add_bos: flags & 1 != 0,
        add_eos: flags & 2 != 0,
        parse_special: flags & 4 != 0,
    };
    let ids = tok.encode(text, opts).ok()?;
    assert!(
        ids.iter().all(|&id| (id as usize) < tok.vocab_size()),
        "id out of range: {ids:?}"
    );
    let dec = DecodeOptions {
        render_special: flags & 8 != 0,
        strip_leading_space: flags & 16 != 0,
    };
    let whole = tok.decode_lossy(&ids, dec).expect("ids from encode decode");
    let mut stream = StreamDecoder::new(tok, dec);
    let mut streamed = String::new();
    for &id in &ids {
        streamed.push_str(stream.push(id).expect("valid id"));
    }
    streamed.push_str(stream.finish());
    assert_eq!(streamed, whole, "streaming decode differs");
    Some((ids, whole))
}

fuzz_target!(|input: Input| {
    let v = vocab(&input);
    let Ok(tok) = Tokenizer::new(v.clone()) else {
        return;
    };
    let text: String = input.text.chars().take(512).collect();
    let once = encode_decode(&tok, &text, input.flags);
    for id in 0..tok.vocab_size() as u32 + 1 {
        let _ = tok.token_bytes(id, input.flags & 8 != 0);
    }
    // Through GGUF metadata and back: same vocabulary, same behaviour.
    let mut w = GgufWriter::new();
    v.write_gguf(&mut w);
    let bytes = w.to_bytes().expect("vocabulary writes");
    let g = Gguf::parse(&bytes).expect("written vocabulary parses");
    let back = Vocab::from_gguf(&g).expect("written vocabulary reads back");
    // Debug text, not `==`: a NaN score is the same NaN after the trip.
    assert_eq!(
        format!("{back:?}"),
        format!("{v:?}"),
        "vocabulary changed through GGUF"
    );
    let tok2 = Tokenizer::new(back).expect("same vocabulary builds");
    assert_eq!(encode_decode(&tok2, &text, input.flags), once);
});
