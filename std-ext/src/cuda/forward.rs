//! [`CudaModel`]: weights on the device, the decode step as a CUDA graph.
//!
//! One step (one position, batch 1) is: `embed_*` (token from device
//! memory), per layer `i2s_gemv` (RMSNorm + quantization + q|k|v),
//! `attention_rope` (RoPE, KV store, attention), `i2s_gemv` (sub-norm +
//! Wo, added to the residual), `i2s_gemv` (norm + gate/up + relu²·up),
//! `i2s_gemv` (sub-norm + Wdown, added), then `f16_gemv_rmsnorm` (final
//! norm + LM head) and `argmax_next` (greedy token, written back to device
//! memory with the next position). The step reads the token and position
//! from device memory, so the same graph serves every position; a greedy
//! decode replays it with no host work between tokens.

use std::sync::Arc;

use bitnet_core::model::{Arch, Config, Model, RopeStyle};
use bitnet_core::quant::QuantType;
use bitnet_core::quant::i2s::i2s_scale;
use bitnet_core::receipt::KernelCounters;
use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use super::{CudaError, KERNELS_CU, gpu_info, normalize_i2s_codes, nvrtc_arch};
use crate::receipt::GpuInfo;

/// Kernel ids recorded in the receipt counters (one per launch).
pub const ID_GEMV: &str = "i2s_gemv_cuda_dp4a";
/// Gate and up projections with the activation, one launch.
pub const ID_GEMV_GLU: &str = "i2s_gemv_glu_cuda_dp4a";
/// RoPE + KV store + attention.
pub const ID_ATTN: &str = "attention_rope_cuda";
/// Embedding gather.
pub const ID_EMBED: &str = "embed_cuda";
/// Final RMSNorm + F16 LM head.
pub const ID_HEAD: &str = "f16_gemv_rmsnorm_cuda";
/// Greedy token on the device.
pub const ID_ARGMAX: &str = "argmax_cuda";

/// Threads of a GEMV block (8 warps).
const GEMV_THREADS: u32 = 256;
/// Largest context the attention kernel's shared memory takes.
pub const MAX_GPU_CTX: usize = 8192;

/// An I2_S projection on the host: the tensor body (`rows * cols / 4`
/// bytes), its tensor scale and the optional projection scale.
#[derive(Debug, Clone, Copy)]
pub struct HostLinear<'a> {
    /// Codes, rows of `cols / 4` bytes.
    pub body: &'a [u8],
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The I2_S tensor scale.
    pub weight_scale: f32,
    /// The `.scale` tensor, if any.
    pub proj_scale: Option<f32>,
    /// Weight bytes one use reads (the file tensor's size, for receipts).
    pub counted_bytes: u64,
}

/// One block's weights on the host.
#[derive(Debug, Clone)]
pub struct HostLayer<'a> {
    /// `attn_norm`.
    pub attn_norm: &'a [f32],
    /// Projections q, k, v.
    pub wq: HostLinear<'a>,
    /// k.
    pub wk: HostLinear<'a>,
    /// v.
    pub wv: HostLinear<'a>,
    /// `attn_sub_norm`.
    pub attn_sub_norm: Option<&'a [f32]>,
    /// Attention output.
    pub wo: HostLinear<'a>,
    /// `ffn_norm`.
    pub ffn_norm: &'a [f32],
    /// Gate.
    pub w_gate: HostLinear<'a>,
    /// Up.
    pub w_up: HostLinear<'a>,
    /// `ffn_sub_norm`.
    pub ffn_sub_norm: Option<&'a [f32]>,
    /// Down.
    pub w_down: HostLinear<'a>,
}

/// The token embedding as the GPU takes it.
#[derive(Debug, Clone)]
pub enum HostEmbedding<'a> {
    /// The F16 LM head is the embedding table (tied): one copy on the GPU.
    TiedF16Head,
    /// A separate F16 table, `vocab x dim`.
    F16(&'a [u8]),
    /// Rows decoded to f32 on the host, `vocab x dim`.
    F32(Vec<f32>),
}

/// A model as the GPU path takes it: I2_S projections, f32 norms, an F16
/// LM head. Made from a [`Model`] ([`HostModel::from_model`]) or built in
/// memory (the synthetic benchmark model).
#[derive(Debug, Clone)]
pub struct HostModel<'a> {
    /// Hyper-parameters (`vocab_size` set).
    pub config: Config,
    /// Blocks.
    pub layers: Vec<HostLayer<'a>>,
    /// `output_norm`.
    pub output_norm: &'a [f32],
    /// LM head, F16, `vocab x dim`.
    pub head_f16: &'a [u8],
    /// Token embedding.
    pub embedding: HostEmbedding<'a>,
}

fn host_linear<'a>(l: &bitnet_core::model::Linear<'a>) -> Result<HostLinear<'a>, CudaError> {
    let m = &l.matrix;
    if m.qtype() != QuantType::I2S {
        return Err(CudaError::Unsupported(format!(
            "{} is {:?}; the CUDA backend runs I2_S projections (TQ1_0/TQ2_0/F32 are CPU-only)",
            l.name,
            m.qtype()
        )));
    }
    let (rows, cols) = (m.rows(), m.cols());
    let w = m.weight();
    let scale =
        i2s_scale(w, rows, cols).map_err(|e| CudaError::Unsupported(format!("{}: {e}", l.name)))?;
    Ok(HostLinear {
        body: &w[..rows * cols / 4],
        rows,
        cols,
        weight_scale: scale,
        proj_scale: l.scale,
        counted_bytes: w.len() as u64,
    })
}

impl<'a> HostModel<'a> {
    /// The GPU view of `m`; refuses what the GPU path does not run.
    pub fn from_model(m: &'a Model<'a>) -> Result<Self, CudaError> {
        let c = &m.config;
        let w = &m.weights;
        let head = &w.lm_head;
        if head.matrix.qtype() != QuantType::F16 {
            return Err(CudaError::Unsupported(format!(
                "LM head {} is {:?}; the CUDA backend runs an F16 head",
                head.name,
                head.matrix.qtype()
            )));
        }
        let mut layers = Vec::with_capacity(w.layers.len());
        for lw in &w.layers {
            layers.push(HostLayer {
                attn_norm: &lw.attn_norm,
                wq: host_linear(&lw.wq)?,
                wk: host_linear(&lw.wk)?,
                wv: host_linear(&lw.wv)?,
                attn_sub_norm: lw.attn_sub_norm.as_deref(),
                wo: host_linear(&lw.wo)?,
                ffn_norm: &lw.ffn_norm,
                w_gate: host_linear(&lw.w_gate)?,
                w_up: host_linear(&lw.w_up)?,
                ffn_sub_norm: lw.ffn_sub_norm.as_deref(),
                w_down: host_linear(&lw.w_down)?,
            });
        }
        let embedding = if head.name == "token_embd.weight" {
            HostEmbedding::TiedF16Head
        } else {
            let mut table = vec![0.0f32; c.vocab_size * c.dim];
            for (t, row) in table.chunks_exact_mut(c.dim).enumerate() {
                w.token_embd
                    .row(t as u32, row)
                    .map_err(|e| CudaError::Unsupported(format!("token_embd: {e}")))?;
            }
            HostEmbedding::F32(table)
        };
        Ok(Self {
            config: c.clone(),
            layers,
            output_norm: &w.output_norm,
            head_f16: head.matrix.weight(),
            embedding,
        })
    }
}

/// Device pointers of one block.
#[derive(Debug, Clone, Copy)]
struct DevLayer {
    attn_norm: u64,
    attn_sub_norm: u64,
    ffn_norm: u64,
    ffn_sub_norm: u64,
    qkv: DevLinear,
    o: DevLinear,
    gate: DevLinear,
    up: DevLinear,
    down: DevLinear,
    kc: u64,
    vc: u64,
}

/// Device pointers of one (possibly fused) I2_S matrix and its per-row
/// scales.
#[derive(Debug, Clone, Copy)]
struct DevLinear {
    w: u64,
    ws: u64,
    ps: u64,
    rows: usize,
    cols: usize,
    bytes: u64,
}

/// Time of one kernel launch (median over repetitions).
#[derive(Debug, Clone)]
pub struct KernelTiming {
    /// What ran (kernel and shape).
    pub what: String,
    /// Microseconds per launch.
    pub us: f64,
    /// Weight bytes one launch reads.
    pub bytes: u64,
}

/// A model resident on the GPU with its KV cache and the captured decode
/// step.
pub struct CudaModel {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    f_gemv: CudaFunction,
    f_attn: CudaFunction,
    f_embed: CudaFunction,
    f_head: CudaFunction,
    f_argmax: CudaFunction,
    cfg: Config,
    n_ctx: usize,
    sm_count: usize,
    gpu: GpuInfo,
    /// Every device allocation (kept alive; kernels use raw pointers).
    keep_u8: Vec<CudaSlice<u8>>,
    keep_f32: Vec<CudaSlice<f32>>,
    params: CudaSlice<i32>,
    out_tokens: CudaSlice<i32>,
    layers: Vec<DevLayer>,
    embed: u64,
    head: u64,
    head_bytes: u64,
    output_norm: u64,
    x: u64,
    qkv: u64,
    att: u64,
    hb: u64,
    logits: u64,
    params_ptr: u64,
    out_tokens_ptr: u64,
    rope_cos: u64,
    rope_sin: u64,
    logits_buf: CudaSlice<f32>,
    graph: Option<CudaGraph>,
    /// Kernels one step launches, recorded as they were captured.
    step_kernels: Vec<(&'static str, u64)>,
    counters: KernelCounters,
    weight_bytes_per_token: u64,
}

fn ptr_u8(s: &CudaSlice<u8>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

fn ptr_f32(s: &CudaSlice<f32>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

fn ptr_i32(s: &CudaSlice<i32>, stream: &CudaStream) -> u64 {
    s.device_ptr(stream).0
}

/// RoPE cos/sin for every position, as core's `rope_cache` computes them.
fn rope_tables(c: &Config, n_ctx: usize) -> (Vec<f32>, Vec<f32>) {
    let half = c.n_rot / 2;
    let mut cos = vec![0.0f32; n_ctx * half];
    let mut sin = vec![0.0f32; n_ctx * half];
    let exponent = -2.0f32 / c.n_rot as f32;
    let theta_scale = f64::from(c.rope_freq_base).powf(f64::from(exponent)) as f32;
    for pos in 0..n_ctx {
        let mut theta = pos as f32;
        for i in 0..half {
            let t = f64::from(c.rope_freq_scale * theta);
            cos[pos * half + i] = t.cos() as f32;
            sin[pos * half + i] = t.sin() as f32;
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

fn grid_for(rows: usize, sm_count: usize) -> u32 {
    let warps = (GEMV_THREADS / 32) as usize;
    let cap = (sm_count * 4).max(1);
    let per_warp = rows.div_ceil(warps * cap).max(1);
    rows.div_ceil(warps * per_warp).max(1) as u32
}

impl CudaModel {
    /// Uploads `m` to device 0, compiles the kernels and captures the
    /// decode step. `n_ctx`: positions of the KV cache.
    pub fn new(m: &HostModel<'_>, n_ctx: usize) -> Result<Self, CudaError> {
        if super::detect()?.is_none() {
            return Err(CudaError::NoDevice);
        }
        let c = m.config.clone();
        if n_ctx == 0 || n_ctx > MAX_GPU_CTX {
            return Err(CudaError::Usage(format!(
                "context {n_ctx} outside 1..={MAX_GPU_CTX} on the CUDA backend"
            )));
        }
        if c.dim % 128 != 0 || c.hidden_dim % 128 != 0 || c.q_dim() % 128 != 0 {
            return Err(CudaError::Unsupported(
                "dimensions must be multiples of 128 (I2_S blocks)".into(),
            ));
        }
        if c.dim * 4 > 48 * 1024 {
            return Err(CudaError::Unsupported(format!(
                "dim {} too large for the head kernel",
                c.dim
            )));
        }
        let ctx = CudaContext::new(0)?;
        // SAFETY: this model uses one stream and passes raw device pointers
        // to kernels; cudarc's cross-stream event tracking is not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let gpu = gpu_info(&ctx)?;
        let (major, minor) = ctx.compute_capability()?;
        let arch = nvrtc_arch(major, minor)?;
        let sm_count = ctx.attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )? as usize;
        let ptx = compile_ptx_with_opts(
            KERNELS_CU,
            CompileOptions {
                fmad: Some(false),
                prec_div: Some(true),
                prec_sqrt: Some(true),
                ftz: Some(false),
                arch: Some(arch),
                ..Default::default()
            },
        )
        .map_err(|e| CudaError::Compile(format!("{e:?}")))?;
        let module = ctx.load_module(ptx)?;
        let f_gemv = module.load_function("i2s_gemv")?;
        let f_attn = module.load_function("attention_rope")?;
        let f_head = module.load_function("f16_gemv_rmsnorm")?;
        let f_argmax = module.load_function("argmax_next")?;
        let f_embed = match m.embedding {
            HostEmbedding::F32(_) => module.load_function("embed_f32")?,
            _ => module.load_function("embed_f16")?,
        };

        let mut keep_u8 = Vec::new();
        let mut keep_f32 = Vec::new();
        let mut up_u8 = |data: &[u8]| -> Result<u64, CudaError> {
            let s = stream.clone_htod(data)?;
            let p = ptr_u8(&s, &stream);
            keep_u8.push(s);
            Ok(p)
        };
        let head = up_u8(m.head_f16)?;
        let embed = match &m.embedding {
            HostEmbedding::TiedF16Head => head,
            HostEmbedding::F16(b) => up_u8(b)?,
            HostEmbedding::F32(_) => 0,
        };
        let mut fused = |parts: &[&HostLinear<'_>]| -> Result<(u64, usize, u64), CudaError> {
            let mut body = Vec::new();
            let mut rows = 0;
            let mut bytes = 0;
            for p in parts {
                body.extend_from_slice(&normalize_i2s_codes(p.body));
                rows += p.rows;
                bytes += p.counted_bytes;
            }
            Ok((up_u8(&body)?, rows, bytes))
        };
        let mut weights = Vec::new();
        for l in &m.layers {
            weights.push([
                fused(&[&l.wq, &l.wk, &l.wv])?,
                fused(&[&l.wo])?,
                fused(&[&l.w_gate])?,
                fused(&[&l.w_up])?,
                fused(&[&l.w_down])?,
            ]);
        }
        let mut up_f32 = |data: &[f32]| -> Result<u64, CudaError> {
            let s = stream.clone_htod(data)?;
            let p = ptr_f32(&s, &stream);
            keep_f32.push(s);
            Ok(p)
        };
        let embed = match &m.embedding {
            HostEmbedding::F32(t) => up_f32(t)?,
            _ => embed,
        };
        let scales = |parts: &[&HostLinear<'_>]| -> (Vec<f32>, Vec<f32>) {
            let mut ws = Vec::new();
            let mut ps = Vec::new();
            for p in parts {
                ws.extend(std::iter::repeat_n(p.weight_scale, p.rows));
                ps.extend(std::iter::repeat_n(p.proj_scale.unwrap_or(1.0), p.rows));
            }
            (ws, ps)
        };
        let kv_dim = c.kv_dim();
        let mut layers = Vec::new();
        for (l, w) in m.layers.iter().zip(&weights) {
            let mut dl = |parts: &[&HostLinear<'_>],
                          (wp, rows, bytes): (u64, usize, u64)|
             -> Result<DevLinear, CudaError> {
                let (ws, ps) = scales(parts);
                Ok(DevLinear {
                    w: wp,
                    ws: up_f32(&ws)?,
                    ps: up_f32(&ps)?,
                    rows,
                    cols: parts[0].cols,
                    bytes,
                })
            };
            let qkv = dl(&[&l.wq, &l.wk, &l.wv], w[0])?;
            let o = dl(&[&l.wo], w[1])?;
            let gate = dl(&[&l.w_gate], w[2])?;
            let up = dl(&[&l.w_up], w[3])?;
            let down = dl(&[&l.w_down], w[4])?;
            let attn_norm = up_f32(l.attn_norm)?;
            let attn_sub_norm = match l.attn_sub_norm {
                Some(n) => up_f32(n)?,
                None => 0,
            };
            let ffn_norm = up_f32(l.ffn_norm)?;
            let ffn_sub_norm = match l.ffn_sub_norm {
                Some(n) => up_f32(n)?,
                None => 0,
            };
            let zeros = vec![0.0f32; n_ctx * kv_dim];
            let kc = up_f32(&zeros)?;
            let vc = up_f32(&zeros)?;
            layers.push(DevLayer {
                attn_norm,
                attn_sub_norm,
                ffn_norm,
                ffn_sub_norm,
                qkv,
                o,
                gate,
                up,
                down,
                kc,
                vc,
            });
        }
        let output_norm = up_f32(m.output_norm)?;
        let x = up_f32(&vec![0.0; c.dim])?;
        let qkv = up_f32(&vec![0.0; c.q_dim() + 2 * kv_dim])?;
        let att = up_f32(&vec![0.0; c.q_dim()])?;
        let hb = up_f32(&vec![0.0; c.hidden_dim])?;
        let logits_buf = stream.clone_htod(&vec![0.0f32; c.vocab_size])?;
        let logits = ptr_f32(&logits_buf, &stream);
        let (cs, sn) = rope_tables(&c, n_ctx);
        let rope_cos = up_f32(&cs)?;
        let rope_sin = up_f32(&sn)?;
        let params = stream.clone_htod(&[0i32, 0])?;
        let out_tokens = stream.clone_htod(&vec![0i32; n_ctx])?;
        let params_ptr = ptr_i32(&params, &stream);
        let out_tokens_ptr = ptr_i32(&out_tokens, &stream);
        stream.synchronize()?;
        let head_bytes = m.head_f16.len() as u64;
        let mut me = Self {
            ctx,
            stream,
            f_gemv,
            f_attn,
            f_embed,
            f_head,
            f_argmax,
            cfg: c,
            n_ctx,
            sm_count,
            gpu,
            keep_u8,
            keep_f32,
            params,
            out_tokens,
            layers,
            embed,
            head,
            head_bytes,
            output_norm,
            x,
            qkv,
            att,
            hb,
            logits,
            params_ptr,
            out_tokens_ptr,
            rope_cos,
            rope_sin,
            logits_buf,
            graph: None,
            step_kernels: Vec::new(),
            counters: KernelCounters::new(),
            weight_bytes_per_token: 0,
        };
        me.capture()?;
        Ok(me)
    }

    /// The device's compute capability and name.
    pub fn gpu(&self) -> &GpuInfo {
        &self.gpu
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Positions of the KV cache.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Kernels launched so far (counted per launch, graph replays too).
    pub fn counters(&self) -> &KernelCounters {
        &self.counters
    }

    /// Forgets the counted launches.
    pub fn reset_counters(&mut self) {
        self.counters = KernelCounters::new();
    }

    /// Weight bytes (I2_S tensors as stored + F16 head) one step reads.
    pub fn weight_bytes_per_token(&self) -> u64 {
        self.weight_bytes_per_token
    }

    /// Kernel launches of one step.
    pub fn launches_per_step(&self) -> usize {
        self.step_kernels.len()
    }

    /// Device allocations held (weights, caches, buffers).
    pub fn allocations(&self) -> usize {
        self.keep_u8.len() + self.keep_f32.len()
    }

    fn gemv(
        &self,
        a: &DevLinear,
        b: Option<&DevLinear>,
        x: u64,
        norm: u64,
        out: u64,
        mode: i32,
    ) -> Result<(), CudaError> {
        let k = a.cols;
        let cfg = LaunchConfig {
            grid_dim: (grid_for(a.rows, self.sm_count), 1, 1),
            block_dim: (GEMV_THREADS, 1, 1),
            shared_mem_bytes: (k / 128 * 160) as u32,
        };
        let (w2, ws2, ps2) = b.map_or((0u64, 0u64, 0u64), |b| (b.w, b.ws, b.ps));
        let eps = self.cfg.norm_eps;
        let (kk, rows) = (k as i32, a.rows as i32);
        let act: i32 = match self.cfg.arch {
            Arch::BitnetB158 => 0,
            Arch::Bitnet | Arch::Llama => 1,
        };
        let mut l = self.stream.launch_builder(&self.f_gemv);
        l.arg(&a.w)
            .arg(&w2)
            .arg(&a.ws)
            .arg(&a.ps)
            .arg(&ws2)
            .arg(&ps2)
            .arg(&x)
            .arg(&norm)
            .arg(&eps)
            .arg(&kk)
            .arg(&rows)
            .arg(&out)
            .arg(&mode)
            .arg(&act);
        // SAFETY: the arguments match `i2s_gemv`'s parameters in order and
        // type (pointers as u64 device addresses of live allocations held by
        // `self`, sized for `rows x k`); shared memory covers K activations.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn k_embed(&self) -> Result<(), CudaError> {
        let dim = self.cfg.dim as i32;
        let mut l = self.stream.launch_builder(&self.f_embed);
        l.arg(&self.embed)
            .arg(&self.params_ptr)
            .arg(&self.x)
            .arg(&dim);
        // SAFETY: matches `embed_f16`/`embed_f32` (table of vocab x dim, the
        // token in params[0] is checked < vocab by the host or argmax).
        unsafe { l.launch(LaunchConfig::for_num_elems(self.cfg.dim as u32)) }?;
        Ok(())
    }

    fn k_attn(&self, d: &DevLayer) -> Result<(), CudaError> {
        let c = &self.cfg;
        let (nh, nkv, hd, nrot) = (
            c.n_heads as i32,
            c.n_kv_heads as i32,
            c.head_dim as i32,
            c.n_rot as i32,
        );
        let neox: i32 = (c.arch.rope_style() == RopeStyle::Neox).into();
        let scale = c.attn_scale;
        let cfg = LaunchConfig {
            grid_dim: (c.n_heads as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: ((3 * c.head_dim + self.n_ctx) * 4) as u32,
        };
        let mut l = self.stream.launch_builder(&self.f_attn);
        l.arg(&self.qkv)
            .arg(&d.kc)
            .arg(&d.vc)
            .arg(&self.rope_cos)
            .arg(&self.rope_sin)
            .arg(&self.params_ptr)
            .arg(&self.att)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd)
            .arg(&nrot)
            .arg(&neox)
            .arg(&scale);
        // SAFETY: matches `attention_rope`; caches hold n_ctx positions and
        // the position in params[1] is < n_ctx (checked by the host before
        // every step); shared memory is (3 hd + n_ctx) floats.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn k_head(&self) -> Result<(), CudaError> {
        let c = &self.cfg;
        let (k, rows) = (c.dim as i32, c.vocab_size as i32);
        let eps = c.norm_eps;
        let cfg = LaunchConfig {
            grid_dim: (grid_for(c.vocab_size, self.sm_count), 1, 1),
            block_dim: (GEMV_THREADS, 1, 1),
            shared_mem_bytes: (c.dim * 4) as u32,
        };
        let mut l = self.stream.launch_builder(&self.f_head);
        l.arg(&self.head)
            .arg(&self.x)
            .arg(&self.output_norm)
            .arg(&eps)
            .arg(&k)
            .arg(&rows)
            .arg(&self.logits);
        // SAFETY: matches `f16_gemv_rmsnorm`; the head is vocab x dim F16,
        // logits hold vocab floats, shared memory dim floats.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn k_argmax(&self) -> Result<(), CudaError> {
        let n = self.cfg.vocab_size as i32;
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(&self.f_argmax);
        l.arg(&self.logits)
            .arg(&n)
            .arg(&self.params_ptr)
            .arg(&self.out_tokens_ptr);
        // SAFETY: matches `argmax_next`; out_tokens holds n_ctx ints and the
        // position in params[1] is < n_ctx during a step.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    /// Issues one whole step on the stream; returns the kernels launched.
    fn issue_step(&self) -> Result<Vec<(&'static str, u64)>, CudaError> {
        let mut ks = Vec::new();
        self.k_embed()?;
        ks.push((ID_EMBED, 0));
        for d in &self.layers {
            self.gemv(&d.qkv, None, self.x, d.attn_norm, self.qkv, 0)?;
            ks.push((ID_GEMV, d.qkv.bytes));
            self.k_attn(d)?;
            ks.push((ID_ATTN, 0));
            self.gemv(&d.o, None, self.att, d.attn_sub_norm, self.x, 1)?;
            ks.push((ID_GEMV, d.o.bytes));
            self.gemv(&d.gate, Some(&d.up), self.x, d.ffn_norm, self.hb, 2)?;
            ks.push((ID_GEMV_GLU, d.gate.bytes + d.up.bytes));
            self.gemv(&d.down, None, self.hb, d.ffn_sub_norm, self.x, 1)?;
            ks.push((ID_GEMV, d.down.bytes));
        }
        self.k_head()?;
        ks.push((ID_HEAD, self.head_bytes));
        self.k_argmax()?;
        ks.push((ID_ARGMAX, 0));
        Ok(ks)
    }

    fn capture(&mut self) -> Result<(), CudaError> {
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        let issued = self.issue_step();
        let graph = self.stream.end_capture(CUgraphInstantiate_flags(0))?;
        let ks = issued?;
        let graph =
            graph.ok_or_else(|| CudaError::Usage("stream capture produced no graph".into()))?;
        graph.upload()?;
        self.weight_bytes_per_token = ks.iter().map(|k| k.1).sum();
        self.step_kernels = ks;
        self.graph = Some(graph);
        Ok(())
    }

    fn replay(&mut self) -> Result<(), CudaError> {
        let g = self
            .graph
            .as_ref()
            .ok_or_else(|| CudaError::Usage("no captured step".into()))?;
        g.launch()?;
        for &(id, bytes) in &self.step_kernels {
            self.counters.record(id, bytes);
        }
        self.counters.end_pass(1, self.cfg.n_layers);
        Ok(())
    }

    /// Runs one step for `token` at `pos` (host-set), leaving its logits and
    /// greedy next token on the device.
    pub fn step(&mut self, token: u32, pos: usize) -> Result<(), CudaError> {
        if pos >= self.n_ctx {
            return Err(CudaError::Usage(format!(
                "position {pos} past the context of {}",
                self.n_ctx
            )));
        }
        if token as usize >= self.cfg.vocab_size {
            return Err(CudaError::Usage(format!(
                "token {token} outside the vocabulary of {}",
                self.cfg.vocab_size
            )));
        }
        let p = [token as i32, pos as i32];
        self.stream.memcpy_htod(&p, &mut self.params)?;
        self.replay()
    }

    /// Runs `n` more steps, each on the greedy token of the previous one
    /// (no host work between steps). The next position must be set by a
    /// [`step`](Self::step) first; `last_pos` is the position of that step.
    pub fn continue_greedy(&mut self, last_pos: usize, n: usize) -> Result<(), CudaError> {
        if last_pos + n >= self.n_ctx {
            return Err(CudaError::Usage(format!(
                "{n} more steps after position {last_pos} overflow the context of {}",
                self.n_ctx
            )));
        }
        for _ in 0..n {
            self.replay()?;
        }
        Ok(())
    }

    /// Waits for the device.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize()?;
        Ok(())
    }

    /// The logits of the last step (copied to the host).
    pub fn logits(&self) -> Result<Vec<f32>, CudaError> {
        let v = self.stream.clone_dtoh(&self.logits_buf)?;
        self.stream.synchronize()?;
        Ok(v)
    }

    /// The greedy tokens the steps at `range` produced (token after each
    /// position).
    pub fn greedy_tokens(&self, range: std::ops::Range<usize>) -> Result<Vec<u32>, CudaError> {
        let all = self.stream.clone_dtoh(&self.out_tokens)?;
        self.stream.synchronize()?;
        Ok(all[range].iter().map(|&t| t as u32).collect())
    }

    /// Times each kernel kind of layer 0 and the head on their own
    /// (CUDA events, median of `reps` launches). Overwrites activations and
    /// the cache row at the current position: call after generation.
    pub fn time_kernels(&self, reps: usize) -> Result<Vec<KernelTiming>, CudaError> {
        let d = self.layers[0];
        let c = &self.cfg;
        let mut out = Vec::new();
        type Launch<'m> = Box<dyn Fn() -> Result<(), CudaError> + 'm>;
        let cases: Vec<(String, u64, Launch<'_>)> = vec![
            (
                format!("i2s_gemv q|k|v {}x{}", d.qkv.rows, d.qkv.cols),
                d.qkv.bytes,
                Box::new(move || self.gemv(&d.qkv, None, self.x, d.attn_norm, self.qkv, 0)),
            ),
            (
                format!("attention_rope {} heads", c.n_heads),
                0,
                Box::new(move || self.k_attn(&d)),
            ),
            (
                format!("i2s_gemv o {}x{} (+residual)", d.o.rows, d.o.cols),
                d.o.bytes,
                Box::new(move || self.gemv(&d.o, None, self.att, d.attn_sub_norm, self.x, 1)),
            ),
            (
                format!("i2s_gemv gate+up {}x{} x2", d.gate.rows, d.gate.cols),
                d.gate.bytes + d.up.bytes,
                Box::new(move || self.gemv(&d.gate, Some(&d.up), self.x, d.ffn_norm, self.hb, 2)),
            ),
            (
                format!("i2s_gemv down {}x{} (+residual)", d.down.rows, d.down.cols),
                d.down.bytes,
                Box::new(move || self.gemv(&d.down, None, self.hb, d.ffn_sub_norm, self.x, 1)),
            ),
            (
                format!("f16_gemv_rmsnorm head {}x{}", c.vocab_size, c.dim),
                self.head_bytes,
                Box::new(move || self.k_head()),
            ),
        ];
        for (what, bytes, f) in cases {
            for _ in 0..5 {
                f()?;
            }
            let mut ts = Vec::with_capacity(reps);
            for _ in 0..reps {
                let e0 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                let e1 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                e0.record(&self.stream)?;
                f()?;
                e1.record(&self.stream)?;
                e1.synchronize()?;
                ts.push(f64::from(e0.elapsed_ms(&e1)?) * 1e3);
            }
            ts.sort_by(f64::total_cmp);
            out.push(KernelTiming {
                what,
                us: ts[ts.len() / 2],
                bytes,
            });
        }
        Ok(out)
    }

    /// Device-to-device copy bandwidth (bytes read + written per second)
    /// over `bytes`, median of `reps` copies.
    pub fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<f64, CudaError> {
        let src = self.stream.alloc_zeros::<u8>(bytes)?;
        let mut dst = self.stream.alloc_zeros::<u8>(bytes)?;
        let mut ts = Vec::new();
        for i in 0..reps + 2 {
            let e0 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            let e1 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            e0.record(&self.stream)?;
            self.stream.memcpy_dtod(&src, &mut dst)?;
            e1.record(&self.stream)?;
            e1.synchronize()?;
            if i >= 2 {
                ts.push(f64::from(e0.elapsed_ms(&e1)?));
            }
        }
        ts.sort_by(f64::total_cmp);
        let ms = ts[ts.len() / 2];
        Ok(2.0 * bytes as f64 / (ms / 1e3))
    }

    /// Times `n` greedy decode steps (graph replays) with CUDA events after
    /// one host-set step of `token` at `pos`; returns milliseconds.
    pub fn time_decode(&mut self, token: u32, pos: usize, n: usize) -> Result<f64, CudaError> {
        self.step(token, pos)?;
        self.synchronize()?;
        let e0 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        let e1 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        e0.record(&self.stream)?;
        self.continue_greedy(pos, n)?;
        e1.record(&self.stream)?;
        e1.synchronize()?;
        Ok(f64::from(e0.elapsed_ms(&e1)?))
    }
}
