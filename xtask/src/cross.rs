//! `cargo xtask cross-test aarch64|wasm32`: bitnet-core's kernel harness
//! and the fixture tests built for aarch64-unknown-linux-gnu and run under
//! qemu-aarch64 (twice: baseline NEON, then with `+dotprod` on qemu's `max`
//! CPU so the `sdot` kernels run too), or built for wasm32-wasip1 with
//! simd128 (and again with relaxed-simd) and run under Node's WASI
//! (ci/wasi-run.mjs), so the NEON and simd128 kernels are proven to give
//! the same integers (and the same greedy tokens) as the x86 and portable
//! ones.

use std::path::PathBuf;
use std::process::Command;

use crate::root;
use crate::tools::{Result, run};

const TARGET: &str = "aarch64-unknown-linux-gnu";

/// The aarch64 runs: name, extra target features, extra qemu arguments.
/// The NEON kernels choose `sdot` at compile time (core/src/kernels/neon.rs),
/// so each variant is its own build; `-cpu max` gives qemu the extension.
const AARCH64_RUNS: [(&str, &str, &[&str]); 2] = [
    ("neon", "", &[]),
    (
        "neon+dotprod",
        "-C target-feature=+dotprod",
        &["-cpu", "max"],
    ),
];

/// Test binaries of bitnet-core run on the foreign architecture
/// (`hostile_inputs`: the malformed-file suite, where wasm32's 32-bit
/// `usize` must hit the same clean errors).
const TESTS: [&str; 4] = [
    "kernels_harness",
    "model_tl",
    "model_bitnet",
    "hostile_inputs",
];

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok()
}

/// Installs (idempotently) what the aarch64 run needs: Debian's
/// qemu-user and gcc-aarch64-linux-gnu, and the rustup target.
fn ensure_aarch64_tools() -> Result<()> {
    if !have("qemu-aarch64") || !have("aarch64-linux-gnu-gcc") {
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get").args([
            "install",
            "-y",
            "qemu-user",
            "gcc-aarch64-linux-gnu",
            "libc6-dev-arm64-cross",
        ]))?;
    }
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        })
        .unwrap_or(false);
    if !listed {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}

/// Node's flag for relaxed SIMD where this Node has it behind one (Node 20;
/// later releases enable it by default and may drop the flag).
const NODE_RELAXED_FLAG: &str = "--experimental-wasm-relaxed-simd";

/// The wasm32-wasip1 runs, Node's WASI as the runner: once with simd128,
/// once with simd128 + relaxed-simd (the browser's preferred build), the
/// latter in a target folder of its own so the two flag sets do not
/// rebuild each other.
fn wasm32() -> Result<()> {
    const WASM: &str = "wasm32-wasip1";
    if !have("node") {
        return Err("cross-test wasm32 needs node (Node.js >= 20) on PATH".into());
    }
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == WASM)
        })
        .unwrap_or(false);
    if !listed {
        run(Command::new("rustup").args(["target", "add", WASM]))?;
    }
    let runner = root().join("ci/wasi-run.mjs");
    let node_has_flag = Command::new("node")
        .arg("--v8-options")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(NODE_RELAXED_FLAG))
        .unwrap_or(false);
    let relaxed_node = if node_has_flag {
        format!("node {NODE_RELAXED_FLAG} {}", runner.display())
    } else {
        format!("node {}", runner.display())
    };
    let builds = [
        ("+simd128", format!("node {}", runner.display()), None),
        (
            "+simd128,+relaxed-simd",
            relaxed_node,
            Some(root().join("target/wasi-relaxed")),
        ),
    ];
    for (features, node, target_dir) in builds {
        eprintln!("cross-test wasm32: target features {features}");
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root())
            .env("CARGO_TARGET_WASM32_WASIP1_RUNNER", node)
            .env("RUSTFLAGS", format!("-C target-feature={features}"))
            .args(["test", "--release", "-p", "bitnet-core", "--target", WASM]);
        if let Some(dir) = target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        // The unit tests too: they pin edge cases (NaN activations, ...)
        // where a relaxed-SIMD build may lower code differently.
        cmd.arg("--lib");
        for t in TESTS {
            cmd.args(["--test", t]);
        }
        run(&mut cmd)?;
    }
    Ok(())
}

/// Runs the cross-architecture tests for `arch` (`aarch64` or `wasm32`).
pub fn cross_test(arch: &str) -> Result<()> {
    match arch {
        "aarch64" => {}
        "wasm32" => return wasm32(),
        _ => {
            return Err(format!(
                "cross-test: unknown architecture '{arch}' (supported: aarch64, wasm32)"
            ));
        }
    }
    ensure_aarch64_tools()?;
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    for (name, features, qemu_args) in AARCH64_RUNS {
        eprintln!("cross-test aarch64: {name}");
        let mut runner = vec!["qemu-aarch64"];
        runner.extend_from_slice(qemu_args);
        runner.extend_from_slice(&["-L", "/usr/aarch64-linux-gnu"]);
        let mut cmd = Command::new("cargo");
        cmd.current_dir(root())
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            )
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
                runner.join(" "),
            )
            .args(["test", "--release", "-p", "bitnet-core", "--target", TARGET]);
        if !features.is_empty() {
            // Its own target directory: switching flags in one would
            // rebuild everything on every run.
            cmd.env("CARGO_TARGET_DIR", base.join("aarch64-dotprod"))
                .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS", features);
        }
        // The `sdot` kernels are the I2_S and TQ ones; the TL kernels
        // (`model_tl`, the slowest binary under qemu) do not change with
        // `dotprod`, so that variant leaves them to the baseline run.
        for t in TESTS
            .iter()
            .filter(|&&t| features.is_empty() || t != "model_tl")
        {
            cmd.args(["--test", t]);
        }
        run(&mut cmd)?;
    }
    Ok(())
}
