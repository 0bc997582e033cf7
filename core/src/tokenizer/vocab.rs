//! The plain-data description of a vocabulary, as read from GGUF metadata
//! (`tokenizer.ggml.*`) or built from a tiktoken file. Nothing here is
//! trusted: [`super::Tokenizer::new`] validates it.

use alloc::string::String;
use alloc::vec::Vec;

/// The "no token" sentinel some GGUF files store for absent special tokens.
pub const NO_TOKEN: u32 = u32::MAX;

/// Tokenizer family (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// `gpt2`: byte-level BPE with merges.
    Bpe,
    /// `llama`: SentencePiece with scores and byte fallback.
    Spm,
}

/// Token types (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// 0: undefined.
    Undefined,
    /// 1: an ordinary token.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control token (BOS, EOS, chat markers); only matched in text when
    /// parsing special tokens.
    Control,
    /// 4: a user-defined token, always matched in text as a whole.
    UserDefined,
    /// 5: unused.
    Unused,
    /// 6: a SentencePiece byte token `<0xNN>`.
    Byte,
}

impl TokenType {
    /// The type for a raw GGUF value, if known.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Undefined,
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }

    /// Whether decode hides this token unless special tokens are rendered
    /// (llama.cpp: UNKNOWN | CONTROL).
    pub fn is_hidden_special(self) -> bool {
        matches!(self, Self::Unknown | Self::Control)
    }
}

/// Special token ids as stored in the metadata. `None`: key absent;
/// [`NO_TOKEN`] (0xFFFFFFFF) also means "none".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.seperator_token_id` (sic, the GGUF key's spelling).
    pub sep: Option<u32>,
}

/// A vocabulary as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// Tokenizer family.
    pub kind: VocabKind,
    /// Token texts, indexed by id (`tokenizer.ggml.tokens`). For BPE, bytes
    /// are spelled through GPT-2's byte -> unicode mapping; for SPM, spaces
    /// are `▁`.
    pub tokens: Vec<String>,
    /// Token scores (`tokenizer.ggml.scores`); SPM merges by them. Absent: all 0.
    pub scores: Option<Vec<f32>>,
    /// Raw token types (`tokenizer.ggml.token_type`). Absent: all normal.
    pub token_types: Option<Vec<i32>>,
    /// BPE merges `"left right"` in rank order (`tokenizer.ggml.merges`).
    pub merges: Vec<String>,
    /// Special token ids.
    pub special: SpecialIds,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SPM; absent: true).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.pre` (BPE pre-tokenizer name).
    pub pre: Option<String>,
}

impl Vocab {
    /// An empty vocabulary of the given kind, to fill field by field.
    pub fn new(kind: VocabKind) -> Self {
        Self {
            kind,
            tokens: Vec::new(),
            scores: None,
            token_types: None,
            merges: Vec::new(),
            special: SpecialIds::default(),
            add_bos: None,
            add_eos: None,
            add_space_prefix: None,
            pre: None,
        }
    }
}
