//! Text <-> tokens with caller buffers and required-size returns
//! (llama.h's `llama_tokenize` / `llama_token_to_piece` /
//! `llama_detokenize`, with status codes).

use core::ffi::c_char;
use std::mem::MaybeUninit;

use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions};

use crate::bitnet_token;
use crate::boundary::{copy_bytes, ffi_boundary, finish_copy, try_buf, try_out, try_slice};
use crate::model::{bitnet_model, loaded};
use crate::status::{Error, bitnet_status};

/// Tokenizes the `text_len` bytes of UTF-8 at `text` (no terminator needed)
/// into `tokens` (room for `tokens_cap` ids) and writes the count to
/// `*n_tokens_out`.
///
/// `add_special`: add BOS/EOS as the vocabulary's `add_bos_token` /
/// `add_eos_token` say. `parse_special`: match control-token texts such as
/// `<s>` or `<|eot_id|>` in `text` as those tokens.
///
/// Errors: `NULL_ARG`; `UTF8`; `NO_TOKENIZER`; `TOKENIZER`;
/// `BUFFER_TOO_SMALL` when more than `tokens_cap` ids result: then only
/// `*n_tokens_out` is written, with the required count (so `tokens = NULL,
/// tokens_cap = 0` asks for the size). `text` may be NULL when `text_len` is
/// 0, `tokens` when `tokens_cap` is 0. Thread-safe (the model is shared).
///
/// # Safety
/// `model` is NULL or a live model handle; `text` is NULL or readable for
/// `text_len` bytes; `tokens` is NULL or writable for `tokens_cap` ids;
/// `n_tokens_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_tokenize(
    model: *const bitnet_model,
    text: *const c_char,
    text_len: usize,
    add_special: bool,
    parse_special: bool,
    tokens: *mut bitnet_token,
    tokens_cap: usize,
    n_tokens_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_tokenize", || {
        // SAFETY: pointers as documented (caller).
        let (m, text, mut n_out) = unsafe {
            (
                loaded(model)?,
                try_slice(text.cast::<u8>(), text_len, "text")?,
                try_out(n_tokens_out, "n_tokens_out")?,
            )
        };
        if tokens.is_null() && tokens_cap > 0 {
            return Err(crate::boundary::null_arg("tokens"));
        }
        let text = core::str::from_utf8(text)
            .map_err(|e| Error::new(bitnet_status::Utf8, format!("text: {e}")))?;
        let tok = m.tokenizer()?;
        let opts = EncodeOptions {
            add_bos: add_special && tok.add_bos(),
            add_eos: add_special && tok.add_eos(),
            parse_special,
        };
        let ids = tok.encode(text, opts)?;
        if ids.len() > tokens_cap {
            n_out.write(ids.len());
            return Err(Error::new(
                bitnet_status::BufferTooSmall,
                format!("{} tokens do not fit in {tokens_cap}", ids.len()),
            ));
        }
        // SAFETY: `tokens` is non-NULL here (ids is non-empty, so
        // tokens_cap > 0) or ids is empty; it is writable for tokens_cap >=
        // ids.len() ids (caller). MaybeUninit admits uninitialized memory.
        let dst = unsafe {
            core::slice::from_raw_parts_mut(tokens.cast::<MaybeUninit<u32>>(), ids.len())
        };
        for (d, &id) in dst.iter_mut().zip(&ids) {
            d.write(id);
        }
        n_out.write(ids.len());
        Ok(())
    })
}

/// Copies the bytes of token `token` into `buf` (no NUL terminator; a
/// piece may be part of a multi-byte UTF-8 character) and writes their
/// count to `*len_out`. Control tokens (BOS, EOS, ...) give no bytes unless
/// `render_special`.
///
/// Errors: `NULL_ARG`; `NO_TOKENIZER`; `TOKENIZER` (id outside the
/// vocabulary); `BUFFER_TOO_SMALL`: then only `*len_out` is written, with
/// the required size. `buf` may be NULL when `buf_len` is 0. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle; `buf` is NULL or writable for
/// `buf_len` bytes; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_token_to_piece(
    model: *const bitnet_model,
    token: bitnet_token,
    render_special: bool,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_token_to_piece", || {
        // SAFETY: pointers as documented (caller).
        let (m, dst, mut len_out) = unsafe {
            (
                loaded(model)?,
                try_buf(buf, buf_len, "buf")?,
                try_out(len_out, "len_out")?,
            )
        };
        let piece = m.tokenizer()?.token_bytes(token, render_special)?;
        finish_copy("the piece", copy_bytes(piece, dst), &mut len_out, false)
    })
}

/// Decodes `n_tokens` ids into `text` (bytes, no NUL terminator) and writes
/// the byte count to `*text_len_out`. `render_special` as in
/// `bitnet_token_to_piece`; `strip_leading_space` drops one leading space
/// (undoing SentencePiece's space prefix).
///
/// Errors: `NULL_ARG`; `NO_TOKENIZER`; `TOKENIZER` (an id outside the
/// vocabulary); `BUFFER_TOO_SMALL`: then only `*text_len_out` is written,
/// with the required size. `tokens` may be NULL when `n_tokens` is 0, `text`
/// when `text_cap` is 0. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle; `tokens` is NULL or readable for
/// `n_tokens` ids; `text` is NULL or writable for `text_cap` bytes;
/// `text_len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_detokenize(
    model: *const bitnet_model,
    tokens: *const bitnet_token,
    n_tokens: usize,
    render_special: bool,
    strip_leading_space: bool,
    text: *mut c_char,
    text_cap: usize,
    text_len_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_detokenize", || {
        // SAFETY: pointers as documented (caller).
        let (m, ids, dst, mut len_out) = unsafe {
            (
                loaded(model)?,
                try_slice(tokens, n_tokens, "tokens")?,
                try_buf(text, text_cap, "text")?,
                try_out(text_len_out, "text_len_out")?,
            )
        };
        let opts = DecodeOptions {
            render_special,
            strip_leading_space,
        };
        let bytes = m.tokenizer()?.decode(ids, opts)?;
        finish_copy("the text", copy_bytes(&bytes, dst), &mut len_out, false)
    })
}
