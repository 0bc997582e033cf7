//! Any bytes: the GGUF reader returns Ok or Err, never panics, and on Ok
//! every accessor stays in bounds (core/tests/common/replay.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/replay.rs"]
mod replay;

fuzz_target!(|data: &[u8]| replay::gguf_parse(data));
