//! `bitnet-core`: the `no_std` (+ `alloc`) heart of the bitnet engine.
//!
//! Everything here works on byte slices and numbers handed in by the caller:
//! no threads, no files, no clocks. `bitnet-std` adds those.
//!
//! Modules:
//! - [`gguf`]: a hardened zero-copy GGUF v2/v3 reader and a writer.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod gguf;
pub mod kernels;
pub mod model;
pub mod parallel;
pub mod quant;
pub mod receipt;
pub mod sample;
pub mod tokenizer;
pub mod validate;
