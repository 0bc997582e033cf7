//! `cargo xtask gen-golden-receipts`: the verifier's golden inputs in
//! `tests/golden/receipts/`, written by the production writer
//! ([`ReceiptBuilder`]) on this host.
//!
//! The workload is a seeded synthetic stack of I2_S projections (no
//! attention, no tokenizer: not a language model) run through
//! [`QuantizedLinear::forward`], so that every kernel id, call count, byte
//! count and timing in the files was recorded while kernels executed. The
//! numbers describe that workload on the generating host; they are test
//! inputs for the verifier, not benchmark results.

use std::path::Path;
use std::time::Instant;

use bitnet_core::quant::i2s::quantize_i2s;
use bitnet_core::quant::{ActScratch, QuantType, QuantizedLinear};
use bitnet_core::receipt::{Backend, KernelCounters, ModelInfo, Projections, Receipt, RunInfo};
use bitnet_std::receipt::{ReceiptBuilder, sha256, write_receipt};

/// Hidden size of the synthetic stack.
const DIM: usize = 1024;
/// FFN size.
const HIDDEN: usize = 2048;
/// Layers.
const LAYERS: usize = 6;
/// Rows of the F16 output head ("vocabulary").
const VOCAB: usize = 512;
/// Prompt positions evaluated in one batched pass (prefill).
const PROMPT: usize = 8;
/// Tokens generated, one single-token pass each.
const GENERATE: usize = 16;
/// PRNG seed of weights and embeddings.
const SEED: u64 = 7;

/// splitmix64 (Steele, Lea, Flood 2014).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// The stack's weights, as file bytes.
struct Stack {
    /// Per layer: (bytes, rows, cols) of its 7 projections.
    layers: Vec<Vec<(Vec<u8>, usize, usize)>>,
    /// F16 head, `VOCAB x DIM`.
    head: Vec<u8>,
    /// F32 embeddings, `VOCAB x DIM`.
    embed: Vec<f32>,
}

impl Stack {
    fn new(seed: u64) -> Result<Self, String> {
        let mut rng = SplitMix(seed);
        let shapes = [
            (DIM, DIM),
            (DIM, DIM),
            (DIM, DIM),
            (DIM, DIM),
            (HIDDEN, DIM),
            (HIDDEN, DIM),
            (DIM, HIDDEN),
        ];
        let mut layers = Vec::new();
        for _ in 0..LAYERS {
            let mut mats = Vec::new();
            for (rows, cols) in shapes {
                let w: Vec<i8> = (0..rows * cols)
                    .map(|_| (rng.next() % 3) as i8 - 1)
                    .collect();
                let bytes = quantize_i2s(&w, 1.0 / (cols as f32).sqrt(), rows, cols)
                    .map_err(|e| e.to_string())?;
                mats.push((bytes, rows, cols));
            }
            layers.push(mats);
        }
        let head = (0..VOCAB * DIM)
            .flat_map(|_| half::f16::from_f32(rng.unit() * 0.05).to_le_bytes())
            .collect();
        let embed = (0..VOCAB * DIM).map(|_| rng.unit()).collect();
        Ok(Self {
            layers,
            head,
            embed,
        })
    }

    fn parameters(&self) -> u64 {
        let mats: usize = self.layers.iter().flatten().map(|(_, r, c)| r * c).sum();
        (mats + 2 * VOCAB * DIM) as u64
    }

    fn file_bytes(&self) -> Vec<u8> {
        let mut all: Vec<u8> = self
            .layers
            .iter()
            .flatten()
            .flat_map(|(b, _, _)| b.clone())
            .collect();
        all.extend_from_slice(&self.head);
        all.extend(self.embed.iter().flat_map(|x| x.to_le_bytes()));
        all
    }
}

/// Scales each row of `x` (`rows x DIM`) to unit RMS.
fn normalize(x: &mut [f32]) {
    for row in x.chunks_exact_mut(DIM) {
        let rms = (row.iter().map(|v| v * v).sum::<f32>() / DIM as f32)
            .sqrt()
            .max(1e-6);
        row.iter_mut().for_each(|v| *v /= rms);
    }
}

/// One forward pass over `tokens`: every layer's projections, then the
/// head; returns the argmax token of the last position.
fn forward(
    stack: &Stack,
    tokens: &[u32],
    counters: &mut KernelCounters,
    scratch: &mut ActScratch,
) -> Result<u32, String> {
    let n = tokens.len();
    let mut x: Vec<f32> = tokens
        .iter()
        .flat_map(|&t| {
            stack.embed[t as usize * DIM..(t as usize + 1) * DIM]
                .iter()
                .copied()
        })
        .collect();
    // `(layer, projection)`: the layer evidence of the receipt's
    // compute_path.
    let mut run = |bytes: &[u8],
                   rows,
                   cols,
                   input: &[f32],
                   at: (usize, Projections),
                   counters: &mut KernelCounters| {
        let lin =
            QuantizedLinear::new(bytes, QuantType::I2S, rows, cols).map_err(|e| e.to_string())?;
        let mut out = vec![0f32; n * rows];
        let id = lin
            .forward(input, &mut out, scratch)
            .map_err(|e| e.to_string())?;
        counters.record_projection(at.0, at.1, id, bytes.len() as u64);
        Ok::<_, String>(out)
    };
    const ATTENTION: [Projections; 4] = [
        Projections::Q,
        Projections::K,
        Projections::V,
        Projections::O,
    ];
    for (l, mats) in stack.layers.iter().enumerate() {
        let mut h = vec![0f32; n * DIM];
        for ((bytes, rows, cols), p) in mats[..4].iter().zip(ATTENTION) {
            let y = run(bytes, *rows, *cols, &x, (l, p), counters)?;
            h.iter_mut().zip(&y).for_each(|(a, b)| *a += b);
        }
        let gate = run(
            &mats[4].0,
            HIDDEN,
            DIM,
            &x,
            (l, Projections::GATE),
            counters,
        )?;
        let up = run(&mats[5].0, HIDDEN, DIM, &x, (l, Projections::UP), counters)?;
        let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g.max(0.0) * u).collect();
        let down = run(
            &mats[6].0,
            DIM,
            HIDDEN,
            &act,
            (l, Projections::DOWN),
            counters,
        )?;
        for ((xi, hi), di) in x.iter_mut().zip(&h).zip(&down) {
            *xi += hi + di;
        }
        normalize(&mut x);
    }
    let last = &x[(n - 1) * DIM..];
    let lin =
        QuantizedLinear::new(&stack.head, QuantType::F16, VOCAB, DIM).map_err(|e| e.to_string())?;
    let mut logits = vec![0f32; VOCAB];
    let id = lin
        .forward(last, &mut logits, scratch)
        .map_err(|e| e.to_string())?;
    counters.record(id, stack.head.len() as u64);
    counters.end_pass(n, LAYERS);
    let best = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(best as u32)
}

/// Runs the synthetic stack and returns its receipt.
fn run_stack() -> Result<Receipt, String> {
    let t0 = Instant::now();
    let stack = Stack::new(SEED)?;
    let file = stack.file_bytes();
    let digest = sha256(&file);
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;

    let mut counters = KernelCounters::new();
    let mut scratch = ActScratch::new();
    let mut rng = SplitMix(SEED ^ 0x5eed);
    let prompt: Vec<u32> = (0..PROMPT)
        .map(|_| (rng.next() % VOCAB as u64) as u32)
        .collect();

    let t1 = Instant::now();
    forward(&stack, &prompt[..PROMPT - 1], &mut counters, &mut scratch)?;
    let prefill_ms = t1.elapsed().as_secs_f64() * 1e3;

    let t2 = Instant::now();
    let mut generated = Vec::with_capacity(GENERATE);
    let mut next = prompt[PROMPT - 1];
    for _ in 0..GENERATE {
        next = forward(&stack, &[next], &mut counters, &mut scratch)?;
        generated.push(next);
    }
    let decode_ms = t2.elapsed().as_secs_f64() * 1e3;

    let kernels: Vec<&str> = counters.kernels().iter().map(|k| k.id).collect();
    let summary = format!(
        "cpu: synthetic I2_S stack for verifier tests, kernels {}",
        kernels.join("+")
    );
    let run = RunInfo {
        backend: Backend::Cpu,
        backend_summary: &summary,
        deterministic: true,
        seed: SEED,
        threads: 1,
        model: ModelInfo {
            name: "synthetic-i2s-stack (cargo xtask gen-golden-receipts)",
            arch: "synthetic",
            sha256: digest,
            quant_types: &["I2_S", "F16", "F32"],
            parameters: stack.parameters(),
            layers: LAYERS as u32,
        },
        prompt_tokens: PROMPT as u32,
        requested_tokens: GENERATE as u32,
        generated_ids: &generated,
        load_ms,
        prefill_ms,
        decode_ms,
    };
    ReceiptBuilder::new(run)
        .build(&counters)
        .map_err(|e| e.to_string())
}

/// Writes `receipt-1.1.0.json` and `receipt-1.0.json` into `dir`.
///
/// The 1.0 file is the same run written as a 1.0 writer would have: schema
/// "1.0", no fingerprint.
pub fn gen_golden_receipts(dir: &Path) -> Result<(), String> {
    let r = run_stack()?;
    if r.compute_path != "real" {
        return Err(format!("synthetic run was not real: {}", r.compute_path));
    }
    write_receipt(&dir.join("receipt-1.1.0.json"), &r).map_err(|e| e.to_string())?;
    let mut legacy = r;
    legacy.schema_version = "1.0".try_into().map_err(|_| "schema string")?;
    legacy.fingerprint = None;
    write_receipt(&dir.join("receipt-1.0.json"), &legacy).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {}/receipt-1.1.0.json and receipt-1.0.json",
        dir.display()
    );
    Ok(())
}
