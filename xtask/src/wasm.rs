//! `cargo xtask wasm`: build the browser engine and demo page into a
//! servable folder, serve it (`--serve`), or test it in headless Chromium
//! against the native engine (`--test`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bitnet_core::gguf::Gguf;
use bitnet_core::model::{Generator, Model};
use bitnet_core::sample::{Sampler, SamplerParams};
use bitnet_core::tokenizer::{DecodeOptions, EncodeOptions, Tokenizer};

use crate::root;
use crate::tools::{Result, run};

/// The model behind the page's "use the built-in model" button, relative to
/// the workspace root, and the prompt the button fills in.
/// It is the shipped BitNet b1.58 model (trained on tinyshakespeare, I2_S).
pub const BUILTIN_MODEL: &str = "tests/models/shakespeare-i2s.gguf";
/// The prompt for [`BUILTIN_MODEL`].
pub const BUILTIN_PROMPT: &str = "ROMEO:";
/// Positions per prefill step, as `bitnet_wasm::engine::PREFILL_BATCH`
/// (chunking does not change the tokens; matching it keeps the runs alike).
const PREFILL_BATCH: usize = 64;
/// Models whose decode speed is compared (browser vs native, one thread),
/// with their prompts: the built-in one and an I2_S model.
const PERF_MODELS: [(&str, &str); 2] = [
    (BUILTIN_MODEL, BUILTIN_PROMPT),
    ("tests/models/stories260K.gguf", "Once upon a time"),
];
/// The engine builds the page chooses from (worker.js): output folder,
/// target features, cargo target folder. Browsers with relaxed SIMD get
/// the first.
const ENGINE_BUILDS: [(&str, &str, &str); 2] = [
    (
        "pkg-relaxed",
        "+simd128,+relaxed-simd",
        "target/wasm-relaxed",
    ),
    ("pkg", "+simd128", "target/wasm"),
];
/// Greedy tokens the browser test compares with the native engine.
const TEST_TOKENS: usize = 32;
/// Tokens of each decode-speed run (browser and native).
const BENCH_TOKENS: usize = 200;
/// Unmeasured decode-speed runs before the measured ones, on both sides:
/// V8 compiles hot wasm functions in tiers (Liftoff first, TurboFan in the
/// background), so the first runs of a fresh page are slower; the native
/// side gets as many (cold caches, page faults).
const BENCH_WARMUP: usize = 3;
/// Measured decode-speed runs on each side; the medians are reported.
const BENCH_RUNS: usize = 7;
/// The longest the test's server lives.
const TEST_SERVER_LIFETIME: Duration = Duration::from_secs(300);
/// playwright-core major version the driver is written against.
const PLAYWRIGHT_CORE: &str = "playwright-core@1";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The servable folder.
pub fn out_dir() -> PathBuf {
    root().join("target/wasm-www")
}

/// `wasm-bindgen` version locked for the crate (the CLI must match it).
fn wasm_bindgen_version(root: &Path) -> Result<String> {
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasm-bindgen\""
            && let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \""))
        {
            return Ok(v.trim_end_matches('"').to_string());
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// The wasm-bindgen CLI of `version`, installed from crates.io into
/// target/tools when missing.
fn ensure_wasm_bindgen(root: &Path, version: &str) -> Result<PathBuf> {
    let dir = root.join(format!("target/tools/wasm-bindgen-{version}"));
    let bin = dir.join("bin/wasm-bindgen");
    if bin.is_file() {
        return Ok(bin);
    }
    let install = |locked: bool| {
        let mut c = Command::new("cargo");
        c.args(["install", "wasm-bindgen-cli", "--version"])
            .arg(format!("={version}"))
            .arg("--root")
            .arg(&dir);
        if locked {
            c.arg("--locked");
        }
        run(&mut c)
    };
    // --locked first; its lock file can name a release the registry no
    // longer serves, then resolve afresh.
    install(true).or_else(|_| install(false))?;
    Ok(bin)
}

/// Builds the engine for wasm32 ([`ENGINE_BUILDS`]) and assembles the page.
pub fn build() -> Result<PathBuf> {
    let root = root();
    let target = "wasm32-unknown-unknown";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == target)
        })
        .unwrap_or(false);
    if !installed {
        run(Command::new("rustup").args(["target", "add", target]))?;
    }
    let bindgen = ensure_wasm_bindgen(&root, &wasm_bindgen_version(&root)?)?;
    let out = out_dir();
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    for (pkg, features, dir) in ENGINE_BUILDS {
        // Target dirs of their own: the simd128 flags would otherwise
        // rebuild what `cargo xtask no-std-check` builds for the same
        // target, and the two builds would rebuild each other.
        run(Command::new("cargo")
            .current_dir(&root)
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
                format!("-C target-feature={features}"),
            )
            .args([
                "build",
                "--release",
                "-p",
                "bitnet-wasm",
                "--target",
                target,
            ])
            .arg("--target-dir")
            .arg(root.join(dir)))?;
        let wasm = root
            .join(dir)
            .join("wasm32-unknown-unknown/release/bitnet_wasm.wasm");
        run(Command::new(&bindgen)
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(out.join(pkg))
            .arg(&wasm))?;
    }
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(drop)
            .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
    };
    let www = root.join("wasm/www");
    for entry in std::fs::read_dir(&www).map_err(|e| format!("{}: {e}", www.display()))? {
        let p = entry.map_err(|e| e.to_string())?.path();
        if p.is_file() {
            copy(&p, &out.join(p.file_name().unwrap_or_default()))?;
        }
    }
    std::fs::create_dir_all(out.join("models")).map_err(|e| e.to_string())?;
    for (path, _) in PERF_MODELS {
        let model = root.join(path);
        copy(&model, &out.join("models").join(file_name(path)?))?;
    }
    let name = file_name(BUILTIN_MODEL)?;
    let builtin = format!("{{\"path\": \"models/{name}\", \"prompt\": \"{BUILTIN_PROMPT}\"}}\n");
    std::fs::write(out.join("builtin.json"), builtin).map_err(|e| e.to_string())?;
    eprintln!("built {}", out.display());
    Ok(out)
}

fn file_name(path: &str) -> Result<&str> {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{path} has no file name"))
}

/// Prints, one fact a line: the greedy ids and text of [`BUILTIN_MODEL`].
fn print_native_reference() -> Result<()> {
    let root = root();
    let bytes = std::fs::read(root.join(BUILTIN_MODEL)).map_err(|e| e.to_string())?;
    let r = native_greedy(&bytes, BUILTIN_PROMPT, TEST_TOKENS)?;
    let ids: Vec<String> = r.ids.iter().map(u32::to_string).collect();
    println!("ids {}", ids.join(","));
    println!("text {}", escape(&r.text));
    Ok(())
}

/// The native side of the decode-speed comparison, as a process the browser
/// driver keeps for the whole test so that each native run sits next to a
/// browser run: reads `MODEL|PROMPT|TOKENS` lines (`MODEL` relative to the
/// workspace root) and answers each with one greedy run's decode tokens/s.
fn native_bench_server() -> Result<()> {
    use std::io::{BufRead, Write};
    let root = root();
    let mut models: Vec<(String, Vec<u8>)> = Vec::new();
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let mut f = line.splitn(3, '|');
        let (Some(path), Some(prompt), Some(tokens)) = (f.next(), f.next(), f.next()) else {
            return Err(format!(
                "native bench: expected MODEL|PROMPT|TOKENS, got {line:?}"
            ));
        };
        let tokens: usize = tokens
            .parse()
            .map_err(|e| format!("native bench: tokens {tokens:?}: {e}"))?;
        if !models.iter().any(|(p, _)| p == path) {
            let bytes = std::fs::read(root.join(path)).map_err(|e| format!("{path}: {e}"))?;
            models.push((path.to_string(), bytes));
        }
        let bytes = models
            .iter()
            .find_map(|(p, b)| (p == path).then_some(b))
            .ok_or("unreachable: the model was just read")?;
        let r = native_greedy(bytes, prompt, tokens)?;
        writeln!(out, "{:.1}", r.tokens_per_sec)
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

/// `\n` and `\\` escaped, so text fits one line.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
        } else if let Some(e) = it.next() {
            out.push(if e == 'n' { '\n' } else { e });
        }
    }
    out
}

/// What `cargo xtask wasm` does: build (and `--serve` / `--test`), or one
/// of the native sides of `--test`, run by it in a release build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Build the page, then serve and/or test it.
    Build {
        /// Serve it on 127.0.0.1 until interrupted.
        serve: bool,
        /// Test it in headless Chromium.
        test: bool,
        /// Port for `serve`.
        port: u16,
    },
    /// Print the native greedy ids and text ([`print_native_reference`]).
    NativeReference,
    /// Answer decode-speed requests ([`native_bench_server`]).
    NativeBench,
}

/// `cargo xtask wasm [--serve] [--test]`.
pub fn wasm(mode: Mode) -> Result<()> {
    let (serve, test, port) = match mode {
        Mode::NativeReference => return print_native_reference(),
        Mode::NativeBench => return native_bench_server(),
        Mode::Build { serve, test, port } => (serve, test, port),
    };
    let out = build()?;
    if test {
        browser_test(&out)?;
    }
    if serve {
        let listener =
            TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("serving {} on http://{addr}/ (Ctrl-C stops)", out.display());
        crate::wasm_serve::serve(listener, out, None);
    }
    Ok(())
}

/// Greedy ids and decode speed of the native engine on one thread.
struct NativeRun {
    ids: Vec<u32>,
    text: String,
    /// Decode tokens/s (tokens after the first over the time after it).
    tokens_per_sec: f64,
}

fn native_greedy(bytes: &[u8], prompt: &str, n: usize) -> Result<NativeRun> {
    let g = Gguf::parse(bytes).map_err(|e| e.to_string())?;
    let model = Model::from_gguf(&g).map_err(|e| e.to_string())?;
    let tok = Tokenizer::from_gguf(&g).map_err(|e| e.to_string())?;
    let opts = EncodeOptions {
        add_eos: false,
        ..tok.default_encode_options()
    };
    let prompt = tok.encode(prompt, opts).map_err(|e| e.to_string())?;
    let mut state = model
        .new_state(PREFILL_BATCH.min(prompt.len()), prompt.len() + n)
        .map_err(|e| e.to_string())?;
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut ids = Vec::with_capacity(n);
    let mut t_first = None;
    for id in Generator::new(&model, &mut state, &mut sampler, &prompt, n, &[]) {
        ids.push(id.map_err(|e| e.to_string())?);
        t_first.get_or_insert_with(Instant::now);
    }
    let decode = t_first.map_or(Duration::ZERO, |t| t.elapsed());
    let text = tok
        .decode_lossy(&ids, DecodeOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(NativeRun {
        tokens_per_sec: ids.len().saturating_sub(1) as f64 / decode.as_secs_f64(),
        ids,
        text,
    })
}

/// Installs Debian's chromium when missing (idempotent).
fn ensure_chromium() -> Result<()> {
    if Path::new(CHROMIUM).is_file() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// playwright-core from npm in target/tools/npm when missing; returns its
/// node_modules folder.
fn ensure_playwright(root: &Path) -> Result<PathBuf> {
    let prefix = root.join("target/tools/npm");
    let modules = prefix.join("node_modules");
    if !modules.join("playwright-core/package.json").is_file() {
        std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(PLAYWRIGHT_CORE))?;
    }
    Ok(modules)
}

/// Serves `out`, drives Chromium through wasm/tests/browser.cjs and
/// compares the page's greedy tokens with the native engine's.
fn browser_test(out: &Path) -> Result<()> {
    let root = root();
    // The native side runs in a release build, as users run it.
    let native = Command::new("cargo")
        .current_dir(&root)
        .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
        .args(["wasm", "--native-reference"])
        .output()
        .map_err(|e| format!("cargo run xtask: {e}"))?;
    if !native.status.success() {
        return Err(format!(
            "native reference failed: {}",
            String::from_utf8_lossy(&native.stderr)
        ));
    }
    let native = String::from_utf8_lossy(&native.stdout).into_owned();
    let field = |key: &str| {
        native
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("native reference printed no {key:?}"))
    };
    let ids = field("ids ")?.to_string();
    let text = unescape(field("text ")?);
    ensure_chromium()?;
    let modules = ensure_playwright(&root)?;

    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TEST_SERVER_LIFETIME;
    let dir = out.to_path_buf();
    std::thread::spawn(move || crate::wasm_serve::serve(listener, dir, Some(deadline)));

    let screenshot = root.join("target/wasm-screenshot.png");
    let profile = root.join("target/tools/chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let perf: Vec<String> = PERF_MODELS
        .iter()
        .map(|(p, prompt)| Ok(format!("models/{}|{p}|{prompt}", file_name(p)?)))
        .collect::<Result<_>>()?;
    // The driver starts this once and interleaves its runs with the
    // browser's (release build, as for the reference above).
    let native_bench = [
        "cargo",
        "run",
        "--release",
        "--quiet",
        "-p",
        "xtask",
        "--",
        "wasm",
        "--native-bench",
    ]
    .map(|a| format!("{a:?}"))
    .join(",");
    let output = Command::new("node")
        .arg(root.join("wasm/tests/browser.cjs"))
        .env("NODE_PATH", &modules)
        .env("BITNET_URL", format!("http://{addr}/"))
        .env("BITNET_CHROMIUM", CHROMIUM)
        .env("BITNET_PROFILE", &profile)
        .env("BITNET_SCREENSHOT", &screenshot)
        .env("BITNET_TOKENS", TEST_TOKENS.to_string())
        .env("BITNET_EXPECT_IDS", &ids)
        .env("BITNET_EXPECT_TEXT", &text)
        .env("BITNET_PERF_MODELS", perf.join("\n"))
        .env("BITNET_ROOT", &root)
        .env("BITNET_NATIVE_BENCH", format!("[{native_bench}]"))
        .env("BITNET_BENCH_TOKENS", BENCH_TOKENS.to_string())
        .env("BITNET_BENCH_WARMUP", BENCH_WARMUP.to_string())
        .env("BITNET_BENCH_RUNS", BENCH_RUNS.to_string())
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let _ = std::fs::remove_dir_all(&profile);
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        return Err(format!("browser test failed ({})", output.status));
    }
    println!(
        "decode tokens/s, one thread, {BENCH_TOKENS} greedy tokens a run, \
         {BENCH_WARMUP} warm-up + {BENCH_RUNS} measured runs a side, interleaved:"
    );
    for (path, _) in PERF_MODELS {
        let name = file_name(path)?;
        let value = |what: &str| {
            let key = format!("{what} {name}: ");
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key.as_str()))
                .and_then(|v| v.trim().trim_end_matches('%').parse::<f64>().ok())
                .ok_or_else(|| format!("the driver reported no {what} for {name}"))
        };
        let (wasm_tps, native_tps) = (
            value("wasm decode tokens/s")?,
            value("native decode tokens/s")?,
        );
        let pairs = value("wasm/native per run, median")?;
        println!(
            "  {name}: wasm {wasm_tps:.1}, native {native_tps:.1} (medians), \
             wasm/native {:.0}%; median of the per-run ratios {pairs:.0}%",
            100.0 * wasm_tps / native_tps
        );
    }
    println!("browser test passed; screenshot {}", screenshot.display());
    Ok(())
}
