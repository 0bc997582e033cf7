//! bitnet in the browser: a small `wasm_bindgen` API over `bitnet-core`.
//!
//! - [`engine`]: the model in memory, tokenization, generation through
//!   core's `Generator` and receipts (backend "wasm"), in plain Rust so it
//!   builds and is tested on the host;
//! - [`bindings`]: the JS surface (`peekHeader`, `ModelLoader`, `Engine`),
//!   errors as JS exceptions with the engine's message.
//!
//! `cargo xtask wasm` builds it for `wasm32-unknown-unknown` with simd128
//! and runs `wasm-bindgen --target web` into a servable folder with the
//! demo page of `wasm/www/`, where inference runs in a Web Worker.

extern crate alloc;

pub mod bindings;
pub mod engine;

/// The crate version, for display in the demo page.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
