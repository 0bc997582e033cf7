//! The transformer: hyper-parameters ([`Config`]), zero-copy weights
//! ([`Weights`]), preallocated buffers and KV cache ([`RunState`]), one
//! readable forward pass ([`Model::forward`]) and streaming generation
//! ([`Generator`]).
//!
//! The shape follows llama2.c (`Config`, `Weights`, `RunState`, `forward`),
//! extended to a batch of positions so that a prompt is evaluated in one call
//! (prefill) and generation feeds one token at a time (decode).
//!
//! Architectures (GGUF `general.architecture`, DESIGN.md §6):
//! - `llama`: interleaved (NORM) RoPE, SwiGLU, `output.weight` when present.
//! - `bitnet`: NEOX RoPE, sub-norms before `attn_output` and `ffn_down`,
//!   SwiGLU, optional one-element `*.scale` tensors on every projection, the
//!   LM head always tied to `token_embd` (as upstream llama.cpp).
//! - `bitnet-b1.58`: as `bitnet` with relu² instead of SiLU and
//!   `output.weight` when present.
//!
//! Every projection runs through [`crate::quant::QuantizedLinear`]: weight
//! matrices are never dequantized.

mod attention;
mod config;
mod error;
mod forward;
mod generate;
mod kv_cache;
mod math;
mod weights;

pub use config::{Arch, Config, FfnActivation, MAX_LAYERS, RopeStyle};
pub use error::ModelError;
pub use forward::{Logits, Model, RunState};
pub use generate::{Generator, StopReason};
pub use kv_cache::KvCache;
pub use math::{exp_f32, rope_cache};
pub use weights::{Embedding, LayerWeights, Linear, Weights};
