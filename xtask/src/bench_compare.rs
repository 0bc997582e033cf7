//! `cargo xtask bench-compare`: our engine against llama.cpp on the
//! 2B-4T-shaped synthetic models of `cargo xtask gen-fixtures --full`, in
//! one invocation.
//!
//! - Ours: `bitnet_std::bench::bench` (the code of `bitnet bench`) on the
//!   I2_S file (arch `bitnet-b1.58`) and on the TQ2_0 file (arch `bitnet`,
//!   the same weights), in this process; with `--byte-savers` also on the
//!   I2_S file with the int8 LM head, with the TL2 kernels, and with both
//!   (issue 6).
//! - llama.cpp: `llama-bench` built from the source vendored in the PyPI
//!   `llama-cpp-python` sdist (ci/setup-llama.sh), on the TQ2_0 file.
//!
//! The runs are interleaved: each round runs every engine once (a warm-up
//! and one measured repetition of pp and of tg, as `llama-bench -r 1`
//! does), rotating which engine goes first, so slow drift of the machine
//! (other processes, thermals) falls on all of them alike. Mean ± sample
//! standard deviation are over the rounds.
//!
//! In the same process it measures the memory read bandwidth (threads
//! summing u64s over a buffer written first, best of several passes) before
//! and after the engines and before every engine's run in each round, and
//! reports decode against the roofline `bandwidth / weight bytes per token`
//! (the bytes every generated token reads, from the run's own kernel
//! counters): against the best of the before / after figures, and per
//! round against the figure measured right before that run (the machine's
//! bandwidth drifts between rounds by several percent). Time to first token is
//! load (mmap + parse + `Model::from_gguf` + tokenizer) plus the first
//! forward pass of a short prompt, measured first thing in the process.
//!
//! The measurement runs in a release build: from a debug `cargo xtask` it
//! re-runs itself with `cargo run --release`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bitnet_core::kernels::{KernelChoice, Platform};
use bitnet_core::model::Logits;
use bitnet_core::sample::argmax;
use bitnet_core::tokenizer::EncodeOptions;
use bitnet_std::ModelFile;
use bitnet_std::bench::{BenchRow, BenchSpec, bench};
use bitnet_std::engine::{LmHead, Loaded, ThreadJoin, prepare, prepare_head, with_threads};

use crate::root;
use crate::tools::Result;

/// Settings of `cargo xtask bench-compare`.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of the full-size models (`gen-fixtures --full --full-dir`).
    #[arg(long, default_value = "target/full-models")]
    dir: PathBuf,
    /// Prompt tokens of the pp test.
    #[arg(short = 'p', long, default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens of the tg test.
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Rounds (measured repetitions per engine and test).
    #[arg(short = 'r', long, default_value_t = 3)]
    rounds: usize,
    /// Threads of every engine.
    #[arg(short = 't', long, default_value_t = 2)]
    threads: usize,
    /// The llama-bench binary (default: the one ci/setup-llama.sh builds).
    #[arg(long)]
    llama_bench: Option<PathBuf>,
    /// Wait (up to --wait-max-s) until the 1-minute load average is below
    /// this before measuring.
    #[arg(long)]
    wait_load: Option<f64>,
    /// Longest wait for --wait-load, seconds.
    #[arg(long, default_value_t = 2400)]
    wait_max_s: u64,
    /// Also write the results as JSON here.
    #[arg(long, default_value = "target/bench-compare.json")]
    json: PathBuf,
    /// Also run the byte-saving modes of issue 6 on the I2_S file, in the
    /// same rounds: the int8 LM head (`--lm-head q8`), the TL2 kernels
    /// with the exact head (`--kernel tl2`) and both together.
    #[arg(long)]
    byte_savers: bool,
}

/// Labels of the `--byte-savers` engines.
const LABEL_Q8: &str = "ours I2_S + q8 head";
const LABEL_TL2: &str = "ours TL2";
const LABEL_TL2_Q8: &str = "ours TL2 + q8 head";

/// File names written by `gen-fixtures --full`.
const I2S_FILE: &str = "bitnet-b1.58-2B-shape-i2s.gguf";
const TQ2_FILE: &str = "bitnet-b1.58-2B-shape-tq2_0.gguf";
/// Prompt of the time-to-first-token measurement.
const TTFT_PROMPT: &str = "The capital of France is";
/// Bandwidth buffer and passes (best of).
const BW_BYTES: usize = 1 << 30;
const BW_PASSES: usize = 5;

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// One engine's samples (tokens/s per round) of both tests.
#[derive(Default)]
struct Samples {
    pp: Vec<f64>,
    tg: Vec<f64>,
    /// Memory read bandwidth (GB/s) measured right before each round's
    /// run of this engine.
    bw: Vec<f64>,
    /// Weight bytes per generated token (our engine's counters).
    bytes_per_token: u64,
    kernels: Vec<String>,
}

impl Samples {
    /// Decode as % of the roofline of its own round, per round: `tg *
    /// bytes / bandwidth` with the bandwidth measured right before it.
    fn roofline_pcts(&self, bytes: u64) -> Vec<f64> {
        self.tg
            .iter()
            .zip(&self.bw)
            .map(|(tg, bw)| 100.0 * tg * bytes as f64 / (bw * 1e9))
            .collect()
    }
}

/// Our engine on one loaded file, in one kernel / head mode.
struct Ours<'f> {
    label: &'static str,
    loaded: Loaded<'f>,
    platform: Platform,
    samples: Samples,
}

impl<'f> Ours<'f> {
    /// Loads `file` for `choice` (TL kernels repack the projections) and
    /// `head` (the int8 head is quantized at load).
    fn new(
        label: &'static str,
        file: &'f ModelFile,
        choice: KernelChoice,
        head: LmHead,
    ) -> Result<Self> {
        let mut loaded = Loaded::new(file).map_err(|e| e.to_string())?;
        prepare(&mut loaded.model, choice).map_err(|e| e.to_string())?;
        prepare_head(&mut loaded.model, head).map_err(|e| e.to_string())?;
        Ok(Self {
            label,
            loaded,
            platform: Platform::with_choice(choice).map_err(|e| e.to_string())?,
            samples: Samples::default(),
        })
    }
}

/// One time-to-first-token measurement.
struct Ttft {
    load_ms: f64,
    first_forward_ms: f64,
    prompt_tokens: usize,
}

/// Opens, parses and loads `path`, then runs the first forward pass of
/// [`TTFT_PROMPT`] with `threads` threads.
fn ttft(path: &Path, threads: usize) -> Result<Ttft> {
    let t = Instant::now();
    let file = ModelFile::open(path).map_err(|e| e.to_string())?;
    let l = Loaded::new(&file).map_err(|e| e.to_string())?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let prompt = match &l.tokenizer {
        Some(tok) => tok
            .encode(
                TTFT_PROMPT,
                EncodeOptions {
                    add_bos: tok.add_bos(),
                    add_eos: false,
                    parse_special: false,
                },
            )
            .map_err(|e| e.to_string())?,
        None => vec![1, 2, 3, 4, 5, 6],
    };
    let mut s = l
        .model
        .new_state(prompt.len(), prompt.len() + 1)
        .map_err(|e| e.to_string())?;
    let first = with_threads(threads, || {
        l.model
            .forward_in::<ThreadJoin>(&mut s, &prompt, 0, Logits::Last)
            .map(argmax)
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let first_forward_ms = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(first);
    Ok(Ttft {
        load_ms,
        first_forward_ms,
        prompt_tokens: prompt.len(),
    })
}

/// Sum of `xs` with independent accumulators (vectorizable).
fn sum_u64(xs: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    acc.iter().chain(rest).fold(0u64, |s, &x| s.wrapping_add(x))
}

/// Memory read bandwidth, GB/s (10^9 bytes/s): `threads` threads each sum
/// their share of a [`BW_BYTES`] buffer that was written first (so every
/// page is mapped); the best of [`BW_PASSES`] passes.
fn read_bandwidth(threads: usize) -> f64 {
    let n = BW_BYTES / 8;
    let buf: Vec<u64> = (0..n as u64).collect();
    let share = n.div_ceil(threads.max(1));
    let mut best = 0f64;
    for _ in 0..BW_PASSES {
        let t = Instant::now();
        let total = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(share)
                .map(|c| s.spawn(move || sum_u64(c)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(total);
        best = best.max(BW_BYTES as f64 / secs / 1e9);
    }
    best
}

/// The 1-, 5- and 15-minute load averages.
fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN));
    [0; 3].map(|_| v.next().unwrap_or(f64::NAN))
}

/// `model name` of /proc/cpuinfo (what `lscpu` prints as Model name).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The llama-bench binary and the folder of its shared libraries.
fn llama_bench_path(given: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    if let Some(p) = given {
        let lib = p.parent().map(Path::to_path_buf).unwrap_or_default();
        return Ok((p.to_path_buf(), lib));
    }
    let out = Command::new("bash")
        .arg(root().join("ci/setup-llama.sh"))
        .output()
        .map_err(|e| format!("ci/setup-llama.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ci/setup-llama.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let env_sh = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = env_sh.parent().ok_or("ci/setup-llama.sh printed no path")?;
    let bin = dir.join("build/bin");
    Ok((bin.join("llama-bench"), bin))
}

/// What one `llama-bench -o json` run reported.
struct LlamaRun {
    pp: Option<f64>,
    tg: Option<f64>,
    build: String,
    cpu_info: String,
}

/// One `llama-bench -r 1` run (its own warm-up, then one repetition of pp
/// and of tg).
fn llama_bench_once(bin: &Path, lib: &Path, model: &Path, a: &Args) -> Result<LlamaRun> {
    let mut cmd = Command::new(bin);
    let ld = match std::env::var_os("LD_LIBRARY_PATH") {
        Some(old) => {
            let mut v = lib.as_os_str().to_os_string();
            v.push(":");
            v.push(old);
            v
        }
        None => lib.as_os_str().to_os_string(),
    };
    cmd.env("LD_LIBRARY_PATH", ld)
        .arg("-m")
        .arg(model)
        .args(["-p", &a.n_prompt.to_string()])
        .args(["-n", &a.n_gen.to_string()])
        .args(["-t", &a.threads.to_string()])
        .args(["-r", "1", "-o", "json"]);
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "llama-bench JSON: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let rows = v.as_array().ok_or("llama-bench JSON is not an array")?;
    let mut run = LlamaRun {
        pp: None,
        tg: None,
        build: String::new(),
        cpu_info: String::new(),
    };
    for r in rows {
        let num = |k: &str| r.get(k).and_then(serde_json::Value::as_f64);
        let s = |k: &str| r.get(k).and_then(serde_json::Value::as_str).unwrap_or("");
        run.build = format!(
            "{} (build {})",
            s("build_commit"),
            num("build_number").unwrap_or(0.0)
        );
        run.cpu_info = s("cpu_info").to_string();
        let ts = num("avg_ts");
        match (num("n_prompt"), num("n_gen")) {
            (Some(p), Some(g)) if p > 0.0 && g == 0.0 => run.pp = ts,
            (Some(p), Some(g)) if p == 0.0 && g > 0.0 => run.tg = ts,
            _ => {}
        }
    }
    Ok(run)
}

/// One round of our engine on `o`: warm-up plus one repetition of each test.
fn ours_once(o: &mut Ours<'_>, a: &Args) -> Result<()> {
    let spec = BenchSpec {
        n_prompt: a.n_prompt,
        n_gen: a.n_gen,
        reps: 1,
        threads: a.threads,
        platform: o.platform,
    };
    let (rows, ev) = bench(&o.loaded.model, &spec, |_| {}).map_err(|e| e.to_string())?;
    let ts = |rows: &[BenchRow], pp: bool| {
        rows.iter()
            .find(|r| (r.n_prompt > 0) == pp)
            .map(|r| r.avg_ts)
    };
    o.samples.pp.extend(ts(&rows, true));
    o.samples.tg.extend(ts(&rows, false));
    if let Some(ev) = ev {
        o.samples.bytes_per_token = ev.state.counters().weight_bytes_per_token();
        o.samples.kernels = ev
            .state
            .counters()
            .kernels()
            .iter()
            .map(|k| k.id.to_string())
            .collect();
    }
    Ok(())
}

/// Waits until the 1-minute load average is below `max` (or `max_s` pass).
fn wait_for_load(max: f64, max_s: u64) {
    let t = Instant::now();
    loop {
        let l = loadavg()[0];
        if l < max || t.elapsed().as_secs() >= max_s {
            eprintln!("load average {l:.2} (waited {} s)", t.elapsed().as_secs());
            return;
        }
        eprintln!("load average {l:.2} >= {max}; waiting");
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
}

/// `cargo xtask bench-compare`.
pub fn bench_compare(a: &Args) -> Result<()> {
    if cfg!(debug_assertions) {
        return rerun_release();
    }
    if a.rounds == 0 || a.threads == 0 || a.n_prompt == 0 || a.n_gen == 0 {
        return Err("-r, -t, -p and -n must be positive".into());
    }
    let dir = if a.dir.is_absolute() {
        a.dir.clone()
    } else {
        root().join(&a.dir)
    };
    let (i2s_path, tq2_path) = (dir.join(I2S_FILE), dir.join(TQ2_FILE));
    for p in [&i2s_path, &tq2_path] {
        if !p.exists() {
            return Err(format!(
                "{} is missing: run cargo xtask gen-fixtures --full --full-dir {}",
                p.display(),
                a.dir.display()
            ));
        }
    }
    let (llama_bin, llama_lib) = llama_bench_path(a.llama_bench.as_deref())?;
    if let Some(max) = a.wait_load {
        wait_for_load(max, a.wait_max_s);
    }
    let load_start = loadavg();
    let platform = Platform::with_choice(KernelChoice::Auto).map_err(|e| e.to_string())?;

    // Time to first token, first thing in the process (files in the page
    // cache if they were read recently; page tables of this process cold).
    eprintln!("time to first token ...");
    let ttft_i2s = ttft(&i2s_path, a.threads)?;
    let ttft_tq2 = ttft(&tq2_path, a.threads)?;

    eprintln!("memory read bandwidth ...");
    let bw_before = read_bandwidth(a.threads);

    let (fi, ft) = (
        ModelFile::open(&i2s_path).map_err(|e| e.to_string())?,
        ModelFile::open(&tq2_path).map_err(|e| e.to_string())?,
    );
    let (auto, exact) = (KernelChoice::Auto, LmHead::Exact);
    let mut ours = vec![
        Ours::new("ours I2_S", &fi, auto, exact)?,
        Ours::new("ours TQ2_0", &ft, auto, exact)?,
    ];
    if a.byte_savers {
        ours.push(Ours::new(LABEL_Q8, &fi, auto, LmHead::Q8)?);
        ours.push(Ours::new(LABEL_TL2, &fi, KernelChoice::Tl2, exact)?);
        ours.push(Ours::new(LABEL_TL2_Q8, &fi, KernelChoice::Tl2, LmHead::Q8)?);
    }
    let engines = ours.len() + 1;
    let mut llama = Samples::default();
    let (mut llama_build, mut llama_cpu) = (String::new(), String::new());
    let t_all = Instant::now();
    for round in 0..a.rounds {
        // Engines 0.. = ours, the last = llama.cpp; rotate who goes first.
        for i in 0..engines {
            let e = (round + i) % engines;
            // The machine's bandwidth drifts between rounds (other tenants
            // of the memory system), so each run gets its own roofline.
            let bw_round = read_bandwidth(a.threads);
            let t = Instant::now();
            if let Some(o) = ours.get_mut(e) {
                o.samples.bw.push(bw_round);
                ours_once(o, a)?;
            } else {
                llama.bw.push(bw_round);
                let r = llama_bench_once(&llama_bin, &llama_lib, &tq2_path, a)?;
                llama.pp.extend(r.pp);
                llama.tg.extend(r.tg);
                (llama_build, llama_cpu) = (r.build, r.cpu_info);
            }
            let name = ours.get(e).map_or("llama.cpp TQ2_0", |o| o.label);
            eprintln!(
                "round {}/{}: {name} ({:.0} s, load {:.2})",
                round + 1,
                a.rounds,
                t.elapsed().as_secs_f64(),
                loadavg()[0]
            );
        }
    }
    let bench_s = t_all.elapsed().as_secs_f64();
    let bw_after = read_bandwidth(a.threads);
    let load_end = loadavg();
    let bw = bw_before.max(bw_after);

    let report = Report {
        a,
        cpu: cpu_model(),
        isa: platform.isa().name(),
        load_start,
        load_end,
        bw,
        bw_before,
        bw_after,
        ours: &ours,
        llama: &llama,
        llama_build,
        llama_cpu,
        ttft: [("ours I2_S", &ttft_i2s), ("ours TQ2_0", &ttft_tq2)],
        bench_s,
    };
    print!("{}", report.markdown());
    let json = report.json();
    let out = if a.json.is_absolute() {
        a.json.clone()
    } else {
        root().join(&a.json)
    };
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
    )
    .map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Re-runs this command from a release build of xtask.
fn rerun_release() -> Result<()> {
    eprintln!("bench-compare: re-running from a release build (cargo run --release)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["run", "--release", "--quiet", "-p", "xtask", "--"])
        .args(std::env::args().skip(1))
        .status()
        .map_err(|e| format!("cargo run --release: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("release bench-compare failed with {status}"))
    }
}

/// Everything the report prints.
struct Report<'r> {
    a: &'r Args,
    cpu: String,
    isa: &'static str,
    load_start: [f64; 3],
    load_end: [f64; 3],
    bw: f64,
    bw_before: f64,
    bw_after: f64,
    ours: &'r [Ours<'r>],
    llama: &'r Samples,
    llama_build: String,
    llama_cpu: String,
    ttft: [(&'static str, &'r Ttft); 2],
    bench_s: f64,
}

impl Report<'_> {
    /// (label, samples, weight bytes per token) of every engine, ours
    /// first; the llama.cpp run reads the TQ2_0 file's bytes, as our TQ2_0
    /// run does.
    fn engines(&self) -> Vec<(&str, &Samples, u64)> {
        let mut v: Vec<_> = self
            .ours
            .iter()
            .map(|o| (o.label, &o.samples, o.samples.bytes_per_token))
            .collect();
        let tq2 = self.ours.get(1).map_or(0, |o| o.samples.bytes_per_token);
        v.push(("llama.cpp TQ2_0", self.llama, tq2));
        v
    }

    /// The samples of our engine labelled `label`, if it ran.
    fn ours(&self, label: &str) -> Option<&Samples> {
        self.ours
            .iter()
            .find(|o| o.label == label)
            .map(|o| &o.samples)
    }

    fn markdown(&self) -> String {
        use std::fmt::Write;
        let (np, ng) = (self.a.n_prompt, self.a.n_gen);
        let mut s = String::new();
        let ms = |xs: &[f64]| {
            let (m, sd) = mean_sd(xs);
            format!("{m:.2} ± {sd:.2}")
        };
        let (lp, lt) = (mean_sd(&self.llama.pp).0, mean_sd(&self.llama.tg).0);
        let _ = writeln!(
            s,
            "| engine / file | pp{np} t/s | tg{ng} t/s | pp vs llama.cpp | tg vs llama.cpp | weight bytes/token | tg roofline t/s | tg % of roofline | tg % of each round's roofline |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (label, smp, bytes) in self.engines() {
            let (pp, tg) = (mean_sd(&smp.pp).0, mean_sd(&smp.tg).0);
            let roof = self.bw * 1e9 / bytes as f64;
            let _ = writeln!(
                s,
                "| {label} | {} | {} | {:.2}× | {:.2}× | {:.3} GB | {roof:.1} | {:.1} % | {} % |",
                ms(&smp.pp),
                ms(&smp.tg),
                pp / lp,
                tg / lt,
                bytes as f64 / 1e9,
                100.0 * tg / roof,
                ms(&smp.roofline_pcts(bytes))
            );
        }
        let _ = writeln!(s);
        for (label, t) in self.ttft {
            let _ = writeln!(
                s,
                "- time to first token, {label}: {:.0} ms = load {:.0} ms (mmap + parse + Model::from_gguf + tokenizer) + first forward of {} prompt tokens {:.0} ms",
                t.load_ms + t.first_forward_ms,
                t.load_ms,
                t.prompt_tokens,
                t.first_forward_ms
            );
        }
        let _ = writeln!(
            s,
            "- memory read bandwidth ({} threads, {} MiB buffer, best of {}): {:.1} GB/s (before the runs {:.1}, after {:.1}); before each round of ours I2_S: {}",
            self.a.threads,
            BW_BYTES >> 20,
            BW_PASSES,
            self.bw,
            self.bw_before,
            self.bw_after,
            self.ours[0]
                .samples
                .bw
                .iter()
                .map(|b| format!("{b:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
        let _ = writeln!(
            s,
            "- {} rounds, {} threads, our kernels: {} ({}); llama.cpp {} ({}); {:.0} s of benchmarks",
            self.a.rounds,
            self.a.threads,
            self.isa,
            self.ours[0].samples.kernels.join(", "),
            self.llama_build,
            self.llama_cpu,
            self.bench_s
        );
        let _ = writeln!(
            s,
            "- machine: {}, load average {:.2} {:.2} {:.2} at the start, {:.2} {:.2} {:.2} at the end",
            self.cpu,
            self.load_start[0],
            self.load_start[1],
            self.load_start[2],
            self.load_end[0],
            self.load_end[1],
            self.load_end[2]
        );
        let _ = writeln!(s);
        let i2s = &self.ours[0].samples;
        let (pp, tg) = (mean_sd(&i2s.pp).0, mean_sd(&i2s.tg).0);
        let roof_pct = 100.0 * tg * i2s.bytes_per_token as f64 / (self.bw * 1e9);
        let (round_pct, round_sd) = mean_sd(&i2s.roofline_pcts(i2s.bytes_per_token));
        let ttft_ms = self.ttft[0].1.load_ms + self.ttft[0].1.first_forward_ms;
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let _ = writeln!(
            s,
            "- target tg{ng} >= 95 % of roofline: {round_pct:.1} ± {round_sd:.1} % of each round's own roofline ({}); {roof_pct:.1} % of the run's best bandwidth ({})",
            verdict(round_pct >= 95.0),
            verdict(roof_pct >= 95.0)
        );
        let _ = writeln!(
            s,
            "- target tg{ng} >= 1.2x llama.cpp: {:.2}x ({})",
            tg / lt,
            verdict(tg / lt >= 1.2)
        );
        let _ = writeln!(
            s,
            "- target pp{np} >= 3.5x llama.cpp: {:.2}x ({})",
            pp / lp,
            verdict(pp / lp >= 3.5)
        );
        let _ = writeln!(
            s,
            "- target time to first token <= 1 s: {:.0} ms ({})",
            ttft_ms,
            verdict(ttft_ms <= 1000.0)
        );
        if let (Some(tl2q8), Some(tl2)) = (self.ours(LABEL_TL2_Q8), self.ours(LABEL_TL2)) {
            let r = mean_sd(&tl2q8.tg).0 / lt;
            let _ = writeln!(
                s,
                "- target (issue 6) tg{ng} with TL2 + q8 head >= 1.5x llama.cpp: {r:.2}x ({})",
                verdict(r >= 1.5)
            );
            let _ = writeln!(
                s,
                "- TL2 with the exact F16 head: {:.2}x llama.cpp in tg{ng}; pp{np} in TL2 mode {:.2}x the I2_S mode's ({})",
                mean_sd(&tl2.tg).0 / lt,
                mean_sd(&tl2.pp).0 / pp,
                if Platform::detect().batch_prefers_i2s() {
                    "TL mode runs prefill on the I2_S GEMM here, faster than the TL GEMM"
                } else {
                    "TL mode runs prefill on the TL GEMM here"
                }
            );
        }
        s
    }

    fn json(&self) -> serde_json::Value {
        use serde_json::json;
        let engines: Vec<_> = self
            .engines()
            .iter()
            .map(|(label, smp, bytes)| {
                let (pp, pp_sd) = mean_sd(&smp.pp);
                let (tg, tg_sd) = mean_sd(&smp.tg);
                json!({
                    "engine": label,
                    "pp_ts": pp, "pp_sd": pp_sd, "pp_samples": smp.pp,
                    "tg_ts": tg, "tg_sd": tg_sd, "tg_samples": smp.tg,
                    "weight_bytes_per_token": bytes,
                    "tg_roofline_ts": self.bw * 1e9 / *bytes as f64,
                    "bandwidth_per_round_gbs": smp.bw,
                    "tg_roofline_pct_per_round": smp.roofline_pcts(*bytes),
                })
            })
            .collect();
        json!({
            "n_prompt": self.a.n_prompt,
            "n_gen": self.a.n_gen,
            "rounds": self.a.rounds,
            "threads": self.a.threads,
            "engines": engines,
            "kernels": self.ours[0].samples.kernels,
            "bandwidth_gbs": self.bw,
            "bandwidth_before_gbs": self.bw_before,
            "bandwidth_after_gbs": self.bw_after,
            "ttft": self.ttft.iter().map(|(l, t)| json!({
                "engine": l, "load_ms": t.load_ms,
                "first_forward_ms": t.first_forward_ms, "prompt_tokens": t.prompt_tokens,
            })).collect::<Vec<_>>(),
            "cpu": self.cpu,
            "isa": self.isa,
            "llama_cpp_build": self.llama_build,
            "load_average_start": self.load_start,
            "load_average_end": self.load_end,
        })
    }
}
