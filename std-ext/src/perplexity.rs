//! Perplexity of a model on a text, with llama.cpp's `llama-perplexity`
//! convention: the tokens (BOS first when the model adds one) are cut into
//! non-overlapping chunks of `n_ctx`; each chunk's first token is replaced
//! by BOS; only the second half of each chunk is scored (the logits at
//! positions `n_ctx/2 .. n_ctx-2` predicting tokens `n_ctx/2+1 .. n_ctx-1`),
//! so every scored token has at least `n_ctx/2` tokens of context.

use bitnet_core::kernels::Platform;
use bitnet_core::model::{Logits, Model};

use crate::Error;
use crate::engine::{ThreadJoin, with_threads};

/// The result of [`perplexity`].
#[derive(Debug, Clone)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Mean negative log-likelihood (nats per token).
    pub mean_nll: f64,
    /// Standard error of the PPL estimate (delta method, as llama.cpp).
    pub ppl_stderr: f64,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// Tokens scored.
    pub n_scored: usize,
}

/// `-log softmax(logits)[target]`, in f64.
fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    lse - logits.get(target).copied().unwrap_or(f32::NEG_INFINITY) as f64
}

/// Scores `tokens` in chunks of `n_ctx` (see the module docs); `bos`
/// replaces each chunk's first token. `progress(chunk, running_ppl)` is
/// called after each chunk.
pub fn perplexity(
    model: &Model<'_>,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    threads: usize,
    platform: Platform,
    mut progress: impl FnMut(usize, f64) + Send,
) -> Result<Perplexity, Error> {
    if n_ctx < 4 || n_ctx > model.config.seq_len {
        return Err(Error::Usage(format!(
            "context {n_ctx} must be between 4 and the model's {}",
            model.config.seq_len
        )));
    }
    let n_chunks = tokens.len() / n_ctx;
    if n_chunks == 0 {
        return Err(Error::Usage(format!(
            "the text has {} tokens, fewer than one chunk of {n_ctx}",
            tokens.len()
        )));
    }
    let vocab = model.config.vocab_size;
    let first = n_ctx / 2;
    with_threads(threads, || {
        let mut state = model.new_state(n_ctx, n_ctx)?;
        state.set_platform(platform);
        let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0usize);
        let mut chunk = vec![0u32; n_ctx];
        for c in 0..n_chunks {
            chunk.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
            if let Some(b) = bos {
                chunk[0] = b;
            }
            let logits = model.forward_in::<ThreadJoin>(&mut state, &chunk, 0, Logits::All)?;
            for pos in first..n_ctx - 1 {
                let row = &logits[pos * vocab..(pos + 1) * vocab];
                let l = nll(row, chunk[pos + 1] as usize);
                sum += l;
                sum_sq += l * l;
                n += 1;
            }
            progress(c + 1, (sum / n as f64).exp());
        }
        let mean = sum / n as f64;
        let var = (sum_sq / n as f64 - mean * mean).max(0.0);
        let ppl = mean.exp();
        Ok(Perplexity {
            ppl,
            mean_nll: mean,
            ppl_stderr: ppl * (var / (n as f64 - 1.0).max(1.0)).sqrt(),
            n_chunks,
            n_scored: n,
        })
    })?
}
