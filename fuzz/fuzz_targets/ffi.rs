//! The C ABI (`include/bitnet.h`) called with fuzzed arguments: model bytes
//! for `bitnet_model_load_from_memory`, text, token ids, buffer capacities,
//! metadata keys and indices, sampler settings, status codes, and NULL for
//! every pointer the header allows to be NULL-checked.
//!
//! Each call must return a documented status: never `BITNET_STATUS_PANIC`
//! (libFuzzer's panic hook turns a panic into a crash even inside the
//! boundary's `catch_unwind`), `NULL_ARG` for a NULL required pointer, and
//! on `BUFFER_TOO_SMALL` / success a length consistent with the buffer.
//! Output buffers are allocated at exactly the capacity passed, so
//! AddressSanitizer catches any write past it. Handles are NULL or live
//! (a dangling handle is undefined behaviour by the header's contract).
#![no_main]

use std::ffi::{CString, c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bitnet::generate::*;
use bitnet::model::*;
use bitnet::session::*;
use bitnet::tokenize::*;
use bitnet::{bitnet_last_error, bitnet_status, bitnet_status_str};
use libfuzzer_sys::fuzz_target;

const OK: u32 = bitnet_status::Ok as u32;
const NULL_ARG: u32 = bitnet_status::NullArg as u32;
const TOO_SMALL: u32 = bitnet_status::BufferTooSmall as u32;
const PANIC: u32 = bitnet_status::Panic as u32;

/// Longest context a fuzzed session gets (its KV cache stays small).
const MAX_FUZZ_CTX: u32 = 16;
/// Most tokens one fuzzed `bitnet_generate` samples.
const MAX_FUZZ_GENERATE: u32 = 8;

#[derive(Arbitrary, Debug)]
enum Op {
    /// `bitnet_model_load_from_memory` on fuzzed bytes, then a tour of the
    /// getters and one evaluation on whatever loads.
    Load {
        bytes: Vec<u8>,
        kernel: u32,
    },
    Tokenize {
        model: u8,
        text: Vec<u8>,
        add_special: bool,
        parse_special: bool,
        cap: u16,
    },
    Detokenize {
        model: u8,
        ids: Vec<u32>,
        render_special: bool,
        strip: bool,
        cap: u16,
    },
    Piece {
        model: u8,
        id: u32,
        render_special: bool,
        cap: u8,
    },
    MetaKey {
        model: u8,
        index: usize,
        cap: u8,
    },
    MetaVal {
        model: u8,
        key: Vec<u8>,
        cap: u8,
    },
    Eval {
        model: u8,
        n_ctx: u32,
        n_batch: u32,
        ids: Vec<u32>,
        twice: bool,
    },
    Generate {
        model: u8,
        prompt: Vec<u32>,
        temperature: f32,
        top_k: u32,
        top_p: f32,
        min_p: f32,
        penalty: f32,
        last_n: u32,
        seed: u64,
        max_tokens: u32,
    },
    IsEog {
        model: u8,
        id: u32,
    },
    StatusStr {
        code: u32,
    },
    LastError {
        cap: u8,
    },
    Nulls {
        which: u8,
    },
}

/// The fixture models, loaded once through the ABI and never freed.
fn models() -> &'static [&'static bitnet_model] {
    static M: OnceLock<Vec<&'static bitnet_model>> = OnceLock::new();
    M.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let shared = std::env::var("BITNET_SHARED_DATA")
            .unwrap_or_else(|_| format!("{root}/../shared/data"));
        [
            format!("{shared}/stories260K.gguf"),
            format!("{root}/tests/models/bitnet-b1.58-i2s.gguf"),
        ]
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            let model = load(&bytes, bitnet_kernel::Auto as u32).expect("fixture loads");
            // SAFETY: a live handle from bitnet_model_load_from_memory,
            // never freed, so the reference stays valid for 'static.
            unsafe { &*model }
        })
        .collect()
    })
}

fn pick(i: u8) -> &'static bitnet_model {
    let m = models();
    m[usize::from(i) % m.len()]
}

fn load(bytes: &[u8], kernel: u32) -> Result<*mut bitnet_model, u32> {
    let mut params = bitnet_model_default_params();
    params.n_threads = 1;
    params.kernel = kernel;
    let mut out = ptr::null_mut();
    // SAFETY: `bytes` is readable for its length; `out` is writable.
    let st = unsafe {
        bitnet_model_load_from_memory(bytes.as_ptr().cast(), bytes.len(), params, &mut out)
    } as u32;
    assert_ne!(st, PANIC);
    if st == OK {
        assert!(!out.is_null());
        Ok(out)
    } else {
        assert!(out.is_null(), "model_out written on failure");
        Err(st)
    }
}

/// Checks the length convention: on success the length fits the buffer,
/// on BUFFER_TOO_SMALL it does not; either way the status is documented.
fn check_len(st: bitnet_status, len: usize, cap: usize, needs_nul: bool) {
    let st = st as u32;
    assert_ne!(st, PANIC);
    if st == OK {
        assert!(
            if needs_nul { len < cap } else { len <= cap },
            "{len} vs {cap}"
        );
    } else if st == TOO_SMALL {
        assert!(
            if needs_nul { len >= cap } else { len > cap },
            "{len} vs {cap}"
        );
    }
}

fn session(model: &bitnet_model, n_ctx: u32, n_batch: u32) -> Option<*mut bitnet_session> {
    let params = bitnet_session_params {
        n_ctx: 1 + n_ctx % MAX_FUZZ_CTX,
        n_batch,
        n_threads: 1,
    };
    let mut out = ptr::null_mut();
    // SAFETY: `model` is live; `out` is writable.
    let st = unsafe { bitnet_session_new(model, params, &mut out) } as u32;
    assert_ne!(st, PANIC);
    (st == OK).then_some(out)
}

/// Evaluates `ids` and, when that works, reads the logits back.
fn eval(model: &bitnet_model, s: *mut bitnet_session, ids: &[u32]) {
    // SAFETY: `s` is a live session; `ids` is readable for its length.
    let st = unsafe { bitnet_session_eval(s, ids.as_ptr(), ids.len()) } as u32;
    assert_ne!(st, PANIC);
    let (mut logits, mut n) = (ptr::null(), 0usize);
    // SAFETY: `s` is live; the outputs are writable.
    let lst = unsafe { bitnet_session_logits(s, &mut logits, &mut n) } as u32;
    if st == OK {
        assert_eq!(lst, OK);
        // SAFETY: `model` is live.
        assert_eq!(n, unsafe { bitnet_model_n_vocab(model) });
        // SAFETY: the session's logits: `n` floats, valid until the next call.
        let row = unsafe { std::slice::from_raw_parts(logits, n) };
        std::hint::black_box(row.iter().sum::<f32>());
    } else {
        assert_ne!(lst, OK, "logits after a failed evaluation");
    }
}

unsafe extern "C" fn on_token(_: u32, piece: *const c_char, len: usize, _: *mut c_void) -> bool {
    // SAFETY: the library passes `len` readable bytes at `piece`.
    let bytes = unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), len) };
    std::hint::black_box(bytes);
    true
}

fn run(op: Op) {
    match op {
        Op::Load { bytes, kernel } => {
            let Ok(m) = load(&bytes, kernel % 5) else {
                return;
            };
            // SAFETY: `m` is live until the free below.
            let model = unsafe { &*m };
            // SAFETY: live handle.
            unsafe {
                let _ = (bitnet_model_n_ctx_train(model), bitnet_model_n_embd(model));
                let _ = (bitnet_model_n_layer(model), bitnet_model_arch(model));
                let _ = (bitnet_model_token_bos(model), bitnet_model_token_eos(model));
                for i in 0..bitnet_model_meta_count(model).min(64) {
                    run_indexed(bitnet_model_meta_key_by_index, model, i, 16);
                }
                // The cheap validation rules ran on the fuzzed bytes.
                let n = bitnet_model_n_findings(model);
                for i in 0..=n.min(8) {
                    run_indexed(bitnet_model_finding_by_index, model, i, 32);
                }
            }
            run_tokenize(model, b"Hello world", true, true, 8);
            if let Some(s) = session(model, 1, 1) {
                eval(model, s, &[0]);
                // SAFETY: `s` is live and not used again.
                unsafe { bitnet_session_free(s) };
            }
            // SAFETY: `m` is live and not used again.
            unsafe { bitnet_model_free(m) };
        }
        Op::Tokenize {
            model,
            text,
            add_special,
            parse_special,
            cap,
        } => {
            run_tokenize(
                pick(model),
                &text,
                add_special,
                parse_special,
                usize::from(cap % 512),
            );
        }
        Op::Detokenize {
            model,
            ids,
            render_special,
            strip,
            cap,
        } => {
            let cap = usize::from(cap % 1024);
            let mut buf = vec![0u8; cap];
            let mut len = usize::MAX;
            // SAFETY: `ids` readable, `buf` writable for `cap`, `len` writable.
            let st = unsafe {
                bitnet_detokenize(
                    pick(model),
                    ids.as_ptr(),
                    ids.len(),
                    render_special,
                    strip,
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut len,
                )
            };
            check_len(st, len, cap, false);
        }
        Op::Piece {
            model,
            id,
            render_special,
            cap,
        } => {
            let cap = usize::from(cap);
            let mut buf = vec![0u8; cap];
            let mut len = usize::MAX;
            // SAFETY: `buf` writable for `cap`, `len` writable.
            let st = unsafe {
                bitnet_token_to_piece(
                    pick(model),
                    id,
                    render_special,
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut len,
                )
            };
            check_len(st, len, cap, false);
        }
        Op::MetaKey { model, index, cap } => run_indexed(
            bitnet_model_meta_key_by_index,
            pick(model),
            index,
            usize::from(cap),
        ),
        Op::MetaVal { model, key, cap } => {
            let Ok(key) = CString::new(key) else { return };
            let cap = usize::from(cap);
            let mut buf = vec![0u8; cap];
            let mut len = usize::MAX;
            // SAFETY: `key` NUL-terminated, `buf` writable for `cap`, `len` writable.
            let st = unsafe {
                bitnet_model_meta_val_str(
                    pick(model),
                    key.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut len,
                )
            };
            check_len(st, len, cap, true);
        }
        Op::Eval {
            model,
            n_ctx,
            n_batch,
            ids,
            twice,
        } => {
            let model = pick(model);
            let Some(s) = session(model, n_ctx, n_batch % 8) else {
                return;
            };
            eval(model, s, &ids);
            if twice {
                eval(model, s, &ids);
            }
            // SAFETY: `s` is live.
            assert_eq!(unsafe { bitnet_session_reset(s) } as u32, OK);
            // SAFETY: `s` is live and not used again.
            unsafe { bitnet_session_free(s) };
        }
        Op::Generate {
            model,
            prompt,
            temperature,
            top_k,
            top_p,
            min_p,
            penalty,
            last_n,
            seed,
            max_tokens,
        } => {
            let model = pick(model);
            let Some(s) = session(model, MAX_FUZZ_CTX, 4) else {
                return;
            };
            let params = bitnet_sampler_params {
                temperature,
                top_k,
                top_p,
                min_p,
                repeat_penalty: penalty,
                repeat_last_n: last_n,
                seed,
                max_tokens: max_tokens % (MAX_FUZZ_GENERATE + 1),
                stop_at_eog: true,
            };
            let mut n = usize::MAX;
            // SAFETY: `s` live, `prompt` readable, callback of the right type.
            let st = unsafe {
                bitnet_generate(
                    s,
                    prompt.as_ptr(),
                    prompt.len(),
                    params,
                    Some(on_token),
                    ptr::null_mut(),
                    &mut n,
                )
            } as u32;
            assert_ne!(st, PANIC);
            if st == OK {
                assert!(n <= MAX_FUZZ_GENERATE as usize);
            }
            // SAFETY: `s` is live and not used again.
            unsafe { bitnet_session_free(s) };
        }
        Op::IsEog { model, id } => {
            // SAFETY: live handle.
            let _ = unsafe { bitnet_model_token_is_eog(pick(model), id) };
        }
        Op::StatusStr { code } => {
            let s = bitnet_status_str(code);
            assert!(!s.is_null());
            // SAFETY: a static NUL-terminated string.
            let _ = unsafe { std::ffi::CStr::from_ptr(s) };
        }
        Op::LastError { cap } => {
            let cap = usize::from(cap);
            let mut buf = vec![0u8; cap];
            let p = if cap == 0 {
                ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            };
            // SAFETY: `p` is NULL with cap 0 or writable for `cap` bytes.
            let n = unsafe { bitnet_last_error(p, cap) };
            if cap > 0 {
                assert_eq!(buf[n.min(cap - 1)], 0, "message not NUL-terminated");
            }
        }
        Op::Nulls { which } => nulls(pick(which), which),
    }
}

fn run_tokenize(
    model: &bitnet_model,
    text: &[u8],
    add_special: bool,
    parse_special: bool,
    cap: usize,
) {
    let mut ids = vec![0u32; cap];
    let mut n = usize::MAX;
    // SAFETY: `text` readable, `ids` writable for `cap` ids, `n` writable.
    let st = unsafe {
        bitnet_tokenize(
            model,
            text.as_ptr().cast(),
            text.len(),
            add_special,
            parse_special,
            ids.as_mut_ptr(),
            cap,
            &mut n,
        )
    };
    check_len(st, n, cap, false);
    if st as u32 == OK {
        // The ids round-trip through detokenize without error.
        let mut len = 0;
        // SAFETY: `ids[..n]` readable, NULL buffer with capacity 0.
        let st = unsafe {
            bitnet_detokenize(
                model,
                ids.as_ptr(),
                n,
                false,
                false,
                ptr::null_mut(),
                0,
                &mut len,
            )
        } as u32;
        assert!(
            st == OK || st == TOO_SMALL,
            "detokenize of encoded ids: {st}"
        );
    }
}

/// The signature of the getters that copy item `index` of a model's list
/// (metadata keys, validation findings) into a caller buffer.
type IndexedGetter = unsafe extern "C" fn(
    *const bitnet_model,
    usize,
    *mut c_char,
    usize,
    *mut usize,
) -> bitnet_status;

/// `f(model, index)` into a buffer of `cap` bytes; an index past the end
/// is `INVALID_ARG`, which `check_len` accepts as documented.
fn run_indexed(f: IndexedGetter, model: &bitnet_model, index: usize, cap: usize) {
    let mut buf = vec![0u8; cap];
    let mut len = usize::MAX;
    // SAFETY: `buf` writable for `cap`, `len` writable.
    let st = unsafe { f(model, index, buf.as_mut_ptr().cast(), cap, &mut len) };
    check_len(st, len, cap, true);
}

/// A NULL where the header requires a pointer gives `NULL_ARG`, and NULL
/// handles give the getters' documented fallbacks.
fn nulls(model: &bitnet_model, which: u8) {
    let mut len = 0usize;
    let mut buf = [0u8; 8];
    let b = buf.as_mut_ptr().cast::<c_char>();
    let null_model: *const bitnet_model = ptr::null();
    // SAFETY: every pointer is NULL or valid; NULL is what is being tested.
    let st = unsafe {
        match which % 10 {
            0 => bitnet_tokenize(
                null_model,
                b"a".as_ptr().cast(),
                1,
                false,
                false,
                ptr::null_mut(),
                0,
                &mut len,
            ),
            1 => bitnet_tokenize(
                model,
                ptr::null(),
                1,
                false,
                false,
                ptr::null_mut(),
                0,
                &mut len,
            ),
            2 => bitnet_tokenize(
                model,
                b"a".as_ptr().cast(),
                1,
                false,
                false,
                ptr::null_mut(),
                0,
                ptr::null_mut(),
            ),
            3 => bitnet_detokenize(model, ptr::null(), 3, false, false, b, 8, &mut len),
            4 => bitnet_token_to_piece(model, 0, false, b, 8, ptr::null_mut()),
            5 => bitnet_model_meta_val_str(model, ptr::null(), b, 8, &mut len),
            6 => bitnet_model_meta_key_by_index(null_model, 0, b, 8, &mut len),
            7 => bitnet_session_eval(ptr::null_mut(), ptr::null(), 1),
            8 => bitnet_model_load_from_memory(
                ptr::null(),
                5,
                bitnet_model_default_params(),
                &mut ptr::null_mut(),
            ),
            _ => {
                assert_eq!(bitnet_model_n_vocab(null_model), 0);
                assert_eq!(bitnet_session_n_past(ptr::null()), 0);
                bitnet_model_free(ptr::null_mut());
                bitnet_session_free(ptr::null_mut());
                return;
            }
        }
    } as u32;
    assert_eq!(st, NULL_ARG, "case {}", which % 10);
}

fuzz_target!(|ops: Vec<Op>| {
    for op in ops.into_iter().take(8) {
        run(op);
    }
});
