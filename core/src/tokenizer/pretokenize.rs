//! Pre-tokenizers of byte-level BPE: split text into words before merges.
//!
//! Hand-written splitters equivalent to the regular expressions below, in
//! the form llama.cpp implements them (`unicode_regex_split_custom_llama3`,
//! `unicode_regex_split_custom_gpt2` and the `default` regex chain of
//! `llm_tokenizer_bpe` in `src/unicode.cpp` / `src/llama-vocab.cpp`):
//!
//! - [`PreTokenizer::Llama3`]: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//! - [`PreTokenizer::Gpt2`]: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! - [`PreTokenizer::Default`]: llama.cpp's fallback chain: `[\p{P}\$\+<=>\^~\|]+`,
//!   then the GPT-2 expression, then `\p{N}+`, then `[0-9][0-9][0-9]`, each
//!   applied to the pieces of the previous one (matches and the text between
//!   them both become pieces).
//!
//! The look-ahead `\s+(?!\S)` is resolved by counting the whitespace run: a
//! run followed by a non-space gives all but its last character to this
//! alternative, leaving that last one to prefix the next word.

use super::unicode::{self, LETTER, NUMBER, PUNCTUATION, WHITESPACE};
use alloc::vec::Vec;

/// Set in a character's flags for every character inside the text, so that
/// "no class" (0) only means "past the end" (llama.cpp's `as_uint() != 0`).
const VALID: u8 = 0x80;

/// Which pre-tokenizer splits text into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// Llama-3 (`tokenizer.ggml.pre` = `llama-bpe`, `llama3`, `llama-v3`).
    Llama3,
    /// GPT-2 (`gpt-2`, `gpt2`).
    Gpt2,
    /// llama.cpp's fallback chain (`default`, or `pre` absent).
    Default,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, if it is one we implement.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama-bpe" | "llama3" | "llama-v3" => Some(Self::Llama3),
            "gpt-2" | "gpt2" => Some(Self::Gpt2),
            "default" => Some(Self::Default),
            _ => None,
        }
    }

    /// The canonical `tokenizer.ggml.pre` name of this pre-tokenizer.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama3 => "llama-bpe",
            Self::Gpt2 => "gpt-2",
            Self::Default => "default",
        }
    }
}

/// Reusable buffers for splitting; keeps encode free of per-word allocations.
#[derive(Debug, Default, Clone)]
pub struct Splitter {
    chars: Vec<char>,
    flags: Vec<u8>,
    offsets: Vec<usize>,
    ends_a: Vec<usize>,
    ends_b: Vec<usize>,
}

impl Splitter {
    /// Split `text` into words; `out` receives the byte offset where each
    /// word ends (words are contiguous, the first starts at 0, the last ends
    /// at `text.len()`; empty text gives no words).
    pub fn split(&mut self, kind: PreTokenizer, text: &str, out: &mut Vec<usize>) {
        out.clear();
        self.chars.clear();
        self.flags.clear();
        self.offsets.clear();
        for (i, c) in text.char_indices() {
            self.chars.push(c);
            self.flags.push(unicode::flags(c) | VALID);
            self.offsets.push(i);
        }
        self.offsets.push(text.len());
        let n = self.chars.len();
        let cps = Cps {
            chars: &self.chars,
            flags: &self.flags,
        };
        let mut ends = core::mem::take(&mut self.ends_a);
        ends.clear();
        match kind {
            PreTokenizer::Llama3 => cps.llama3(0, n, &mut ends),
            PreTokenizer::Gpt2 => cps.gpt2(0, n, &mut ends),
            PreTokenizer::Default => {
                let mut tmp = core::mem::take(&mut self.ends_b);
                tmp.clear();
                cps.runs(0, n, &mut tmp, default_punct);
                for_each_piece(&tmp, &mut ends, |a, b, o| cps.gpt2(a, b, o));
                for_each_piece(&ends, &mut tmp, |a, b, o| cps.runs(a, b, o, default_number));
                for_each_piece(&tmp, &mut ends, |a, b, o| cps.ascii_triples(a, b, o));
                self.ends_b = tmp;
            }
        }
        out.extend(ends.iter().filter_map(|&e| self.offsets.get(e).copied()));
        self.ends_a = ends;
    }
}

/// Apply `f(start, end, out)` to each piece described by the piece ends `ends`.
fn for_each_piece(
    ends: &[usize],
    out: &mut Vec<usize>,
    mut f: impl FnMut(usize, usize, &mut Vec<usize>),
) {
    out.clear();
    let mut start = 0;
    for &e in ends {
        f(start, e, out);
        start = e;
    }
}

/// Collapsed-text class of llama.cpp's `[\p{P}\$\+<=>\^~\|]`: the ASCII set
/// spelled out in `k_ucat_map` plus non-ASCII punctuation.
fn default_punct(c: char, f: u8) -> bool {
    if c.is_ascii() {
        b"!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|".contains(&(c as u8))
    } else {
        f & PUNCTUATION != 0 && f & WHITESPACE == 0
    }
}

/// Collapsed-text class of llama.cpp's `\p{N}`.
fn default_number(c: char, f: u8) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        f & NUMBER != 0 && f & WHITESPACE == 0
    }
}

/// A text as code points with their class flags.
struct Cps<'a> {
    chars: &'a [char],
    flags: &'a [u8],
}

/// Records piece ends, dropping empty pieces (llama.cpp's `_add_token`).
struct Pieces<'o> {
    out: &'o mut Vec<usize>,
    prev: usize,
}

impl Pieces<'_> {
    fn add(&mut self, end: usize) {
        if end > self.prev {
            self.out.push(end);
        }
        self.prev = end;
    }
}

impl Cps<'_> {
    /// Flags at `pos` if `pos < end`, else 0 (callers never go below the start).
    fn fl(&self, pos: usize, end: usize) -> u8 {
        if pos < end {
            self.flags.get(pos).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Character at `pos` if `pos < end`.
    fn ch(&self, pos: usize, end: usize) -> Option<char> {
        if pos < end {
            self.chars.get(pos).copied()
        } else {
            None
        }
    }

    /// Length of the contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`)
    /// starting at `pos`, or 0.
    fn contraction(&self, pos: usize, end: usize, ignore_case: bool) -> usize {
        let lower = |c: Option<char>| {
            c.map(|c| {
                if ignore_case {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
        };
        if self.ch(pos, end) != Some('\'') {
            return 0;
        }
        let next = lower(self.ch(pos + 1, end));
        if matches!(next, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        match (next, lower(self.ch(pos + 2, end))) {
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
            _ => 0,
        }
    }

    /// Length of the whitespace run at `pos` and the end of its last `\r`/`\n` (0 if none).
    fn whitespace_run(&self, pos: usize, end: usize) -> (usize, usize) {
        let mut n = 0;
        let mut last_rn = 0;
        while self.fl(pos + n, end) & WHITESPACE != 0 {
            if matches!(self.ch(pos + n, end), Some('\r' | '\n')) {
                last_rn = pos + n + 1;
            }
            n += 1;
        }
        (n, last_rn)
    }

    fn llama3(&self, start: usize, end: usize, out: &mut Vec<usize>) {
        let mut p = Pieces { out, prev: start };
        let mut pos = start;
        while pos < end {
            let c = self.ch(pos, end).unwrap_or('\0');
            let f = self.fl(pos, end);
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            let n = self.contraction(pos, end, true);
            if n > 0 {
                pos += n;
                p.add(pos);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(c == '\r' || c == '\n' || f & NUMBER != 0)
                && (f & LETTER != 0 || self.fl(pos + 1, end) & LETTER != 0)
            {
                pos += 1;
                while self.fl(pos, end) & LETTER != 0 {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            // \p{N}{1,3}
            if f & NUMBER != 0 {
                let mut ini = pos;
                while self.fl(pos, end) & NUMBER != 0 {
                    pos += 1;
                    if pos - ini >= 3 {
                        p.add(pos);
                        ini = pos;
                    }
                }
                p.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let mut f2 = if c == ' ' { self.fl(pos + 1, end) } else { f };
            if f2 & (WHITESPACE | LETTER | NUMBER) == 0 && f2 != 0 {
                pos += usize::from(c == ' ');
                while f2 & (WHITESPACE | LETTER | NUMBER) == 0 && f2 != 0 {
                    pos += 1;
                    f2 = self.fl(pos, end);
                }
                while matches!(self.ch(pos, end), Some('\r' | '\n')) {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            let (n, last_rn) = self.whitespace_run(pos, end);
            pos = if last_rn > 0 {
                // \s*[\r\n]+
                last_rn
            } else if n > 1 && pos + n < end {
                // \s+(?!\S)
                pos + n - 1
            } else if n > 0 {
                // \s+
                pos + n
            } else {
                // no match: a piece of one character
                pos + 1
            };
            p.add(pos);
        }
    }

    fn gpt2(&self, start: usize, end: usize, out: &mut Vec<usize>) {
        let mut p = Pieces { out, prev: start };
        let mut pos = start;
        while pos < end {
            let c = self.ch(pos, end).unwrap_or('\0');
            let f = self.fl(pos, end);
            // 's|'t|'re|'ve|'m|'ll|'d
            let n = self.contraction(pos, end, false);
            if n > 0 {
                pos += n;
                p.add(pos);
                continue;
            }
            let f2 = if c == ' ' { self.fl(pos + 1, end) } else { f };
            // <space>?\p{L}+, <space>?\p{N}+, <space>?[^\s\p{L}\p{N}]+
            let class = |g: u8| -> u8 {
                if g & LETTER != 0 {
                    LETTER
                } else if g & NUMBER != 0 {
                    NUMBER
                } else if g & WHITESPACE == 0 && g != 0 {
                    PUNCTUATION // stands for "other"
                } else {
                    0
                }
            };
            let k = class(f2);
            if k != 0 {
                pos += usize::from(c == ' ');
                while class(self.fl(pos, end)) == k {
                    pos += 1;
                }
                p.add(pos);
                continue;
            }
            let (n, _) = self.whitespace_run(pos, end);
            pos = if n > 1 && pos + n < end {
                pos + n - 1
            } else if n > 0 {
                pos + n
            } else {
                pos + 1
            };
            p.add(pos);
        }
    }

    /// Split `[start, end)` into maximal runs where `pred` holds and the gaps between them.
    fn runs(&self, start: usize, end: usize, out: &mut Vec<usize>, pred: fn(char, u8) -> bool) {
        let mut p = Pieces { out, prev: start };
        let mut pos = start;
        while pos < end {
            let inside = |i: usize| match (self.ch(i, end), self.flags.get(i)) {
                (Some(c), Some(&f)) => pred(c, f),
                _ => false,
            };
            let want = inside(pos);
            while pos < end && inside(pos) == want {
                pos += 1;
            }
            p.add(pos);
        }
    }

    /// `[0-9][0-9][0-9]`, leftmost-first: each run of three ASCII digits is a piece.
    fn ascii_triples(&self, start: usize, end: usize, out: &mut Vec<usize>) {
        let mut p = Pieces { out, prev: start };
        let digit = |i: usize| self.ch(i, end).is_some_and(|c| c.is_ascii_digit());
        let mut pos = start;
        while pos < end {
            if digit(pos) && digit(pos + 1) && digit(pos + 2) {
                p.add(pos);
                pos += 3;
                p.add(pos);
            } else {
                pos += 1;
            }
        }
        p.add(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn words(kind: PreTokenizer, text: &str) -> Vec<&str> {
        let mut s = Splitter::default();
        let mut ends = Vec::new();
        s.split(kind, text, &mut ends);
        let mut start = 0;
        ends.iter()
            .map(|&e| {
                let w = &text[start..e];
                start = e;
                w
            })
            .collect()
    }

    #[test]
    fn llama3_words() {
        let k = PreTokenizer::Llama3;
        assert_eq!(words(k, "Hello world"), vec!["Hello", " world"]);
        assert_eq!(words(k, "I'VE 12345"), vec!["I", "'VE", " ", "123", "45"]);
        assert_eq!(words(k, "a   b"), vec!["a", "  ", " b"]);
        assert_eq!(words(k, "a  \n\n b"), vec!["a", "  \n\n", " b"]);
        assert_eq!(words(k, "x  "), vec!["x", "  "]);
        assert_eq!(words(k, " ..!\r\nx"), vec![" ..!\r\n", "x"]);
        assert_eq!(words(k, ""), Vec::<&str>::new());
    }

    #[test]
    fn gpt2_words() {
        let k = PreTokenizer::Gpt2;
        assert_eq!(words(k, "I'VE 12345"), vec!["I", "'", "VE", " 12345"]);
        assert_eq!(words(k, "a   b"), vec!["a", "  ", " b"]);
        assert_eq!(words(k, "hi!! you"), vec!["hi", "!!", " you"]);
    }

    #[test]
    fn default_words() {
        let k = PreTokenizer::Default;
        assert_eq!(words(k, "x=12345;"), vec!["x", "=", "123", "45", ";"]);
        assert_eq!(words(k, "don't"), vec!["don", "'", "t"]);
    }
}
