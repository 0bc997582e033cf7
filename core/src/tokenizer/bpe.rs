//! Byte-level BPE merges (GPT-2 / Llama-3 style).
//!
//! Same algorithm as llama.cpp's `llm_tokenizer_bpe_session::tokenize`
//! (`src/llama-vocab.cpp`): a word starts as one symbol per byte; the
//! adjacent pair with the lowest merge rank (ties: leftmost) is merged until
//! no pair has a rank. Symbols carry token ids rather than strings, so a merge
//! is a hash look-up on `(left id, right id)` and allocates nothing.

use super::TokenizerError;
use super::unicode::byte_to_char;
use alloc::collections::BinaryHeap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;
use hashbrown::HashMap;

/// Merge table and byte tokens of a byte-level BPE vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct BpeModel {
    /// `(left id, right id) -> (rank, merged id)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token of each single byte, if the vocabulary has it.
    byte_tokens: [Option<u32>; 256],
    /// Emit a word that is itself a token without merging (Llama-3,
    /// tiktoken); llama.cpp's `ignore_merges`.
    ignore_merges: bool,
}

/// Per-encode scratch buffers.
#[derive(Debug, Default)]
pub(crate) struct BpeScratch {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
    mapped: String,
}

#[derive(Debug, Clone, Copy)]
struct Symbol {
    /// Token id; `None` for a byte the vocabulary lacks (it never merges and
    /// is dropped from the output, as in llama.cpp).
    id: Option<u32>,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug, PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    left_id: u32,
    right_id: u32,
    merged: u32,
}

impl Ord for Bigram {
    /// Max-heap order: lowest rank first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl BpeModel {
    /// Build from merges `"left right"` (rank = index; a repeated pair keeps
    /// its first rank, as llama.cpp's `emplace`).
    pub(crate) fn new(
        text_to_id: &HashMap<String, u32>,
        merges: &[String],
        ignore_merges: bool,
    ) -> Result<Self, TokenizerError> {
        let mut table = HashMap::with_capacity(merges.len());
        let mut merged_text = String::new();
        for (index, merge) in merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first byte.
            let split = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(p, _)| p)
                .filter(|&p| p + 1 < merge.len());
            let Some(p) = split else {
                return Err(TokenizerError::MalformedMerge {
                    index,
                    merge: merge.clone(),
                });
            };
            let (left, right) = (&merge[..p], &merge[p + 1..]);
            let id = |t: &str| {
                text_to_id
                    .get(t)
                    .copied()
                    .ok_or_else(|| TokenizerError::MergeUnknownToken {
                        index,
                        token: t.to_string(),
                    })
            };
            let (l, r) = (id(left)?, id(right)?);
            merged_text.clear();
            merged_text.push_str(left);
            merged_text.push_str(right);
            let merged = text_to_id
                .get(merged_text.as_str())
                .copied()
                .ok_or_else(|| TokenizerError::MergeResultUnknown {
                    index,
                    merged: merged_text.clone(),
                })?;
            let rank = u32::try_from(index).unwrap_or(u32::MAX);
            table.entry((l, r)).or_insert((rank, merged));
        }
        let mut byte_tokens = [None; 256];
        let mut buf = [0u8; 4];
        for (b, slot) in (0..=255u8).zip(byte_tokens.iter_mut()) {
            *slot = text_to_id
                .get(byte_to_char(b).encode_utf8(&mut buf) as &str)
                .copied();
        }
        Ok(Self {
            merges: table,
            byte_tokens,
            ignore_merges,
        })
    }

    /// Append the tokens of one pre-tokenized word to `out`.
    pub(crate) fn encode_word(
        &self,
        word: &[u8],
        text_to_id: &HashMap<String, u32>,
        scratch: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) {
        if let [b] = word {
            if let Some(Some(id)) = self.byte_tokens.get(usize::from(*b)) {
                out.push(*id);
            }
            return;
        }
        if self.ignore_merges {
            scratch.mapped.clear();
            scratch.mapped.extend(word.iter().map(|&b| byte_to_char(b)));
            if let Some(&id) = text_to_id.get(scratch.mapped.as_str()) {
                out.push(id);
                return;
            }
        }
        let symbols = &mut scratch.symbols;
        let queue = &mut scratch.queue;
        symbols.clear();
        queue.clear();
        let n = word.len();
        for (i, &b) in word.iter().enumerate() {
            symbols.push(Symbol {
                id: self.byte_tokens.get(usize::from(b)).copied().flatten(),
                prev: i.checked_sub(1),
                next: if i + 1 < n { Some(i + 1) } else { None },
            });
        }
        for i in 1..n {
            self.push_bigram(symbols, queue, Some(i - 1), Some(i));
        }
        while let Some(bg) = queue.pop() {
            let (Some(l), Some(r)) = (
                symbols.get(bg.left).copied(),
                symbols.get(bg.right).copied(),
            ) else {
                continue;
            };
            // Stale entry: one side was merged since this pair was queued.
            if l.id != Some(bg.left_id) || r.id != Some(bg.right_id) || l.next != Some(bg.right) {
                continue;
            }
            if let Some(s) = symbols.get_mut(bg.left) {
                s.id = Some(bg.merged);
                s.next = r.next;
            }
            if let Some(s) = symbols.get_mut(bg.right) {
                s.id = None;
                s.prev = None;
                s.next = None;
            }
            if let Some(s) = r.next.and_then(|i| symbols.get_mut(i)) {
                s.prev = Some(bg.left);
            }
            self.push_bigram(symbols, queue, l.prev, Some(bg.left));
            self.push_bigram(symbols, queue, Some(bg.left), r.next);
        }
        let mut cur = if n > 0 { Some(0) } else { None };
        while let Some(i) = cur {
            let Some(s) = symbols.get(i) else { break };
            if let Some(id) = s.id {
                out.push(id);
            }
            cur = s.next;
        }
    }

    fn push_bigram(
        &self,
        symbols: &[Symbol],
        queue: &mut BinaryHeap<Bigram>,
        left: Option<usize>,
        right: Option<usize>,
    ) {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (Some(Some(left_id)), Some(Some(right_id))) = (
            symbols.get(left).map(|s| s.id),
            symbols.get(right).map(|s| s.id),
        ) else {
            return;
        };
        if let Some(&(rank, merged)) = self.merges.get(&(left_id, right_id)) {
            queue.push(Bigram {
                rank,
                left,
                right,
                left_id,
                right_id,
                merged,
            });
        }
    }
}
