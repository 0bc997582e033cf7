//! `bitnet_generate`: sampling loop with a streaming callback.

use core::ffi::{c_char, c_void};

use bitnet_core::sample::{Sampler, SamplerParams};

use crate::bitnet_token;
use crate::boundary::{ffi_boundary, ffi_infallible, try_slice};
use crate::session::{bitnet_session, session_ref};
use crate::status::{Error, bitnet_status};

/// Sampling and stopping settings of `bitnet_generate`. Get defaults from
/// `bitnet_sampler_default_params` (llama.cpp's: temperature 0.8, top-k 40,
/// top-p 0.95, min-p 0.05) or `bitnet_sampler_greedy_params`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_sampler_params {
    /// Temperature; `<= 0` is greedy decoding (the first maximum wins).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 disables.
    pub top_k: u32,
    /// Nucleus mass; `>= 1` disables.
    pub top_p: f32,
    /// Minimum probability relative to the most likely token; `<= 0`
    /// disables.
    pub min_p: f32,
    /// Repetition penalty; 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: u32,
    /// PRNG seed: equal seeds and inputs give equal outputs.
    pub seed: u64,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Stop when an end-of-generation token (EOS/EOT) is sampled; it is not
    /// passed to the callback.
    pub stop_at_eog: bool,
}

impl bitnet_sampler_params {
    /// Core's settings, 128 tokens, stopping at EOS/EOT (const: the
    /// defaults are constants, see `bitnet_sampler_default_params`).
    const fn from_core(p: SamplerParams) -> Self {
        /// `n` saturated to u32 (`try_into` is not const).
        const fn saturate(n: usize) -> u32 {
            if n > u32::MAX as usize {
                u32::MAX
            } else {
                n as u32
            }
        }
        Self {
            temperature: p.temperature,
            top_k: saturate(p.top_k),
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: saturate(p.repeat_last_n),
            seed: p.seed,
            max_tokens: 128,
            stop_at_eog: true,
        }
    }

    fn to_core(self) -> Result<SamplerParams, Error> {
        for (name, v) in [
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("min_p", self.min_p),
            ("repeat_penalty", self.repeat_penalty),
        ] {
            if !v.is_finite() {
                return Err(Error::invalid(format!("{name} is {v}, not finite")));
            }
        }
        Ok(SamplerParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n as usize,
            seed: self.seed,
        })
    }
}

/// llama.cpp's default sampling (temperature 0.8, top-k 40, top-p 0.95,
/// min-p 0.05, no repetition penalty, seed 0), 128 tokens, stopping at
/// EOS/EOT. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_sampler_default_params() -> bitnet_sampler_params {
    const DEFAULT: bitnet_sampler_params = bitnet_sampler_params::from_core(SamplerParams::DEFAULT);
    ffi_infallible("bitnet_sampler_default_params", DEFAULT, || DEFAULT)
}

/// Greedy decoding (argmax, deterministic), 128 tokens, stopping at
/// EOS/EOT. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_sampler_greedy_params() -> bitnet_sampler_params {
    const GREEDY: bitnet_sampler_params = bitnet_sampler_params::from_core(SamplerParams::greedy());
    ffi_infallible("bitnet_sampler_greedy_params", GREEDY, || GREEDY)
}

/// Called by `bitnet_generate` for each generated token with the token's
/// bytes (`piece`, `piece_len`; not NUL-terminated, possibly part of a
/// multi-byte UTF-8 character; empty for control tokens or a model without
/// tokenizer). `piece` is valid only during the call. Return `false` to
/// stop generating. The callback must not call functions on the same
/// session (they return `BITNET_STATUS_BUSY`).
pub type bitnet_token_callback = Option<
    unsafe extern "C" fn(
        token: bitnet_token,
        piece: *const c_char,
        piece_len: usize,
        user_data: *mut c_void,
    ) -> bool,
>;

/// Evaluates `n_prompt` prompt tokens at the session's next positions, then
/// samples up to `params.max_tokens` tokens, calling `on_token` (may be
/// NULL) with each and feeding it back. Stops at `max_tokens`, at an
/// end-of-generation token (`params.stop_at_eog`), or when `on_token`
/// returns false. On success writes the number of tokens generated to
/// `*n_generated_out` (which may be NULL).
///
/// The session continues where it was: with `n_prompt` 0 the first token
/// is sampled from the logits already in the session. The last generated
/// token is passed to the callback but not evaluated (`bitnet_session_n_past`
/// does not count it): pass it as the first prompt token of the next call to
/// continue. Each call starts a fresh sampler (PRNG from `params.seed`,
/// penalty history from this call's prompt).
///
/// Errors: `NULL_ARG`; `INVALID_ARG` (a non-finite parameter);
/// `INVALID_STATE` (`n_prompt` 0 and no logits); `MODEL` (context full,
/// token out of range; tokens already passed to the callback stay
/// generated); `SAMPLE`; `BUSY`; `PANIC`.
///
/// Thread-safety: one thread at a time per session; the callback runs on
/// the calling thread.
///
/// # Safety
/// `session` is NULL or a live session handle; `prompt` is NULL or readable
/// for `n_prompt` ids; `on_token` is NULL or a function of that signature
/// that may be called with `user_data`; `n_generated_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_generate(
    session: *mut bitnet_session,
    prompt: *const bitnet_token,
    n_prompt: usize,
    params: bitnet_sampler_params,
    on_token: bitnet_token_callback,
    user_data: *mut c_void,
    n_generated_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_generate", || {
        // SAFETY: pointers as documented (caller).
        let (s, prompt) = unsafe {
            (
                session_ref(session)?,
                try_slice(prompt, n_prompt, "prompt")?,
            )
        };
        let sampler_params = params.to_core()?;
        let mut st = s.lock()?;
        let model = s.model.model();
        let tokenizer = s.model.tokenizer.as_ref();
        if !prompt.is_empty() {
            st.eval(model, prompt)?;
        } else if st.logits.is_empty() {
            return Err(Error::new(
                bitnet_status::InvalidState,
                "an empty prompt needs logits in the session: evaluate tokens first",
            ));
        }
        let mut sampler = Sampler::new(sampler_params);
        for &t in prompt {
            sampler.accept(t);
        }
        let mut n = 0usize;
        while n < params.max_tokens as usize {
            let t = sampler.sample(&st.logits)?;
            sampler.accept(t);
            if params.stop_at_eog && s.model.stop_tokens.contains(&t) {
                break;
            }
            n += 1;
            let piece = match tokenizer {
                Some(tk) => tk.token_bytes(t, false)?,
                None => &[],
            };
            if let Some(cb) = on_token {
                // SAFETY: the caller supplied `cb` with this signature and
                // `user_data` for it; `piece` is valid for `piece.len()`
                // bytes during the call.
                let go_on = unsafe { cb(t, piece.as_ptr().cast(), piece.len(), user_data) };
                if !go_on {
                    break;
                }
            }
            if n < params.max_tokens as usize {
                st.eval(model, &[t])?;
            }
        }
        if !n_generated_out.is_null() {
            // SAFETY: non-NULL `n_generated_out` is writable (caller).
            unsafe { n_generated_out.write(n) };
        }
        Ok(())
    })
}
