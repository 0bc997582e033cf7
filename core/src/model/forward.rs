//! [`Model`] and [`RunState`]: the forward pass over a batch of positions.

use alloc::vec::Vec;

use super::attention::{AttnShape, attention};
use super::config::{Config, FfnActivation, RopeStyle};
use super::error::{ModelError, mul, zeroed};
use super::kv_cache::KvCache;
use super::math::{relu_squared_mul, rmsnorm, rope_cache, rope_head, silu};
use super::weights::{Linear, Weights};
use crate::gguf::Gguf;
use crate::kernels::Platform;
use crate::parallel::{Join, SerialJoin, for_each_chunk_mut};
use crate::quant::ActScratch;
use crate::receipt::{KernelCounters, Projections};

/// Which positions of a [`Model::forward`] batch get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None (e.g. a prompt prefix whose continuation follows).
    None,
    /// The last position only (generation).
    Last,
    /// Every position (evaluation); the batch must fit the run state's
    /// `max_batch`.
    All,
}

/// A loaded model: hyper-parameters and borrowed weights. Immutable, so one
/// model can serve several [`RunState`]s.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    /// Hyper-parameters.
    pub config: Config,
    /// Weights borrowed from the GGUF bytes.
    pub weights: Weights<'a>,
}

/// Buffers for one sequence: activations for up to `max_batch` positions,
/// the KV cache for `n_ctx` positions, and the logits. Allocated once; a
/// decode loop allocates nothing.
#[derive(Debug, Clone)]
pub struct RunState {
    max_batch: usize,
    /// Residual stream, `[max_batch x dim]`.
    x: Vec<f32>,
    /// Normed input of a matmul / matmul output, `[max_batch x dim]`.
    xb: Vec<f32>,
    /// Queries, `[max_batch x q_dim]`.
    q: Vec<f32>,
    /// Keys of the batch, `[max_batch x kv_dim]`.
    k: Vec<f32>,
    /// Values of the batch, `[max_batch x kv_dim]`.
    v: Vec<f32>,
    /// Attention output, `[max_batch x q_dim]`.
    att_out: Vec<f32>,
    /// Sub-normed attention output, `[max_batch x q_dim]`.
    att_normed: Vec<f32>,
    /// Attention scores, one row per head, `[n_heads x n_ctx]`.
    att: Vec<f32>,
    /// FFN gate (then activation), `[max_batch x hidden_dim]`.
    hb: Vec<f32>,
    /// FFN up (then sub-normed activation), `[max_batch x hidden_dim]`.
    hb2: Vec<f32>,
    /// RoPE cos / sin per batch position, `[max_batch x n_rot/2]` each.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    /// Logits, `[max_batch x vocab]`.
    logits: Vec<f32>,
    /// Quantized activations of the current matmul input.
    scratch: ActScratch,
    /// Keys and values.
    kv: KvCache,
    /// The kernels the matmuls run with.
    platform: Platform,
    /// Matmul kernels run so far, their calls and weight bytes, and one
    /// pass per forward call (receipt evidence).
    counters: KernelCounters,
}

impl RunState {
    /// Buffers for `cfg` with room for `max_batch` positions per forward
    /// step and a KV cache of `n_ctx` positions (at most `cfg.seq_len`).
    pub fn new(cfg: &Config, max_batch: usize, n_ctx: usize) -> Result<Self, ModelError> {
        if max_batch == 0 || n_ctx == 0 {
            return Err(ModelError::BadRunState {
                reason: "max_batch and n_ctx must be positive",
            });
        }
        if n_ctx > cfg.seq_len {
            return Err(ModelError::ContextFull {
                pos: 0,
                n_tokens: n_ctx,
                n_ctx: cfg.seq_len,
            });
        }
        let b = |n: usize| mul("run state", max_batch, n).and_then(zeroed::<f32>);
        Ok(Self {
            max_batch,
            x: b(cfg.dim)?,
            xb: b(cfg.dim)?,
            q: b(cfg.q_dim())?,
            k: b(cfg.kv_dim())?,
            v: b(cfg.kv_dim())?,
            att_out: b(cfg.q_dim())?,
            att_normed: b(cfg.q_dim())?,
            att: mul("run state", cfg.n_heads, n_ctx).and_then(zeroed::<f32>)?,
            hb: b(cfg.hidden_dim)?,
            hb2: b(cfg.hidden_dim)?,
            rope_cos: b(cfg.n_rot / 2)?,
            rope_sin: b(cfg.n_rot / 2)?,
            logits: b(cfg.vocab_size)?,
            scratch: ActScratch::new(),
            kv: KvCache::new(cfg.n_layers, n_ctx, cfg.kv_dim())?,
            platform: Platform::detect(),
            counters: KernelCounters::new(),
        })
    }

    /// Positions per forward step (larger batches are split).
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Positions the KV cache holds.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// The kernels that ran so far: ids, calls, weight bytes, passes.
    pub fn counters(&self) -> &KernelCounters {
        &self.counters
    }

    /// Forgets the kernel evidence gathered so far (e.g. after a warm-up).
    pub fn reset_counters(&mut self) {
        self.counters = KernelCounters::new();
    }

    /// The kernels the matmuls use ([`Platform::detect`] by default).
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Runs the matmuls with `platform`'s kernels (e.g. a forced
    /// [`crate::kernels::KernelChoice`]); results are identical.
    pub fn set_platform(&mut self, platform: Platform) {
        self.platform = platform;
    }
}

/// Rows per parallel task of [`rmsnorm_rows`].
const NORM_ROWS_PER_TASK: usize = 8;

/// [`rmsnorm`] of each of the first `nb` rows (`width` long) of `x` into
/// `out`, rows split over threads through `J`. A prefill normalizes 512
/// rows four times a layer; on one thread that was ~2.5 % of pp512 with the
/// other thread idle. Each row's sum is its own chain
/// ([`super::math::rmsnorm_rows`]), so the bits do not depend on the split.
fn rmsnorm_rows<J: Join>(out: &mut [f32], x: &[f32], w: &[f32], eps: f32, width: usize, nb: usize) {
    let out = &mut out[..nb * width];
    for_each_chunk_mut::<J, _, _>(out, NORM_ROWS_PER_TASK * width, width, &|start, rows| {
        super::math::rmsnorm_rows(rows, &x[start..start + rows.len()], w, eps);
    });
}

/// Runs `lin` on the first `batch` rows of `x` into `out` and records the
/// kernel that ran with the weight bytes it read; `layer` names the layer
/// and projection it computes (`None`: the LM head), the receipts' evidence
/// that every layer ran quantized.
#[allow(clippy::too_many_arguments)]
fn matmul<J: Join>(
    lin: &Linear<'_>,
    x: &[f32],
    out: &mut [f32],
    batch: usize,
    platform: Platform,
    scratch: &mut ActScratch,
    counters: &mut KernelCounters,
    layer: Option<(usize, Projections)>,
) -> Result<(), ModelError> {
    let (k, m) = (lin.matrix.cols(), lin.matrix.rows());
    let id = lin.forward_in::<J>(platform, &x[..batch * k], &mut out[..batch * m], scratch)?;
    let bytes = lin.matrix.weight_bytes() as u64;
    match layer {
        Some((l, p)) => counters.record_projection(l, p, id, bytes),
        None => counters.record(id, bytes),
    }
    Ok(())
}

/// [`matmul`] of `N` linears of one input (Q, K and V; gate and up)
/// through [`Linear::forward_many_in`] (one parallel region where the
/// kernels allow), recording each projection.
#[allow(clippy::too_many_arguments)]
fn matmul_many<J: Join, const N: usize>(
    lins: [(&Linear<'_>, Projections); N],
    x: &[f32],
    outs: [&mut [f32]; N],
    batch: usize,
    platform: Platform,
    scratch: &mut ActScratch,
    counters: &mut KernelCounters,
    layer: usize,
) -> Result<(), ModelError> {
    let k = lins.first().map_or(0, |(l, _)| l.matrix.cols());
    let mut i = 0;
    let outs = outs.map(|o| {
        let m = lins[i].0.matrix.rows();
        i += 1;
        &mut o[..batch * m]
    });
    let ids = Linear::forward_many_in::<J, N>(
        platform,
        lins.map(|(l, _)| l),
        &x[..batch * k],
        outs,
        scratch,
    )?;
    for ((l, p), id) in lins.iter().zip(ids) {
        counters.record_projection(layer, *p, id, l.matrix.weight_bytes() as u64);
    }
    Ok(())
}

impl<'a> Model<'a> {
    /// Loads a model from a parsed GGUF file, borrowing its tensor bytes.
    pub fn from_gguf(g: &Gguf<'a>) -> Result<Self, ModelError> {
        let mut config = Config::from_gguf(g)?;
        let weights = Weights::from_gguf(g, &mut config)?;
        Ok(Self { config, weights })
    }

    /// A run state for this model (see [`RunState::new`]).
    pub fn new_state(&self, max_batch: usize, n_ctx: usize) -> Result<RunState, ModelError> {
        RunState::new(&self.config, max_batch, n_ctx)
    }

    /// Evaluates `tokens` at positions `pos..pos + tokens.len()`, appending
    /// their keys and values to the cache, and returns the requested logits
    /// (`rows x vocab_size`: 0, 1 or `tokens.len()` rows).
    ///
    /// A batch longer than the state's `max_batch` is evaluated in chunks
    /// (then [`Logits::All`] is refused). Positions past the state's `n_ctx`
    /// give [`ModelError::ContextFull`]; nothing is written in that case.
    pub fn forward<'s>(
        &self,
        s: &'s mut RunState,
        tokens: &[u32],
        pos: usize,
        want: Logits,
    ) -> Result<&'s [f32], ModelError> {
        self.forward_in::<SerialJoin>(s, tokens, pos, want)
    }

    /// [`forward`](Self::forward) with matmul rows split over threads
    /// through `J`; logits are identical for any `J` and thread count.
    /// Each call is one pass of the state's kernel counters.
    pub fn forward_in<'s, J: Join>(
        &self,
        s: &'s mut RunState,
        tokens: &[u32],
        pos: usize,
        want: Logits,
    ) -> Result<&'s [f32], ModelError> {
        let c = &self.config;
        if s.x.len() != s.max_batch * c.dim || s.logits.len() != s.max_batch * c.vocab_size {
            return Err(ModelError::BadRunState {
                reason: "run state was made for another model",
            });
        }
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let n_ctx = s.kv.n_ctx();
        if pos.checked_add(tokens.len()).is_none_or(|end| end > n_ctx) {
            return Err(ModelError::ContextFull {
                pos,
                n_tokens: tokens.len(),
                n_ctx,
            });
        }
        if want == Logits::All && tokens.len() > s.max_batch {
            return Err(ModelError::BatchTooLarge {
                n_tokens: tokens.len(),
                max_batch: s.max_batch,
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(ModelError::TokenOutOfRange {
                token,
                vocab: c.vocab_size,
            });
        }
        let mut p = pos;
        let mut last = 0;
        for chunk in tokens.chunks(s.max_batch) {
            self.forward_chunk::<J>(s, chunk, p)?;
            p += chunk.len();
            last = chunk.len();
        }
        let rows = match want {
            Logits::None => {
                s.counters.end_pass(tokens.len(), c.n_layers);
                return Ok(&s.logits[..0]);
            }
            Logits::Last => (last - 1)..last,
            Logits::All => 0..last,
        };
        let (dim, vocab) = (c.dim, c.vocab_size);
        let w = &self.weights;
        for (i, b) in rows.clone().enumerate() {
            let (x, out) = (
                &s.x[b * dim..(b + 1) * dim],
                &mut s.xb[i * dim..(i + 1) * dim],
            );
            rmsnorm(out, x, &w.output_norm, c.norm_eps);
        }
        let n = rows.len();
        matmul::<J>(
            &w.lm_head,
            &s.xb,
            &mut s.logits,
            n,
            s.platform,
            &mut s.scratch,
            &mut s.counters,
            None,
        )?;
        s.counters.end_pass(tokens.len(), c.n_layers);
        Ok(&s.logits[..n * vocab])
    }

    /// One chunk of at most `max_batch` tokens at positions `pos..`; leaves
    /// the final residual stream in `s.x`.
    fn forward_chunk<J: Join>(
        &self,
        s: &mut RunState,
        tokens: &[u32],
        pos: usize,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let w = &self.weights;
        let nb = tokens.len();
        let (dim, q_dim, kv_dim, ff, hd) = (c.dim, c.q_dim(), c.kv_dim(), c.hidden_dim, c.head_dim);
        let half = c.n_rot / 2;
        let group = c.n_heads / c.n_kv_heads;
        let neox = c.arch.rope_style() == RopeStyle::Neox;

        for (b, &t) in tokens.iter().enumerate() {
            w.token_embd.row(t, &mut s.x[b * dim..(b + 1) * dim])?;
            let r = b * half..(b + 1) * half;
            rope_cache(
                pos + b,
                c.n_rot,
                c.rope_freq_base,
                c.rope_freq_scale,
                &mut s.rope_cos[r.clone()],
                &mut s.rope_sin[r],
            );
        }

        let RunState {
            x,
            xb,
            q,
            k,
            v,
            att_out,
            att_normed,
            att,
            hb,
            hb2,
            rope_cos,
            rope_sin,
            scratch,
            kv,
            platform,
            counters,
            ..
        } = s;
        let platform = *platform;

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention: n(x) -> q, k, v.
            rmsnorm_rows::<J>(xb, x, &lw.attn_norm, c.norm_eps, dim, nb);
            matmul_many::<J, 3>(
                [
                    (&lw.wq, Projections::Q),
                    (&lw.wk, Projections::K),
                    (&lw.wv, Projections::V),
                ],
                xb,
                [&mut **q, &mut **k, &mut **v],
                nb,
                platform,
                scratch,
                counters,
                l,
            )?;

            for b in 0..nb {
                let (cs, sn) = (
                    &rope_cos[b * half..(b + 1) * half],
                    &rope_sin[b * half..(b + 1) * half],
                );
                let qb = &mut q[b * q_dim..(b + 1) * q_dim];
                for head in qb.chunks_exact_mut(hd) {
                    rope_head(&mut head[..c.n_rot], cs, sn, neox);
                }
                let kb = &mut k[b * kv_dim..(b + 1) * kv_dim];
                for head in kb.chunks_exact_mut(hd) {
                    rope_head(&mut head[..c.n_rot], cs, sn, neox);
                }
                kv.store(l, pos + b, kb, &v[b * kv_dim..(b + 1) * kv_dim]);
            }

            // Causal attention: position pos + b sees 0..=pos + b; heads
            // split over threads, written head-major into `att_normed`
            // (free until the sub-norm), then laid out batch-major.
            let (keys, values) = kv.layer(l, pos + nb);
            let shape = AttnShape {
                n_heads: c.n_heads,
                group,
                head_dim: hd,
                q_dim,
                kv_dim,
                scale: c.attn_scale,
            };
            attention::<J>(
                platform.isa(),
                q,
                keys,
                values,
                nb,
                pos,
                &shape,
                att,
                att_normed,
            );
            for h in 0..c.n_heads {
                for b in 0..nb {
                    let src = (h * nb + b) * hd;
                    att_out[b * q_dim + h * hd..b * q_dim + (h + 1) * hd]
                        .copy_from_slice(&att_normed[src..src + hd]);
                }
            }

            // x += Wo (subnorm(attn)).
            let attn_in: &[f32] = match &lw.attn_sub_norm {
                Some(wn) => {
                    rmsnorm_rows::<J>(att_normed, att_out, wn, c.norm_eps, q_dim, nb);
                    att_normed
                }
                None => att_out,
            };
            matmul::<J>(
                &lw.wo,
                attn_in,
                xb,
                nb,
                platform,
                scratch,
                counters,
                Some((l, Projections::O)),
            )?;
            for (xi, &o) in x[..nb * dim].iter_mut().zip(&xb[..nb * dim]) {
                *xi += o;
            }

            // Feed-forward: x += Wdown(subnorm(act(Wgate n(x)) * Wup n(x))).
            rmsnorm_rows::<J>(xb, x, &lw.ffn_norm, c.norm_eps, dim, nb);
            matmul_many::<J, 2>(
                [(&lw.w_gate, Projections::GATE), (&lw.w_up, Projections::UP)],
                xb,
                [&mut **hb, &mut **hb2],
                nb,
                platform,
                scratch,
                counters,
                l,
            )?;
            match c.arch.ffn_activation() {
                FfnActivation::Silu => {
                    for (g, &u) in hb[..nb * ff].iter_mut().zip(&hb2[..nb * ff]) {
                        *g = silu(*g) * u;
                    }
                }
                FfnActivation::ReluSquared => {
                    relu_squared_mul(&mut hb[..nb * ff], &hb2[..nb * ff]);
                }
            }
            let ffn_in: &[f32] = match &lw.ffn_sub_norm {
                Some(wn) => {
                    rmsnorm_rows::<J>(hb2, hb, wn, c.norm_eps, ff, nb);
                    hb2
                }
                None => hb,
            };
            matmul::<J>(
                &lw.w_down,
                ffn_in,
                xb,
                nb,
                platform,
                scratch,
                counters,
                Some((l, Projections::DOWN)),
            )?;
            for (xi, &o) in x[..nb * dim].iter_mut().zip(&xb[..nb * dim]) {
                *xi += o;
            }
        }
        Ok(())
    }
}
