//! Generation and receipts on the CUDA backend.

use std::time::Instant;

use bitnet_core::model::Model;
use bitnet_core::receipt::{Backend, ModelInfo, RunInfo};
use bitnet_core::sample::{Sampler, SamplerParams};

use super::{CudaError, CudaModel, HostModel};
use crate::Error;
use crate::ModelFile;
use crate::bench::{ModelFacts, ReceiptRun};
use crate::receipt::ReceiptBuilder;

/// Settings of a CUDA receipt run.
#[derive(Debug, Clone, Copy)]
pub struct CudaRunSpec {
    /// Tokens to generate (exactly).
    pub n_gen: usize,
    /// Greedy on the device, or sampled on the host from device logits.
    pub deterministic: bool,
    /// Sampling seed (recorded either way).
    pub seed: u64,
    /// Time it took to load the model file, ms.
    pub load_ms: f64,
}

/// A generation: ids and timings (ms).
#[derive(Debug, Clone)]
pub struct CudaGeneration {
    /// Generated ids.
    pub ids: Vec<u32>,
    /// Prompt positions but the last, ms.
    pub prefill_ms: f64,
    /// The last prompt token and every generated one, ms.
    pub decode_ms: f64,
}

/// Evaluates `prompt` and generates `n_gen` tokens: greedy on the device
/// (the captured step replayed with no host work between tokens) when
/// `params` is `None`, else sampled on the host from each step's logits.
pub fn generate(
    gm: &mut CudaModel,
    prompt: &[u32],
    n_gen: usize,
    params: Option<SamplerParams>,
) -> Result<CudaGeneration, CudaError> {
    let Some((&last, head)) = prompt.split_last() else {
        return Err(CudaError::Usage("the prompt is empty".into()));
    };
    if prompt.len() + n_gen > gm.n_ctx() {
        return Err(CudaError::Usage(format!(
            "prompt {} + {n_gen} tokens exceed the context of {}",
            prompt.len(),
            gm.n_ctx()
        )));
    }
    let t = Instant::now();
    for (p, &tok) in head.iter().enumerate() {
        gm.step(tok, p)?;
    }
    gm.synchronize()?;
    let prefill_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let base = head.len();
    let ids = match params {
        None => {
            if n_gen > 0 {
                gm.step(last, base)?;
                gm.continue_greedy(base, n_gen - 1)?;
            }
            gm.greedy_tokens(base..base + n_gen)?
        }
        Some(p) => {
            let mut sampler = Sampler::new(p);
            for &tok in prompt {
                sampler.accept(tok);
            }
            let mut ids = Vec::with_capacity(n_gen);
            let mut tok = last;
            for i in 0..n_gen {
                gm.step(tok, base + i)?;
                let logits = gm.logits()?;
                tok = sampler
                    .sample(&logits)
                    .map_err(|e| CudaError::Usage(format!("sampling failed: {e}")))?;
                sampler.accept(tok);
                ids.push(tok);
            }
            ids
        }
    };
    gm.synchronize()?;
    Ok(CudaGeneration {
        ids,
        prefill_ms,
        decode_ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// [`crate::bench::receipt_run`] on the GPU: uploads `model`, runs
/// `prompt` + `spec.n_gen` tokens and builds a `cuda` receipt from the
/// kernel launches counted during the run.
pub fn receipt_run_cuda(
    file: &ModelFile,
    model: &Model<'_>,
    prompt: &[u32],
    spec: &CudaRunSpec,
) -> Result<ReceiptRun, Error> {
    let host = HostModel::from_model(model)?;
    let t = Instant::now();
    let mut gm = CudaModel::new(&host, (prompt.len() + spec.n_gen).max(1))?;
    let upload_ms = t.elapsed().as_secs_f64() * 1e3;
    let params = if spec.deterministic {
        None
    } else {
        Some(SamplerParams {
            seed: spec.seed,
            ..SamplerParams::default()
        })
    };
    let g = generate(&mut gm, prompt, spec.n_gen, params)?;
    let facts = ModelFacts::of(file, model)?;
    let summary = format!(
        "cuda: {} ({}), NVRTC kernels, {} launches/step in a CUDA graph",
        gm.gpu().name,
        gm.gpu().cc,
        gm.launches_per_step()
    );
    let run = RunInfo {
        backend: Backend::Cuda,
        backend_summary: &summary,
        deterministic: spec.deterministic,
        seed: spec.seed,
        threads: 1,
        model: ModelInfo {
            name: &facts.name,
            arch: &facts.arch,
            sha256: facts.sha256,
            quant_types: &facts.quant_types,
            parameters: facts.parameters,
            layers: facts.layers,
        },
        prompt_tokens: prompt.len() as u32,
        requested_tokens: spec.n_gen as u32,
        generated_ids: &g.ids,
        load_ms: spec.load_ms + upload_ms,
        prefill_ms: g.prefill_ms,
        decode_ms: g.decode_ms,
    };
    let receipt = ReceiptBuilder::new(run)
        .gpu(gm.gpu().clone())
        .build(gm.counters())
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(ReceiptRun {
        receipt,
        generated: g.ids,
    })
}
