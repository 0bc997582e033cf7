//! The panic boundary every export goes through, the thread-local last
//! error, NULL-checking helpers and the copy-into-caller-buffer helpers.

use core::ffi::c_char;
use std::any::Any;
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{Error, Result, bitnet_status};

thread_local! {
    /// Message of the last failed call on this thread.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; the message
    // is then dropped rather than panicking.
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = message;
        }
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs `f`, turning an `Err` into its status (and the thread's last error,
/// prefixed with `func`) and a panic into [`bitnet_status::Panic`].
pub(crate) fn ffi_boundary(func: &str, f: impl FnOnce() -> Result<()>) -> bitnet_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => bitnet_status::Ok,
        Ok(Err(e)) => {
            set_last_error(format!("{func}: {}", e.message));
            e.status
        }
        Err(payload) => {
            set_last_error(format!("{func}: panic: {}", panic_message(&*payload)));
            bitnet_status::Panic
        }
    }
}

/// [`ffi_boundary`] for functions that return a value instead of a status:
/// on error or panic the last error is set and `fallback` returned.
pub(crate) fn ffi_boundary_value<T>(func: &str, fallback: T, f: impl FnOnce() -> Result<T>) -> T {
    let mut out = None;
    ffi_boundary(func, || {
        out = Some(f()?);
        Ok(())
    });
    out.unwrap_or(fallback)
}

/// The boundary of exports documented as never failing (version queries,
/// `bitnet_status_str`, the `*_default_params`): nothing in them can panic
/// today, but the wrapper keeps "every export catches panics" true however
/// they change. On a panic the last error is set and `fallback` returned.
pub(crate) fn ffi_infallible<T>(func: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    ffi_boundary_value(func, fallback, || Ok(f()))
}

/// The NULL-argument error for parameter `name`.
pub(crate) fn null_arg(name: &str) -> Error {
    Error::new(bitnet_status::NullArg, format!("{name} is NULL"))
}

/// `&*p`, or a NULL-argument error naming `name`.
///
/// # Safety
/// `p` is NULL or points to a live `T` that is not mutated for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: non-NULL `p` points to a live, unaliased-for-writes T (caller).
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(name))
}

/// An output location of the caller's, possibly uninitialized: only ever
/// written, never read, and never turned into a reference (a `&mut` to
/// uninitialized memory would be undefined behaviour).
pub(crate) struct Out<'a, T: Copy> {
    ptr: core::ptr::NonNull<T>,
    _life: core::marker::PhantomData<&'a mut T>,
}

impl<T: Copy> Out<'_, T> {
    /// Stores `value`.
    pub(crate) fn write(&mut self, value: T) {
        // SAFETY: `ptr` is valid for writes of a T and exclusive for the
        // lifetime (the contract of `try_out`); T is Copy, so nothing is
        // dropped.
        unsafe { self.ptr.as_ptr().write(value) }
    }
}

/// The output location `p`, or a NULL-argument error naming `name`.
///
/// # Safety
/// `p` is NULL or valid for writes of a (properly aligned) `T` and not
/// otherwise accessed for `'a`.
pub(crate) unsafe fn try_out<'a, T: Copy>(p: *mut T, name: &str) -> Result<Out<'a, T>> {
    let ptr = core::ptr::NonNull::new(p).ok_or_else(|| null_arg(name))?;
    Ok(Out {
        ptr,
        _life: core::marker::PhantomData,
    })
}

/// The slice `p[..len]`; `p` may be NULL only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `p` points to `len` readable, initialized `T`s that are
/// not mutated for `'a`.
pub(crate) unsafe fn try_slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null_arg(name));
    }
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(Error::invalid(format!("{name}: length {len} is too large")));
    }
    // SAFETY: `p` is non-NULL and points to `len` initialized Ts (caller);
    // the byte size fits isize (checked above).
    Ok(unsafe { core::slice::from_raw_parts(p, len) })
}

/// The caller's byte buffer `p[..len]` as a writable slice; `p` may be NULL
/// only when `len` is 0.
///
/// # Safety
/// When `len > 0`, `p` is valid for writes of `len` bytes and not otherwise
/// accessed for `'a`.
pub(crate) unsafe fn try_buf<'a>(
    p: *mut c_char,
    len: usize,
    name: &str,
) -> Result<&'a mut [MaybeUninit<u8>]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(null_arg(name));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!("{name}: length {len} is too large")));
    }
    // SAFETY: `p` is non-NULL, writable for `len` bytes and exclusive
    // (caller); `MaybeUninit` admits uninitialized contents.
    Ok(unsafe { core::slice::from_raw_parts_mut(p.cast::<MaybeUninit<u8>>(), len) })
}

fn write_all(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

/// Copies `src` to the front of `dst` (no terminator) and returns the
/// length, or `Err(required length)` when it does not fit.
pub(crate) fn copy_bytes(
    src: &[u8],
    dst: &mut [MaybeUninit<u8>],
) -> core::result::Result<usize, usize> {
    match dst.get_mut(..src.len()) {
        Some(d) => {
            write_all(d, src);
            Ok(src.len())
        }
        None => Err(src.len()),
    }
}

/// Copies `src` plus a NUL terminator into `dst`; `Err(required)` (without
/// the terminator) when it does not fit.
pub(crate) fn copy_c_str(
    src: &[u8],
    dst: &mut [MaybeUninit<u8>],
) -> core::result::Result<usize, usize> {
    match dst.get_mut(..=src.len()) {
        Some(d) => {
            write_all(d, src);
            d[src.len()].write(0);
            Ok(src.len())
        }
        None => Err(src.len()),
    }
}

/// Writes `n` to `len_out` and returns `Ok` on success; on a short buffer
/// writes the required size to `len_out` and returns the error.
pub(crate) fn finish_copy(
    what: &str,
    copied: core::result::Result<usize, usize>,
    len_out: &mut Out<'_, usize>,
    terminator: bool,
) -> Result<()> {
    match copied {
        Ok(n) => {
            len_out.write(n);
            Ok(())
        }
        Err(required) => {
            len_out.write(required);
            Err(Error::new(
                bitnet_status::BufferTooSmall,
                format!(
                    "{what} needs {} bytes{}",
                    required + usize::from(terminator),
                    if terminator { " including the NUL" } else { "" }
                ),
            ))
        }
    }
}

/// Copies the calling thread's last error message, NUL-terminated, into
/// `buf` (`buf_len` bytes, snprintf-style: truncated to `buf_len - 1` bytes
/// when longer) and returns the message's full length in bytes, without the
/// NUL. Call with `buf = NULL, buf_len = 0` to learn the length.
///
/// The message belongs to the most recent call *on this thread* that
/// returned an error status (or the fallback value of a getter); successful
/// calls do not clear it. Empty when no call has failed.
///
/// Thread-safe (each thread has its own message). `buf` may be NULL only
/// when `buf_len` is 0.
///
/// # Safety
/// `buf` is NULL or valid for writes of `buf_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_last_error(buf: *mut c_char, buf_len: usize) -> usize {
    let copy = || -> Result<usize> {
        // SAFETY: `buf` is NULL or writable for `buf_len` bytes (caller).
        let dst = unsafe { try_buf(buf, buf_len, "buf") }.unwrap_or(&mut []);
        let full = LAST_ERROR
            .try_with(|e| {
                let e = e.borrow();
                if let Some(room) = dst.len().checked_sub(1) {
                    // Cut at a character boundary so the copy stays UTF-8.
                    let mut n = e.len().min(room);
                    while !e.is_char_boundary(n) {
                        n -= 1;
                    }
                    write_all(&mut dst[..n], &e.as_bytes()[..n]);
                    dst[n].write(0);
                }
                e.len()
            })
            .unwrap_or(0);
        Ok(full)
    };
    match catch_unwind(AssertUnwindSafe(copy)) {
        Ok(Ok(n)) => n,
        _ => 0,
    }
}
