//! Any bytes as a receipt file: parse, verify under every policy shape,
//! writer round trip (core/tests/common/replay.rs), with the bandwidth
//! ceiling the CLI derives from the receipt's own fingerprint.
#![no_main]

use bitnet_core::receipt;
use bitnet_std::receipt::bandwidth_ceiling;
use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/replay.rs"]
mod replay;

fuzz_target!(|data: &[u8]| {
    let ceiling = receipt::parse(data).map_or(0.0, |r| bandwidth_ceiling(&r));
    replay::receipt_verify(data, ceiling);
});
