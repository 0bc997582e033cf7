//! `bitnet tokenize` against references: llama.cpp's tokenization of the
//! golden prompt, and the gpt-2 vector file's first case.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn shared_data() -> PathBuf {
    std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/data"))
}

fn tokenize(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .arg("tokenize")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn matches_llama_cpp_on_the_golden_prompt() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/golden/stories260K.json")).unwrap(),
    )
    .unwrap();
    let prompt = golden["prompt"].as_str().unwrap();
    let want: Vec<u64> = golden["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let model = repo().join("tests/models/stories260K.gguf");
    let (ok, stdout, stderr) =
        tokenize(&["-m", model.to_str().unwrap(), "--ids", "--add-bos", prompt]);
    assert!(ok, "{stderr}");
    let got: Vec<u64> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got, want);
}

#[test]
fn matches_the_gpt2_vector_file() {
    let inp = std::fs::read_to_string(shared_data().join("ggml-vocab-gpt-2.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(shared_data().join("ggml-vocab-gpt-2.gguf.out")).unwrap();
    let model = shared_data().join("ggml-vocab-gpt-2.gguf");
    // Cases are separated by a line `__ggml_vocab_test__`; take a few
    // non-empty ones and compare with the matching .out line.
    let cases: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let lines: Vec<&str> = out.lines().collect();
    let mut checked = 0;
    for (case, line) in cases
        .iter()
        .zip(&lines)
        .filter(|(c, _)| !c.trim().is_empty())
        .take(5)
    {
        let (ok, stdout, stderr) = tokenize(&["-m", model.to_str().unwrap(), "--ids", case]);
        assert!(ok, "{stderr}");
        let got: Vec<u64> = serde_json::from_str(&stdout).unwrap();
        let want: Vec<u64> = line
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(got, want, "case {case:?}");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn pieces_mode_and_errors() {
    let model = repo().join("tests/models/stories260K.gguf");
    let (ok, stdout, _) = tokenize(&["-m", model.to_str().unwrap(), "--add-bos", "Once"]);
    assert!(ok);
    assert_eq!(
        stdout.lines().next().unwrap().split_whitespace().next(),
        Some("1")
    );
    let (ok, _, stderr) = tokenize(&["-m", "/nonexistent.gguf", "x"]);
    assert!(!ok);
    assert!(stderr.starts_with("error: "), "{stderr}");
}
