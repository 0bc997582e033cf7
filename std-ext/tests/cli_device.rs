//! `bitnet run --device` and `-ngl` (llama.cpp's `--n-gpu-layers`): the
//! CUDA backend is chosen only when asked for, and asking for it where it
//! cannot run (a build without the `cuda` feature, or no CUDA device) is an
//! error, never a silent run on the CPU. No GPU is needed for these tests;
//! on a machine with one, the `cuda` cases are covered by the GPU suite
//! (`bitnet-cuda-suite`) instead.

use std::path::PathBuf;
use std::process::Command;

fn model(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/models")
        .join(name)
        .display()
        .to_string()
}

fn bitnet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether this machine has an NVIDIA driver device node (then `cuda` may
/// really run, and the no-device error is not expected).
fn has_nvidia_device() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
}

fn run_args<'a>(m: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "-m", m, "--tokens", "1", "-n", "3", "--temp", "0"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn cuda_without_a_device_is_a_clear_error() {
    if has_nvidia_device() {
        eprintln!("an NVIDIA device is present: the no-device error is not expected here");
        return;
    }
    let m = model("shakespeare-i2s.gguf");
    for extra in [
        &["--device", "cuda"][..],
        &["-ngl", "99"][..],
        &["--n-gpu-layers", "4"][..],
    ] {
        let (code, stdout, stderr) = bitnet(&run_args(&m, extra));
        assert_eq!(code, 1, "{extra:?}: {stderr}");
        assert!(stdout.is_empty(), "{extra:?} printed {stdout:?}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("CUDA"),
            "{extra:?}: {stderr}"
        );
    }
}

#[test]
fn partial_offload_and_contradictions_are_refused() {
    let m = model("shakespeare-i2s.gguf");
    let (code, _, stderr) = bitnet(&run_args(&m, &["-ngl", "1"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("splitting a model between CPU and GPU"),
        "{stderr}"
    );
    let (code, _, stderr) = bitnet(&run_args(&m, &["--device", "cuda", "-ngl", "0"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("choose one"), "{stderr}");
    let (code, _, stderr) = bitnet(&run_args(&m, &["--device", "cuda", "--kernel", "tl2"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("CPU kernels"), "{stderr}");
    let (code, _, stderr) = bitnet(&run_args(&m, &["--device", "tpu"]));
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown device 'tpu'"), "{stderr}");
}

#[test]
fn ngl_zero_and_device_cpu_are_the_cpu_path() {
    let m = model("shakespeare-i2s.gguf");
    let plain = bitnet(&run_args(&m, &["--json"]));
    assert_eq!(plain.0, 0, "{}", plain.2);
    for extra in [
        &["--json", "-ngl", "0"][..],
        &["--json", "--device", "cpu"][..],
    ] {
        let (code, stdout, stderr) = bitnet(&run_args(&m, extra));
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        assert_eq!(stdout, plain.1, "{extra:?}");
    }
}
