//! `bitnet_session`: the state of one sequence (KV cache, buffers, the last
//! logits) over a shared model, with its own worker threads.
//!
//! A session is used by one thread at a time. That rule is also checked: the
//! state sits behind a mutex taken with `try_lock`, so a second concurrent
//! call (or a call from inside the session's own generation callback) gets
//! `BITNET_STATUS_BUSY` instead of undefined behaviour, and a panic poisons
//! the session until `bitnet_session_reset`.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use bitnet_core::model::{Logits, Model, RunState};
use bitnet_core::parallel::SerialJoin;
use bitnet_std::engine::ThreadJoin;

use crate::bitnet_token;
use crate::boundary::{
    ffi_boundary, ffi_boundary_value, ffi_infallible, try_out, try_ref, try_slice,
};
use crate::model::{Loaded, bitnet_model, loaded};
use crate::status::{Error, Result, bitnet_status};

/// Settings of `bitnet_session_new`. Get the defaults from
/// `bitnet_session_default_params` and change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_session_params {
    /// Positions the KV cache holds (prompt plus generated tokens); 0: the
    /// model's training context (`bitnet_model_n_ctx_train`).
    pub n_ctx: u32,
    /// Most tokens evaluated in one forward step (longer inputs are split);
    /// must be positive.
    pub n_batch: u32,
    /// Worker threads; 0: the model's `n_threads`. 1 runs on the calling
    /// thread only.
    pub n_threads: u32,
}

/// Default session settings: the training context, batches of 64 tokens,
/// the model's thread count. Thread-safe; never fails.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_session_default_params() -> bitnet_session_params {
    const DEFAULT: bitnet_session_params = bitnet_session_params {
        n_ctx: 0,
        n_batch: 64,
        n_threads: 0,
    };
    ffi_infallible("bitnet_session_default_params", DEFAULT, || DEFAULT)
}

/// What a session owns besides the model.
pub(crate) struct SessionState {
    pub(crate) state: RunState,
    /// Positions evaluated (the next token goes to this position).
    pub(crate) n_past: usize,
    /// Logits of the last evaluated position; empty when there are none.
    pub(crate) logits: Vec<f32>,
    /// Worker threads (None: run on the calling thread).
    pool: Option<WorkerPool>,
}

/// A rayon pool whose threads are joined when it is dropped, so that
/// `bitnet_session_free` returns only after they are gone (a plain
/// `ThreadPool` only signals them, and a process exiting right after would
/// see their thread-local state as leaked).
struct WorkerPool {
    pool: Option<rayon::ThreadPool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WorkerPool {
    fn new(n_threads: usize) -> Result<Self> {
        let mut threads = Vec::with_capacity(n_threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n_threads)
            .spawn_handler(|worker| {
                let h = std::thread::Builder::new()
                    .name(format!("bitnet-{}", worker.index()))
                    .spawn(|| worker.run())?;
                threads.push(h);
                Ok(())
            })
            .build()
            .map_err(|e| {
                Error::new(
                    bitnet_status::InvalidState,
                    format!("cannot start {n_threads} threads: {e}"),
                )
            })?;
        Ok(Self {
            pool: Some(pool),
            threads,
        })
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Dropping the pool tells its threads to exit; then wait for them.
        drop(self.pool.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl SessionState {
    /// Evaluates `tokens` at `n_past..` and keeps the logits of the last one.
    pub(crate) fn eval(&mut self, model: &Model<'_>, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::invalid("no tokens to evaluate (n_tokens is 0)"));
        }
        self.logits.clear();
        let Self {
            state,
            n_past,
            logits,
            pool,
        } = self;
        let pos = *n_past;
        let parallel = pool.is_some();
        let mut run = || -> Result<()> {
            let l = if parallel {
                // Inside `install`: the forward pass's joins use the pool.
                model.forward_in::<ThreadJoin>(state, tokens, pos, Logits::Last)?
            } else {
                model.forward_in::<SerialJoin>(state, tokens, pos, Logits::Last)?
            };
            logits.extend_from_slice(l);
            Ok(())
        };
        match pool {
            Some(p) => p.install(run)?,
            None => run()?,
        }
        *n_past += tokens.len();
        Ok(())
    }
}

/// One sequence over a model. Opaque; create with `bitnet_session_new`,
/// free with `bitnet_session_free`.
pub struct bitnet_session {
    pub(crate) model: Arc<Loaded>,
    inner: Mutex<SessionState>,
}

impl bitnet_session {
    /// The state, or `BUSY` (in use) / `PANIC` (poisoned by a panic).
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, SessionState>> {
        self.inner.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => busy(),
            TryLockError::Poisoned(_) => Error::new(
                bitnet_status::Panic,
                "a previous call on this session panicked; reset or free it",
            ),
        })
    }
}

fn busy() -> Error {
    Error::new(
        bitnet_status::Busy,
        "the session is in use by another call (another thread, or its own callback)",
    )
}

/// `&*session`, or a NULL-argument error.
///
/// # Safety
/// `session` is NULL or a live session handle.
pub(crate) unsafe fn session_ref<'a>(session: *const bitnet_session) -> Result<&'a bitnet_session> {
    // SAFETY: forwarded contract.
    unsafe { try_ref(session, "session") }
}

/// Creates a session over `model` with `params`; on success writes a new
/// handle to `*session_out`.
///
/// Ownership: the caller owns the session and must release it with
/// `bitnet_session_free`. The session keeps the model's data alive, so the
/// model handle may be freed first. `*session_out` is written only on
/// success.
///
/// Errors: `NULL_ARG`; `INVALID_ARG` (`n_batch` 0); `MODEL` (`n_ctx` above
/// the training context, allocation failure); `INVALID_STATE` (threads
/// could not be started).
///
/// Thread-safe: any number of sessions may be created from one model, on
/// any threads.
///
/// # Safety
/// `model` is NULL or a live model handle; `session_out` is NULL or valid
/// for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_new(
    model: *const bitnet_model,
    params: bitnet_session_params,
    session_out: *mut *mut bitnet_session,
) -> bitnet_status {
    ffi_boundary("bitnet_session_new", || {
        // SAFETY: pointers as documented (caller).
        let (m, mut out) = unsafe { (loaded(model)?, try_out(session_out, "session_out")?) };
        if params.n_batch == 0 {
            return Err(Error::invalid("n_batch must be positive"));
        }
        let n_ctx = match params.n_ctx {
            0 => m.model().config.seq_len,
            n => n as usize,
        };
        let mut state = m.model().new_state(params.n_batch as usize, n_ctx)?;
        state.set_platform(m.platform);
        let n_threads = match params.n_threads {
            0 => m.n_threads,
            n => n as usize,
        };
        let pool = if n_threads > 1 {
            Some(WorkerPool::new(n_threads)?)
        } else {
            None
        };
        let session = bitnet_session {
            model: Arc::clone(m),
            inner: Mutex::new(SessionState {
                state,
                n_past: 0,
                logits: Vec::new(),
                pool,
            }),
        };
        out.write(Box::into_raw(Box::new(session)));
        Ok(())
    })
}

/// Releases a session (its KV cache and threads). NULL is a no-op.
///
/// Thread-safety: no other call may use this session during or after this
/// call.
///
/// # Safety
/// `session` is NULL or a handle from `bitnet_session_new` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_free(session: *mut bitnet_session) {
    ffi_boundary("bitnet_session_free", || {
        if !session.is_null() {
            // SAFETY: `session` came from `Box::into_raw` in
            // `bitnet_session_new` and is freed once (caller).
            drop(unsafe { Box::from_raw(session) });
        }
        Ok(())
    });
}

/// Evaluates `n_tokens` tokens at the session's next positions (after
/// `bitnet_session_n_past` tokens) and keeps the logits of the last one for
/// `bitnet_session_logits`.
///
/// Errors: `NULL_ARG`; `INVALID_ARG` (`n_tokens` 0); `MODEL` (context full:
/// nothing is evaluated; an id outside the vocabulary); `BUSY`; `PANIC`.
/// On error the previous logits are gone and `n_past` is unchanged.
///
/// Thread-safety: one thread at a time per session; different sessions of
/// one model may evaluate concurrently.
///
/// # Safety
/// `session` is NULL or a live session handle; `tokens` is NULL or readable
/// for `n_tokens` ids.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_eval(
    session: *mut bitnet_session,
    tokens: *const bitnet_token,
    n_tokens: usize,
) -> bitnet_status {
    ffi_boundary("bitnet_session_eval", || {
        // SAFETY: pointers as documented (caller).
        let (s, tokens) = unsafe {
            (
                session_ref(session)?,
                try_slice(tokens, n_tokens, "tokens")?,
            )
        };
        if tokens.is_empty() && n_tokens == 0 {
            return Err(Error::invalid("n_tokens is 0"));
        }
        let mut st = s.lock()?;
        st.eval(s.model.model(), tokens)
    })
}

/// Writes a pointer to the logits of the last evaluated position (one per
/// vocabulary entry) to `*logits_out` and their count to `*n_logits_out`.
///
/// Ownership: the array belongs to the session and stays valid until the
/// next `bitnet_session_eval`, `bitnet_generate`, `bitnet_session_reset` or
/// `bitnet_session_free` on it. Do not free it.
///
/// Errors: `NULL_ARG`; `INVALID_STATE` when nothing was evaluated since the
/// session was created or reset (or the last evaluation failed); `BUSY`.
///
/// Thread-safety: one thread at a time per session, like every session
/// call (a concurrent call gets `BUSY`). The array is read *after* this
/// returns, outside the session's lock: while the caller reads it, no other
/// thread may evaluate, generate on, reset or free the session, or the
/// array is overwritten or freed under the reader.
///
/// # Safety
/// `session` is NULL or a live session handle; `logits_out` and
/// `n_logits_out` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_logits(
    session: *mut bitnet_session,
    logits_out: *mut *const f32,
    n_logits_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_session_logits", || {
        // SAFETY: pointers as documented (caller).
        let (s, mut l_out, mut n_out) = unsafe {
            (
                session_ref(session)?,
                try_out(logits_out, "logits_out")?,
                try_out(n_logits_out, "n_logits_out")?,
            )
        };
        let st = s.lock()?;
        if st.logits.is_empty() {
            return Err(Error::new(
                bitnet_status::InvalidState,
                "no logits: evaluate tokens first (the session is new, reset, or its last evaluation failed)",
            ));
        }
        l_out.write(st.logits.as_ptr());
        n_out.write(st.logits.len());
        Ok(())
    })
}

/// Empties the session: position 0, no logits, kernel counters cleared. The
/// buffers are kept. Also makes a session usable again after
/// `BITNET_STATUS_PANIC`.
///
/// Errors: `NULL_ARG`; `BUSY`.
///
/// # Safety
/// `session` is NULL or a live session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_reset(session: *mut bitnet_session) -> bitnet_status {
    ffi_boundary("bitnet_session_reset", || {
        // SAFETY: `session` is NULL or a live handle (caller).
        let s = unsafe { session_ref(session) }?;
        let mut st = match s.inner.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => {
                s.inner.clear_poison();
                p.into_inner()
            }
            Err(TryLockError::WouldBlock) => return Err(busy()),
        };
        st.n_past = 0;
        st.logits.clear();
        st.state.reset_counters();
        Ok(())
    })
}

/// Positions evaluated so far (the position of the next token); 0 if
/// `session` is NULL or busy.
///
/// Thread-safety: one thread at a time per session. Called while another
/// thread evaluates or generates on the session it does not wait and does
/// not read a torn value: it returns 0 and sets the thread's last error
/// ("in use"), so 0 is ambiguous there; ask from the thread that drives the
/// session.
///
/// # Safety
/// `session` is NULL or a live session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_n_past(session: *const bitnet_session) -> usize {
    ffi_boundary_value("bitnet_session_n_past", 0, || {
        // SAFETY: `session` is NULL or a live handle (caller).
        let s = unsafe { session_ref(session) }?;
        Ok(s.lock()?.n_past)
    })
}

/// Positions the session's KV cache holds; 0 if `session` is NULL or busy.
///
/// Thread-safety: as `bitnet_session_n_past` (0 while another thread uses
/// the session; the value never changes for a session, so read it once
/// after `bitnet_session_new`).
///
/// # Safety
/// `session` is NULL or a live session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_session_n_ctx(session: *const bitnet_session) -> usize {
    ffi_boundary_value("bitnet_session_n_ctx", 0, || {
        // SAFETY: `session` is NULL or a live handle (caller).
        let s = unsafe { session_ref(session) }?;
        Ok(s.lock()?.state.n_ctx())
    })
}
