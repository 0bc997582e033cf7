//! `bitnet_bench_receipt_json`: a timed prefill + decode run whose receipt
//! (DESIGN.md §7) is built from the kernel counters of the run, through
//! bitnet-std's benchmark harness (`bitnet_std::bench::receipt_run`).

use core::ffi::c_char;

use bitnet_core::receipt::MAX_RECEIPT_BYTES;
use bitnet_std::ModelFile;
use bitnet_std::bench::{ReceiptRunSpec, receipt_run};

use crate::bitnet_token;
use crate::boundary::{
    copy_c_str, ffi_boundary, ffi_infallible, finish_copy, try_buf, try_out, try_slice,
};
use crate::model::{bitnet_model, loaded};
use crate::status::{Error, bitnet_status};

/// Largest receipt `bitnet_bench_receipt_json` writes, in bytes, without the
/// NUL: a buffer of `BITNET_RECEIPT_MAX_BYTES + 1` bytes always suffices.
pub const BITNET_RECEIPT_MAX_BYTES: usize = 65536;

const _: () = assert!(BITNET_RECEIPT_MAX_BYTES == MAX_RECEIPT_BYTES);

/// Settings of `bitnet_bench_receipt_json`. Get the defaults from
/// `bitnet_bench_default_params`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_bench_params {
    /// Tokens to generate, exactly (end-of-generation tokens do not stop the
    /// run); must be positive.
    pub n_gen: u32,
    /// Worker threads; 0: the model's `n_threads`.
    pub n_threads: u32,
    /// Greedy decoding (true) or sampling with `seed`.
    pub deterministic: bool,
    /// Sampling seed (recorded in the receipt either way).
    pub seed: u64,
}

/// Default benchmark settings: 32 greedy tokens, the model's threads,
/// seed 42. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_bench_default_params() -> bitnet_bench_params {
    const DEFAULT: bitnet_bench_params = bitnet_bench_params {
        n_gen: 32,
        n_threads: 0,
        deterministic: true,
        seed: 42,
    };
    ffi_infallible("bitnet_bench_default_params", DEFAULT, || DEFAULT)
}

/// Runs the benchmark of `cargo xtask benchmark` on `model`: evaluates the
/// prompt (`n_prompt` ids; NULL/0: the BOS token alone), generates exactly
/// `params.n_gen` tokens timing prefill and decode, and writes the receipt
/// (schema 1.1.0 JSON, built from the kernels that actually ran, with this
/// host's fingerprint) NUL-terminated to `buf`, its length (without the
/// NUL) to `*len_out`.
///
/// The model must have been loaded from a file (the receipt records its
/// name and SHA-256; with `use_mmap` false the file is mapped again to hash
/// it); the run uses its own state, not a session's.
///
/// Errors: `NULL_ARG`; `INVALID_ARG` (`n_gen` 0, no prompt and no BOS);
/// `INVALID_STATE` (model loaded from memory); `IO`; `MODEL`; `RECEIPT`;
/// `BUFFER_TOO_SMALL`: only `*len_out` is written, with the receipt's
/// length; the run is lost, so pass `BITNET_RECEIPT_MAX_BYTES + 1` bytes.
///
/// Thread-safe (the model is shared), but timings suffer from concurrent
/// work.
///
/// # Safety
/// `model` is NULL or a live model handle; `prompt` is NULL or readable for
/// `n_prompt` ids; `buf` is NULL or writable for `buf_len` bytes; `len_out`
/// is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_bench_receipt_json(
    model: *const bitnet_model,
    prompt: *const bitnet_token,
    n_prompt: usize,
    params: bitnet_bench_params,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_bench_receipt_json", || {
        // SAFETY: pointers as documented (caller).
        let (m, prompt, dst, mut len_out) = unsafe {
            (
                loaded(model)?,
                try_slice(prompt, n_prompt, "prompt")?,
                try_buf(buf, buf_len, "buf")?,
                try_out(len_out, "len_out")?,
            )
        };
        if params.n_gen == 0 {
            return Err(Error::invalid("n_gen must be positive"));
        }
        let bos;
        let prompt = if prompt.is_empty() {
            bos = m
                .tokenizer
                .as_ref()
                .and_then(|t| t.special_tokens().bos)
                .ok_or_else(|| Error::invalid("no prompt given and the model has no BOS token"))?;
            core::slice::from_ref(&bos)
        } else {
            prompt
        };
        let reopened;
        let file = match (m.mapped_file(), &m.path) {
            (Some(f), _) => f,
            (None, Some(path)) => {
                reopened = ModelFile::open(path)?;
                &reopened
            }
            (None, None) => {
                return Err(Error::new(
                    bitnet_status::InvalidState,
                    "receipts need a model loaded from a file (it records the file's name and SHA-256)",
                ));
            }
        };
        let spec = ReceiptRunSpec {
            n_gen: params.n_gen as usize,
            threads: match params.n_threads {
                0 => m.n_threads,
                n => n as usize,
            },
            platform: m.platform,
            deterministic: params.deterministic,
            seed: params.seed,
            load_ms: m.load_ms,
        };
        let run = receipt_run(file, m.model(), prompt, &spec)?;
        let json = bitnet_core::receipt::to_json(&run.receipt)
            .map_err(|e| Error::new(bitnet_status::Receipt, format!("cannot render: {e}")))?;
        finish_copy("the receipt", copy_c_str(&json, dst), &mut len_out, true)
    })
}
