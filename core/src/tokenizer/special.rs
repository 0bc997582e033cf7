//! Splitting text at special tokens before the model-specific encoder runs.
//!
//! As llama.cpp's `tokenizer_st_partition`: special tokens (types CONTROL,
//! USER_DEFINED, UNKNOWN) are tried longest text first (ties: lower id); each
//! one splits every remaining text fragment at all its non-overlapping
//! occurrences, leftmost first. CONTROL and UNKNOWN tokens are only matched
//! when parsing special tokens; USER_DEFINED ones always are.

use super::vocab::TokenType;
use alloc::string::String;
use alloc::vec::Vec;

/// A piece of the input: text still to encode, or a matched special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// Byte range of the input.
    Text(usize, usize),
    /// A special token id.
    Token(u32),
}

/// The special tokens of a vocabulary, in matching order.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialMatcher {
    /// `(id, always)`: `always` for USER_DEFINED tokens, matched even when
    /// not parsing special tokens.
    order: Vec<(u32, bool)>,
    /// For each first byte, the indices into `order` of tokens starting with it.
    by_first_byte: Vec<Vec<usize>>,
}

impl SpecialMatcher {
    pub(crate) fn new(tokens: &[String], types: &[TokenType]) -> Self {
        let mut order: Vec<(u32, bool)> = Vec::new();
        for (id, (text, ty)) in tokens.iter().zip(types).enumerate() {
            let always = match ty {
                TokenType::UserDefined => true,
                TokenType::Control | TokenType::Unknown => false,
                _ => continue,
            };
            if text.is_empty() {
                continue;
            }
            if let Ok(id) = u32::try_from(id) {
                order.push((id, always));
            }
        }
        let len = |id: u32| {
            usize::try_from(id)
                .ok()
                .and_then(|i| tokens.get(i))
                .map_or(0, String::len)
        };
        order.sort_by(|a, b| len(b.0).cmp(&len(a.0)).then(a.0.cmp(&b.0)));
        let mut by_first_byte = alloc::vec![Vec::new(); 256];
        for (k, &(id, _)) in order.iter().enumerate() {
            let first = usize::try_from(id)
                .ok()
                .and_then(|i| tokens.get(i))
                .and_then(|t| t.as_bytes().first());
            if let Some(list) = first.and_then(|&b| by_first_byte.get_mut(usize::from(b))) {
                list.push(k);
            }
        }
        Self {
            order,
            by_first_byte,
        }
    }

    /// Split `text` into fragments. `tokens` must be the vocabulary this
    /// matcher was built from.
    pub(crate) fn partition(
        &self,
        text: &str,
        tokens: &[String],
        parse_special: bool,
        out: &mut Vec<Fragment>,
    ) {
        out.clear();
        if text.is_empty() {
            return;
        }
        out.push(Fragment::Text(0, text.len()));
        let token_text = |id: u32| {
            usize::try_from(id)
                .ok()
                .and_then(|i| tokens.get(i))
                .map_or("", String::as_str)
        };
        // One pass to find which special tokens occur at all, so that the
        // per-token passes below only run for those.
        let mut present = alloc::vec![false; self.order.len()];
        let mut any = false;
        for (pos, &b) in text.as_bytes().iter().enumerate() {
            let Some(cands) = self.by_first_byte.get(usize::from(b)) else {
                continue;
            };
            for &k in cands {
                let Some(&(id, always)) = self.order.get(k) else {
                    continue;
                };
                if (always || parse_special)
                    && text
                        .as_bytes()
                        .get(pos..)
                        .is_some_and(|rest| rest.starts_with(token_text(id).as_bytes()))
                    && let Some(p) = present.get_mut(k)
                {
                    *p = true;
                    any = true;
                }
            }
        }
        if !any {
            return;
        }
        let mut next = Vec::new();
        for (&(id, _), _) in self.order.iter().zip(&present).filter(|(_, p)| **p) {
            let special = token_text(id);
            next.clear();
            for &frag in out.iter() {
                let Fragment::Text(mut start, end) = frag else {
                    next.push(frag);
                    continue;
                };
                while let Some(found) = text.get(start..end).and_then(|t| t.find(special)) {
                    let at = start + found;
                    if at > start {
                        next.push(Fragment::Text(start, at));
                    }
                    next.push(Fragment::Token(id));
                    start = at + special.len();
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            core::mem::swap(out, &mut next);
        }
    }
}
