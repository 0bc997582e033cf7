//! Tokenizers built from GGUF metadata: byte-level BPE (`gpt2`) and
//! SentencePiece (`llama`).
//!
//! Both follow llama.cpp (`src/llama-vocab.cpp`, `src/unicode.cpp`) so that
//! token ids match its test vectors (`ggml-vocab-*.gguf.inp/.out`):
//!
//! - [`Vocab`] is the vocabulary as plain data (from [`Vocab::from_gguf`] or
//!   [`Vocab::from_tiktoken`]); [`Tokenizer::new`] validates it.
//! - [`Tokenizer::encode`] splits at special tokens, then runs the
//!   pre-tokenizer and BPE merges, or SentencePiece merges by score.
//! - [`Tokenizer::decode`] gives bytes; [`StreamDecoder`] gives text token by
//!   token without ever emitting a broken UTF-8 sequence.

mod bpe;
pub mod error;
mod from_gguf;
pub mod pretokenize;
mod special;
mod spm;
pub mod stream;
pub mod tiktoken;
mod to_gguf;
pub mod unicode;
pub mod vocab;

pub use error::TokenizerError;
pub use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;
pub use vocab::{NO_TOKEN, SpecialIds, TokenType, Vocab, VocabKind};

use alloc::string::String;
use alloc::vec::Vec;
use bpe::{BpeModel, BpeScratch};
use hashbrown::HashMap;
use hashbrown::HashSet;
use special::{Fragment, SpecialMatcher};
use spm::{SPACE_SYMBOL, SpmModel, SpmScratch};

/// Number of tokens of the Llama-3 vocabulary (128000 BPE + 256 special).
pub const LLAMA3_VOCAB_SIZE: usize = 128_256;

/// The pre-tokenizer a BPE tokenizer uses and how it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTokenizerChoice {
    /// The pre-tokenizer.
    pub kind: PreTokenizer,
    /// `true` when `tokenizer.ggml.pre` was absent and the choice was made
    /// from the vocabulary (Llama-3 -> [`PreTokenizer::Llama3`], otherwise
    /// llama.cpp's [`PreTokenizer::Default`]).
    pub inferred: bool,
}

/// Validated special token ids (`None`: the vocabulary has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// End of turn.
    pub eot: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Separator.
    pub sep: Option<u32>,
}

/// Options of [`Tokenizer::encode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Prepend the BOS token.
    pub add_bos: bool,
    /// Append the EOS token.
    pub add_eos: bool,
    /// Match CONTROL/UNKNOWN token texts in the input (`<|eot_id|>`, `<s>`)
    /// as those tokens. USER_DEFINED tokens are always matched.
    pub parse_special: bool,
}

/// Options of [`Tokenizer::decode`] and [`StreamDecoder`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Render CONTROL and UNKNOWN tokens as their text (otherwise they
    /// decode to nothing, as llama.cpp's `token_to_piece(special = false)`).
    pub render_special: bool,
    /// Drop one leading space of the output (undoes SentencePiece's
    /// `add_space_prefix`).
    pub strip_leading_space: bool,
}

/// A validated tokenizer, ready to encode and decode.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: VocabKind,
    tokens: Vec<String>,
    types: Vec<TokenType>,
    scores: Vec<f32>,
    text_to_id: HashMap<String, u32>,
    /// Decoded bytes of every token, concatenated; token `i` is
    /// `pieces[piece_ends[i-1]..piece_ends[i]]`.
    pieces: Vec<u8>,
    piece_ends: Vec<usize>,
    special: SpecialTokens,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    pre: Option<PreTokenizerChoice>,
    bpe: Option<BpeModel>,
    /// SPM byte fallback tokens.
    byte_tokens: [Option<u32>; 256],
    /// SPM: characters that precede `▁` inside some token.
    before_space: HashSet<char>,
    matcher: SpecialMatcher,
}

impl Tokenizer {
    /// Validate `vocab` and build the look-up tables.
    pub fn new(vocab: Vocab) -> Result<Self, TokenizerError> {
        let n = vocab.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if u32::try_from(n).map_or(true, |n| n == u32::MAX) {
            return Err(TokenizerError::VocabTooLarge { len: n });
        }
        let types = match &vocab.token_types {
            None => alloc::vec![TokenType::Normal; n],
            Some(raw) => {
                check_len("tokenizer.ggml.token_type", raw.len(), n)?;
                let mut types = Vec::with_capacity(n);
                for (id, &value) in (0u32..).zip(raw) {
                    types.push(
                        TokenType::from_i32(value)
                            .ok_or(TokenizerError::InvalidTokenType { id, value })?,
                    );
                }
                types
            }
        };
        let scores = match vocab.scores {
            None => alloc::vec![0.0; n],
            Some(s) => {
                check_len("tokenizer.ggml.scores", s.len(), n)?;
                s
            }
        };
        let mut text_to_id = HashMap::with_capacity(n);
        for (id, t) in (0u32..).zip(&vocab.tokens) {
            // A repeated text maps to its last id, as llama.cpp's `token_to_id`.
            text_to_id.insert(t.clone(), id);
        }
        let special = resolve_special(&vocab.special, vocab.kind, n)?;
        let (pre, bpe, add_bos_default) = match vocab.kind {
            VocabKind::Spm => (None, None, true),
            VocabKind::Bpe => {
                let choice = match vocab.pre.as_deref() {
                    Some(name) => PreTokenizerChoice {
                        kind: PreTokenizer::from_name(name).ok_or_else(|| {
                            TokenizerError::UnknownPreTokenizer {
                                pre: String::from(name),
                            }
                        })?,
                        inferred: false,
                    },
                    None => PreTokenizerChoice {
                        kind: if is_llama3_vocab(&vocab.tokens) {
                            PreTokenizer::Llama3
                        } else {
                            PreTokenizer::Default
                        },
                        inferred: true,
                    },
                };
                let llama3 = choice.kind == PreTokenizer::Llama3;
                let model = BpeModel::new(&text_to_id, &vocab.merges, llama3)?;
                (Some(choice), Some(model), llama3)
            }
        };
        let (pieces, piece_ends) = decoded_pieces(vocab.kind, &vocab.tokens, &types)?;
        let mut byte_tokens = [None; 256];
        for (b, slot) in (0..=255u8).zip(byte_tokens.iter_mut()) {
            let hex = alloc::format!("<0x{b:02X}>");
            let raw = [b];
            let single = core::str::from_utf8(&raw).ok();
            *slot = text_to_id
                .get(hex.as_str())
                .or_else(|| single.and_then(|s| text_to_id.get(s)))
                .copied()
                .or(special.unk);
        }
        let matcher = SpecialMatcher::new(&vocab.tokens, &types);
        let before_space = match vocab.kind {
            VocabKind::Spm => spm::chars_before_space(&vocab.tokens),
            VocabKind::Bpe => HashSet::new(),
        };
        Ok(Self {
            kind: vocab.kind,
            tokens: vocab.tokens,
            types,
            scores,
            text_to_id,
            pieces,
            piece_ends,
            special,
            add_bos: vocab.add_bos.unwrap_or(add_bos_default),
            add_eos: vocab.add_eos.unwrap_or(false),
            add_space_prefix: vocab.kind == VocabKind::Spm
                && vocab.add_space_prefix.unwrap_or(true),
            pre,
            bpe,
            byte_tokens,
            before_space,
            matcher,
        })
    }

    /// Tokenizer family.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The BPE pre-tokenizer and whether it was inferred (`None` for SPM).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizerChoice> {
        self.pre
    }

    /// Special token ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Whether the vocabulary asks for a BOS token at the start of a prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether the vocabulary asks for an EOS token at the end of a prompt.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether SentencePiece text gets a leading `▁` (always false for BPE).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Encode options from the vocabulary's own flags (BOS/EOS as
    /// `add_bos_token`/`add_eos_token` say), with special tokens parsed.
    pub fn default_encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            parse_special: true,
        }
    }

    /// Text of token `id` as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens
            .get(usize::try_from(id).ok()?)
            .map(String::as_str)
    }

    /// Type of token `id`.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.types.get(usize::try_from(id).ok()?).copied()
    }

    /// Score of token `id` (0 when the vocabulary has no scores).
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.scores.get(usize::try_from(id).ok()?).copied()
    }

    /// Id of the token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.text_to_id.get(text).copied()
    }

    /// Whether `id` ends generation (EOS or EOT).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        Some(id) == self.special.eos || Some(id) == self.special.eot
    }

    /// Encode `text` to token ids.
    pub fn encode(&self, text: &str, opts: EncodeOptions) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if opts.add_bos {
            out.push(
                self.special
                    .bos
                    .ok_or(TokenizerError::MissingSpecialToken { which: "bos" })?,
            );
        }
        let mut fragments = Vec::new();
        self.matcher
            .partition(text, &self.tokens, opts.parse_special, &mut fragments);
        match &self.bpe {
            Some(model) => self.encode_bpe(model, text, &fragments, &mut out),
            None => self.encode_spm(text, &fragments, &mut out),
        }
        if opts.add_eos {
            out.push(
                self.special
                    .eos
                    .ok_or(TokenizerError::MissingSpecialToken { which: "eos" })?,
            );
        }
        Ok(out)
    }

    fn encode_bpe(&self, model: &BpeModel, text: &str, fragments: &[Fragment], out: &mut Vec<u32>) {
        let kind = self.pre.map_or(PreTokenizer::Default, |p| p.kind);
        let mut splitter = pretokenize::Splitter::default();
        let mut scratch = BpeScratch::default();
        let mut ends = Vec::new();
        for frag in fragments {
            match *frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(a, b) => {
                    let Some(piece) = text.get(a..b) else {
                        continue;
                    };
                    splitter.split(kind, piece, &mut ends);
                    let mut start = 0;
                    for &end in &ends {
                        if let Some(word) = piece.as_bytes().get(start..end) {
                            model.encode_word(word, &self.text_to_id, &mut scratch, out);
                        }
                        start = end;
                    }
                }
            }
        }
    }

    fn encode_spm(&self, text: &str, fragments: &[Fragment], out: &mut Vec<u32>) {
        let model = SpmModel {
            text_to_id: &self.text_to_id,
            scores: &self.scores,
            byte_tokens: &self.byte_tokens,
            before_space: &self.before_space,
        };
        let mut scratch = SpmScratch::default();
        // llama.cpp: a space prefix goes before the first text fragment and
        // before every text fragment that follows a special token.
        let mut prev_special = true;
        for frag in fragments {
            match *frag {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    let Some(piece) = text.get(a..b) else {
                        continue;
                    };
                    scratch.text.clear();
                    if self.add_space_prefix && prev_special {
                        scratch.text.push_str(SPACE_SYMBOL);
                    }
                    for c in piece.chars() {
                        if c == ' ' {
                            scratch.text.push_str(SPACE_SYMBOL);
                        } else {
                            scratch.text.push(c);
                        }
                    }
                    model.encode(&mut scratch, out);
                    prev_special = false;
                }
            }
        }
    }

    /// The bytes token `id` decodes to (empty for hidden special tokens
    /// unless `render_special`).
    pub fn token_bytes(&self, id: u32, render_special: bool) -> Result<&[u8], TokenizerError> {
        let err = TokenizerError::TokenIdOutOfRange {
            id,
            vocab_size: self.tokens.len(),
        };
        let i = usize::try_from(id).map_err(|_| err.clone())?;
        let ty = self.types.get(i).ok_or_else(|| err.clone())?;
        if ty.is_hidden_special() && !render_special {
            return Ok(&[]);
        }
        let start = match i.checked_sub(1) {
            Some(p) => *self.piece_ends.get(p).ok_or_else(|| err.clone())?,
            None => 0,
        };
        let end = *self.piece_ends.get(i).ok_or_else(|| err.clone())?;
        self.pieces.get(start..end).ok_or(err)
    }

    /// Decode ids to bytes (the concatenation of the token pieces).
    pub fn decode(&self, ids: &[u32], opts: DecodeOptions) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        let mut at_start = true;
        for &id in ids {
            let mut bytes = self.token_bytes(id, opts.render_special)?;
            if at_start && !bytes.is_empty() {
                at_start = false;
                if let (true, [b' ', rest @ ..]) = (opts.strip_leading_space, bytes) {
                    bytes = rest;
                }
            }
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Decode ids to text; invalid UTF-8 becomes U+FFFD as in
    /// `String::from_utf8_lossy`.
    pub fn decode_lossy(&self, ids: &[u32], opts: DecodeOptions) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode(ids, opts)?).into_owned())
    }
}

/// Whether `tokens` is the Llama-3 vocabulary: 128256 tokens with
/// `<|begin_of_text|>`, `<|end_of_text|>` and `<|eot_id|>` at their ids.
pub fn is_llama3_vocab(tokens: &[String]) -> bool {
    let at = |i: usize, s: &str| tokens.get(i).is_some_and(|t| t == s);
    tokens.len() == LLAMA3_VOCAB_SIZE
        && at(128_000, "<|begin_of_text|>")
        && at(128_001, "<|end_of_text|>")
        && at(128_009, "<|eot_id|>")
}

fn check_len(key: &'static str, len: usize, vocab_size: usize) -> Result<(), TokenizerError> {
    if len == vocab_size {
        Ok(())
    } else {
        Err(TokenizerError::LengthMismatch {
            key,
            len,
            vocab_size,
        })
    }
}

fn resolve_special(
    ids: &SpecialIds,
    kind: VocabKind,
    n: usize,
) -> Result<SpecialTokens, TokenizerError> {
    let check = |key: &'static str, id: Option<u32>, default: Option<u32>| match id {
        None => Ok(default.filter(|&d| usize::try_from(d).is_ok_and(|d| d < n))),
        Some(NO_TOKEN) => Ok(None),
        Some(id) if usize::try_from(id).is_ok_and(|i| i < n) => Ok(Some(id)),
        Some(id) => Err(TokenizerError::SpecialTokenOutOfRange {
            key,
            id,
            vocab_size: n,
        }),
    };
    // llama.cpp's defaults for SentencePiece vocabularies without the keys.
    let spm = kind == VocabKind::Spm;
    Ok(SpecialTokens {
        bos: check("tokenizer.ggml.bos_token_id", ids.bos, spm.then_some(1))?,
        eos: check("tokenizer.ggml.eos_token_id", ids.eos, spm.then_some(2))?,
        eot: check("tokenizer.ggml.eot_token_id", ids.eot, None)?,
        unk: check("tokenizer.ggml.unknown_token_id", ids.unk, spm.then_some(0))?,
        pad: check("tokenizer.ggml.padding_token_id", ids.pad, None)?,
        sep: check("tokenizer.ggml.seperator_token_id", ids.sep, None)?,
    })
}

/// The bytes each token decodes to, as llama.cpp's `token_to_piece`.
fn decoded_pieces(
    kind: VocabKind,
    tokens: &[String],
    types: &[TokenType],
) -> Result<(Vec<u8>, Vec<usize>), TokenizerError> {
    let mut pieces = Vec::new();
    let mut ends = Vec::with_capacity(tokens.len());
    for ((id, text), &ty) in (0u32..).zip(tokens).zip(types) {
        match (kind, ty) {
            (_, TokenType::Control | TokenType::Unknown | TokenType::UserDefined) => {
                pieces.extend_from_slice(text.as_bytes());
            }
            (VocabKind::Spm, TokenType::Normal) => {
                let mut rest = text.as_str();
                while let Some(p) = rest.find(SPACE_SYMBOL) {
                    pieces.extend_from_slice(rest.get(..p).unwrap_or("").as_bytes());
                    pieces.push(b' ');
                    rest = rest.get(p + SPACE_SYMBOL.len()..).unwrap_or("");
                }
                pieces.extend_from_slice(rest.as_bytes());
            }
            (VocabKind::Spm, TokenType::Byte) => {
                pieces.push(parse_byte_token(text).ok_or_else(|| {
                    TokenizerError::InvalidByteToken {
                        id,
                        text: text.clone(),
                    }
                })?);
            }
            (VocabKind::Bpe, TokenType::Normal) => {
                let mut buf = [0u8; 4];
                for c in text.chars() {
                    match unicode::char_to_byte(c) {
                        Some(b) => pieces.push(b),
                        // Not in GPT-2's mapping: keep the character itself.
                        None => pieces.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                    }
                }
            }
            // Undefined, unused, and BPE byte tokens decode to nothing (llama.cpp).
            _ => {}
        }
        ends.push(pieces.len());
    }
    Ok((pieces, ends))
}

/// The byte of a SentencePiece byte token `<0xNN>`.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
