//! `bitnet tokenize` against references: llama.cpp's tokenization of the
//! golden prompt, and the gpt-2 vector file's first case; the `id  'piece'`
//! listing without `--ids`; `--parse-special`.

use std::path::{Path, PathBuf};
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

/// The ids of `bitnet tokenize -m MODEL --ids [FLAGS] TEXT`.
fn ids(model: &Path, flags: &[&str], text: &str) -> Vec<u32> {
    let mut args = vec!["-m", model.to_str().unwrap(), "--ids"];
    args.extend_from_slice(flags);
    args.push(text);
    let (ok, stdout, stderr) = tokenize(&args);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// Splits one `id  'piece'` line; panics on any other shape.
fn id_and_piece(line: &str) -> (u32, &str) {
    let (id, quoted) = line
        .split_once("  ")
        .unwrap_or_else(|| panic!("no two spaces: {line:?}"));
    let piece = quoted
        .strip_prefix('\'')
        .and_then(|q| q.strip_suffix('\''))
        .unwrap_or_else(|| panic!("piece not in single quotes: {line:?}"));
    (id.parse().unwrap_or_else(|_| panic!("id: {line:?}")), piece)
}

#[test]
fn without_ids_prints_one_id_and_quoted_piece_per_line() {
    let model = repo().join("tests/models/stories260K.gguf");
    let m = model.to_str().unwrap();
    // A newline, a backslash, a quote, and a character outside the
    // 512-token vocabulary (byte fallback: three tokens of one byte each).
    let text = "Once upon\na \\ 'b' \u{65e5}";
    let (ok, stdout, stderr) = tokenize(&["-m", m, "--add-bos", text]);
    assert!(ok, "{stderr}");
    let lines: Vec<(u32, &str)> = stdout.lines().map(id_and_piece).collect();
    // The same ids as --ids, one line each.
    let want = ids(&model, &["--add-bos"], text);
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), want);
    let pieces: Vec<&str> = lines.iter().map(|l| l.1).collect();
    assert_eq!(pieces[..3], ["<s>", " Once", " upon"]);
    // Control characters and backslashes escaped, lone bytes as \xNN.
    for piece in ["\\n", "\\\\", "\\xe6", "\\x97", "\\xa5"] {
        assert!(pieces.contains(&piece), "{piece} not in {pieces:?}");
    }
    assert!(pieces.iter().any(|p| p.contains('\'')), "{pieces:?}");
    assert_eq!(
        stdout.lines().next(),
        Some("1  '<s>'"),
        "the exact format: id, two spaces, the piece in single quotes"
    );
}

#[test]
fn special_token_text_is_one_id_only_with_parse_special() {
    let gpt2 = shared_data().join("ggml-vocab-gpt-2.gguf");
    let text = "a<|endoftext|>b";
    assert_eq!(ids(&gpt2, &["--parse-special"], text), [64, 50256, 65]);
    let plain = ids(&gpt2, &[], text);
    assert!(!plain.contains(&50256), "{plain:?}");
    assert!(plain.len() > 3, "{plain:?}");

    // SentencePiece: `<s>` is BOS (id 1).
    let spm = repo().join("tests/models/stories260K.gguf");
    let parsed = ids(&spm, &["--parse-special"], "a<s>b");
    assert_eq!((parsed.len(), parsed[1]), (3, 1), "{parsed:?}");
    let plain = ids(&spm, &[], "a<s>b");
    assert!(!plain.contains(&1), "{plain:?}");

    // The listing shows the special token as its text, on one line.
    let (ok, stdout, stderr) = tokenize(&["-m", gpt2.to_str().unwrap(), "--parse-special", text]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "64  'a'\n50256  '<|endoftext|>'\n65  'b'\n");
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
