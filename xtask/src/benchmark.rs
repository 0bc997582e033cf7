//! `cargo xtask benchmark`: a deterministic run of the real model that
//! writes a receipt (ci/inference.json) from the kernels that executed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bitnet_core::kernels::KernelChoice;
use bitnet_core::tokenizer::EncodeOptions;
use bitnet_std::ModelFile;
use bitnet_std::bench::{ReceiptRun, ReceiptRunSpec, receipt_run};
use bitnet_std::cuda::receipt::{CudaRunSpec, receipt_run_cuda};
use bitnet_std::engine::{Loaded, platform};
use bitnet_std::receipt::write_receipt;

use crate::root;
use crate::tools::Result;

/// The shipped model (trained BitNet b1.58, I2_S).
pub const DEFAULT_MODEL: &str = "tests/models/shakespeare-i2s.gguf";
/// The prompt of the deterministic run.
pub const PROMPT: &str = "ROMEO:";
/// Seed recorded (and used when not deterministic).
pub const SEED: u64 = 42;

/// Settings of `cargo xtask benchmark`.
pub struct BenchmarkArgs {
    /// Tokens to generate.
    pub tokens: usize,
    /// Greedy decoding, one thread.
    pub deterministic: bool,
    /// `cpu`, or `gpu` (CUDA; prints `SKIP: No CUDA device available` and
    /// succeeds when no device is usable).
    pub backend: String,
    /// Model file.
    pub model: Option<PathBuf>,
    /// Receipt path.
    pub out: PathBuf,
}

/// Runs the benchmark and writes the receipt.
pub fn benchmark(a: &BenchmarkArgs) -> Result<()> {
    let gpu = match a.backend.as_str() {
        "cpu" => false,
        "gpu" | "cuda" => true,
        other => return Err(format!("unknown backend '{other}' (cpu or gpu)")),
    };
    if gpu
        && bitnet_std::cuda::detect()
            .map_err(|e| e.to_string())?
            .is_none()
    {
        println!("SKIP: {}", bitnet_std::cuda::NO_DEVICE);
        return Ok(());
    }
    let threads = if a.deterministic {
        // Recorded in the receipt: the run is single-threaded and greedy.
        // SAFETY: called before any other thread of this process exists
        // (the rayon pool is created later, inside receipt_run).
        unsafe {
            std::env::set_var("BITNET_DETERMINISTIC", "1");
            std::env::set_var("BITNET_SEED", SEED.to_string());
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let path = a
        .model
        .clone()
        .unwrap_or_else(|| root().join(DEFAULT_MODEL));
    let t = Instant::now();
    let file = ModelFile::open(&path).map_err(|e| e.to_string())?;
    // The CLI's load checks: the cheap rules, every rule and a refusal of
    // error-level findings with BITNET_STRICT=1.
    let loaded = Loaded::new(&file).map_err(|e| e.to_string())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let prompt = match &loaded.tokenizer {
        Some(tok) => tok
            .encode(
                PROMPT,
                EncodeOptions {
                    add_bos: tok.add_bos(),
                    add_eos: false,
                    parse_special: false,
                },
            )
            .map_err(|e| e.to_string())?,
        None => vec![0],
    };
    let run = if gpu {
        let spec = CudaRunSpec {
            n_gen: a.tokens,
            deterministic: a.deterministic,
            seed: SEED,
            load_ms,
        };
        receipt_run_cuda(&file, &loaded.model, &prompt, &spec).map_err(|e| e.to_string())?
    } else {
        cpu_run(&file, &loaded, &prompt, a, threads, load_ms)?
    };
    write_receipt(&a.out, &run.receipt).map_err(|e| e.to_string())?;
    let r = &run.receipt;
    eprintln!(
        "{}: {} tokens at {:.1} tok/s, backend {}, compute_path {}, token hash {}",
        display(&a.out),
        run.generated.len(),
        r.timings.tokens_per_sec,
        r.backend.as_str(),
        r.compute_path.as_str(),
        r.tokens.generated_ids_fnv1a64.as_str(),
    );
    Ok(())
}

fn cpu_run(
    file: &ModelFile,
    loaded: &Loaded<'_>,
    prompt: &[u32],
    a: &BenchmarkArgs,
    threads: usize,
    load_ms: f64,
) -> Result<ReceiptRun> {
    let spec = ReceiptRunSpec {
        n_gen: a.tokens,
        threads,
        platform: platform(KernelChoice::Auto).map_err(|e| e.to_string())?,
        deterministic: a.deterministic,
        seed: SEED,
        load_ms,
    };
    receipt_run(file, &loaded.model, prompt, &spec).map_err(|e| e.to_string())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
