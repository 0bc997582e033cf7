//! Any bytes: the GGUF reader returns Ok or Err, never panics, and on Ok
//! every accessor stays in bounds.
#![no_main]

use bitnet_core::gguf::Gguf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Gguf::parse(data) {
        for t in g.tensors() {
            assert_eq!(g.tensor_data(t).len() as u64, t.size);
        }
        for (k, v) in g.metadata() {
            assert!(g.get(k).is_some());
            let _ = v.to_owned_value();
        }
    }
});
