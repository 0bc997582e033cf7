//! Errors raised while building a tokenizer from untrusted metadata, or while
//! encoding/decoding with it.

use alloc::string::String;
use core::fmt;

/// Everything that can go wrong when building or using a [`super::Tokenizer`].
///
/// Vocabulary data comes from untrusted files: each variant carries the
/// offending values so that the message names what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerError {
    /// `tokenizer.ggml.model` names a tokenizer family this crate does not implement.
    UnknownModel {
        /// The value found in the metadata.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    UnknownPreTokenizer {
        /// The value found in the metadata.
        pre: String,
    },
    /// A required metadata key is absent.
    MissingKey {
        /// The GGUF key.
        key: &'static str,
    },
    /// A metadata key has the wrong type (e.g. an array of `u32` where strings are expected).
    WrongType {
        /// The GGUF key.
        key: &'static str,
        /// What the tokenizer expects, in words.
        expected: &'static str,
    },
    /// A metadata value could not be read (the GGUF reader's message).
    Metadata {
        /// The GGUF key.
        key: &'static str,
        /// The reader's description of the problem.
        message: String,
    },
    /// The vocabulary has no tokens.
    EmptyVocab,
    /// The vocabulary is larger than token ids (`u32`, minus the "none" sentinel) can address.
    VocabTooLarge {
        /// Number of tokens.
        len: usize,
    },
    /// A per-token array (scores, token types) does not have one entry per token.
    LengthMismatch {
        /// The GGUF key of the array.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// A token type value is not one of the known `llama_token_type` values (0..=6).
    InvalidTokenType {
        /// Token id.
        id: u32,
        /// The value found.
        value: i32,
    },
    /// A token of type BYTE whose text is not of the form `<0xNN>`.
    InvalidByteToken {
        /// Token id.
        id: u32,
        /// Its text.
        text: String,
    },
    /// A special token id (BOS, EOS, ...) is outside the vocabulary and is not
    /// the `0xFFFFFFFF` "none" sentinel.
    SpecialTokenOutOfRange {
        /// Which special token (GGUF key).
        key: &'static str,
        /// The id found.
        id: u32,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// A BPE merge is not of the form `"left right"`.
    MalformedMerge {
        /// Index in the merges array.
        index: usize,
        /// The merge text.
        merge: String,
    },
    /// A BPE merge names a token that is not in the vocabulary.
    MergeUnknownToken {
        /// Index in the merges array.
        index: usize,
        /// The unknown token text.
        token: String,
    },
    /// A BPE merge whose concatenation is not itself a token.
    MergeResultUnknown {
        /// Index in the merges array.
        index: usize,
        /// The concatenated text.
        merged: String,
    },
    /// A line of a tiktoken file is malformed (bad base64, missing or bad rank).
    TiktokenLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Tiktoken ranks are not `0, 1, 2, ...` in file order.
    TiktokenRank {
        /// 1-based line number.
        line: usize,
        /// The rank found.
        rank: u64,
        /// The rank expected.
        expected: usize,
    },
    /// A token id passed to decode is outside the vocabulary.
    TokenIdOutOfRange {
        /// The id.
        id: u32,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// Encoding asked for a BOS/EOS token the vocabulary does not define.
    MissingSpecialToken {
        /// `"bos"` or `"eos"`.
        which: &'static str,
    },
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownModel { model } => write!(f, "unknown tokenizer model {model:?}"),
            Self::UnknownPreTokenizer { pre } => write!(f, "unknown pre-tokenizer {pre:?}"),
            Self::MissingKey { key } => write!(f, "missing metadata key {key}"),
            Self::WrongType { key, expected } => {
                write!(
                    f,
                    "metadata key {key} has the wrong type: expected {expected}"
                )
            }
            Self::Metadata { key, message } => write!(f, "metadata key {key}: {message}"),
            Self::EmptyVocab => write!(f, "the vocabulary has no tokens"),
            Self::VocabTooLarge { len } => write!(f, "vocabulary of {len} tokens is too large"),
            Self::LengthMismatch {
                key,
                len,
                vocab_size,
            } => write!(
                f,
                "{key} has {len} entries but the vocabulary has {vocab_size} tokens"
            ),
            Self::InvalidTokenType { id, value } => {
                write!(f, "token {id} has invalid token type {value}")
            }
            Self::InvalidByteToken { id, text } => {
                write!(f, "byte token {id} has text {text:?}, expected <0xNN>")
            }
            Self::SpecialTokenOutOfRange {
                key,
                id,
                vocab_size,
            } => write!(
                f,
                "{key} = {id} is outside the vocabulary of {vocab_size} tokens"
            ),
            Self::MalformedMerge { index, merge } => {
                write!(
                    f,
                    "merge {index} ({merge:?}) is not of the form \"left right\""
                )
            }
            Self::MergeUnknownToken { index, token } => {
                write!(f, "merge {index} names unknown token {token:?}")
            }
            Self::MergeResultUnknown { index, merged } => {
                write!(f, "merge {index} produces {merged:?}, which is not a token")
            }
            Self::TiktokenLine { line, reason } => {
                write!(f, "tiktoken line {line}: {reason}")
            }
            Self::TiktokenRank {
                line,
                rank,
                expected,
            } => write!(f, "tiktoken line {line}: rank {rank}, expected {expected}"),
            Self::TokenIdOutOfRange { id, vocab_size } => write!(
                f,
                "token id {id} is outside the vocabulary of {vocab_size} tokens"
            ),
            Self::MissingSpecialToken { which } => {
                write!(f, "the vocabulary defines no {which} token")
            }
        }
    }
}

impl core::error::Error for TokenizerError {}
