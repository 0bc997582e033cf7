//! The `wasm_bindgen` surface: a few functions and two classes. Every
//! failure becomes a JS `Error` carrying the engine's message.
//!
//! ```js
//! import init, { peekHeader, ModelLoader } from "./pkg/bitnet_wasm.js";
//! await init();
//! peekHeader(prefix);            // {complete, needAtLeast} or header facts
//! const loader = new ModelLoader(file.size);
//! loader.push(chunk);            // ... for every chunk of the file
//! const engine = loader.finish(file.name, () => performance.now(),
//!                              { strict: false });  // options optional
//! engine.info().findings;        // what the validation rules found
//! engine.generate("Once upon a time", { maxTokens: 32, temperature: 0 },
//!                 (id, text) => true /* false stops */);
//! engine.receipt(loadMs, new Date().toISOString(), cpu, navigator.userAgent);
//! ```

use alloc::format;
use alloc::string::{String, ToString};

use bitnet_core::gguf::{self, PeekError};
use bitnet_core::sample::SamplerParams;
use bitnet_core::tokenizer::DecodeOptions;
use js_sys::{Function, Object, Reflect, Uint32Array};
use wasm_bindgen::prelude::*;

use crate::engine::{
    self, Error, GenerateOptions, HostInfo, LmHead, LoadOptions, LoadedModel, Loader, RunRecord,
};

/// Tokens generated when the options do not say.
const DEFAULT_MAX_TOKENS: usize = 128;

impl From<Error> for JsError {
    fn from(e: Error) -> Self {
        JsError::new(&e.to_string())
    }
}

/// Sets `obj[key] = value`.
fn set(obj: &Object, key: &str, value: impl Into<JsValue>) -> Result<(), JsValue> {
    Reflect::set(obj, &JsValue::from_str(key), &value.into()).map(drop)
}

/// `opts[key]` as a number, `None` when absent or `undefined`.
fn num(opts: &JsValue, key: &str) -> Result<Option<f64>, JsValue> {
    if opts.is_undefined() || opts.is_null() {
        return Ok(None);
    }
    let v = Reflect::get(opts, &JsValue::from_str(key))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_f64()
        .filter(|x| x.is_finite())
        .map(Some)
        .ok_or_else(|| JsError::new(&format!("option {key} must be a finite number")).into())
}

/// `opts[key]` as a non-negative integer below 2^53.
fn count(opts: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    match num(opts, key)? {
        None => Ok(None),
        Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0 => {
            Ok(Some(x as u64))
        }
        Some(x) => Err(JsError::new(&format!(
            "option {key} must be a non-negative integer, got {x}"
        ))
        .into()),
    }
}

/// The crate version, for display in the demo page.
#[wasm_bindgen]
pub fn version() -> String {
    crate::version().to_string()
}

/// Largest model file the browser build accepts, in bytes.
#[wasm_bindgen(js_name = maxModelBytes)]
pub fn max_model_bytes() -> f64 {
    engine::MAX_MODEL_BYTES as f64
}

/// Reads a GGUF header from the first bytes of a file. Returns
/// `{complete: false, needAtLeast}` while the header runs past `prefix`,
/// else `{complete: true, version, nTensors, nKv, architecture, name,
/// dataOffset, fileBytes}`; throws for a file that is not a valid GGUF
/// header.
#[wasm_bindgen(js_name = peekHeader)]
pub fn peek_header(prefix: &[u8]) -> Result<Object, JsValue> {
    let out = Object::new();
    match gguf::peek_header(prefix) {
        Err(PeekError::NeedMoreBytes { need_at_least, .. }) => {
            set(&out, "complete", false)?;
            set(&out, "needAtLeast", need_at_least as f64)?;
        }
        Err(PeekError::Invalid(e)) => {
            return Err(JsError::new(&format!("not a usable GGUF file: {e}")).into());
        }
        Ok(h) => {
            set(&out, "complete", true)?;
            set(&out, "version", h.version)?;
            set(&out, "nTensors", h.n_tensors as f64)?;
            set(&out, "nKv", h.n_kv as f64)?;
            set(&out, "architecture", h.architecture)?;
            set(&out, "name", h.name)?;
            set(&out, "dataOffset", h.data_offset as f64)?;
            set(&out, "fileBytes", h.file_bytes as f64)?;
        }
    }
    Ok(out)
}

/// Receives a model file chunk by chunk into memory reserved up front.
#[wasm_bindgen]
pub struct ModelLoader {
    inner: Loader,
}

#[wasm_bindgen]
impl ModelLoader {
    /// A loader for a file of `total_bytes`; throws when the file is too
    /// large for wasm32 or memory cannot grow.
    #[wasm_bindgen(constructor)]
    pub fn new(total_bytes: f64) -> Result<ModelLoader, JsError> {
        if !(total_bytes >= 0.0 && total_bytes.fract() == 0.0) {
            return Err(JsError::new(&format!("bad file size {total_bytes}")));
        }
        Ok(Self {
            inner: Loader::new(total_bytes as u64)?,
        })
    }

    /// Appends the next chunk of the file.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        Ok(self.inner.push(chunk)?)
    }

    /// Bytes received so far.
    pub fn received(&self) -> f64 {
        self.inner.received() as f64
    }

    /// Validates the whole file and returns the engine; `clock` is called
    /// for timings in ms (`() => performance.now()`). `options` (optional):
    /// `{strict}`; `strict: true` runs every validation rule and throws
    /// for an error-level finding, naming the rule and the tensor (the
    /// native `--strict`); otherwise the cheap rules run and their findings
    /// are in `info().findings`. Consumes the loader.
    pub fn finish(
        self,
        file_name: &str,
        clock: Function,
        options: JsValue,
    ) -> Result<Engine, JsValue> {
        let opts = load_options(&options)?;
        Ok(Engine {
            model: self.inner.finish(file_name, opts).map_err(JsError::from)?,
            clock,
            last: None,
        })
    }
}

/// A loaded model: info, tokenizer, generation, receipts.
#[wasm_bindgen]
pub struct Engine {
    model: LoadedModel,
    clock: Function,
    last: Option<RunRecord>,
}

#[wasm_bindgen]
impl Engine {
    /// `{fileName, name, arch, fileBytes, parameters, quantTypes, layers,
    /// dim, heads, kvHeads, vocab, context, tokenizer, bos, eos, sha256,
    /// simd128, findings}`; `findings` is an array of the load's validation
    /// findings, one string each (empty for a clean model).
    pub fn info(&self) -> Result<Object, JsValue> {
        let s = self.model.summary();
        let o = Object::new();
        set(&o, "fileName", s.file_name.as_str())?;
        set(&o, "name", s.name.as_str())?;
        set(&o, "arch", s.arch.as_str())?;
        set(&o, "fileBytes", s.file_bytes as f64)?;
        set(&o, "parameters", s.parameters as f64)?;
        set(&o, "quantTypes", s.quant_types.join(", "))?;
        set(&o, "layers", s.layers as f64)?;
        set(&o, "dim", s.dim as f64)?;
        set(&o, "heads", s.heads as f64)?;
        set(&o, "kvHeads", s.kv_heads as f64)?;
        set(&o, "vocab", s.vocab as f64)?;
        set(&o, "context", s.context as f64)?;
        set(&o, "tokenizer", s.tokenizer.as_str())?;
        set(&o, "bos", s.bos)?;
        set(&o, "eos", s.eos)?;
        set(&o, "sha256", s.sha256_hex.as_str())?;
        set(&o, "simd128", cfg!(target_feature = "simd128"))?;
        let findings = js_sys::Array::new();
        for f in &s.findings {
            findings.push(&JsValue::from_str(f));
        }
        set(&o, "findings", findings)?;
        Ok(o)
    }

    /// Token ids of `text` as generation encodes a prompt (BOS per the
    /// vocabulary, special tokens parsed).
    pub fn tokenize(&self, text: &str) -> Result<Uint32Array, JsError> {
        let ids = self.model.encode_prompt(text)?;
        Ok(Uint32Array::from(ids.as_slice()))
    }

    /// Text of `ids` (special tokens not rendered, invalid UTF-8 as U+FFFD).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, JsError> {
        Ok(self.model.decode(ids, DecodeOptions::default())?)
    }

    /// Generates after `prompt`. `options`: `{maxTokens, temperature,
    /// topK, topP, minP, repeatPenalty, repeatLastN, seed, stopAtEos,
    /// lmHead}` (absent: llama.cpp's defaults, 128 tokens, stop at EOS, the
    /// exact head); `lmHead: "q8"` runs an int8 copy of a float LM head
    /// (as the native `--lm-head q8`: faster, changes numerics, named in
    /// the receipt), `"f16"` the file's head; other values throw;
    /// `temperature: 0` is greedy. `on_token(id, text)` runs after every
    /// token; returning `false` stops. Returns `{promptIds, ids, text tail,
    /// stop, prefillMs, decodeMs, tokensPerSec}`; throws on failure,
    /// including an exception thrown by `on_token`.
    pub fn generate(
        &mut self,
        prompt: &str,
        options: JsValue,
        on_token: &Function,
    ) -> Result<Object, JsValue> {
        let opts = gen_options(&options)?;
        let clock = self.clock.clone();
        let mut clock_error = None;
        let mut now = || match clock.call0(&JsValue::NULL).map(|v| v.as_f64()) {
            Ok(Some(t)) => t,
            _ => {
                clock_error = Some("clock() must return a number (ms)");
                0.0
            }
        };
        let mut thrown = None;
        let mut on = |id: u32, text: &str| match on_token.call2(
            &JsValue::NULL,
            &JsValue::from(id),
            &JsValue::from_str(text),
        ) {
            Ok(v) => v.as_bool() != Some(false),
            Err(e) => {
                thrown = Some(e);
                false
            }
        };
        let run = self.model.generate(prompt, opts, &mut now, &mut on);
        if let Some(e) = thrown {
            return Err(e);
        }
        if let Some(msg) = clock_error {
            return Err(JsError::new(msg).into());
        }
        let run = run.map_err(JsError::from)?;
        let o = Object::new();
        set(
            &o,
            "promptIds",
            Uint32Array::from(run.prompt_ids.as_slice()),
        )?;
        set(&o, "ids", Uint32Array::from(run.generated.as_slice()))?;
        set(&o, "tail", run.tail.as_str())?;
        set(&o, "stop", run.stop)?;
        set(&o, "prefillMs", run.prefill_ms)?;
        set(&o, "decodeMs", run.decode_ms)?;
        set(&o, "tokensPerSec", run.decode_tokens_per_sec())?;
        self.last = Some(run);
        Ok(o)
    }

    /// The receipt (JSON, schema 1.1.0, backend "wasm") of the last
    /// generation. `load_ms`: the page's load time; `timestamp`: RFC 3339
    /// (`new Date().toISOString()`); `cpu` and `os`: what the page knows of
    /// the host (`navigator.hardwareConcurrency`, `navigator.userAgent`).
    pub fn receipt(
        &self,
        load_ms: f64,
        timestamp: &str,
        cpu: &str,
        os: &str,
    ) -> Result<String, JsError> {
        let run = self
            .last
            .as_ref()
            .ok_or_else(|| JsError::new("no generation has run yet"))?;
        let host = HostInfo {
            cpu: cpu.to_string(),
            os: os.to_string(),
        };
        let r = self.model.receipt(run, load_ms, timestamp, &host)?;
        let json = bitnet_core::receipt::to_json(&r)
            .map_err(|e| JsError::new(&format!("receipt: {e}")))?;
        String::from_utf8(json).map_err(|_| JsError::new("receipt: JSON is not UTF-8"))
    }
}

/// `opts[key]` as a boolean, `None` when absent or `undefined`; anything
/// else but a boolean throws (a typo'd `strict: "yes"` must not silently
/// load unchecked).
fn flag(opts: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    if !opts.is_object() {
        return Ok(None);
    }
    let v = Reflect::get(opts, &JsValue::from_str(key))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_bool()
        .map(Some)
        .ok_or_else(|| JsError::new(&format!("option {key} must be true or false")).into())
}

/// Reads the options object of [`ModelLoader::finish`].
fn load_options(o: &JsValue) -> Result<LoadOptions, JsValue> {
    Ok(LoadOptions {
        strict: flag(o, "strict")?.unwrap_or(false),
    })
}

/// Reads the options object of [`Engine::generate`].
fn gen_options(o: &JsValue) -> Result<GenerateOptions, JsValue> {
    let d = SamplerParams::default();
    let f = |key, default: f32| num(o, key).map(|v| v.map_or(default, |x| x as f32));
    let usize_of = |key, default: usize| {
        count(o, key).map(|v| v.map_or(default, |x| usize::try_from(x).unwrap_or(usize::MAX)))
    };
    let sampler = SamplerParams {
        temperature: f("temperature", d.temperature)?,
        top_k: usize_of("topK", d.top_k)?,
        top_p: f("topP", d.top_p)?,
        min_p: f("minP", d.min_p)?,
        repeat_penalty: f("repeatPenalty", d.repeat_penalty)?,
        repeat_last_n: usize_of("repeatLastN", d.repeat_last_n)?,
        seed: count(o, "seed")?.unwrap_or(d.seed),
    };
    if sampler.repeat_penalty <= 0.0 {
        return Err(JsError::new("option repeatPenalty must be positive").into());
    }
    let max_new = usize_of("maxTokens", DEFAULT_MAX_TOKENS)?;
    if max_new == 0 {
        return Err(JsError::new("option maxTokens must be at least 1").into());
    }
    let stop_at_eos = if o.is_object() {
        Reflect::get(o, &JsValue::from_str("stopAtEos"))?
            .as_bool()
            .unwrap_or(true)
    } else {
        true
    };
    let lm_head = if o.is_object() {
        let v = Reflect::get(o, &JsValue::from_str("lmHead"))?;
        if v.is_undefined() {
            LmHead::Exact
        } else {
            let s = v.as_string().ok_or_else(|| {
                JsError::new("option lmHead must be the string \"f16\" or \"q8\"")
            })?;
            LmHead::parse(&s).map_err(JsError::from)?
        }
    } else {
        LmHead::Exact
    };
    Ok(GenerateOptions {
        sampler,
        max_new,
        stop_at_eos,
        lm_head,
    })
}
