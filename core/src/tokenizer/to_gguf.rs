//! Writes a [`Vocab`] as GGUF tokenizer metadata (the inverse of
//! [`Vocab::from_gguf`]); used to build vocabulary files and fixtures.

use alloc::string::String;

use super::vocab::{Vocab, VocabKind};
use crate::gguf::{GgufWriter, OwnedArray, OwnedValue};

impl Vocab {
    /// Adds every `tokenizer.ggml.*` key describing this vocabulary.
    pub fn write_gguf(&self, w: &mut GgufWriter) {
        let model = match self.kind {
            VocabKind::Bpe => "gpt2",
            VocabKind::Spm => "llama",
        };
        let s = |v: &str| OwnedValue::String(String::from(v));
        w.kv("tokenizer.ggml.model", s(model));
        if let Some(pre) = &self.pre {
            w.kv("tokenizer.ggml.pre", s(pre));
        }
        w.kv(
            "tokenizer.ggml.tokens",
            OwnedValue::Array(OwnedArray::String(self.tokens.clone())),
        );
        if let Some(scores) = &self.scores {
            w.kv(
                "tokenizer.ggml.scores",
                OwnedValue::Array(OwnedArray::F32(scores.clone())),
            );
        }
        if let Some(types) = &self.token_types {
            w.kv(
                "tokenizer.ggml.token_type",
                OwnedValue::Array(OwnedArray::I32(types.clone())),
            );
        }
        // A BPE reader requires the key, so it is written even when empty
        // (a byte-level vocabulary without merges is valid); SentencePiece
        // has no merges.
        if self.kind == VocabKind::Bpe {
            w.kv(
                "tokenizer.ggml.merges",
                OwnedValue::Array(OwnedArray::String(self.merges.clone())),
            );
        }
        let ids = [
            ("tokenizer.ggml.bos_token_id", self.special.bos),
            ("tokenizer.ggml.eos_token_id", self.special.eos),
            ("tokenizer.ggml.eot_token_id", self.special.eot),
            ("tokenizer.ggml.unknown_token_id", self.special.unk),
            ("tokenizer.ggml.padding_token_id", self.special.pad),
            ("tokenizer.ggml.seperator_token_id", self.special.sep),
        ];
        for (key, id) in ids {
            if let Some(id) = id {
                w.kv(key, OwnedValue::U32(id));
            }
        }
        let flags = [
            ("tokenizer.ggml.add_bos_token", self.add_bos),
            ("tokenizer.ggml.add_eos_token", self.add_eos),
            ("tokenizer.ggml.add_space_prefix", self.add_space_prefix),
        ];
        for (key, flag) in flags {
            if let Some(flag) = flag {
                w.kv(key, OwnedValue::Bool(flag));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;
    use crate::tokenizer::{SpecialIds, Tokenizer};
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn bpe_vocab_round_trips_through_gguf() {
        let mut v = Vocab::new(VocabKind::Bpe);
        v.tokens = ["a", "b", "ab", "Ġ", "Ġab", "<|end|>"]
            .map(String::from)
            .to_vec();
        v.token_types = Some(vec![1, 1, 1, 1, 1, 3]);
        v.merges = vec![String::from("a b"), String::from("Ġ ab")];
        v.special = SpecialIds {
            eos: Some(5),
            ..SpecialIds::default()
        };
        v.add_bos = Some(false);
        v.pre = Some(String::from("gpt2"));
        let mut w = GgufWriter::new();
        v.write_gguf(&mut w);
        let bytes = w.to_bytes().unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(Vocab::from_gguf(&g).unwrap(), v);
        let t = Tokenizer::from_gguf(&g).unwrap();
        let ids: Vec<u32> = t.encode("ab ab", t.default_encode_options()).unwrap();
        assert_eq!(ids, [2, 4]);
    }

    #[test]
    fn bpe_vocab_without_merges_round_trips() {
        // Found by the tokenizer_vocab fuzz target: the writer left out an
        // empty merges array, which the reader requires for BPE.
        let mut v = Vocab::new(VocabKind::Bpe);
        v.tokens = vec![String::from("a")];
        let mut w = GgufWriter::new();
        v.write_gguf(&mut w);
        let bytes = w.to_bytes().unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(Vocab::from_gguf(&g).unwrap(), v);
    }
}
