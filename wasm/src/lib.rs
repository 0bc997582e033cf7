//! bitnet in the browser: a wasm-bindgen API over `bitnet-core`.

/// The crate version, for display in the demo page.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
