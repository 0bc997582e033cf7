//! The stored GPU receipt (ci/receipts/h100-inference.json, made on the
//! GPU machine by `cargo xtask benchmark --backend gpu`, see
//! ci/receipts/README.md) passes verification with `--require-gpu-kernels`;
//! a CPU receipt does not.

use std::path::PathBuf;

use bitnet_core::receipt::{Rejection, verify};
use bitnet_std::receipt::{policy_for, read_receipt};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn stored_gpu_receipt_passes_with_require_gpu_kernels() {
    let r = read_receipt(&root().join("ci/receipts/h100-inference.json")).unwrap();
    assert_eq!(r.backend.as_str(), "cuda");
    assert_eq!(r.compute_path.as_str(), "real");
    let fp = r.fingerprint.as_ref().expect("fingerprint");
    assert_eq!(fp.gpu_cc.as_deref(), Some("9.0"));
    assert!(fp.gpu_name.as_deref().is_some_and(|n| n.contains("NVIDIA")));
    for id in [
        "embed_cuda",
        "i2s_gemv_persist_cuda_dp4a",
        "i2s_gemv_glu_persist_cuda_dp4a",
        "attention_rope_persist_cuda",
        "f16_gemv_rmsnorm_cuda",
        "argmax_cuda",
    ] {
        assert!(r.kernels.iter().any(|k| k.id.as_str() == id), "{id}");
    }
    verify(&r, &policy_for(&r, None, true)).unwrap();
    verify(&r, &policy_for(&r, None, false)).unwrap();
}

#[test]
fn cpu_receipt_fails_with_require_gpu_kernels() {
    let r = read_receipt(&root().join("tests/golden/receipts/receipt-1.1.0.json")).unwrap();
    assert_eq!(r.backend.as_str(), "cpu");
    assert!(matches!(
        verify(&r, &policy_for(&r, None, true)),
        Err(Rejection::NoGpuKernel { .. })
    ));
}
