//! `bitnet_model`: loading (from a file, mmap or read, or from memory)
//! with the validation rules, freeing, and the getters.
//!
//! Ownership: a handle holds an `Arc` of the loaded model; every session
//! holds another, so the bytes outlive every user and freeing the model
//! while sessions exist is safe. The bytes and the `Model<'_>` view that
//! borrows them live together in a [`ModelCell`] (self_cell), so the view
//! is built (and validated) once per load with no lifetime extension.

use core::ffi::{c_char, c_void};
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bitnet_core::gguf::{Array, Gguf, Value, ValueType};
use bitnet_core::kernels::{KernelChoice, Platform};
use bitnet_core::model::Model;
use bitnet_core::tokenizer::Tokenizer;
use bitnet_std::ModelFile;
use bitnet_std::engine::LmHead;
use bitnet_std::validate_cmd::{ValidationOptions, refusal};

use crate::boundary::{
    copy_c_str, ffi_boundary, ffi_boundary_value, ffi_infallible, finish_copy, try_buf, try_out,
    try_ref, try_slice,
};
use crate::status::{Error, Result, bitnet_status};
use crate::{BITNET_TOKEN_NULL, bitnet_token};

/// Kernel tier for the matrix products (`bitnet_model_params.kernel`).
/// A forced tier the CPU lacks fails the load with
/// `BITNET_STATUS_KERNEL_UNAVAILABLE`. Results are bit-identical across
/// tiers.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum bitnet_kernel {
    /// The best tier this CPU supports.
    Auto = 0,
    /// The portable kernels.
    Scalar = 1,
    /// AVX2 + F16C.
    Avx2 = 2,
    /// AVX-512 F/BW/VL/VNNI.
    Avx512 = 3,
    /// TL1 lookup-table kernels on the best tier: ternary projections
    /// (I2_S, TQ1_0, TQ2_0) are repacked into the TL1 layout at load (an
    /// owned copy, 2 bits per weight). Same integers as the other tiers.
    Tl1 = 4,
    /// TL2 lookup-table kernels (as `Tl1`; 1.67 bits per weight).
    Tl2 = 5,
}

impl bitnet_kernel {
    fn from_u32(v: u32) -> Option<KernelChoice> {
        Some(match v {
            0 => KernelChoice::Auto,
            1 => KernelChoice::Scalar,
            2 => KernelChoice::Avx2,
            3 => KernelChoice::Avx512,
            4 => KernelChoice::Tl1,
            5 => KernelChoice::Tl2,
            _ => return None,
        })
    }
}

/// LM head numerics (`bitnet_model_params.lm_head`), as the native CLI's
/// `--lm-head`. Any other value fails the load with
/// `BITNET_STATUS_INVALID_ARG`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum bitnet_lm_head {
    /// The file's head as stored (F16 for the tied embedding): exact.
    Exact = 0,
    /// Int8 per row, quantized at load. **Changes numerics** (greedy
    /// tokens may differ from the exact head); receipts record it as
    /// `q8_head_gemv_*` kernels. A head that is not a float matrix stays
    /// as it is.
    Q8 = 1,
}

impl bitnet_lm_head {
    fn from_u32(v: u32) -> Option<LmHead> {
        Some(match v {
            0 => LmHead::Exact,
            1 => LmHead::Q8,
            _ => return None,
        })
    }
}

/// Load progress: called with a fraction in `[0, 1]` on the loading thread;
/// return `false` to cancel the load (`BITNET_STATUS_CANCELLED`).
pub type bitnet_progress_callback =
    Option<unsafe extern "C" fn(progress: f32, user_data: *mut c_void) -> bool>;

/// Settings of `bitnet_model_load` / `bitnet_model_load_from_memory`. Get
/// the defaults from `bitnet_model_default_params` and change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_params {
    /// Worker threads of sessions that do not set their own; 0: one per
    /// core.
    pub n_threads: u32,
    /// A `bitnet_kernel` value.
    pub kernel: u32,
    /// Map the file instead of reading it into memory (file loads only).
    pub use_mmap: bool,
    /// Optional progress callback (NULL: none).
    pub progress_callback: bitnet_progress_callback,
    /// Passed to `progress_callback` unchanged.
    pub progress_callback_user_data: *mut c_void,
    /// A `bitnet_lm_head` value (added in ABI version 2).
    pub lm_head: u32,
    /// Strict validation (added in ABI version 3), as the CLI's `--strict`:
    /// every validation rule runs, reading every weight byte, and any
    /// error-level finding refuses the load with `BITNET_STATUS_VALIDATION`.
    /// Also on when the environment variable `BITNET_STRICT` is `1`. Either
    /// way every load runs the cheap rules (metadata, tokenizer, norms,
    /// per-tensor scales); see `bitnet_model_n_findings`.
    pub strict: bool,
}

/// Default model settings: one thread per core, automatic kernels, mmap, no
/// progress callback, the exact LM head, not strict. Thread-safe; never
/// fails.
#[unsafe(no_mangle)]
pub extern "C" fn bitnet_model_default_params() -> bitnet_model_params {
    const DEFAULT: bitnet_model_params = bitnet_model_params {
        n_threads: 0,
        kernel: bitnet_kernel::Auto as u32,
        use_mmap: true,
        progress_callback: None,
        progress_callback_user_data: core::ptr::null_mut(),
        lm_head: bitnet_lm_head::Exact as u32,
        strict: false,
    };
    ffi_infallible("bitnet_model_default_params", DEFAULT, || DEFAULT)
}

/// The model file's bytes: mapped or owned.
enum Bytes {
    Mapped(ModelFile),
    Owned(Box<[u8]>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Mapped(f) => f.bytes(),
            Self::Owned(b) => b,
        }
    }
}

self_cell::self_cell!(
    /// The bytes and the model view borrowing them.
    struct ModelCell {
        owner: Bytes,
        #[covariant]
        dependent: Model,
    }
);

/// A loaded model, shared by its handle and its sessions.
pub(crate) struct Loaded {
    cell: ModelCell,
    pub(crate) tokenizer: Option<Tokenizer>,
    /// Metadata keys and values rendered as text, in file order.
    metadata: Vec<(String, String)>,
    /// The validation findings of the load, rendered as text.
    findings: Vec<String>,
    pub(crate) platform: Platform,
    /// Default worker threads of sessions (resolved, at least 1).
    pub(crate) n_threads: usize,
    /// EOS and EOT ids.
    pub(crate) stop_tokens: Vec<u32>,
    /// The file it came from (None: loaded from memory).
    pub(crate) path: Option<PathBuf>,
    /// Milliseconds the load took.
    pub(crate) load_ms: f64,
}

impl Loaded {
    /// The model view.
    pub(crate) fn model(&self) -> &Model<'_> {
        self.cell.borrow_dependent()
    }

    /// The mapped file, when the model was loaded with mmap.
    pub(crate) fn mapped_file(&self) -> Option<&ModelFile> {
        match self.cell.borrow_owner() {
            Bytes::Mapped(f) => Some(f),
            Bytes::Owned(_) => None,
        }
    }

    pub(crate) fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            Error::new(
                bitnet_status::NoTokenizer,
                "the model file has no tokenizer metadata",
            )
        })
    }
}

/// A loaded model. Opaque; create with `bitnet_model_load` or
/// `bitnet_model_load_from_memory`, free with `bitnet_model_free`.
pub struct bitnet_model {
    pub(crate) inner: Arc<Loaded>,
}

// A model is shared across threads by the C API contract.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<bitnet_model>();
};

fn render_scalar(v: &Value<'_>) -> String {
    match *v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::Bool(x) => x.to_string(),
        Value::String(s) => s.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Array(ref a) => render_array(a),
    }
}

/// Arrays are summarized (a vocabulary has 100k+ entries): `array[u32; 3]`.
fn render_array(a: &Array<'_>) -> String {
    let elem = match a.elem_type() {
        ValueType::Array => "array",
        t => t.name(),
    };
    format!("array[{elem}; {}]", a.len())
}

fn report(params: &bitnet_model_params, progress: f32) -> Result<()> {
    if let Some(cb) = params.progress_callback {
        // SAFETY: the caller supplied `cb` with this signature and promised
        // it may be called with its user data during the load.
        let go_on = unsafe { cb(progress, params.progress_callback_user_data) };
        if !go_on {
            return Err(Error::new(
                bitnet_status::Cancelled,
                "the progress callback cancelled the load",
            ));
        }
    }
    Ok(())
}

fn load(
    bytes: Bytes,
    path: Option<PathBuf>,
    params: &bitnet_model_params,
    t0: Instant,
) -> Result<bitnet_model> {
    let choice = bitnet_kernel::from_u32(params.kernel)
        .ok_or_else(|| Error::invalid(format!("unknown kernel value {}", params.kernel)))?;
    let head = bitnet_lm_head::from_u32(params.lm_head)
        .ok_or_else(|| Error::invalid(format!("unknown lm_head value {}", params.lm_head)))?;
    let platform = Platform::with_choice(choice)?;
    let checks = ValidationOptions::without_policy(params.strict, false);
    report(params, 0.25)?;
    let mut extra = None;
    let mut findings = Vec::new();
    let cell = ModelCell::try_new(bytes, |b| -> Result<Model<'_>> {
        let g = Gguf::parse(b.as_slice())?;
        // The rules run before the loaders, as in the CLI: a strict load
        // refuses with the rule and tensor of the first error.
        let checked = checks.validate(b.as_slice(), &g, None);
        let name = path.as_ref().map_or_else(
            || "the model in memory".to_string(),
            |p| p.display().to_string(),
        );
        refusal(name, &checked)
            .map_err(|e| Error::new(bitnet_status::Validation, e.to_string()))?;
        findings = checked.findings.iter().map(ToString::to_string).collect();
        report(params, 0.5)?;
        let tokenizer = if g.get("tokenizer.ggml.model").is_some() {
            Some(Tokenizer::from_gguf(&g)?)
        } else {
            None
        };
        report(params, 0.75)?;
        let metadata = g
            .metadata()
            .iter()
            .map(|(k, v)| (k.to_string(), render_scalar(v)))
            .collect::<Vec<_>>();
        let mut model = Model::from_gguf(&g)?;
        if head == LmHead::Q8 {
            // false (a head that is not a float matrix) leaves it as stored,
            // as the native CLI does.
            model.weights.quantize_lm_head_q8()?;
        }
        if let Some(kind) = choice.lut() {
            // TL1 / TL2: repack the ternary projections once, as the CLI's
            // `--kernel tl1|tl2` does.
            let layout = Platform::detect().tl_layout(kind);
            model.weights.repack_tl(kind, layout)?;
        }
        extra = Some((tokenizer, metadata));
        Ok(model)
    })?;
    let (tokenizer, metadata) = extra.unwrap_or_default();
    let stop_tokens = tokenizer
        .as_ref()
        .map(|t| {
            let s = t.special_tokens();
            [s.eos, s.eot].into_iter().flatten().collect()
        })
        .unwrap_or_default();
    let n_threads = match params.n_threads {
        0 => bitnet_std::engine::default_threads(),
        n => n as usize,
    };
    report(params, 1.0)?;
    Ok(bitnet_model {
        inner: Arc::new(Loaded {
            cell,
            tokenizer,
            metadata,
            findings,
            platform,
            n_threads,
            stop_tokens,
            path,
            load_ms: t0.elapsed().as_secs_f64() * 1e3,
        }),
    })
}

fn path_from_c(path: &CStr) -> Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(path.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        path.to_str()
            .map(PathBuf::from)
            .map_err(|_| Error::new(bitnet_status::Utf8, "the path is not valid UTF-8"))
    }
}

/// Loads the GGUF model at `path` (NUL-terminated) with `params`; on
/// success writes a new handle to `*model_out`.
///
/// Ownership: the caller owns the handle and must release it with
/// `bitnet_model_free`. `*model_out` is written only on success.
///
/// Every load runs the cheap validation rules; a non-strict load keeps
/// their findings (`bitnet_model_n_findings`) and succeeds, a strict one
/// (`params.strict` or `BITNET_STRICT=1`) runs every rule and refuses any
/// error-level finding.
///
/// Errors: `NULL_ARG`, `INVALID_ARG` (unknown kernel or lm_head value), `IO`,
/// `GGUF`, `TOKENIZER`, `MODEL`, `QUANT`, `KERNEL_UNAVAILABLE`,
/// `CANCELLED`, `VALIDATION` (strict: the last error names the number of
/// error-level findings and the first one's rule and tensor, e.g.
/// `[norm.rms] output_norm.weight`).
///
/// Thread-safe: loads may run concurrently on several threads. The model
/// file must not be modified while a mapped model is in use.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `model_out` is NULL or valid
/// for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_load(
    path: *const c_char,
    params: bitnet_model_params,
    model_out: *mut *mut bitnet_model,
) -> bitnet_status {
    ffi_boundary("bitnet_model_load", || {
        let t0 = Instant::now();
        // SAFETY: `model_out` is NULL or writable (caller).
        let mut out = unsafe { try_out(model_out, "model_out") }?;
        if path.is_null() {
            return Err(crate::boundary::null_arg("path"));
        }
        // SAFETY: `path` is non-NULL and NUL-terminated (caller).
        let path = path_from_c(unsafe { CStr::from_ptr(path) })?;
        let bytes = if params.use_mmap {
            Bytes::Mapped(ModelFile::open(&path)?)
        } else {
            let data = std::fs::read(&path)
                .map_err(|e| Error::new(bitnet_status::Io, format!("{}: {e}", path.display())))?;
            Bytes::Owned(data.into_boxed_slice())
        };
        let model = load(bytes, Some(path), &params, t0)?;
        out.write(Box::into_raw(Box::new(model)));
        Ok(())
    })
}

/// Loads a GGUF model from the `len` bytes at `data`, which are copied:
/// the caller may free them as soon as this returns. `params.use_mmap` is
/// ignored. On success writes a new handle to `*model_out`.
///
/// Ownership: the caller owns the handle and must release it with
/// `bitnet_model_free`. `*model_out` is written only on success.
///
/// Validation and errors: as `bitnet_model_load` (no `IO`).
///
/// Thread-safe.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `model_out` is NULL or
/// valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_load_from_memory(
    data: *const c_void,
    len: usize,
    params: bitnet_model_params,
    model_out: *mut *mut bitnet_model,
) -> bitnet_status {
    ffi_boundary("bitnet_model_load_from_memory", || {
        let t0 = Instant::now();
        // SAFETY: `model_out` is NULL or writable (caller).
        let mut out = unsafe { try_out(model_out, "model_out") }?;
        if data.is_null() {
            return Err(crate::boundary::null_arg("data"));
        }
        // SAFETY: `data` points to `len` readable bytes (caller).
        let bytes = unsafe { try_slice(data.cast::<u8>(), len, "data") }?;
        let model = load(Bytes::Owned(bytes.into()), None, &params, t0)?;
        out.write(Box::into_raw(Box::new(model)));
        Ok(())
    })
}

/// Releases a model handle. NULL is a no-op. Sessions created from the
/// model keep its data alive and stay usable; the memory is released with
/// the last of them.
///
/// Thread-safety: no other call may use this handle during or after this
/// call (sessions are separate handles and are not affected).
///
/// # Safety
/// `model` is NULL or a handle from `bitnet_model_load*` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_free(model: *mut bitnet_model) {
    ffi_boundary("bitnet_model_free", || {
        if !model.is_null() {
            // SAFETY: `model` came from `Box::into_raw` in a load function
            // and is freed once (caller).
            drop(unsafe { Box::from_raw(model) });
        }
        Ok(())
    });
}

/// `&model.inner`, or a NULL-argument error.
///
/// # Safety
/// `model` is NULL or a live model handle.
pub(crate) unsafe fn loaded<'a>(model: *const bitnet_model) -> Result<&'a Arc<Loaded>> {
    // SAFETY: forwarded contract.
    Ok(&unsafe { try_ref(model, "model") }?.inner)
}

fn getter(func: &str, model: *const bitnet_model, f: impl FnOnce(&Loaded) -> usize) -> usize {
    ffi_boundary_value(func, 0, || {
        // SAFETY: `model` is NULL or a live handle (the getters' contract).
        let m = unsafe { loaded(model) }?;
        Ok(f(m))
    })
}

/// Vocabulary size (rows of the token embedding); 0 if `model` is NULL.
/// Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_n_vocab(model: *const bitnet_model) -> usize {
    getter("bitnet_model_n_vocab", model, |m| {
        m.model().config.vocab_size
    })
}

/// Context length the model was trained with (the largest session
/// `n_ctx`); 0 if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_n_ctx_train(model: *const bitnet_model) -> usize {
    getter("bitnet_model_n_ctx_train", model, |m| {
        m.model().config.seq_len
    })
}

/// Hidden size; 0 if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_n_embd(model: *const bitnet_model) -> usize {
    getter("bitnet_model_n_embd", model, |m| m.model().config.dim)
}

/// Number of transformer blocks; 0 if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_n_layer(model: *const bitnet_model) -> usize {
    getter("bitnet_model_n_layer", model, |m| m.model().config.n_layers)
}

/// The architecture (`general.architecture`: "llama", "bitnet" or
/// "bitnet-b1.58") as a static NUL-terminated string that must not be
/// freed; NULL if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_arch(model: *const bitnet_model) -> *const c_char {
    use bitnet_core::model::Arch;
    ffi_boundary_value("bitnet_model_arch", core::ptr::null(), || {
        // SAFETY: `model` is NULL or a live handle (caller).
        let m = unsafe { loaded(model) }?;
        let name = match m.model().config.arch {
            Arch::Llama => c"llama",
            Arch::Bitnet => c"bitnet",
            Arch::BitnetB158 => c"bitnet-b1.58",
        };
        Ok(name.as_ptr())
    })
}

fn special(
    func: &str,
    model: *const bitnet_model,
    f: impl FnOnce(&Tokenizer) -> Option<u32>,
) -> bitnet_token {
    ffi_boundary_value(func, BITNET_TOKEN_NULL, || {
        // SAFETY: `model` is NULL or a live handle (the getters' contract).
        let m = unsafe { loaded(model) }?;
        Ok(m.tokenizer
            .as_ref()
            .and_then(f)
            .unwrap_or(BITNET_TOKEN_NULL))
    })
}

/// Beginning-of-sequence token, or `BITNET_TOKEN_NULL` when the vocabulary
/// has none (or `model` is NULL or has no tokenizer). Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_token_bos(model: *const bitnet_model) -> bitnet_token {
    special("bitnet_model_token_bos", model, |t| t.special_tokens().bos)
}

/// End-of-sequence token, or `BITNET_TOKEN_NULL` (see
/// `bitnet_model_token_bos`). Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_token_eos(model: *const bitnet_model) -> bitnet_token {
    special("bitnet_model_token_eos", model, |t| t.special_tokens().eos)
}

/// Whether `token` ends generation (EOS or EOT); false if `model` is NULL.
/// Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_token_is_eog(
    model: *const bitnet_model,
    token: bitnet_token,
) -> bool {
    ffi_boundary_value("bitnet_model_token_is_eog", false, || {
        // SAFETY: `model` is NULL or a live handle (caller).
        let m = unsafe { loaded(model) }?;
        Ok(m.stop_tokens.contains(&token))
    })
}

/// Number of metadata key/value pairs; 0 if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_meta_count(model: *const bitnet_model) -> usize {
    getter("bitnet_model_meta_count", model, |m| m.metadata.len())
}

/// A list of strings of a loaded model that C reads item by item
/// (metadata keys, validation findings).
struct List {
    /// The list's size in messages ("meta count").
    count: &'static str,
    /// One item in messages ("the key").
    item: &'static str,
    len: fn(&Loaded) -> usize,
    get: fn(&Loaded, usize) -> Option<&str>,
}

/// The body of the `*_by_index` getters: item `index` of `list`,
/// NUL-terminated, into `buf`, its length to `*len_out`.
///
/// # Safety
/// `model` is NULL or a live model handle; `buf` is NULL or writable for
/// `buf_len` bytes; `len_out` is NULL or writable.
unsafe fn copy_by_index(
    func: &str,
    list: &List,
    model: *const bitnet_model,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    ffi_boundary(func, || {
        // SAFETY: pointers as documented (caller).
        let (m, dst, mut len_out) = unsafe {
            (
                loaded(model)?,
                try_buf(buf, buf_len, "buf")?,
                try_out(len_out, "len_out")?,
            )
        };
        let text = (list.get)(m, index).ok_or_else(|| {
            Error::invalid(format!("index {index} >= {} {}", list.count, (list.len)(m)))
        })?;
        finish_copy(
            list.item,
            copy_c_str(text.as_bytes(), dst),
            &mut len_out,
            true,
        )
    })
}

/// Copies metadata key number `index` (file order), NUL-terminated, into
/// `buf` and writes its length (without the NUL) to `*len_out`.
///
/// Errors: `NULL_ARG`; `INVALID_ARG` when `index >= bitnet_model_meta_count`;
/// `BUFFER_TOO_SMALL` when `buf_len <= length`: then only `*len_out` is
/// written, with the length (allocate `*len_out + 1` bytes and call again).
/// `buf` may be NULL when `buf_len` is 0. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle; `buf` is NULL or writable for
/// `buf_len` bytes; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_meta_key_by_index(
    model: *const bitnet_model,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    const META_KEYS: List = List {
        count: "meta count",
        item: "the key",
        len: |m| m.metadata.len(),
        get: |m, i| m.metadata.get(i).map(|(k, _)| k.as_str()),
    };
    // SAFETY: the pointers as documented (caller).
    unsafe {
        copy_by_index(
            "bitnet_model_meta_key_by_index",
            &META_KEYS,
            model,
            index,
            buf,
            buf_len,
            len_out,
        )
    }
}

/// Copies the value of metadata `key` (NUL-terminated), rendered as text,
/// into `buf` (NUL-terminated) and writes its length to `*len_out`. Numbers
/// are in decimal, booleans `true`/`false`, strings as they are; arrays are
/// summarized as `array[TYPE; N]`.
///
/// Errors: `NULL_ARG`; `UTF8` (key not UTF-8); `INVALID_ARG` when the key is
/// absent; `BUFFER_TOO_SMALL` as in `bitnet_model_meta_key_by_index`.
/// Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle; `key` is NULL or NUL-terminated;
/// `buf` is NULL or writable for `buf_len` bytes; `len_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_meta_val_str(
    model: *const bitnet_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    ffi_boundary("bitnet_model_meta_val_str", || {
        // SAFETY: pointers as documented (caller).
        let (m, dst, mut len_out) = unsafe {
            (
                loaded(model)?,
                try_buf(buf, buf_len, "buf")?,
                try_out(len_out, "len_out")?,
            )
        };
        if key.is_null() {
            return Err(crate::boundary::null_arg("key"));
        }
        // SAFETY: `key` is non-NULL and NUL-terminated (caller).
        let key = unsafe { CStr::from_ptr(key) }
            .to_str()
            .map_err(|_| Error::new(bitnet_status::Utf8, "the key is not valid UTF-8"))?;
        let (_, value) = m
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| Error::invalid(format!("no metadata key {key:?}")))?;
        finish_copy(
            "the value",
            copy_c_str(value.as_bytes(), dst),
            &mut len_out,
            true,
        )
    })
}

/// Number of validation findings of the load (warnings and, when not
/// strict, errors; a strict load that succeeded has no error-level
/// finding); 0 for a clean model or if `model` is NULL. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_n_findings(model: *const bitnet_model) -> usize {
    getter("bitnet_model_n_findings", model, |m| m.findings.len())
}

/// Copies validation finding number `index` (rule order), rendered as one
/// line of text and NUL-terminated, into `buf` and writes its length
/// (without the NUL) to `*len_out`. The text is what `bitnet validate`
/// prints: `SEVERITY [RULE] TENSOR: MESSAGE (measured ..., expected [..])`,
/// e.g. `error [norm.rms] output_norm.weight: ...`.
///
/// Errors: `NULL_ARG`; `INVALID_ARG` when `index >= bitnet_model_n_findings`;
/// `BUFFER_TOO_SMALL` as in `bitnet_model_meta_key_by_index`. Thread-safe.
///
/// # Safety
/// `model` is NULL or a live model handle; `buf` is NULL or writable for
/// `buf_len` bytes; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bitnet_model_finding_by_index(
    model: *const bitnet_model,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitnet_status {
    const FINDINGS: List = List {
        count: "findings count",
        item: "the finding",
        len: |m| m.findings.len(),
        get: |m, i| m.findings.get(i).map(String::as_str),
    };
    // SAFETY: the pointers as documented (caller).
    unsafe {
        copy_by_index(
            "bitnet_model_finding_by_index",
            &FINDINGS,
            model,
            index,
            buf,
            buf_len,
            len_out,
        )
    }
}
