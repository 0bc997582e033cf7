//! `bitnet perplexity` on the shipped model's held-out text agrees with the
//! PyTorch evaluation of the same quantized model (xtask/train/eval.py,
//! recorded in xtask/train/eval_result.json) within 1%.

use std::path::PathBuf;
use std::process::Command;

/// Relative agreement required by the issue (1%).
const PPL_REL_TOL: f64 = 0.01;
/// The held-out split of tinyshakespeare.txt (the last 10%, by character),
/// exactly as eval_result.json's `held_out` field states it.
const HELD_OUT: (usize, usize) = (1003854, 1115394);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn held_out_perplexity_matches_pytorch() {
    let eval: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("xtask/train/eval_result.json")).unwrap(),
    )
    .unwrap();
    let held_out = eval["held_out"].as_str().unwrap();
    assert!(
        held_out.contains(&format!("[{}:{}]", HELD_OUT.0, HELD_OUT.1)),
        "eval_result.json's split changed: {held_out}"
    );
    let want = eval["ppl"].as_f64().unwrap();
    let ctx = eval["ctx"].as_u64().unwrap();
    let data = std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"));
    let text = std::fs::read_to_string(data.join("tinyshakespeare.txt")).unwrap();
    // The corpus is ASCII, so characters are bytes.
    assert!(text.is_ascii());
    let path = std::env::temp_dir().join(format!("bitnet-heldout-{}.txt", std::process::id()));
    std::fs::write(&path, &text[HELD_OUT.0..HELD_OUT.1]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["perplexity", "-m"])
        .arg(repo().join("tests/models/shakespeare-i2s.gguf"))
        .arg("-f")
        .arg(&path)
        .args(["-c", &ctx.to_string()])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Final estimate: PPL = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a Final estimate line");
    let rel = (got - want).abs() / want;
    println!("bitnet {got:.4} vs PyTorch {want:.4}: {:.4}%", rel * 100.0);
    assert!(rel <= PPL_REL_TOL, "bitnet {got} vs PyTorch {want}");
}
