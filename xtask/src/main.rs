//! `cargo xtask <command>`: project automation.

mod bench_compare;
mod benchmark;
mod cross;
mod crossval;
mod ctests;
mod export_model;
mod fixtures;
mod gguf_build;
mod golden_receipts;
mod receipts;
mod tools;
mod vocab;
mod wasm;
mod wasm_serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "bitnet project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build bitnet-core for a bare-metal target and for wasm32 (installs
    /// the rustup targets when missing).
    NoStdCheck,
    /// Run bitnet-core's kernel harness and fixture tests for another
    /// architecture under emulation (`aarch64`: qemu-aarch64, installing
    /// qemu-user, the cross gcc and the rustup target when missing;
    /// `wasm32`: wasm32-wasip1 + simd128 under Node's WASI).
    CrossTest {
        /// The architecture: aarch64 or wasm32.
        arch: String,
    },
    /// Run every fuzz target for a short time (installs nightly and
    /// cargo-fuzz when missing).
    FuzzSmoke {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Write the seeded tiny model fixtures into tests/models/ (and with
    /// `--full` a 2B-4T-shaped I2_S + TQ2_0 pair into `--full-dir`).
    GenFixtures {
        /// Output folder of the tiny models.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// The GGUF whose `tokenizer.*` keys are copied (default:
        /// ../shared/data/stories260K.gguf or $BITNET_SHARED_DATA).
        #[arg(long)]
        vocab: Option<PathBuf>,
        /// PRNG seed of the three `bitnet` fixtures.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// PRNG seed of the `bitnet-b1.58` I2_S fixture.
        #[arg(long, default_value_t = 1235)]
        seed_i2s: u64,
        /// Also write the full-size models (~1.2 GB each; not checked in).
        #[arg(long)]
        full: bool,
        /// Folder for the full-size models.
        #[arg(long, default_value = "target/full-models")]
        full_dir: PathBuf,
    },
    /// The trained model (xtask/train) into GGUF through our own writer and
    /// quantizers: reads the interchange that `xtask/train/dump.py --out
    /// DIR` writes from a checkpoint, writes I2_S and/or TQ2_0 files.
    ExportModel {
        /// The dump folder (model.json + tensors.bin).
        #[arg(long)]
        from: PathBuf,
        /// Output file with I2_S projections.
        #[arg(long)]
        i2s: Option<PathBuf>,
        /// Output file with TQ2_0 projections.
        #[arg(long)]
        tq2: Option<PathBuf>,
        /// `general.name`, before the `-i2_s` / `-tq2_0` suffix.
        #[arg(long, default_value = export_model::DEFAULT_NAME)]
        name: String,
    },
    /// Deterministic prefill + greedy decode of the shipped model that
    /// writes a receipt (ci/inference.json) of the kernels that ran.
    Benchmark {
        /// Tokens to generate (exactly).
        #[arg(long, default_value_t = 128)]
        tokens: usize,
        /// Greedy, one thread; sets BITNET_DETERMINISTIC=1, BITNET_SEED=42,
        /// RAYON_NUM_THREADS=1.
        #[arg(long)]
        deterministic: bool,
        /// Backend (this build: cpu).
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Model file (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Receipt path.
        #[arg(long, default_value = "ci/inference.json")]
        out: PathBuf,
    },
    /// Our engine (I2_S and TQ2_0) against llama.cpp's llama-bench (TQ2_0)
    /// on the 2B-4T-shaped models of `gen-fixtures --full`: pp / tg mean ±
    /// sd, ratios, memory read bandwidth, decode % of roofline, time to
    /// first token.
    BenchCompare(bench_compare::Args),
    /// Check a receipt (DESIGN.md §7); exit 0 when accepted, else the
    /// rule's own code (10 unparseable, 11.. one per rule; see
    /// xtask/src/receipts.rs).
    VerifyReceipt {
        /// The receipt file.
        #[arg(long, default_value = "ci/inference.json")]
        path: PathBuf,
        /// Require a GPU kernel id whatever the backend.
        #[arg(long)]
        require_gpu_kernels: bool,
        /// GPUs allowed above the bandwidth ceiling (e.g.
        /// ci/known_fast_gpus.yml).
        #[arg(long)]
        allowlist: Option<PathBuf>,
        /// Re-run the model from the receipt's settings and check the
        /// generated-token hash (exit 29 on a mismatch, 30 if impossible).
        #[arg(long)]
        recompute: bool,
        /// The model file for --recompute (default: the shipped model).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Regenerate the verifier's golden inputs in tests/golden/receipts/
    /// from a synthetic I2_S workload run on this host.
    GenGoldenReceipts {
        /// Output folder.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Check include/bitnet.h; run the C/C++ tests plain, under Valgrind and ASAN.
    CTests(ctests::Args),
    /// Our engine against llama.cpp (built from the llama-cpp-python sdist,
    /// with our relu² patch) on every fixture and any --model: per-position
    /// logits and greedy tokens through the C++ harness; summary table.
    Crossval(crossval::Args),
    /// Write a Llama-3 GGUF vocabulary (tokens, merges, special tokens,
    /// pre = llama-bpe) built from a tiktoken rank file.
    GenVocab {
        /// The tiktoken file (base64 token, rank per line).
        #[arg(long, default_value = "../shared/data/llama3-tokenizer.model")]
        model: PathBuf,
        /// Output GGUF file.
        #[arg(long, default_value = "target/llama3-vocab.gguf")]
        out: PathBuf,
    },
    /// Build the browser engine and demo page into target/wasm-www
    /// (wasm32 + simd128, wasm-bindgen CLI installed to match the crate).
    Wasm {
        /// Then serve it on 127.0.0.1 until interrupted.
        #[arg(long)]
        serve: bool,
        /// Port for --serve.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Test it in headless Chromium: greedy tokens equal to the native
        /// engine's, a screenshot in target/wasm-screenshot.png, decode speed.
        #[arg(long)]
        test: bool,
        /// Print the native engine's side of --test (ids, text).
        #[arg(long, hide = true)]
        native_reference: bool,
        /// Answer --test's native decode-speed requests on stdin.
        #[arg(long, hide = true)]
        native_bench: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        // Exits with the rule's own code, not just success / failure.
        Cmd::Benchmark {
            tokens,
            deterministic,
            backend,
            model,
            out,
        } => benchmark::benchmark(&benchmark::BenchmarkArgs {
            tokens,
            deterministic,
            backend,
            model,
            out,
        }),
        Cmd::VerifyReceipt {
            path,
            require_gpu_kernels,
            allowlist,
            recompute,
            model,
        } => {
            let model =
                recompute.then(|| model.unwrap_or_else(|| root().join(benchmark::DEFAULT_MODEL)));
            return receipts::verify_receipt(
                &path,
                require_gpu_kernels,
                allowlist.as_deref(),
                model.as_deref(),
            );
        }
        Cmd::GenGoldenReceipts { out_dir } => golden_receipts::gen_golden_receipts(
            &out_dir.unwrap_or_else(|| root().join("tests/golden/receipts")),
        ),
        Cmd::BenchCompare(args) => bench_compare::bench_compare(&args),
        Cmd::NoStdCheck => tools::no_std_check(),
        Cmd::CrossTest { arch } => cross::cross_test(&arch),
        Cmd::CTests(args) => ctests::c_tests(&args),
        Cmd::Crossval(args) => crossval::crossval(&args),
        Cmd::FuzzSmoke { seconds, target } => tools::fuzz_smoke(seconds, target.as_deref()),
        Cmd::GenFixtures {
            out_dir,
            vocab,
            seed,
            seed_i2s,
            full,
            full_dir,
        } => gen_fixtures(out_dir, vocab, [seed, seed_i2s], full.then_some(full_dir)),
        Cmd::ExportModel {
            from,
            i2s,
            tq2,
            name,
        } => {
            let outputs: Vec<(&std::path::Path, export_model::Format)> = [
                (i2s.as_deref(), export_model::Format::I2s),
                (tq2.as_deref(), export_model::Format::Tq2),
            ]
            .into_iter()
            .filter_map(|(p, f)| p.map(|p| (p, f)))
            .collect();
            export_model::export_model(&from, &outputs, &name)
        }
        Cmd::GenVocab { model, out } => vocab::gen_vocab(&model, &out),
        Cmd::Wasm {
            serve,
            port,
            test,
            native_reference,
            native_bench,
        } => wasm::wasm(if native_reference {
            wasm::Mode::NativeReference
        } else if native_bench {
            wasm::Mode::NativeBench
        } else {
            wasm::Mode::Build { serve, test, port }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The shared data folder: $BITNET_SHARED_DATA, else ../shared/data.
fn shared_data() -> PathBuf {
    std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"))
}

/// `cargo xtask gen-fixtures`.
fn gen_fixtures(
    out_dir: Option<PathBuf>,
    vocab: Option<PathBuf>,
    seeds: [u64; 2],
    full_dir: Option<PathBuf>,
) -> Result<(), String> {
    let out_dir = out_dir.unwrap_or_else(|| root().join("tests/models"));
    let vocab = vocab.unwrap_or_else(|| shared_data().join("stories260K.gguf"));
    fixtures::gen_tiny(&out_dir, &vocab, seeds)?;
    if let Some(dir) = full_dir {
        let dir = if dir.is_absolute() {
            dir
        } else {
            root().join(dir)
        };
        fixtures::gen_full(
            &dir,
            seeds[1],
            &shared_data().join("llama3-tokenizer.model"),
        )?;
    }
    Ok(())
}
