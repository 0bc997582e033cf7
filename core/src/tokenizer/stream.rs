//! Incremental detokenization for streaming generation.

use super::{DecodeOptions, Tokenizer, TokenizerError};
use alloc::string::String;
use alloc::vec::Vec;

/// Turns token ids into text one token at a time, holding back the bytes of
/// a UTF-8 sequence that a later token may complete.
///
/// Invalid UTF-8 becomes U+FFFD exactly as `String::from_utf8_lossy` would
/// replace it, so the concatenation of everything [`push`](Self::push) and
/// [`finish`](Self::finish) return equals
/// `String::from_utf8_lossy(&tokenizer.decode(ids, opts)?)`.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    opts: DecodeOptions,
    /// Bytes of an incomplete (so far valid) UTF-8 sequence, at most 3.
    pending: Vec<u8>,
    /// Text completed by the last call.
    out: String,
    /// No byte has been produced yet (for `strip_leading_space`).
    at_start: bool,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder with nothing decoded yet.
    pub fn new(tokenizer: &'t Tokenizer, opts: DecodeOptions) -> Self {
        Self {
            tokenizer,
            opts,
            pending: Vec::new(),
            out: String::new(),
            at_start: true,
        }
    }

    /// Add one token; returns the text it completes (possibly empty). On
    /// error (id out of range) the decoder state is unchanged.
    pub fn push(&mut self, id: u32) -> Result<&str, TokenizerError> {
        let mut bytes = self.tokenizer.token_bytes(id, self.opts.render_special)?;
        self.out.clear();
        if self.at_start && !bytes.is_empty() {
            self.at_start = false;
            if self.opts.strip_leading_space
                && let [b' ', rest @ ..] = bytes
            {
                bytes = rest;
            }
        }
        self.pending.extend_from_slice(bytes);
        let mut done = 0;
        loop {
            let rest = self.pending.get(done..).unwrap_or(&[]);
            match core::str::from_utf8(rest) {
                Ok(s) => {
                    self.out.push_str(s);
                    done = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    let text = rest.get(..valid).and_then(|v| core::str::from_utf8(v).ok());
                    self.out.push_str(text.unwrap_or(""));
                    match e.error_len() {
                        Some(bad) => {
                            self.out.push(char::REPLACEMENT_CHARACTER);
                            done += valid + bad;
                        }
                        None => {
                            // Incomplete sequence at the end: wait for more bytes.
                            done += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..done.min(self.pending.len()));
        Ok(&self.out)
    }

    /// End of stream: returns U+FFFD if an incomplete sequence was pending,
    /// else nothing. The decoder can then be reused for a new stream.
    pub fn finish(&mut self) -> &str {
        self.out.clear();
        if !self.pending.is_empty() {
            self.out.push(char::REPLACEMENT_CHARACTER);
            self.pending.clear();
        }
        self.at_start = true;
        &self.out
    }
}
