//! SentencePiece (BPE by scores) as llama.cpp runs it.
//!
//! Same algorithm as llama.cpp's `llm_tokenizer_spm_session`
//! (`src/llama-vocab.cpp`): the escaped text (spaces as `▁`) starts as one
//! symbol per UTF-8 character; the adjacent pair whose concatenation is a
//! token with the highest score (ties: leftmost) is merged until no pair is a
//! token. A final symbol that is not a token is emitted as byte tokens
//! `<0xNN>`.

use alloc::collections::BinaryHeap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use hashbrown::{HashMap, HashSet};

/// The SentencePiece whitespace symbol `▁` (U+2581).
pub const SPACE_SYMBOL: &str = "\u{2581}";

/// Per-encode scratch buffers.
#[derive(Debug, Default)]
pub(crate) struct SpmScratch {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
    /// The escaped text being encoded.
    pub(crate) text: String,
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Bigram {
    /// Max-heap order: highest score first, then leftmost. `total_cmp` keeps
    /// the order total even for NaN scores from a hostile file.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// What the SPM encoder needs from the vocabulary.
pub(crate) struct SpmModel<'v> {
    pub(crate) text_to_id: &'v HashMap<String, u32>,
    pub(crate) scores: &'v [f32],
    /// Token of each byte for the fallback (`<0xNN>`, else the one-byte text,
    /// else the unknown token); `None`: the byte is dropped.
    pub(crate) byte_tokens: &'v [Option<u32>; 256],
    /// Characters that some token has right before a `▁`.
    pub(crate) before_space: &'v HashSet<char>,
}

/// Characters that appear right before a `▁` inside some token. A `▁`
/// preceded by any other character starts a chunk no merge can cross.
pub(crate) fn chars_before_space(tokens: &[String]) -> HashSet<char> {
    let mut set = HashSet::new();
    for t in tokens {
        let mut prev = None;
        for c in t.chars() {
            if let (Some(p), '\u{2581}') = (prev, c) {
                set.insert(p);
            }
            prev = Some(c);
        }
    }
    set
}

impl SpmModel<'_> {
    /// Encode `scratch.text` (already escaped) and append the ids to `out`.
    ///
    /// The text is cut before each `▁` whose preceding character never
    /// precedes `▁` inside a token: every symbol is a token or a single
    /// character, so no symbol can span such a cut, no pair across it is
    /// ever queued, and the chunks merge independently with the same result
    /// as the whole text (only faster: small queues stay in cache).
    pub(crate) fn encode(&self, scratch: &mut SpmScratch, out: &mut Vec<u32>) {
        let text = core::mem::take(&mut scratch.text);
        let mut start = 0;
        let mut prev = None;
        for (i, c) in text.char_indices() {
            if c == '\u{2581}' && i > start && prev.is_some_and(|p| !self.before_space.contains(&p))
            {
                self.encode_chunk(text.get(start..i).unwrap_or(""), scratch, out);
                start = i;
            }
            prev = Some(c);
        }
        self.encode_chunk(text.get(start..).unwrap_or(""), scratch, out);
        scratch.text = text;
    }

    fn encode_chunk(&self, text: &str, scratch: &mut SpmScratch, out: &mut Vec<u32>) {
        let SpmScratch { symbols, queue, .. } = scratch;
        symbols.clear();
        queue.clear();
        let n = text.chars().count();
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: if i + 1 < n { Some(i + 1) } else { None },
            });
        }
        for i in 1..n {
            self.push_bigram(text, symbols, queue, Some(i - 1), Some(i));
        }
        while let Some(bg) = queue.pop() {
            let (Some(l), Some(r)) = (
                symbols.get(bg.left).copied(),
                symbols.get(bg.right).copied(),
            ) else {
                continue;
            };
            // Stale entry: a side was merged since (llama.cpp checks sizes only).
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
                continue;
            }
            if let Some(s) = symbols.get_mut(bg.left) {
                s.len += r.len;
                s.next = r.next;
            }
            if let Some(s) = symbols.get_mut(bg.right) {
                s.len = 0;
            }
            if let Some(s) = r.next.and_then(|i| symbols.get_mut(i)) {
                s.prev = Some(bg.left);
            }
            self.push_bigram(text, symbols, queue, l.prev, Some(bg.left));
            self.push_bigram(text, symbols, queue, Some(bg.left), r.next);
        }
        let mut cur = if n > 0 { Some(0) } else { None };
        while let Some(i) = cur {
            let Some(s) = symbols.get(i) else { break };
            let piece = text.get(s.start..s.start + s.len).unwrap_or("");
            match self.text_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for &b in piece.as_bytes() {
                        if let Some(Some(id)) = self.byte_tokens.get(usize::from(b)) {
                            out.push(*id);
                        }
                    }
                }
            }
            cur = s.next;
        }
    }

    fn push_bigram(
        &self,
        text: &str,
        symbols: &[Symbol],
        queue: &mut BinaryHeap<Bigram>,
        left: Option<usize>,
        right: Option<usize>,
    ) {
        let (Some(l), Some(r)) = (
            left.and_then(|i| symbols.get(i)),
            right.and_then(|i| symbols.get(i)),
        ) else {
            return;
        };
        let size = l.len + r.len;
        let Some(piece) = text.get(l.start..l.start + size) else {
            return;
        };
        let Some(&id) = self.text_to_id.get(piece) else {
            return;
        };
        let score = usize::try_from(id)
            .ok()
            .and_then(|i| self.scores.get(i))
            .copied()
            .unwrap_or(0.0);
        if let (Some(left), Some(right)) = (left, right) {
            queue.push(Bigram {
                score,
                left,
                right,
                size,
            });
        }
    }
}
