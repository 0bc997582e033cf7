//! Any bytes through everything a model load does, then one forward step
//! on whatever loads, checked across kernel tiers and TL repacks; the
//! checks live in core/tests/common/replay.rs so that `cargo test` replays
//! the regression corpus through the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/replay.rs"]
mod replay;

fuzz_target!(|data: &[u8]| {
    let _ = replay::model_load(data);
});
