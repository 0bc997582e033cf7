//! Build checks and fuzzing that need extra toolchains or targets.

use std::path::Path;
use std::process::Command;

use crate::root;

/// Targets `bitnet-core` must build for: no OS at all, and the browser.
const NO_STD_TARGETS: [&str; 2] = ["thumbv7em-none-eabihf", "wasm32-unknown-unknown"];

/// Fuzz targets in `fuzz/` (docs/security.md says what each covers).
const FUZZ_TARGETS: [&str; 7] = [
    "gguf_parse",
    "gguf_roundtrip",
    "model_load",
    "tokenizer",
    "tokenizer_vocab",
    "receipt_verify",
    "ffi",
];

pub type Result<T> = std::result::Result<T, String>;

/// Runs a command, failing with its command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn installed(list_args: &[&str], name: &str) -> bool {
    Command::new("rustup")
        .args(list_args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(name))
        })
        .unwrap_or(false)
}

pub fn no_std_check() -> Result<()> {
    for t in NO_STD_TARGETS {
        if !installed(&["target", "list", "--installed"], t) {
            run(Command::new("rustup").args(["target", "add", t]))?;
        }
        run(Command::new("cargo").current_dir(root()).args([
            "build",
            "--quiet",
            "-p",
            "bitnet-core",
            "--no-default-features",
            "--target",
            t,
        ]))?;
    }
    Ok(())
}

fn ensure_fuzz_tools() -> Result<()> {
    if !installed(&["toolchain", "list"], "nightly") {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let have_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_fuzz {
        run(Command::new("cargo").args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

/// Seed directories of `target`: the real files it parses (GGUF models
/// and vocabularies, receipts) and the checked-in tiny models; the
/// structure-aware targets start from nothing. Its regression corpus
/// (tests/fuzz-regressions/TARGET) comes first, so every input that once
/// crashed it is replayed before fuzzing starts.
fn seed_dirs(root: &Path, target: &str) -> Vec<String> {
    let rel: &[&str] = match target {
        "gguf_parse" | "model_load" => &[
            "tests/fuzz-seeds/model_load",
            "tests/models",
            "../shared/data",
        ],
        "tokenizer" => &["../shared/data"],
        "receipt_verify" => &["tests/golden/receipts", "ci/receipts"],
        _ => &[],
    };
    let regressions = format!("tests/fuzz-regressions/{target}");
    std::iter::once(regressions.as_str())
        .chain(rel.iter().copied())
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .map(|d| d.display().to_string())
        .collect()
}

/// Runs each fuzz target (or only `only`) for `seconds`, after replaying
/// its regression corpus and seeds; any crash fails the run.
pub fn fuzz_smoke(seconds: u32, only: Option<&str>) -> Result<()> {
    ensure_fuzz_tools()?;
    let root = root();
    for t in FUZZ_TARGETS
        .into_iter()
        .filter(|t| only.is_none_or(|o| o == *t))
    {
        let corpus = root.join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root.join("fuzz"))
            .args(["+nightly", "fuzz", "run", "-O", t])
            .arg(&corpus)
            .args(seed_dirs(&root, t));
        cmd.args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-max_len=4194304",
            "-rss_limit_mb=2048",
            "-timeout=30",
        ]);
        run(&mut cmd)?;
    }
    Ok(())
}
