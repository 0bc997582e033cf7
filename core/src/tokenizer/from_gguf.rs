//! Reading a [`Vocab`] from GGUF metadata (`tokenizer.ggml.*`).

use super::vocab::{NO_TOKEN, SpecialIds, Vocab, VocabKind};
use super::{Tokenizer, TokenizerError};
use crate::gguf::{Array, Gguf, Value};
use alloc::string::String;
use alloc::vec::Vec;

const MODEL: &str = "tokenizer.ggml.model";
const TOKENS: &str = "tokenizer.ggml.tokens";
const SCORES: &str = "tokenizer.ggml.scores";
const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const MERGES: &str = "tokenizer.ggml.merges";
const PRE: &str = "tokenizer.ggml.pre";

impl Vocab {
    /// The vocabulary described by a GGUF file's metadata. Checks types here;
    /// lengths and ids are checked by [`Tokenizer::new`].
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self, TokenizerError> {
        let kind = match string(gguf, MODEL)? {
            Some("gpt2") => VocabKind::Bpe,
            Some("llama") => VocabKind::Spm,
            Some(other) => {
                return Err(TokenizerError::UnknownModel {
                    model: String::from(other),
                });
            }
            None => return Err(TokenizerError::MissingKey { key: MODEL }),
        };
        let mut vocab = Vocab::new(kind);
        vocab.tokens = strings(gguf, TOKENS)?.ok_or(TokenizerError::MissingKey { key: TOKENS })?;
        vocab.scores = match array(gguf, SCORES)? {
            None => None,
            Some(a) => Some(
                a.iter_f32()
                    .ok_or(TokenizerError::WrongType {
                        key: SCORES,
                        expected: "an array of f32",
                    })?
                    .collect(),
            ),
        };
        vocab.token_types = match array(gguf, TOKEN_TYPE)? {
            None => None,
            Some(a) => Some(token_types(a)?),
        };
        if kind == VocabKind::Bpe {
            vocab.merges =
                strings(gguf, MERGES)?.ok_or(TokenizerError::MissingKey { key: MERGES })?;
        }
        vocab.special = SpecialIds {
            bos: token_id(gguf, "tokenizer.ggml.bos_token_id")?,
            eos: token_id(gguf, "tokenizer.ggml.eos_token_id")?,
            eot: token_id(gguf, "tokenizer.ggml.eot_token_id")?,
            unk: token_id(gguf, "tokenizer.ggml.unknown_token_id")?,
            pad: token_id(gguf, "tokenizer.ggml.padding_token_id")?,
            sep: token_id(gguf, "tokenizer.ggml.seperator_token_id")?,
        };
        vocab.add_bos = boolean(gguf, "tokenizer.ggml.add_bos_token")?;
        vocab.add_eos = boolean(gguf, "tokenizer.ggml.add_eos_token")?;
        vocab.add_space_prefix = boolean(gguf, "tokenizer.ggml.add_space_prefix")?;
        vocab.pre = string(gguf, PRE)?.map(String::from);
        Ok(vocab)
    }
}

impl Tokenizer {
    /// The tokenizer of a GGUF file: [`Vocab::from_gguf`] then [`Tokenizer::new`].
    pub fn from_gguf(gguf: &Gguf<'_>) -> Result<Self, TokenizerError> {
        Self::new(Vocab::from_gguf(gguf)?)
    }
}

fn string<'a>(gguf: &Gguf<'a>, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

fn boolean(gguf: &Gguf<'_>, key: &'static str) -> Result<Option<bool>, TokenizerError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "a bool",
        }),
    }
}

fn array<'a>(gguf: &Gguf<'a>, key: &'static str) -> Result<Option<Array<'a>>, TokenizerError> {
    match gguf.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(TokenizerError::WrongType {
            key,
            expected: "an array",
        }),
    }
}

fn strings(gguf: &Gguf<'_>, key: &'static str) -> Result<Option<Vec<String>>, TokenizerError> {
    let Some(a) = array(gguf, key)? else {
        return Ok(None);
    };
    let iter = a.iter_str().ok_or(TokenizerError::WrongType {
        key,
        expected: "an array of strings",
    })?;
    let v: Vec<String> = iter.map(String::from).collect();
    if v.len() != a.len() {
        return Err(TokenizerError::Metadata {
            key,
            message: String::from("string array ends early"),
        });
    }
    Ok(Some(v))
}

/// Token types are written as i32 by llama.cpp's converters; u32 is accepted too.
fn token_types(a: Array<'_>) -> Result<Vec<i32>, TokenizerError> {
    if let Some(it) = a.iter_i32() {
        return Ok(it.collect());
    }
    if let Some(it) = a.iter_u32() {
        return Ok(it.map(|v| i32::try_from(v).unwrap_or(i32::MAX)).collect());
    }
    Err(TokenizerError::WrongType {
        key: TOKEN_TYPE,
        expected: "an array of i32",
    })
}

/// A special token id: any integer type; -1 means "none" like 0xFFFFFFFF.
fn token_id(gguf: &Gguf<'_>, key: &'static str) -> Result<Option<u32>, TokenizerError> {
    let Some(v) = gguf.get(key) else {
        return Ok(None);
    };
    if matches!(v, Value::I32(-1) | Value::I64(-1)) {
        return Ok(Some(NO_TOKEN));
    }
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .map(Some)
        .ok_or(TokenizerError::WrongType {
            key,
            expected: "a token id (u32)",
        })
}
