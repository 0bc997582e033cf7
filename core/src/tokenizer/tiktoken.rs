//! Building a byte-level BPE [`Vocab`] from a tiktoken rank file
//! (`base64-token rank` per line, as Llama-3's `tokenizer.model`).
//!
//! Ids are ranks. The merge list is the one Hugging Face's conversion of
//! tiktoken vocabularies writes (`TikTokenConverter` in `transformers`, and
//! so the `tokenizer.json` and GGUF files of Llama-3 models): for each token,
//! in rank order, EVERY split `left right` where both sides are tokens (of
//! any rank: 49630 of Llama-3's merges have a side ranked above the result,
//! e.g. `Ġ ĠĠĠ`), splits ordered by the rank of `left`. Llama-3 gets 280147
//! merges, as its `tokenizer.json`.
//!
//! With that list, llama.cpp's BPE (lowest merge rank first, ties leftmost)
//! does what tiktoken does: tiktoken merges the adjacent pair whose
//! concatenation has the lowest rank, and every such pair is listed at that
//! token's place. One merge per token (the split `bpe(token, max_rank)`
//! finds) is not enough: 678 Llama-3 tokens would then only be reachable as
//! a whole word, never inside a longer one (`" nghiệs"` is `" nghiệ" "s"` in
//! tiktoken).

use super::TokenizerError;
use super::unicode::byte_to_char;
use super::vocab::{SpecialIds, Vocab, VocabKind};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hashbrown::HashMap;

/// Number of reserved special tokens after the Llama-3 BPE ranks.
pub const LLAMA3_NUM_SPECIAL: usize = 256;

/// The 256 special tokens of Llama-3, in id order from 128000 (Meta's
/// `llama3/tokenizer.py`).
pub fn llama3_special_tokens() -> Vec<String> {
    let mut v: Vec<String> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|reserved_special_token_2|>",
        "<|reserved_special_token_3|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ]
    .iter()
    .map(|s| String::from(*s))
    .collect();
    v.extend((5..LLAMA3_NUM_SPECIAL - 5).map(|i| format!("<|reserved_special_token_{i}|>")));
    v
}

impl Vocab {
    /// A BPE vocabulary from a tiktoken rank file; `special_tokens` get the
    /// ids after the last rank, in order, as CONTROL tokens. Special ids,
    /// flags and `pre` are left unset.
    pub fn from_tiktoken(text: &str, special_tokens: &[String]) -> Result<Self, TokenizerError> {
        let ranked = parse_ranks(text)?;
        let rank_of: HashMap<&[u8], usize> = ranked
            .iter()
            .enumerate()
            .map(|(r, t)| (t.as_slice(), r))
            .collect();
        let mut tokens: Vec<String> = ranked.iter().map(|t| mapped(t)).collect();
        let merges = all_merges(&ranked, &rank_of, &tokens);
        let mut types = alloc::vec![1i32; tokens.len()];
        tokens.extend(special_tokens.iter().cloned());
        types.resize(tokens.len(), 3);
        let mut vocab = Vocab::new(VocabKind::Bpe);
        vocab.tokens = tokens;
        vocab.token_types = Some(types);
        vocab.merges = merges;
        Ok(vocab)
    }

    /// The Llama-3 vocabulary from Meta's `tokenizer.model`: the 256 special
    /// tokens, BOS `<|begin_of_text|>`, EOS `<|end_of_text|>`, EOT
    /// `<|eot_id|>`, `pre` = `llama-bpe`, `add_bos` = true.
    pub fn llama3_from_tiktoken(text: &str) -> Result<Self, TokenizerError> {
        let specials = llama3_special_tokens();
        let mut vocab = Self::from_tiktoken(text, &specials)?;
        let base = u32::try_from(vocab.tokens.len() - specials.len()).unwrap_or(u32::MAX);
        vocab.special = SpecialIds {
            bos: Some(base),
            eos: Some(base.saturating_add(1)),
            eot: Some(base.saturating_add(9)),
            ..SpecialIds::default()
        };
        vocab.pre = Some(String::from("llama-bpe"));
        vocab.add_bos = Some(true);
        vocab.add_eos = Some(false);
        Ok(vocab)
    }
}

/// GPT-2 byte -> unicode spelling of raw token bytes.
fn mapped(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// Token bytes in rank order; ranks must be 0, 1, 2, ... in file order.
fn parse_ranks(text: &str) -> Result<Vec<Vec<u8>>, TokenizerError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let err = |reason| TokenizerError::TiktokenLine {
            line: line_no,
            reason,
        };
        let (b64, rank) = line.split_once(' ').ok_or(err("expected `token rank`"))?;
        let rank: u64 = rank.parse().map_err(|_| err("rank is not a number"))?;
        if u64::try_from(out.len()).ok() != Some(rank) {
            return Err(TokenizerError::TiktokenRank {
                line: line_no,
                rank,
                expected: out.len(),
            });
        }
        let bytes = base64_decode(b64).ok_or(err("invalid base64"))?;
        if bytes.is_empty() {
            return Err(err("empty token"));
        }
        out.push(bytes);
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, `=` padding optional).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    // Leftover bits must be padding zeros and fewer than a byte.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

/// Every merge `left right` whose two sides and their concatenation are all
/// tokens, ordered by the rank of the concatenation, then by the rank of
/// `left` (the split point; `right` follows from it).
fn all_merges(
    ranked: &[Vec<u8>],
    rank_of: &HashMap<&[u8], usize>,
    mapped_tokens: &[String],
) -> Vec<String> {
    let mut merges = Vec::new();
    let mut splits: Vec<(usize, usize)> = Vec::new();
    for token in ranked {
        splits.clear();
        for cut in 1..token.len() {
            let (left, right) = token.split_at(cut);
            if let (Some(&l), Some(&r)) = (rank_of.get(left), rank_of.get(right)) {
                splits.push((l, r));
            }
        }
        splits.sort_unstable();
        for &(l, r) in &splits {
            let (Some(left), Some(right)) = (mapped_tokens.get(l), mapped_tokens.get(r)) else {
                continue;
            };
            let mut m = String::with_capacity(left.len() + right.len() + 1);
            m.push_str(left);
            m.push(' ');
            m.push_str(right);
            merges.push(m);
        }
    }
    merges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("IQ==").as_deref(), Some(&b"!"[..]));
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("a"), None);
        assert_eq!(base64_decode("a$"), None);
    }

    #[test]
    fn merges_from_ranks() {
        // Ranks: a b c ab abc (bytes as base64).
        let text = "YQ== 0\nYg== 1\nYw== 2\nYWI= 3\nYWJj 4\n";
        let v = Vocab::from_tiktoken(text, &[String::from("<|x|>")]).unwrap();
        assert_eq!(v.tokens, ["a", "b", "c", "ab", "abc", "<|x|>"]);
        assert_eq!(v.merges, ["a b", "ab c"]);
        assert_eq!(v.token_types.as_deref(), Some(&[1, 1, 1, 1, 1, 3][..]));
    }

    #[test]
    fn bad_files() {
        assert!(matches!(
            Vocab::from_tiktoken("YQ== 1\n", &[]),
            Err(TokenizerError::TiktokenRank {
                line: 1,
                rank: 1,
                expected: 0
            })
        ));
        assert!(matches!(
            Vocab::from_tiktoken("YQ==\n", &[]),
            Err(TokenizerError::TiktokenLine { line: 1, .. })
        ));
        assert!(matches!(
            Vocab::from_tiktoken("YQ== 0\nYQ== x\n", &[]),
            Err(TokenizerError::TiktokenLine { line: 2, .. })
        ));
    }

    #[test]
    fn token_without_split_has_no_merge() {
        // "abc" has no split into two tokens: no merge for it.
        let v = Vocab::from_tiktoken("YQ== 0\nYg== 1\nYw== 2\nYWJj 3\n", &[]).unwrap();
        assert_eq!(v.tokens.len(), 4);
        assert!(v.merges.is_empty());
    }

    #[test]
    fn every_split_is_a_merge() {
        // Ranks: a b c bc ab abc. "abc" splits as "a bc" and "ab c", ordered
        // by the rank of the left side; "bc" ranks above "a" yet "a bc" is
        // still listed, as are splits with a side ranked above the result.
        let text = "YQ== 0\nYg== 1\nYw== 2\nYmM= 3\nYWI= 4\nYWJj 5\n";
        let v = Vocab::from_tiktoken(text, &[]).unwrap();
        assert_eq!(v.merges, ["b c", "a b", "a bc", "ab c"]);
        // Ranks: a aa aaa. "aa" = "a a"; "aaa" = "a aa", "aa a".
        let v = Vocab::from_tiktoken("YQ== 0\nYWFh 1\nYWE= 2\n", &[]).unwrap();
        assert_eq!(v.merges, ["a aa", "aa a", "a a"]);
    }
}
