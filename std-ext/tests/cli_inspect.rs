//! `bitnet inspect` end to end: valid files exit 0 with a summary; hostile
//! files exit 1 with one `error:` line, fast, under a 256 MB address-space cap.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Address-space cap for each run (the 256 MB budget).
const MEMORY_CAP_BYTES: u64 = 256 << 20;
/// Wall-clock budget for each run.
const TIME_BUDGET: Duration = Duration::from_secs(1);

fn shared_data() -> PathBuf {
    std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// Runs `bitnet inspect` under `prlimit --as` and returns output and time.
fn inspect(file: &Path, json: bool) -> (Output, Duration) {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={MEMORY_CAP_BYTES}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_bitnet"))
        .arg("inspect")
        .arg(file);
    if json {
        cmd.arg("--json");
    }
    let t = Instant::now();
    let out = cmd.output().expect("prlimit (util-linux) runs");
    (out, t.elapsed())
}

#[test]
fn valid_files_exit_zero_with_summary() {
    for (name, needle) in [
        ("stories260K.gguf", "blk.4.ffn_up.weight"),
        (
            "ggml-vocab-gpt-2.gguf",
            "tokenizer: gpt2 with 50257 tokens, 50000 merges",
        ),
        (
            "ggml-vocab-llama-spm.gguf",
            "tokenizer: llama with 32000 tokens",
        ),
    ] {
        let (out, t) = inspect(&shared_data().join(name), false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(needle), "{name}: {stdout}");
        assert!(t < TIME_BUDGET, "{name} took {t:?}");
    }
}

#[test]
fn json_output_is_one_parseable_object() {
    let (out, _) = inspect(&shared_data().join("stories260K.gguf"), true);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 48);
    assert_eq!(v["architecture"], "llama");
    // Sum of n_elements over all tensors, as gguf-py reports it.
    assert_eq!(v["parameters"], 292_800);
}

fn hostile_cases() -> Vec<(String, Vec<u8>)> {
    let good = std::fs::read(shared_data().join("stories260K.gguf")).unwrap();
    let mut cases = vec![
        ("empty".to_string(), vec![]),
        ("bad-magic".to_string(), b"GGML\x03\0\0\0".to_vec()),
        (
            "version-1".to_string(),
            b"GGUF\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
        ),
        (
            "mangled".to_string(),
            std::fs::read(shared_data().join("corrupt-mangled-llama-spm.gguf")).unwrap(),
        ),
    ];
    let mut huge = b"GGUF\x03\0\0\0".to_vec();
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("huge-counts".to_string(), huge));
    // Truncations of a real file: inside the header, the metadata, the
    // tensor infos and the data.
    for cut in [10, 100, 5000, 14000, 14176 + 1000, good.len() - 1] {
        cases.push((format!("cut-{cut}"), good[..cut].to_vec()));
    }
    // A key length made enormous.
    let mut big_key = good.clone();
    big_key[24..32].copy_from_slice(&(70_000_000_000u64).to_le_bytes());
    cases.push(("key-length-7e10".to_string(), big_key));
    cases
}

#[test]
fn hostile_files_exit_nonzero_with_error_line() {
    let dir = std::env::temp_dir().join(format!("bitnet-inspect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in hostile_cases() {
        let path = dir.join(format!("{name}.gguf"));
        std::fs::write(&path, &bytes).unwrap();
        let (out, t) = inspect(&path, false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(t < TIME_BUDGET, "{name} took {t:?}");
        if name == "mangled" {
            // The damaged value sits before the unreadable key: the error
            // names that entry.
            assert!(
                stderr.contains("after 'llama.attention.layer_norm_rms_epsilon'"),
                "{stderr}"
            );
        }
    }
    let (out, _) = inspect(&dir.join("does-not-exist.gguf"), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// BitNet-b1.58-2B-4T's GGUF has the Llama-3 vocabulary but no
/// `tokenizer.ggml.pre` (issue 3): `inspect` must say that the engine
/// inferred llama-bpe, and not claim so when the key is present.
#[test]
fn llama3_vocabulary_without_pre_reports_the_inferred_pre_tokenizer() {
    use bitnet_core::gguf::GgufWriter;
    use bitnet_core::tokenizer::Vocab;

    let text = std::fs::read_to_string(shared_data().join("llama3-tokenizer.model")).unwrap();
    let dir = std::env::temp_dir().join(format!("bitnet-inspect-pre-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (pre, want) in [
        (
            None,
            "engine pre-tokenizer: llama-bpe (inferred: tokenizer.ggml.pre is absent)",
        ),
        (Some("llama-bpe"), "engine pre-tokenizer: llama-bpe"),
    ] {
        let mut vocab = Vocab::llama3_from_tiktoken(&text).unwrap();
        vocab.pre = pre.map(str::to_string);
        let mut w = GgufWriter::new();
        vocab.write_gguf(&mut w);
        let path = dir.join(format!("llama3-vocab-pre-{}.gguf", pre.unwrap_or("none")));
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();

        let (out, _) = inspect(&path, false);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{pre:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        let summary = format!(
            "tokenizer: gpt2 with 128256 tokens, 280147 merges, pre-tokenizer: {}",
            pre.unwrap_or("(none)")
        );
        assert!(lines.contains(&summary.as_str()), "{pre:?}: {stdout}");
        assert!(lines.contains(&want), "{pre:?}: {stdout}");

        let (out, _) = inspect(&path, true);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["tokenizer"]["engine_pre_tokenizer"],
            want.trim_start_matches("engine pre-tokenizer: "),
            "{pre:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
