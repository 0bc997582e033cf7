//! [`CudaModel`]: weights on the device, the decode step as a CUDA graph.
//!
//! One step (one position, batch 1), by default where every projection is
//! I2_S: `embed_*` (token from device memory), `decode_persistent` (all
//! layers in one cooperative launch: per layer five phases separated by
//! grid barriers, each block quantizing its own copy of every matmul
//! input; see kernels.cu), `f16_gemv_rmsnorm` (final norm + LM head) and
//! `argmax_next` (greedy token, written back to device memory with the
//! next position): 4 launches.
//!
//! The per-kernel step (TQ2_0, TQ1_0 and F32 models, or
//! `Tuning::persistent` off): `embed_*`, then per layer: `quantize_act`
//! (RMSNorm + int8 quantization of the block input, once) and `i2s_gemv`
//! (q|k|v); `attention_rope` (RoPE, KV store, scores split over heads x
//! slices of 64 positions) and `attention_values_k` (the softmax, formed
//! by each block, and the value sums in the CPU's order, split over heads
//! x groups of 16 output elements);
//! `quantize_act` (sub-norm) and `i2s_gemv` (Wo, added to the residual);
//! `quantize_act` (norm) and `i2s_gemv_glu` (gate/up + act(gate)·up);
//! `quantize_act` (sub-norm) and `i2s_gemv` (Wdown, added); then the head
//! and argmax. TQ2_0 runs `tq2_gemv*` on Q8_K activations; TQ1_0 is
//! repacked into TQ2_0 codes at upload ([`super::repack_tq1_0`], exact)
//! and runs the same kernels. F32 projections take the activations
//! unquantized: `quantize_act` only norms them into a float buffer (no
//! launch where the block has no such norm, as llama's sub-norms) and
//! `f32_gemv*` accumulate in f32. The step reads the
//! token and position from device memory, so the same graph serves every
//! position; a greedy decode replays it with no host work between tokens.

use std::ffi::c_void;
use std::sync::Arc;

use bitnet_core::model::{Arch, Config, FfnActivation, Model, RopeStyle, rope_cache};
use bitnet_core::quant::QuantType;
use bitnet_core::quant::f32::dot_f32;
use bitnet_core::quant::i2s::{i2s_dot_i32, i2s_output, i2s_scale};
use bitnet_core::quant::q8_k::BlockQ8K;
use bitnet_core::quant::tq1_0::{BlockTq1_0, vec_dot_tq1_0_q8_k};
use bitnet_core::quant::tq2_0::BlockTq2_0;
use bitnet_core::quant::tq2_0::vec_dot_tq2_0_q8_k;
use bitnet_core::receipt::{KernelCounters, Projections};

use cudarc::driver::sys::{self, CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
};
use cudarc::nvrtc::{CompileOptions, compile_ptx_with_opts};

use super::{
    CudaError, F32_DOT_TOLERANCE, KERNELS_CU, gpu_info, normalize_i2s_codes, nvrtc_arch,
    repack_tq1_0,
};
use crate::receipt::GpuInfo;

/// Kernel ids recorded in the receipt counters (one per launch).
pub const ID_GEMV: &str = "i2s_gemv_cuda_dp4a";
/// Gate and up projections with the activation, one launch.
pub const ID_GEMV_GLU: &str = "i2s_gemv_glu_cuda_dp4a";
/// TQ2_0 x Q8_K projection (dp4a, exact block integers).
pub const ID_TQ2: &str = "tq2_gemv_cuda_dp4a";
/// TQ2_0 gate and up projections with the activation.
pub const ID_TQ2_GLU: &str = "tq2_gemv_glu_cuda_dp4a";
/// A TQ1_0 projection: the `tq2_gemv` kernel (dp4a, exact block integers)
/// on the TQ1_0 weights repacked into TQ2_0 codes at upload; its bytes
/// counted as the file's TQ1_0 bytes.
pub const ID_TQ1: &str = "tq1_gemv_cuda_dp4a_repacked";
/// TQ1_0 gate and up projections with the activation (`tq2_gemv_glu` on
/// the repacked weights).
pub const ID_TQ1_GLU: &str = "tq1_gemv_glu_cuda_dp4a_repacked";
/// An F32 projection (f32 activations, f32 accumulation).
pub const ID_F32: &str = "f32_gemv_cuda";
/// F32 gate and up projections with the activation.
pub const ID_F32_GLU: &str = "f32_gemv_glu_cuda";
/// RMSNorm + int8 activation quantization of one matmul input.
pub const ID_QUANT: &str = "quantize_act_cuda";
/// RMSNorm of an F32 projection's input (`quantize_act` writing floats).
pub const ID_NORM: &str = "rmsnorm_act_cuda";
/// RoPE + KV store + attention.
pub const ID_ATTN: &str = "attention_rope_cuda";
/// Embedding gather.
pub const ID_EMBED: &str = "embed_cuda";
/// Final RMSNorm + F16 LM head.
pub const ID_HEAD: &str = "f16_gemv_rmsnorm_cuda";
/// Final RMSNorm + F32 LM head.
pub const ID_HEAD_F32: &str = "f32_gemv_rmsnorm_cuda";
/// Greedy token on the device.
pub const ID_ARGMAX: &str = "argmax_cuda";
/// A projection phase (q|k|v, o or down) of the persistent decode kernel
/// (recorded once per phase: one launch runs them all).
pub const ID_PGEMV: &str = "i2s_gemv_persist_cuda_dp4a";
/// The gate|up phase of the persistent decode kernel.
pub const ID_PGLU: &str = "i2s_gemv_glu_persist_cuda_dp4a";
/// The attention phase of the persistent decode kernel.
pub const ID_PATTN: &str = "attention_rope_persist_cuda";

/// Threads of an I2_S GEMV block (4 warps).
const GEMV_THREADS: u32 = 128;
/// Threads of the F16 head GEMV block (8 warps).
const HEAD_THREADS: u32 = 256;
/// Threads and per-thread registers of `quantize_act` (`QA_THREADS`,
/// `QA_PER_THREAD`): the largest matmul input it takes.
const QA_THREADS: u32 = 1024;
const QA_MAX_K: usize = 1024 * 8;
/// Positions per attention slice (`ATT_CHUNK` in kernels.cu).
const ATT_CHUNK: usize = 64;
/// Floats of an attention value tile and its most positions (`ATT_VTILE`,
/// `ATT_TMAX`).
const ATT_VTILE: usize = 4096;
const ATT_TMAX: usize = 512;
/// Output elements per value work item (`ATT_VGROUP`).
const ATT_VGROUP: usize = 16;

/// Largest head dimension: the attention's shared memory (`attention_smem`,
/// 12 KiB at 1024; `attention_values_smem` at most 18 KiB) stays under the 48 KiB a launch gets without opting in.
const MAX_HEAD_DIM: usize = 1024;

/// Shared memory of `attention_body` (`attention_rope`) in bytes: q, k, v
/// of the head.
fn attention_smem(hd: usize) -> usize {
    3 * hd * 4
}

/// Shared memory of a value work item (`attention_values`) in bytes: a
/// value tile (rows of `ATT_VGROUP` floats) and its probabilities.
fn attention_values_smem(hd: usize) -> usize {
    (ATT_VTILE + (ATT_VTILE / ATT_VGROUP.min(hd)).min(ATT_TMAX)) * 4
}
/// Bytes per 128 quantized activations (`QBLOCK_STRIDE`).
const QBLOCK_STRIDE: usize = 160;
/// Threads of a persistent decode block (`PB_THREADS`).
const PB_THREADS: u32 = 256;
/// 64-bit words per layer in the persistent kernel's pointer table
/// (`PL_STRIDE`; the `PL_*` indices in kernels.cu).
const PL_STRIDE: usize = 24;
/// Largest context the GPU path takes.
pub const MAX_GPU_CTX: usize = 8192;

/// How a projection's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// I2_S: 2-bit codes, one tensor scale; int8 activations per tensor.
    I2s,
    /// TQ2_0: 2-bit codes and an f16 scale per 256 values; Q8_K
    /// activations.
    Tq2_0,
    /// TQ1_0: base-3 trits and an f16 scale per 256 values; repacked into
    /// the TQ2_0 layout at upload (the same weights and scales), Q8_K
    /// activations.
    Tq1_0,
    /// F32 weights; f32 activations (normed, not quantized).
    F32,
}

impl WeightFormat {
    /// `quantize_act`'s `fmt` for an input of this format: 0 int8 (I2_S),
    /// 1 Q8_K (TQ2_0, TQ1_0), 2 floats (F32).
    fn act_fmt(self) -> i32 {
        match self {
            Self::I2s => 0,
            Self::Tq2_0 | Self::Tq1_0 => 1,
            Self::F32 => 2,
        }
    }

    /// The input width `cols` must be a multiple of (the format's block;
    /// the F32 kernels take any width).
    fn col_multiple(self) -> usize {
        match self {
            Self::I2s => 128,
            Self::Tq2_0 | Self::Tq1_0 => 256,
            Self::F32 => 1,
        }
    }
}

/// Bytes of one TQ2_0 block (64 code bytes + f16 scale).
const TQ2_BLOCK_BYTES: usize = BlockTq2_0::BYTES;

/// A projection on the host: the tensor body, its tensor scale (I2_S) and
/// the optional projection scale.
#[derive(Debug, Clone, Copy)]
pub struct HostLinear<'a> {
    /// I2_S: codes, rows of `cols / 4` bytes. TQ2_0 / TQ1_0: the whole
    /// tensor (rows of `cols / 256` blocks of 66 / 54 bytes). F32: rows of
    /// `cols` little-endian floats.
    pub body: &'a [u8],
    /// Storage format.
    pub format: WeightFormat,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// The I2_S tensor scale (unused for the other formats: TQ scales
    /// are in the blocks, F32 has none).
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
    /// The LM head is the embedding table (tied): one copy on the GPU, in
    /// the head's format.
    TiedHead,
    /// A separate F16 table, `vocab x dim`.
    F16(&'a [u8]),
    /// Rows decoded to f32 on the host, `vocab x dim`.
    F32(Vec<f32>),
}

/// The LM head's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFormat {
    /// F16 rows.
    F16,
    /// F32 rows.
    F32,
}

/// A model as the GPU path takes it: I2_S, TQ2_0, TQ1_0 or F32
/// projections, f32 norms, an F16 or F32 LM head. Made from a [`Model`] ([`HostModel::from_model`]) or built in
/// memory (the synthetic benchmark model).
#[derive(Debug, Clone)]
pub struct HostModel<'a> {
    /// Hyper-parameters (`vocab_size` set).
    pub config: Config,
    /// Blocks.
    pub layers: Vec<HostLayer<'a>>,
    /// `output_norm`.
    pub output_norm: &'a [f32],
    /// LM head, `vocab x dim` rows in `head_format`.
    pub head: &'a [u8],
    /// The head's element type.
    pub head_format: HeadFormat,
    /// Token embedding.
    pub embedding: HostEmbedding<'a>,
}

fn host_linear<'a>(l: &bitnet_core::model::Linear<'a>) -> Result<HostLinear<'a>, CudaError> {
    let m = &l.matrix;
    let (rows, cols) = (m.rows(), m.cols());
    let w = m.weight();
    let format = match m.qtype() {
        QuantType::I2S => WeightFormat::I2s,
        QuantType::TQ2_0 => WeightFormat::Tq2_0,
        QuantType::TQ1_0 => WeightFormat::Tq1_0,
        QuantType::F32 => WeightFormat::F32,
        other => {
            return Err(CudaError::Unsupported(format!(
                "{} is {other:?}; the CUDA backend runs I2_S, TQ2_0, TQ1_0 and F32 projections",
                l.name
            )));
        }
    };
    if format != WeightFormat::I2s {
        return Ok(HostLinear {
            body: w,
            format,
            rows,
            cols,
            weight_scale: 1.0,
            proj_scale: l.scale,
            counted_bytes: w.len() as u64,
        });
    }
    let scale =
        i2s_scale(w, rows, cols).map_err(|e| CudaError::Unsupported(format!("{}: {e}", l.name)))?;
    Ok(HostLinear {
        body: &w[..rows * cols / 4],
        format: WeightFormat::I2s,
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
        let head_format = match head.matrix.qtype() {
            QuantType::F16 => HeadFormat::F16,
            QuantType::F32 => HeadFormat::F32,
            other => {
                return Err(CudaError::Unsupported(format!(
                    "LM head {} is {other:?}; the CUDA backend runs an F16 or F32 head",
                    head.name
                )));
            }
        };
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
            HostEmbedding::TiedHead
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
            head: head.matrix.weight(),
            head_format,
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

/// Device pointers of one (possibly fused) matrix and its scales: `ws` is
/// the I2_S tensor scale per row, or the TQ2_0 / TQ1_0 block scales (f32)
/// per row and block, or 0 (F32); `ps` the projection scale per row.
#[derive(Debug, Clone, Copy)]
struct DevLinear {
    w: u64,
    ws: u64,
    ps: u64,
    rows: usize,
    cols: usize,
    bytes: u64,
    format: WeightFormat,
}

/// A (possibly fused) matrix uploaded: codes at `w`, scales on the host.
struct Fused {
    w: u64,
    rows: usize,
    bytes: u64,
    scales: Vec<f32>,
    format: WeightFormat,
}

/// Appends a TQ2_0 tensor's codes (64 bytes per 256-value block, rows of
/// `cols / 4` bytes, so the GPU's 16-byte loads are aligned) to `codes` and
/// its block scales (f16 -> f32, exact) to `scales`.
fn split_tq2_0(
    p: &HostLinear<'_>,
    codes: &mut Vec<u8>,
    scales: &mut Vec<f32>,
) -> Result<(), CudaError> {
    let nb = p.cols / 256;
    if !p.cols.is_multiple_of(256) || p.body.len() != p.rows * nb * TQ2_BLOCK_BYTES {
        return Err(CudaError::Unsupported(format!(
            "TQ2_0 tensor of {} x {} with {} bytes",
            p.rows,
            p.cols,
            p.body.len()
        )));
    }
    for blk in p.body.chunks_exact(TQ2_BLOCK_BYTES) {
        let b = BlockTq2_0::from_bytes(
            blk.try_into()
                .map_err(|_| CudaError::Unsupported("TQ2_0 block of the wrong size".into()))?,
        );
        codes.extend_from_slice(&b.qs);
        scales.push(b.d.to_f32());
    }
    Ok(())
}

/// Kernel arguments as the driver takes them: the address of each value,
/// in the kernel's parameter order. The values must outlive the launch
/// call (the driver copies them at the launch).
#[derive(Default)]
struct KArgs(Vec<*mut c_void>);

impl KArgs {
    fn arg<T>(&mut self, v: &T) -> &mut Self {
        self.0.push(std::ptr::from_ref(v).cast_mut().cast());
        self
    }
}

/// Compile-time choices of the kernels (NVRTC defines) and launches, for
/// measuring variants; [`Tuning::default`] is what the backend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Rows each GEMV warp computes at once (`GEMV_RPW`).
    pub gemv_rpw: usize,
    /// 16-byte chunks per lane and row in flight (`GEMV_UNROLL`).
    pub gemv_unroll: usize,
    /// Programmatic dependent launch: each kernel may start (and pull its
    /// weights to L2) while the previous one runs (sm_90 and later).
    pub pdl: bool,
    /// All layers in one cooperative launch (`decode_persistent`) with
    /// grid barriers between phases; only where every projection is I2_S
    /// and the device can launch it (else the per-kernel step).
    pub persistent: bool,
    /// Persistent blocks per SM (at most what the occupancy API allows).
    pub persist_bps: usize,
    /// Matrices the persistent kernel pulls to L2 ahead, at the end of
    /// each GEMV phase (`PF_AHEAD`).
    pub prefetch_ahead: usize,
    /// Release / acquire operations where blocks publish data to each
    /// other (grid barriers, attention's counters and flags) instead of
    /// sequentially consistent fences (`SYNC_ACQREL`).
    pub sync_acqrel: bool,
    /// The persistent kernel calls its quantization and single-matrix
    /// GEMV code instead of inlining a copy per phase (`PB_NOINLINE`).
    pub call_phases: bool,
    /// Rows per matrix of a persistent gate|up warp's row group
    /// (`PB_FR_GLU`; 2 or 4).
    pub glu_rows: usize,
    /// The persistent kernel's quantization keeps 3 float4s per thread
    /// for inputs of up to 3072 (else 8; `QUANT_NARROW`).
    pub quant_narrow: bool,
    /// The persistent kernel also pulls each GEMV phase's norm weights and
    /// row scales to L2 two phases ahead (`PF_SMALL`).
    pub prefetch_small: bool,
    /// A measuring build: the persistent kernel stamps the time of every
    /// block's arrival at and exit from every grid barrier
    /// (`PHASE_TIMES`; read with [`CudaModel::phase_times`]).
    pub phase_times: bool,
}

impl Tuning {
    /// How blocks publish data to each other, for reports.
    pub fn sync_name(&self) -> &'static str {
        if self.sync_acqrel {
            "release/acquire"
        } else {
            "SC fences"
        }
    }

    /// Whether the persistent kernel calls or inlines its phase code, for
    /// reports.
    pub fn phase_code_name(&self) -> &'static str {
        if self.call_phases {
            "called"
        } else {
            "inlined"
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            gemv_rpw: 2,
            gemv_unroll: 2,
            pdl: true,
            persistent: true,
            persist_bps: 2,
            prefetch_ahead: 1,
            sync_acqrel: true,
            call_phases: true,
            glu_rows: 2,
            quant_narrow: true,
            prefetch_small: true,
            phase_times: false,
        }
    }
}

/// The scalars of `decode_persistent` (`DecodeDims` in kernels.cu, same
/// layout).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct DecodeDims {
    n_layers: i32,
    dim: i32,
    q_dim: i32,
    kv_dim: i32,
    hidden: i32,
    n_heads: i32,
    n_kv_heads: i32,
    hd: i32,
    n_rot: i32,
    neox: i32,
    act: i32,
    n_split: i32,
    eps: f32,
    attn_scale: f32,
    stop: i32,
}

/// The persistent step's launch: grid, shared memory, pointer table.
#[derive(Debug, Clone, Copy)]
struct Persist {
    blocks: u32,
    smem: u32,
    qs_offset: i32,
    layers_ptr: u64,
    bar: u64,
    /// `PHASE_TIMES` stamps (0 unless measuring).
    times: u64,
}

/// The persistent kernel's barrier stamps of its last launch (see
/// `PHASE_TIMES` in kernels.cu).
#[derive(Debug, Clone)]
pub struct PhaseTimes {
    /// Blocks of the launch.
    pub blocks: usize,
    /// Layers (5 phases each, the last one's end is the kernel's end).
    pub layers: usize,
    /// ns, `[(slot * blocks + block) * 3 + {0 arrival, 1 exit, 2 end of
    /// the block's quantization}]`, slots `0..=5 * layers` (2: 0 where
    /// the block quantized nothing in the phase ending at that slot).
    pub stamps: Vec<u64>,
}

/// Layer 0's q|k|v on the device against core ([`CudaModel::check_qkv`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QkvCheck {
    /// Output rows compared.
    pub rows: usize,
    /// Rows whose bits differ (integer formats) or that fall outside the
    /// float bound (F32).
    pub bad: usize,
    /// `None`: compared bit for bit with core's integer dot products
    /// (I2_S, TQ2_0, TQ1_0). `Some(w)`: F32, compared with core's
    /// `dot_f32` within [`F32_DOT_TOLERANCE`]'s bound; `w` is the largest
    /// `|gpu - cpu| / bound` over the rows (at most 1 passes; 0 when all
    /// are equal).
    pub float_worst: Option<f64>,
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
    f_glu: CudaFunction,
    f_tq2: CudaFunction,
    f_tq2_glu: CudaFunction,
    f_f32: CudaFunction,
    f_f32_glu: CudaFunction,
    f_quant: CudaFunction,
    f_attn: CudaFunction,
    f_attn_v: CudaFunction,
    f_embed: CudaFunction,
    f_head: CudaFunction,
    f_argmax: CudaFunction,
    f_persist: CudaFunction,
    f_floor: CudaFunction,
    f_flag: CudaFunction,
    f_cluster: CudaFunction,
    f_l2_read: CudaFunction,
    f_exp: CudaFunction,
    /// Set when the step runs as one persistent launch.
    persist: Option<Persist>,
    /// Why a requested persistent step is not used (for the suite).
    persist_note: Option<String>,
    /// Launches of one step.
    launches: usize,
    /// `PHASE_TIMES` stamps of the last persistent launch.
    times_buf: Option<CudaSlice<u8>>,
    cfg: Config,
    tuning: Tuning,
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
    head_format: HeadFormat,
    output_norm: u64,
    x: u64,
    qkv: u64,
    hb: u64,
    /// Quantized activations (padded layout) and their scale / sum.
    qact: u64,
    qmeta: u64,
    /// The normed input of an F32 projection (max K floats).
    xf: u64,
    /// Attention scores: `[heads][n_split * ATT_CHUNK]` f32.
    att_p: u64,
    n_split: usize,
    /// Finished score slices per head (the persistent step's value items
    /// wait for them; it leaves them zeroed).
    att_done: u64,
    /// The attention output, q_dim floats.
    att: u64,
    logits: u64,
    params_ptr: u64,
    out_tokens_ptr: u64,
    rope_cos: u64,
    rope_sin: u64,
    logits_buf: CudaSlice<f32>,
    qkv_buf: CudaSlice<f32>,
    qact_buf: CudaSlice<u8>,
    qmeta_buf: CudaSlice<i32>,
    xf_buf: CudaSlice<f32>,
    graph: Option<CudaGraph>,
    /// Kernels one step launches, recorded as they were captured.
    step_kernels: Vec<StepKernel>,
    counters: KernelCounters,
    weight_bytes_per_token: u64,
}

/// One kernel of the captured step: its id, the weight bytes it reads, and
/// the layer and projections it computes (`None`: not a projection), the
/// receipts' per-layer evidence.
type StepKernel = (&'static str, u64, Option<(usize, Projections)>);

/// The middle value of a non-empty sample (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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

/// RoPE cos/sin for every position, `[n_ctx][n_rot / 2]` each: core's own
/// `rope_cache` (libm's `pow` / `cos` / `sin`, not the host's), so the
/// table holds the CPU's values bit for bit.
fn rope_tables(c: &Config, n_ctx: usize) -> (Vec<f32>, Vec<f32>) {
    let half = c.n_rot / 2;
    let mut cos = vec![0.0f32; n_ctx * half];
    let mut sin = vec![0.0f32; n_ctx * half];
    if half == 0 {
        return (cos, sin);
    }
    for (pos, (cs, sn)) in cos
        .chunks_exact_mut(half)
        .zip(sin.chunks_exact_mut(half))
        .enumerate()
    {
        rope_cache(pos, c.n_rot, c.rope_freq_base, c.rope_freq_scale, cs, sn);
    }
    (cos, sin)
}

/// The receipt id of a GEMV launch on `a` (`glu`: gate|up).
fn gemv_id(a: &DevLinear, glu: bool) -> &'static str {
    match (a.format, glu) {
        (WeightFormat::I2s, false) => ID_GEMV,
        (WeightFormat::I2s, true) => ID_GEMV_GLU,
        (WeightFormat::Tq2_0, false) => ID_TQ2,
        (WeightFormat::Tq2_0, true) => ID_TQ2_GLU,
        (WeightFormat::Tq1_0, false) => ID_TQ1,
        (WeightFormat::Tq1_0, true) => ID_TQ1_GLU,
        (WeightFormat::F32, false) => ID_F32,
        (WeightFormat::F32, true) => ID_F32_GLU,
    }
}

/// Blocks of a GEMV: one group of `rpw` rows (`GEMV_RPW`) per warp.
fn gemv_grid(rows: usize, rpw: usize) -> u32 {
    let rows_per_block = (GEMV_THREADS / 32) as usize * rpw;
    rows.div_ceil(rows_per_block).max(1) as u32
}

fn grid_for(rows: usize, sm_count: usize) -> u32 {
    let warps = (HEAD_THREADS / 32) as usize;
    let cap = (sm_count * 4).max(1);
    let per_warp = rows.div_ceil(warps * cap).max(1);
    rows.div_ceil(warps * per_warp).max(1) as u32
}

/// What the persistent step needs, or why it cannot run.
struct PersistPlan {
    blocks: u32,
    smem: u32,
    qs_offset: i32,
    /// `PL_STRIDE` little-endian u64 device pointers per layer.
    table: Vec<u8>,
}

/// Plans the persistent step: every projection I2_S, cooperative launch
/// supported, `bps` blocks per SM co-resident (occupancy API).
fn persist_plan(
    ctx: &CudaContext,
    f: &CudaFunction,
    c: &Config,
    layers: &[DevLayer],
    sm_count: usize,
    bps: usize,
) -> Result<PersistPlan, String> {
    if layers.iter().any(|d| {
        [d.qkv, d.o, d.gate, d.up, d.down]
            .iter()
            .any(|a| a.format != WeightFormat::I2s)
    }) {
        return Err("the persistent step runs I2_S projections only".into());
    }
    let coop = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH)
        .map_err(|e| e.to_string())?;
    if coop == 0 {
        return Err("the device has no cooperative launch".into());
    }
    // Attention's shared memory (q, k, v of the head), then the block's
    // quantized input; K <= QA_MAX_K (checked in `with_tuning`) is also what the
    // kernel's registers hold (BQ_VEC).
    let max_k = c.dim.max(c.hidden_dim).max(c.q_dim());
    // Score and value items use the same memory.
    let front = attention_smem(c.head_dim)
        .max(attention_values_smem(c.head_dim))
        .next_multiple_of(16);
    let smem = front + max_k.div_ceil(128) * QBLOCK_STRIDE;
    if smem > 48 * 1024 {
        return Err(format!("{smem} bytes of shared memory per block"));
    }
    let occ = f
        .occupancy_max_active_blocks_per_multiprocessor(PB_THREADS, smem, None)
        .map_err(|e| e.to_string())? as usize;
    let per_sm = occ.min(bps);
    if per_sm == 0 {
        return Err("no persistent block fits on an SM".into());
    }
    let mut table = Vec::with_capacity(layers.len() * PL_STRIDE * 8);
    for d in layers {
        let mut w = [0u64; PL_STRIDE];
        let fields = [
            d.qkv.w,
            d.qkv.ws,
            d.qkv.ps,
            d.o.w,
            d.o.ws,
            d.o.ps,
            d.gate.w,
            d.gate.ws,
            d.gate.ps,
            d.up.w,
            d.up.ws,
            d.up.ps,
            d.down.w,
            d.down.ws,
            d.down.ps,
            d.attn_norm,
            d.attn_sub_norm,
            d.ffn_norm,
            d.ffn_sub_norm,
            d.kc,
            d.vc,
        ];
        w[..fields.len()].copy_from_slice(&fields);
        for v in w {
            table.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(PersistPlan {
        blocks: (sm_count * per_sm) as u32,
        smem: smem as u32,
        qs_offset: front as i32,
        table,
    })
}

impl CudaModel {
    /// Uploads `m` to device 0, compiles the kernels and captures the
    /// decode step. `n_ctx`: positions of the KV cache.
    pub fn new(m: &HostModel<'_>, n_ctx: usize) -> Result<Self, CudaError> {
        Self::with_tuning(m, n_ctx, Tuning::default())
    }

    /// [`new`](Self::new) with kernel variants (for measuring them).
    pub fn with_tuning(m: &HostModel<'_>, n_ctx: usize, tuning: Tuning) -> Result<Self, CudaError> {
        if !matches!(tuning.gemv_rpw, 1 | 2 | 4 | 8)
            || !matches!(tuning.gemv_unroll, 1 | 2 | 4)
            || !matches!(tuning.glu_rows, 2 | 4)
            || !(1..=4).contains(&tuning.persist_bps)
            || tuning.prefetch_ahead > 4
        {
            return Err(CudaError::Usage(format!("unsupported tuning {tuning:?}")));
        }
        if super::detect()?.is_none() {
            return Err(CudaError::NoDevice);
        }
        let c = m.config.clone();
        if n_ctx == 0 || n_ctx > MAX_GPU_CTX {
            return Err(CudaError::Usage(format!(
                "context {n_ctx} outside 1..={MAX_GPU_CTX} on the CUDA backend"
            )));
        }
        // Each projection's width is checked against its format's block
        // where it is uploaded (`fused`); the other kernels' limits here.
        if !c.head_dim.is_multiple_of(4) || c.head_dim > MAX_HEAD_DIM {
            return Err(CudaError::Unsupported(format!(
                "head dimension {} (the attention kernel takes multiples of 4 up to {MAX_HEAD_DIM})",
                c.head_dim
            )));
        }
        if c.dim.max(c.hidden_dim).max(c.q_dim()) > QA_MAX_K {
            return Err(CudaError::Unsupported(format!(
                "matmul inputs of more than {QA_MAX_K} features"
            )));
        }
        if c.dim * 4 > 48 * 1024 {
            return Err(CudaError::Unsupported(format!(
                "dim {} too large for the head kernel",
                c.dim
            )));
        }
        // The head kernel reads 16-byte chunks of a row: 8 F16 / 4 F32.
        let head_chunk = match m.head_format {
            HeadFormat::F16 => 8,
            HeadFormat::F32 => 4,
        };
        if !c.dim.is_multiple_of(head_chunk) {
            return Err(CudaError::Unsupported(format!(
                "dim {} for the {:?} head kernel (multiples of {head_chunk})",
                c.dim, m.head_format
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
        // Programmatic dependent launch exists from compute capability 9.0.
        let tuning = Tuning {
            pdl: tuning.pdl && major >= 9,
            ..tuning
        };
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
                options: vec![
                    format!("-DGEMV_RPW={}", tuning.gemv_rpw),
                    format!("-DGEMV_UNROLL={}", tuning.gemv_unroll),
                    format!("-DPF_AHEAD={}", tuning.prefetch_ahead),
                    format!("-DSYNC_ACQREL={}", u8::from(tuning.sync_acqrel)),
                    format!("-DPB_NOINLINE={}", u8::from(tuning.call_phases)),
                    format!("-DPB_FR_GLU={}", tuning.glu_rows),
                    format!("-DQUANT_NARROW={}", u8::from(tuning.quant_narrow)),
                    format!("-DPF_SMALL={}", u8::from(tuning.prefetch_small)),
                    format!("-DPHASE_TIMES={}", u8::from(tuning.phase_times)),
                ],
                ..Default::default()
            },
        )
        .map_err(|e| CudaError::Compile(format!("{e:?}")))?;
        let module = ctx.load_module(ptx)?;
        let f_gemv = module.load_function("i2s_gemv")?;
        let f_glu = module.load_function("i2s_gemv_glu")?;
        let f_tq2 = module.load_function("tq2_gemv")?;
        let f_tq2_glu = module.load_function("tq2_gemv_glu")?;
        let f_f32 = module.load_function("f32_gemv")?;
        let f_f32_glu = module.load_function("f32_gemv_glu")?;
        let f_quant = module.load_function("quantize_act")?;
        let f_attn = module.load_function("attention_rope")?;
        let f_attn_v = module.load_function("attention_values_k")?;
        let f_head = module.load_function("f16_gemv_rmsnorm")?;
        let f_argmax = module.load_function("argmax_next")?;
        let f_persist = module.load_function("decode_persistent")?;
        let f_floor = module.load_function("sync_floor")?;
        let f_flag = module.load_function("flag_floor")?;
        let f_cluster = module.load_function("cluster_floor")?;
        let f_l2_read = module.load_function("l2_read")?;
        let f_exp = module.load_function("exp_cpu_sweep")?;
        let f_head = match m.head_format {
            HeadFormat::F16 => f_head,
            HeadFormat::F32 => module.load_function("f32_gemv_rmsnorm")?,
        };
        let f_embed = match (&m.embedding, m.head_format) {
            (HostEmbedding::F32(_), _) | (HostEmbedding::TiedHead, HeadFormat::F32) => {
                module.load_function("embed_f32")?
            }
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
        let head_row = c.dim
            * match m.head_format {
                HeadFormat::F16 => 2,
                HeadFormat::F32 => 4,
            };
        if m.head.len() != c.vocab_size * head_row {
            return Err(CudaError::Unsupported(format!(
                "LM head of {} bytes for {} x {}",
                m.head.len(),
                c.vocab_size,
                c.dim
            )));
        }
        let head = up_u8(m.head)?;
        let embed = match &m.embedding {
            HostEmbedding::TiedHead => head,
            HostEmbedding::F16(b) => up_u8(b)?,
            HostEmbedding::F32(_) => 0,
        };
        let mut fused = |parts: &[&HostLinear<'_>]| -> Result<Fused, CudaError> {
            let format = parts[0].format;
            let cols = parts[0].cols;
            let mut f = Fused {
                w: 0,
                rows: 0,
                bytes: 0,
                scales: Vec::new(),
                format,
            };
            let mut body = Vec::new();
            for p in parts {
                if p.format != format || p.cols != cols {
                    return Err(CudaError::Unsupported(
                        "projections fed by one input must share their format and width".into(),
                    ));
                }
                if cols == 0 || !cols.is_multiple_of(format.col_multiple()) {
                    return Err(CudaError::Unsupported(format!(
                        "{format:?} projection of width {cols} (the GPU kernels take \
                         multiples of {})",
                        format.col_multiple()
                    )));
                }
                match format {
                    WeightFormat::I2s => {
                        body.extend_from_slice(&normalize_i2s_codes(p.body));
                        f.scales.extend(std::iter::repeat_n(p.weight_scale, p.rows));
                    }
                    WeightFormat::Tq2_0 => split_tq2_0(p, &mut body, &mut f.scales)?,
                    WeightFormat::Tq1_0 => {
                        if p.body.len() != p.rows * (cols / 256) * BlockTq1_0::BYTES {
                            return Err(CudaError::Unsupported(format!(
                                "TQ1_0 tensor of {} x {cols} with {} bytes",
                                p.rows,
                                p.body.len()
                            )));
                        }
                        repack_tq1_0(p.body, &mut body, &mut f.scales)?;
                    }
                    WeightFormat::F32 => {
                        if p.body.len() != p.rows * cols * 4 {
                            return Err(CudaError::Unsupported(format!(
                                "F32 tensor of {} x {cols} with {} bytes",
                                p.rows,
                                p.body.len()
                            )));
                        }
                        body.extend_from_slice(p.body);
                    }
                }
                f.rows += p.rows;
                f.bytes += p.counted_bytes;
            }
            f.w = up_u8(&body)?;
            Ok(f)
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
        let proj_scales = |parts: &[&HostLinear<'_>]| -> Vec<f32> {
            let mut ps = Vec::new();
            for p in parts {
                ps.extend(std::iter::repeat_n(p.proj_scale.unwrap_or(1.0), p.rows));
            }
            ps
        };
        let kv_dim = c.kv_dim();
        let mut layers = Vec::new();
        for (l, w) in m.layers.iter().zip(&weights) {
            let mut dl = |parts: &[&HostLinear<'_>], f: &Fused| -> Result<DevLinear, CudaError> {
                Ok(DevLinear {
                    w: f.w,
                    // F32: no weight scales.
                    ws: if f.scales.is_empty() {
                        0
                    } else {
                        up_f32(&f.scales)?
                    },
                    ps: up_f32(&proj_scales(parts))?,
                    rows: f.rows,
                    cols: parts[0].cols,
                    bytes: f.bytes,
                    format: f.format,
                })
            };
            let qkv = dl(&[&l.wq, &l.wk, &l.wv], &w[0])?;
            let o = dl(&[&l.wo], &w[1])?;
            let gate = dl(&[&l.w_gate], &w[2])?;
            let up = dl(&[&l.w_up], &w[3])?;
            if gate.format != up.format {
                return Err(CudaError::Unsupported(
                    "gate and up projections in different formats".into(),
                ));
            }
            let down = dl(&[&l.w_down], &w[4])?;
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
        let qkv_buf = stream.clone_htod(&vec![0.0f32; c.q_dim() + 2 * kv_dim])?;
        let qkv = ptr_f32(&qkv_buf, &stream);
        let hb = up_f32(&vec![0.0; c.hidden_dim])?;
        let n_split = n_ctx.div_ceil(ATT_CHUNK);
        let att_p = up_f32(&vec![0.0; c.n_heads * n_split * ATT_CHUNK])?;
        // ints, zero bits are 0 as f32 too: a slice counter per head.
        let att_done = up_f32(&vec![0.0; c.n_heads])?;
        let att = up_f32(&vec![0.0; c.q_dim()])?;
        let max_k = c.dim.max(c.hidden_dim).max(c.q_dim());
        let qact_buf = stream.clone_htod(&vec![0u8; max_k.div_ceil(128) * QBLOCK_STRIDE])?;
        let qact = ptr_u8(&qact_buf, &stream);
        // The normed input of an F32 projection.
        let xf_buf = stream.clone_htod(&vec![0.0f32; max_k])?;
        let xf = ptr_f32(&xf_buf, &stream);
        // I2_S: scale and sum; Q8_K: (d, sum) for up to 32 blocks.
        let qmeta_buf = stream.clone_htod(&[0i32; 2 + 2 * QA_MAX_K / 256])?;
        let qmeta = ptr_i32(&qmeta_buf, &stream);
        let logits_buf = stream.clone_htod(&vec![0.0f32; c.vocab_size])?;
        let logits = ptr_f32(&logits_buf, &stream);
        let (cs, sn) = rope_tables(&c, n_ctx);
        let rope_cos = up_f32(&cs)?;
        let rope_sin = up_f32(&sn)?;
        let params = stream.clone_htod(&[0i32, 0])?;
        let out_tokens = stream.clone_htod(&vec![0i32; n_ctx])?;
        let params_ptr = ptr_i32(&params, &stream);
        let out_tokens_ptr = ptr_i32(&out_tokens, &stream);
        let mut persist_note = None;
        let mut persist = None;
        let mut times_buf = None;
        if tuning.persistent {
            match persist_plan(&ctx, &f_persist, &c, &layers, sm_count, tuning.persist_bps) {
                Ok(plan) => {
                    let table = stream.clone_htod(&plan.table)?;
                    let bar = stream.clone_htod(&[0u8; 8])?;
                    let mut times = 0;
                    if tuning.phase_times {
                        let slots = 5 * c.n_layers + 1;
                        let buf = stream.alloc_zeros::<u8>(slots * plan.blocks as usize * 24)?;
                        times = ptr_u8(&buf, &stream);
                        times_buf = Some(buf);
                    }
                    persist = Some(Persist {
                        blocks: plan.blocks,
                        smem: plan.smem,
                        qs_offset: plan.qs_offset,
                        layers_ptr: ptr_u8(&table, &stream),
                        bar: ptr_u8(&bar, &stream),
                        times,
                    });
                    keep_u8.push(table);
                    keep_u8.push(bar);
                }
                Err(why) => persist_note = Some(why),
            }
        }
        let tuning = Tuning {
            persistent: persist.is_some(),
            ..tuning
        };
        stream.synchronize()?;
        let head_bytes = m.head.len() as u64;
        let mut me = Self {
            ctx,
            stream,
            f_gemv,
            f_glu,
            f_tq2,
            f_tq2_glu,
            f_f32,
            f_f32_glu,
            f_quant,
            f_attn,
            f_attn_v,
            f_embed,
            f_head,
            f_argmax,
            f_persist,
            f_floor,
            f_flag,
            f_cluster,
            f_l2_read,
            f_exp,
            persist,
            persist_note,
            launches: 0,
            times_buf,
            cfg: c,
            tuning,
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
            head_format: m.head_format,
            output_norm,
            x,
            qkv,
            hb,
            qact,
            qmeta,
            xf,
            att_p,
            n_split,
            att_done,
            att,
            logits,
            params_ptr,
            out_tokens_ptr,
            rope_cos,
            rope_sin,
            logits_buf,
            qkv_buf,
            qact_buf,
            qmeta_buf,
            xf_buf,
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

    /// The kernel variants in use (`pdl` off where the device lacks it).
    pub fn tuning(&self) -> Tuning {
        self.tuning
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

    /// Launches `f` on the stream: with programmatic stream serialization
    /// when `tuning.pdl` (the kernels' `pdl_wait` keeps the order).
    ///
    /// # Safety
    /// `args` must match `f`'s parameters in number, order and type, and
    /// every pointer among them must be a live device allocation of the
    /// size the kernel reads or writes under `cfg`.
    unsafe fn launch(
        &self,
        f: &CudaFunction,
        cfg: LaunchConfig,
        args: &mut KArgs,
    ) -> Result<(), CudaError> {
        let mut value = sys::CUlaunchAttributeValue { pad: [0; 64] };
        value.programmaticStreamSerializationAllowed = 1;
        let mut attr = sys::CUlaunchAttribute {
            id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
            pad: [0; 4],
            value,
        };
        let config = sys::CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: self.stream.cu_stream(),
            attrs: if self.tuning.pdl {
                &raw mut attr
            } else {
                std::ptr::null_mut()
            },
            numAttrs: u32::from(self.tuning.pdl),
        };
        // SAFETY: `config` (and the attribute it points to) and `args` live
        // through the call; the stream and function belong to this model's
        // context; the caller guarantees that `args` match the kernel.
        unsafe {
            sys::cuLaunchKernelEx(
                &raw const config,
                f.cu_function(),
                args.0.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()?;
        Ok(())
    }

    /// Kernel launches of one step.
    pub fn launches_per_step(&self) -> usize {
        self.launches
    }

    /// Blocks of the persistent step's launch (None: per-kernel step).
    pub fn persistent_blocks(&self) -> Option<u32> {
        self.persist.map(|p| p.blocks)
    }

    /// The barrier stamps of the last persistent launch (a
    /// `Tuning::phase_times` build; None otherwise).
    pub fn phase_times(&self) -> Result<Option<PhaseTimes>, CudaError> {
        let (Some(buf), Some(p)) = (&self.times_buf, &self.persist) else {
            return Ok(None);
        };
        let raw = self.stream.clone_dtoh(buf)?;
        self.stream.synchronize()?;
        let stamps = raw
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        Ok(Some(PhaseTimes {
            blocks: p.blocks as usize,
            layers: self.cfg.n_layers,
            stamps,
        }))
    }

    /// Why a requested persistent step is not used, if it is not.
    pub fn persist_note(&self) -> Option<&str> {
        self.persist_note.as_deref()
    }

    /// `decode_persistent` as one cooperative launch (every block
    /// co-resident, which its grid barriers need; no programmatic
    /// dependent launch). `stop`: 1 ends after layer 0's q|k|v.
    fn k_persist(&self, p: &Persist, stop: i32) -> Result<(), CudaError> {
        let c = &self.cfg;
        let dims = DecodeDims {
            n_layers: c.n_layers as i32,
            dim: c.dim as i32,
            q_dim: c.q_dim() as i32,
            kv_dim: c.kv_dim() as i32,
            hidden: c.hidden_dim as i32,
            n_heads: c.n_heads as i32,
            n_kv_heads: c.n_kv_heads as i32,
            hd: c.head_dim as i32,
            n_rot: c.n_rot as i32,
            neox: (c.arch.rope_style() == RopeStyle::Neox).into(),
            act: match c.arch {
                Arch::BitnetB158 => 0,
                Arch::Bitnet | Arch::Llama => 1,
            },
            n_split: self.n_split as i32,
            eps: c.norm_eps,
            attn_scale: c.attn_scale,
            stop,
        };
        let mut l = KArgs::default();
        l.arg(&p.layers_ptr)
            .arg(&dims)
            .arg(&self.x)
            .arg(&self.qkv)
            .arg(&self.att)
            .arg(&self.hb)
            .arg(&self.rope_cos)
            .arg(&self.rope_sin)
            .arg(&self.params_ptr)
            .arg(&self.att_p)
            .arg(&self.att_done)
            .arg(&p.bar)
            .arg(&self.qact)
            .arg(&self.qmeta)
            .arg(&p.qs_offset)
            .arg(&p.times);
        // SAFETY: the arguments match `decode_persistent`'s parameters in
        // order and type (u64 device addresses of live allocations held by
        // `self`, `DecodeDims` with the kernel struct's layout, an int):
        // the table holds n_layers x PL_STRIDE pointers to this model's
        // I2_S matrices (rows x cols / 4 bytes), scales, norms and caches
        // (n_ctx positions; params[1] < n_ctx, checked before every step);
        // x, qkv, att, hb, att_p and the counters (a slice counter per
        // head, zero between launches) are sized as for
        // the per-kernel step (PB_THREADS >= ATT_CHUNK); bar is two zeroed words that every launch leaves
        // at a zero count; qact / qmeta as for `quantize_act`; times is 0
        // or, with PHASE_TIMES, (5 n_layers + 1) x blocks x 3 u64; p is
        // this model's plan (`launch_cooperative`'s grid and memory).
        unsafe { self.launch_cooperative(&self.f_persist, p, &mut l) }
    }

    /// The least one dependency of the persistent step costs on this
    /// device (`sync_floor` in kernels.cu, on the step's grid):
    /// microseconds per round of a grid barrier, every block reading all
    /// `n` floats (a positive multiple of 4) another block wrote and one
    /// block reduction; the median of `reps` launches of `rounds` rounds.
    /// `blocks`: the grid (at most the step's; 0: the step's). `None`
    /// where the step is not persistent.
    pub fn sync_floor_us(
        &self,
        n: usize,
        rounds: usize,
        reps: usize,
        blocks: usize,
    ) -> Result<Option<f64>, CudaError> {
        let Some(step) = &self.persist else {
            return Ok(None);
        };
        let mut p = *step;
        if blocks > 0 {
            p.blocks = p.blocks.min(u32::try_from(blocks).unwrap_or(u32::MAX));
        }
        let p = &p;
        let (Ok(n_i), Ok(rounds_i)) = (i32::try_from(n), i32::try_from(rounds)) else {
            return Ok(None);
        };
        if n == 0 || !n.is_multiple_of(4) || reps == 0 {
            return Ok(None);
        }
        let vec = self.stream.alloc_zeros::<f32>(2 * n)?;
        let bar = self.stream.alloc_zeros::<u8>(8)?;
        let out = self.stream.alloc_zeros::<f32>(p.blocks as usize)?;
        let times = self.stream.alloc_zeros::<u8>(16)?;
        let (vp, bp, op, tp) = (
            ptr_f32(&vec, &self.stream),
            ptr_u8(&bar, &self.stream),
            ptr_f32(&out, &self.stream),
            ptr_u8(&times, &self.stream),
        );
        let mut us = Vec::with_capacity(reps);
        for _ in 0..reps {
            let mut l = KArgs::default();
            l.arg(&vp)
                .arg(&n_i)
                .arg(&rounds_i)
                .arg(&bp)
                .arg(&op)
                .arg(&tp);
            // SAFETY: matches `sync_floor(float*, int, int, u32*, float*,
            // usize*)`: vec holds 2 n floats (n % 4 == 0, checked), bar two
            // zeroed words that every launch leaves at a zero count, out a
            // float per block of p's grid, times two u64; the values live
            // through the call; p's grid is at most the step's.
            unsafe { self.launch_cooperative(&self.f_floor, p, &mut l) }?;
            us.push(self.stamped_us(&times, rounds)?);
        }
        Ok(Some(median(us)))
    }

    /// The same dependency handed over by tagged entries instead of a
    /// barrier (`flag_floor` in kernels.cu: every thread waits for its own
    /// entries of the `n`-float vector, at least one entry per block and at
    /// most 256 x 28, then one block reduction), on the step's grid:
    /// microseconds per round, the median of `reps` launches of `rounds`
    /// rounds. `None` where the step is not persistent.
    pub fn flag_floor_us(
        &self,
        n: usize,
        rounds: usize,
        reps: usize,
    ) -> Result<Option<f64>, CudaError> {
        let Some(p) = &self.persist else {
            return Ok(None);
        };
        let (Ok(n_i), Ok(rounds_i), Ok(rounds_u)) = (
            i32::try_from(n),
            i32::try_from(rounds),
            u32::try_from(rounds),
        ) else {
            return Ok(None);
        };
        if n < p.blocks as usize || n > PB_THREADS as usize * 28 || reps == 0 {
            return Ok(None);
        }
        let vec = self.stream.alloc_zeros::<u64>(2 * n)?;
        let bar = self.stream.alloc_zeros::<u8>(8)?;
        let out = self.stream.alloc_zeros::<f32>(p.blocks as usize)?;
        let times = self.stream.alloc_zeros::<u8>(16)?;
        let (vp, bp, op, tp) = (
            vec.device_ptr(&self.stream).0,
            ptr_u8(&bar, &self.stream),
            ptr_f32(&out, &self.stream),
            ptr_u8(&times, &self.stream),
        );
        let mut us = Vec::with_capacity(reps);
        for rep in 0..reps {
            // Tags 1.. for the first launch, then on: never one a vector
            // entry already carries (they start at 0).
            let tag0 = u32::try_from(rep)
                .unwrap_or(u32::MAX)
                .wrapping_mul(rounds_u)
                .wrapping_add(1);
            let mut l = KArgs::default();
            l.arg(&vp)
                .arg(&n_i)
                .arg(&rounds_i)
                .arg(&tag0)
                .arg(&bp)
                .arg(&op)
                .arg(&tp);
            // SAFETY: matches `flag_floor(u64*, int, int, u32, u32*, float*,
            // usize*)`: vec holds 2 n u64 whose tags (0 or an earlier
            // launch's) differ from this launch's, blocks <= n <= 256 x
            // FLAG_MAX (checked: every block writes, so none runs two
            // rounds ahead of a reader), bar two zeroed words that every launch leaves at a
            // zero count, out a float per block of p's grid, times two u64;
            // the values live through the call.
            unsafe { self.launch_cooperative(&self.f_flag, p, &mut l) }?;
            us.push(self.stamped_us(&times, rounds)?);
        }
        Ok(Some(median(us)))
    }

    /// Microseconds per round between a kernel's two %globaltimer stamps
    /// (the two u64 at `times`) after the stream has run it.
    fn stamped_us(&self, times: &CudaSlice<u8>, rounds: usize) -> Result<f64, CudaError> {
        let t = self.stream.clone_dtoh(times)?;
        self.stream.synchronize()?;
        let at = |i: usize| u64::from_le_bytes(t[8 * i..8 * i + 8].try_into().unwrap_or([0; 8]));
        Ok(at(1).saturating_sub(at(0)) as f64 / 1e3 / rounds.max(1) as f64)
    }

    /// One dependency inside a thread-block cluster of `cluster` blocks
    /// (`cluster_floor` in kernels.cu: cluster barrier, every block reading
    /// the `n`-float vector, a positive multiple of 4, from the cluster's
    /// shared memories, one block reduction): microseconds per round, the
    /// median of `reps` launches of `rounds` rounds. `None` before compute
    /// capability 9.0 (no clusters) or for a cluster the device refuses.
    pub fn cluster_floor_us(
        &self,
        cluster: u32,
        n: usize,
        rounds: usize,
        reps: usize,
    ) -> Result<Option<f64>, CudaError> {
        let major: u32 = self
            .gpu
            .cc
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let per = n.div_ceil(cluster.max(1) as usize).next_multiple_of(4);
        let (Ok(n_i), Ok(per_i), Ok(rounds_i)) =
            (i32::try_from(n), i32::try_from(per), i32::try_from(rounds))
        else {
            return Ok(None);
        };
        if major < 9 || cluster == 0 || n == 0 || !n.is_multiple_of(4) || reps == 0 {
            return Ok(None);
        }
        let smem = u32::try_from(2 * per * 4).unwrap_or(u32::MAX);
        if smem > 48 * 1024 {
            return Ok(None);
        }
        self.f_cluster.set_attribute(
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
            1,
        )?;
        let out = self.stream.alloc_zeros::<f32>(cluster as usize)?;
        let times = self.stream.alloc_zeros::<u8>(16)?;
        let (op, tp) = (ptr_f32(&out, &self.stream), ptr_u8(&times, &self.stream));
        let mut us = Vec::with_capacity(reps);
        for _ in 0..reps {
            let mut l = KArgs::default();
            l.arg(&n_i).arg(&per_i).arg(&rounds_i).arg(&op).arg(&tp);
            let mut value = sys::CUlaunchAttributeValue { pad: [0; 64] };
            value.clusterDim = sys::CUlaunchAttributeValue_union__bindgen_ty_1 {
                x: cluster,
                y: 1,
                z: 1,
            };
            let mut attr = sys::CUlaunchAttribute {
                id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION,
                pad: [0; 4],
                value,
            };
            let config = sys::CUlaunchConfig {
                gridDimX: cluster,
                gridDimY: 1,
                gridDimZ: 1,
                blockDimX: PB_THREADS,
                blockDimY: 1,
                blockDimZ: 1,
                sharedMemBytes: smem,
                hStream: self.stream.cu_stream(),
                attrs: &raw mut attr,
                numAttrs: 1,
            };
            // SAFETY: the arguments match `cluster_floor(int, int, int,
            // float*, usize*)` and live through the call: out holds a float
            // per block, times two u64; 2 per floats of dynamic shared
            // memory with per * cluster >= n and per % 4 == 0 (so no read
            // leaves the owner's share); one cluster of `cluster` blocks,
            // launched on cc >= 9.0 only. A cluster the device cannot
            // place is an error of the launch, not of the kernel.
            let r = unsafe {
                sys::cuLaunchKernelEx(
                    &raw const config,
                    self.f_cluster.cu_function(),
                    l.0.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            }
            .result();
            if r.is_err() {
                return Ok(None);
            }
            us.push(self.stamped_us(&times, rounds)?);
        }
        Ok(Some(median(us)))
    }

    /// What `blocks` blocks of 1024 threads (one per SM) pull from L2: GB/s
    /// reading a `bytes` buffer (a multiple of 16, small enough to stay in
    /// L2) `passes` times per launch, median of `reps` launches after one
    /// that loads it (`l2_read` in kernels.cu).
    pub fn l2_read_gbs(
        &self,
        blocks: u32,
        bytes: usize,
        passes: usize,
        reps: usize,
    ) -> Result<Option<f64>, CudaError> {
        let Ok(passes_i) = i32::try_from(passes) else {
            return Ok(None);
        };
        if blocks == 0 || bytes == 0 || !bytes.is_multiple_of(16) || reps == 0 {
            return Ok(None);
        }
        let src = self.stream.alloc_zeros::<u8>(bytes)?;
        let out = self.stream.alloc_zeros::<u32>(blocks as usize)?;
        let (sp, op) = (ptr_u8(&src, &self.stream), out.device_ptr(&self.stream).0);
        let n16 = bytes / 16;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut ms = Vec::with_capacity(reps);
        for i in 0..=reps {
            let mut l = KArgs::default();
            l.arg(&sp).arg(&n16).arg(&passes_i).arg(&op);
            let e0 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            let e1 = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
            e0.record(&self.stream)?;
            // SAFETY: matches `l2_read(const uint4*, usize, int, u32*)`:
            // src holds n16 16-byte words, out a u32 per block; the values
            // live through the call.
            unsafe { self.launch(&self.f_l2_read, cfg, &mut l) }?;
            e1.record(&self.stream)?;
            e1.synchronize()?;
            if i > 0 {
                ms.push(f64::from(e0.elapsed_ms(&e1)?));
            }
        }
        Ok(Some((bytes * passes) as f64 / (median(ms) / 1e3) / 1e9))
    }

    /// Launches `f` (a persistent-grid kernel: `decode_persistent` or
    /// `sync_floor`) cooperatively on `p`'s grid of PB_THREADS-thread
    /// blocks with `p.smem` bytes of dynamic shared memory.
    ///
    /// # Safety
    /// `l` must match `f`'s parameters in order and type and point at
    /// values that live through the call; every buffer they name must be
    /// as large as `f` reads and writes for this grid.
    unsafe fn launch_cooperative(
        &self,
        f: &CudaFunction,
        p: &Persist,
        l: &mut KArgs,
    ) -> Result<(), CudaError> {
        let mut value = sys::CUlaunchAttributeValue { pad: [0; 64] };
        value.cooperative = 1;
        let mut attr = sys::CUlaunchAttribute {
            id: sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_COOPERATIVE,
            pad: [0; 4],
            value,
        };
        let config = sys::CUlaunchConfig {
            gridDimX: p.blocks,
            gridDimY: 1,
            gridDimZ: 1,
            blockDimX: PB_THREADS,
            blockDimY: 1,
            blockDimZ: 1,
            sharedMemBytes: p.smem,
            hStream: self.stream.cu_stream(),
            attrs: &raw mut attr,
            numAttrs: 1,
        };
        // SAFETY: the caller's contract covers the arguments; the grid is
        // at most what the occupancy API says is co-resident (the plan),
        // and the cooperative attribute makes the driver refuse a grid that
        // is not, so grid barriers cannot deadlock. `config` and `attr`
        // live through the call.
        unsafe {
            sys::cuLaunchKernelEx(
                &raw const config,
                f.cu_function(),
                l.0.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        }
        .result()?;
        Ok(())
    }

    /// Device allocations held (weights, caches, buffers).
    pub fn allocations(&self) -> usize {
        self.keep_u8.len() + self.keep_f32.len()
    }

    /// `quantize_act` of `x` (K floats; with `norm` != 0 RMSNorm first)
    /// for a matmul of `format`: into qact / qmeta, or (F32) the normed
    /// floats into xf.
    fn k_quant(&self, x: u64, norm: u64, k: usize, format: WeightFormat) -> Result<(), CudaError> {
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (QA_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let kk = k as i32;
        let eps = self.cfg.norm_eps;
        let fmt = format.act_fmt();
        let mut l = KArgs::default();
        l.arg(&x)
            .arg(&norm)
            .arg(&eps)
            .arg(&kk)
            .arg(&fmt)
            .arg(&self.qact)
            .arg(&self.qmeta)
            .arg(&self.xf);
        // SAFETY: the arguments match `quantize_act`'s parameters in order
        // and type (u64 device addresses of live allocations held by
        // `self`): x / norm hold k floats (k <= QA_MAX_K, checked in `new`),
        // qact the padded layout of the largest input, qmeta
        // 2 + 2 * QA_MAX_K / 256 words, xf the largest input's floats.
        unsafe { self.launch(&self.f_quant, cfg, &mut l) }?;
        Ok(())
    }

    /// The input of a matmul on `a` from `x` (K floats) and `norm` (0:
    /// none): `quantize_act` for the ternary formats (recorded in `ks`),
    /// and for F32 the norm alone into xf, or nothing without a norm.
    /// Returns the floats an F32 GEMV reads (`x` or xf; unused by the
    /// others, which read qact / qmeta).
    fn k_input(
        &self,
        x: u64,
        norm: u64,
        k: usize,
        a: &DevLinear,
        ks: &mut Vec<StepKernel>,
    ) -> Result<u64, CudaError> {
        if a.format == WeightFormat::F32 && norm == 0 {
            return Ok(x);
        }
        self.k_quant(x, norm, k, a.format)?;
        if a.format == WeightFormat::F32 {
            ks.push((ID_NORM, 0, None));
            Ok(self.xf)
        } else {
            ks.push((ID_QUANT, 0, None));
            Ok(x)
        }
    }

    /// The GEMV of `a` on its input: mode 0 `out = W x`, mode 1
    /// `out += W x`; with `up`, gate|up and the activation into `out`.
    /// Ternary formats read the quantized activations (qact / qmeta), F32
    /// the `xin` floats (from [`k_input`](Self::k_input)).
    fn gemv(
        &self,
        a: &DevLinear,
        up: Option<&DevLinear>,
        out: u64,
        mode: i32,
        xin: u64,
    ) -> Result<(), CudaError> {
        let cfg = LaunchConfig {
            grid_dim: (gemv_grid(a.rows, self.tuning.gemv_rpw), 1, 1),
            block_dim: (GEMV_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (kk, rows) = (a.cols as i32, a.rows as i32);
        let act: i32 = match self.cfg.arch.ffn_activation() {
            FfnActivation::ReluSquared => 0,
            FfnActivation::Silu => 1,
        };
        if a.format == WeightFormat::F32 {
            let mut l = KArgs::default();
            match up {
                None => {
                    l.arg(&a.w)
                        .arg(&a.ps)
                        .arg(&xin)
                        .arg(&kk)
                        .arg(&rows)
                        .arg(&out)
                        .arg(&mode);
                    // SAFETY: matches `f32_gemv` (u64 device addresses of
                    // live allocations held by `self`: W rows x k floats,
                    // ps and out `rows` floats, xin k floats written by an
                    // earlier kernel on the stream).
                    unsafe { self.launch(&self.f_f32, cfg, &mut l) }?;
                }
                Some(b) => {
                    l.arg(&a.w)
                        .arg(&b.w)
                        .arg(&a.ps)
                        .arg(&b.ps)
                        .arg(&xin)
                        .arg(&kk)
                        .arg(&rows)
                        .arg(&out)
                        .arg(&act);
                    // SAFETY: matches `f32_gemv_glu`; gate and up are both
                    // F32 of rows x k (checked at upload), out holds `rows`
                    // floats, xin as for `f32_gemv`.
                    unsafe { self.launch(&self.f_f32_glu, cfg, &mut l) }?;
                }
            }
            return Ok(());
        }
        match up {
            None => {
                let f = match a.format {
                    WeightFormat::I2s => &self.f_gemv,
                    _ => &self.f_tq2,
                };
                let mut l = KArgs::default();
                l.arg(&a.w)
                    .arg(&a.ws)
                    .arg(&a.ps)
                    .arg(&self.qact)
                    .arg(&self.qmeta)
                    .arg(&kk)
                    .arg(&rows)
                    .arg(&out)
                    .arg(&mode);
                // SAFETY: matches `i2s_gemv` and `tq2_gemv` (same
                // parameters; u64 device addresses of live allocations held
                // by `self`: W rows x k/4 bytes, scales per row (I2_S) or
                // per row and block (TQ2_0, repacked TQ1_0), out `rows`
                // floats, qact / qmeta written by the `quantize_act` of
                // this k and format issued before on the stream).
                unsafe { self.launch(f, cfg, &mut l) }?;
            }
            Some(b) => {
                let f = match a.format {
                    WeightFormat::I2s => &self.f_glu,
                    _ => &self.f_tq2_glu,
                };
                let mut l = KArgs::default();
                l.arg(&a.w)
                    .arg(&b.w)
                    .arg(&a.ws)
                    .arg(&a.ps)
                    .arg(&b.ws)
                    .arg(&b.ps)
                    .arg(&self.qact)
                    .arg(&self.qmeta)
                    .arg(&kk)
                    .arg(&rows)
                    .arg(&out)
                    .arg(&act);
                // SAFETY: matches `i2s_gemv_glu` and `tq2_gemv_glu`; gate
                // and up have the same format and
                // shape (rows x k), out holds `rows` floats; qact / qmeta as
                // for `i2s_gemv`.
                unsafe { self.launch(f, cfg, &mut l) }?;
            }
        }
        Ok(())
    }

    fn k_embed(&self) -> Result<(), CudaError> {
        let dim = self.cfg.dim as i32;
        let mut l = KArgs::default();
        l.arg(&self.embed)
            .arg(&self.params_ptr)
            .arg(&self.x)
            .arg(&dim);
        let cfg = LaunchConfig::for_num_elems(self.cfg.dim as u32);
        // SAFETY: matches `embed_f16`/`embed_f32` (table of vocab x dim, the
        // token in params[0] is checked < vocab by the host or argmax).
        unsafe { self.launch(&self.f_embed, cfg, &mut l) }?;
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
            grid_dim: (c.n_heads as u32, self.n_split as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: attention_smem(c.head_dim) as u32,
        };
        let mut l = KArgs::default();
        l.arg(&self.qkv)
            .arg(&d.kc)
            .arg(&d.vc)
            .arg(&self.rope_cos)
            .arg(&self.rope_sin)
            .arg(&self.params_ptr)
            .arg(&self.att_p)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd)
            .arg(&nrot)
            .arg(&neox)
            .arg(&scale);
        // SAFETY: matches `attention_rope`; caches hold n_ctx positions and
        // the position in params[1] is < n_ctx (checked by the host before
        // every step); att_p holds heads x n_split slices of ATT_CHUNK
        // (grid.y = n_split); hd % 4 == 0 (checked in `new`); 128 threads (the
        // kernel's NTHR) >= ATT_CHUNK; shared memory as `attention_smem`.
        unsafe { self.launch(&self.f_attn, cfg, &mut l) }?;
        // The softmax and value sums, spread over heads x groups of
        // ATT_VGROUP elements.
        let n_split = self.n_split as i32;
        let cfg = LaunchConfig {
            grid_dim: (c.n_heads as u32, c.head_dim.div_ceil(ATT_VGROUP) as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: attention_values_smem(c.head_dim) as u32,
        };
        let mut l = KArgs::default();
        l.arg(&self.qkv)
            .arg(&d.vc)
            .arg(&self.params_ptr)
            .arg(&self.att_p)
            .arg(&self.att)
            .arg(&nh)
            .arg(&nkv)
            .arg(&hd)
            .arg(&n_split);
        // SAFETY: matches `attention_values_k`; the same buffers as the
        // launch above, whose scores it reads after its own pdl_wait (so after
        // that launch completed); grid.y covers hd in groups of ATT_VGROUP
        // (hd % 4 == 0, so each group's size is too); shared memory
        // as `attention_values_smem` (the kernel's ATT_VTILE + T floats).
        unsafe { self.launch(&self.f_attn_v, cfg, &mut l) }?;
        Ok(())
    }

    fn k_head(&self) -> Result<(), CudaError> {
        let c = &self.cfg;
        let (k, rows) = (c.dim as i32, c.vocab_size as i32);
        let eps = c.norm_eps;
        let cfg = LaunchConfig {
            grid_dim: (grid_for(c.vocab_size, self.sm_count), 1, 1),
            block_dim: (HEAD_THREADS, 1, 1),
            shared_mem_bytes: (c.dim * 4) as u32,
        };
        let mut l = KArgs::default();
        l.arg(&self.head)
            .arg(&self.x)
            .arg(&self.output_norm)
            .arg(&eps)
            .arg(&k)
            .arg(&rows)
            .arg(&self.logits);
        // SAFETY: matches `f16_gemv_rmsnorm` / `f32_gemv_rmsnorm` (same
        // parameters; the one loaded matches the head's format, whose size
        // `new` checked: vocab x dim), logits hold vocab floats, shared
        // memory dim floats.
        unsafe { self.launch(&self.f_head, cfg, &mut l) }?;
        Ok(())
    }

    fn k_argmax(&self) -> Result<(), CudaError> {
        let n = self.cfg.vocab_size as i32;
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = KArgs::default();
        l.arg(&self.logits)
            .arg(&n)
            .arg(&self.params_ptr)
            .arg(&self.out_tokens_ptr);
        // SAFETY: matches `argmax_next`; out_tokens holds n_ctx ints and the
        // position in params[1] is < n_ctx during a step.
        unsafe { self.launch(&self.f_argmax, cfg, &mut l) }?;
        Ok(())
    }

    /// Issues one whole step on the stream; returns the kernels (or the
    /// persistent kernel's phases) it runs, with their weight bytes and the
    /// projections of a layer each one computed.
    fn issue_step(&self) -> Result<Vec<StepKernel>, CudaError> {
        let mut ks = Vec::new();
        self.k_embed()?;
        ks.push((ID_EMBED, 0, None));
        let c = &self.cfg;
        let qkv = Projections::Q.union(Projections::K).union(Projections::V);
        let glu = Projections::GATE.union(Projections::UP);
        if let Some(p) = &self.persist {
            self.k_persist(p, 0)?;
            for (l, d) in self.layers.iter().enumerate() {
                ks.push((ID_PGEMV, d.qkv.bytes, Some((l, qkv))));
                ks.push((ID_PATTN, 0, None));
                ks.push((ID_PGEMV, d.o.bytes, Some((l, Projections::O))));
                ks.push((ID_PGLU, d.gate.bytes + d.up.bytes, Some((l, glu))));
                ks.push((ID_PGEMV, d.down.bytes, Some((l, Projections::DOWN))));
            }
        } else {
            for (l, d) in self.layers.iter().enumerate() {
                let xin = self.k_input(self.x, d.attn_norm, c.dim, &d.qkv, &mut ks)?;
                self.gemv(&d.qkv, None, self.qkv, 0, xin)?;
                ks.push((gemv_id(&d.qkv, false), d.qkv.bytes, Some((l, qkv))));
                self.k_attn(d)?;
                ks.push((ID_ATTN, 0, None));
                let xin = self.k_input(self.att, d.attn_sub_norm, c.q_dim(), &d.o, &mut ks)?;
                self.gemv(&d.o, None, self.x, 1, xin)?;
                ks.push((gemv_id(&d.o, false), d.o.bytes, Some((l, Projections::O))));
                let xin = self.k_input(self.x, d.ffn_norm, c.dim, &d.gate, &mut ks)?;
                self.gemv(&d.gate, Some(&d.up), self.hb, 0, xin)?;
                ks.push((
                    gemv_id(&d.gate, true),
                    d.gate.bytes + d.up.bytes,
                    Some((l, glu)),
                ));
                let xin = self.k_input(self.hb, d.ffn_sub_norm, c.hidden_dim, &d.down, &mut ks)?;
                self.gemv(&d.down, None, self.x, 1, xin)?;
                ks.push((
                    gemv_id(&d.down, false),
                    d.down.bytes,
                    Some((l, Projections::DOWN)),
                ));
            }
        }
        self.k_head()?;
        let head_id = match self.head_format {
            HeadFormat::F16 => ID_HEAD,
            HeadFormat::F32 => ID_HEAD_F32,
        };
        ks.push((head_id, self.head_bytes, None));
        self.k_argmax()?;
        ks.push((ID_ARGMAX, 0, None));
        Ok(ks)
    }

    fn capture(&mut self) -> Result<(), CudaError> {
        if let Err(e) = self.capture_once() {
            // A persistent step that cannot be captured (or launched):
            // say why and fall back to the per-kernel step.
            let Some(_) = self.persist.take() else {
                return Err(e);
            };
            self.persist_note = Some(format!("persistent step not captured: {e}"));
            self.tuning.persistent = false;
            self.capture_once()?;
        }
        Ok(())
    }

    fn capture_once(&mut self) -> Result<(), CudaError> {
        self.stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        let issued = self.issue_step();
        let graph = self.stream.end_capture(CUgraphInstantiate_flags(0))?;
        let ks = issued?;
        let graph =
            graph.ok_or_else(|| CudaError::Usage("stream capture produced no graph".into()))?;
        graph.upload()?;
        self.launches = if self.persist.is_some() { 4 } else { ks.len() };
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
        for &(id, bytes, layer) in &self.step_kernels {
            match layer {
                Some((l, p)) => self.counters.record_projection(l, p, id, bytes),
                None => self.counters.record(id, bytes),
            }
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

    /// Checks layer 0's q|k|v projection on the device against core:
    /// forms the input of the current residual as a step does (RMSNorm
    /// and quantization: `quantize_act`, or the norm alone for F32), runs
    /// the GEMV, reads back that input (quantized activations and their
    /// scale(s), or the normed floats) and the outputs, and recomputes
    /// every output row on the CPU from `host`'s weights with core's
    /// functions: I2_S `i2s_dot_i32` on the file's bytes, then `i2s_output`
    /// and the projection scale; TQ2_0 `vec_dot_tq2_0_q8_k`; TQ1_0
    /// `vec_dot_tq1_0_q8_k` on the file's TQ1_0 bytes (the GPU ran on its
    /// repacking), all compared bit for bit; F32 `dot_f32` times the
    /// projection scale, compared within [`F32_DOT_TOLERANCE`].
    /// Overwrites the q|k|v buffer: call between steps.
    pub fn check_qkv(&self, host: &HostModel<'_>) -> Result<QkvCheck, CudaError> {
        let d = self.layers[0];
        let hl = &host.layers[0];
        let c = &self.cfg;
        let float = d.qkv.format == WeightFormat::F32;
        if let Some(p) = &self.persist {
            // The persistent kernel's own quantization (block 0's copy)
            // and q|k|v phase.
            self.k_persist(p, 1)?;
        } else {
            let xin = self.k_input(self.x, d.attn_norm, c.dim, &d.qkv, &mut Vec::new())?;
            if float && xin != self.xf {
                return Err(CudaError::Usage("layer 0 has no attention norm".into()));
            }
            self.gemv(&d.qkv, None, self.qkv, 0, xin)?;
        }
        let out = self.stream.clone_dtoh(&self.qkv_buf)?;
        let qpad = self.stream.clone_dtoh(&self.qact_buf)?;
        let meta = self.stream.clone_dtoh(&self.qmeta_buf)?;
        let xf = self.stream.clone_dtoh(&self.xf_buf)?;
        self.stream.synchronize()?;
        let k = c.dim;
        let q: Vec<i8> = (0..k)
            .map(|i| qpad[(i / 128) * QBLOCK_STRIDE + i % 128] as i8)
            .collect();
        let q8k = || -> Vec<BlockQ8K> {
            (0..k / 256)
                .map(|b| {
                    let mut blk = BlockQ8K::ZERO;
                    blk.d = f32::from_bits(meta[2 + 2 * b] as u32);
                    blk.qs.copy_from_slice(&q[b * 256..(b + 1) * 256]);
                    blk
                })
                .collect()
        };
        let core_err = |e: bitnet_core::quant::QuantError| CudaError::Usage(e.to_string());
        let mut check = QkvCheck {
            rows: 0,
            bad: 0,
            float_worst: float.then_some(0.0),
        };
        let mut r_all = 0;
        for p in [&hl.wq, &hl.wk, &hl.wv] {
            let ps = p.proj_scale.unwrap_or(1.0);
            for r in 0..p.rows {
                let got = out[r_all + r];
                let want = match p.format {
                    WeightFormat::I2s => {
                        let rb = k / 4;
                        let dot =
                            i2s_dot_i32(&p.body[r * rb..(r + 1) * rb], &q).map_err(core_err)?;
                        let s = f32::from_bits(meta[0] as u32);
                        i2s_output(dot, s, p.weight_scale) * ps
                    }
                    WeightFormat::Tq2_0 => {
                        let rb = k / 256 * TQ2_BLOCK_BYTES;
                        vec_dot_tq2_0_q8_k(&p.body[r * rb..(r + 1) * rb], &q8k())
                            .map_err(core_err)?
                            * ps
                    }
                    WeightFormat::Tq1_0 => {
                        let rb = k / 256 * BlockTq1_0::BYTES;
                        vec_dot_tq1_0_q8_k(&p.body[r * rb..(r + 1) * rb], &q8k())
                            .map_err(core_err)?
                            * ps
                    }
                    WeightFormat::F32 => {
                        let row = &p.body[r * k * 4..(r + 1) * k * 4];
                        let want = dot_f32(row, &xf[..k]).map_err(core_err)? * ps;
                        // The bound of F32_DOT_TOLERANCE for this row.
                        let abs: f64 = row
                            .chunks_exact(4)
                            .zip(&xf[..k])
                            .map(|(w, &x)| {
                                let w = f32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                                f64::from(w * x).abs()
                            })
                            .sum();
                        let bound =
                            f64::from(F32_DOT_TOLERANCE) * k as f64 * abs * f64::from(ps).abs();
                        let diff = (f64::from(got) - f64::from(want)).abs();
                        check.rows += 1;
                        if diff.is_nan() || diff > bound {
                            check.bad += 1;
                        }
                        if diff > 0.0
                            && let Some(w) = &mut check.float_worst
                        {
                            *w = w.max(diff / bound);
                        }
                        continue;
                    }
                };
                check.rows += 1;
                if want.to_bits() != got.to_bits() {
                    check.bad += 1;
                }
            }
            r_all += p.rows;
        }
        Ok(check)
    }

    /// Times each kernel kind of layer 0 and the head on their own
    /// (CUDA events, median of `reps` launches). Overwrites activations and
    /// the cache row at the current position: call after generation. The
    /// GEMVs of F32 projections read the input buffer as it is (the
    /// `quantize_act` rows norm into it).
    pub fn time_kernels(&self, reps: usize) -> Result<Vec<KernelTiming>, CudaError> {
        let d = self.layers[0];
        let c = &self.cfg;
        // The floats an F32 GEMV reads: xf (left by a step's norm), or
        // the raw input where the block has no sub-norm.
        let xin = |a: &DevLinear, raw: u64, norm: u64| {
            if a.format == WeightFormat::F32 && norm == 0 {
                raw
            } else {
                self.xf
            }
        };
        let (x_qkv, x_o) = (
            xin(&d.qkv, self.x, d.attn_norm),
            xin(&d.o, self.att, d.attn_sub_norm),
        );
        let (x_gate, x_down) = (
            xin(&d.gate, self.x, d.ffn_norm),
            xin(&d.down, self.hb, d.ffn_sub_norm),
        );
        let mut out = Vec::new();
        type Launch<'m> = Box<dyn Fn() -> Result<(), CudaError> + 'm>;
        let cases: Vec<(String, u64, Launch<'_>)> = vec![
            (
                format!("quantize_act rmsnorm {}", c.dim),
                0,
                Box::new(move || self.k_quant(self.x, d.attn_norm, c.dim, d.qkv.format)),
            ),
            (
                format!("i2s_gemv q|k|v {}x{}", d.qkv.rows, d.qkv.cols),
                d.qkv.bytes,
                Box::new(move || self.gemv(&d.qkv, None, self.qkv, 0, x_qkv)),
            ),
            (
                format!(
                    "attention_rope {} heads x {} slices + attention_values_k",
                    c.n_heads, self.n_split
                ),
                0,
                Box::new(move || self.k_attn(&d)),
            ),
            (
                format!("quantize_act sub-norm {}", c.q_dim()),
                0,
                Box::new(move || self.k_quant(self.att, d.attn_sub_norm, c.q_dim(), d.o.format)),
            ),
            (
                format!("i2s_gemv o {}x{} (+residual)", d.o.rows, d.o.cols),
                d.o.bytes,
                Box::new(move || self.gemv(&d.o, None, self.x, 1, x_o)),
            ),
            (
                format!("i2s_gemv_glu gate+up {}x{} x2", d.gate.rows, d.gate.cols),
                d.gate.bytes + d.up.bytes,
                Box::new(move || self.gemv(&d.gate, Some(&d.up), self.hb, 0, x_gate)),
            ),
            (
                format!("quantize_act sub-norm {}", c.hidden_dim),
                0,
                Box::new(move || {
                    self.k_quant(self.hb, d.ffn_sub_norm, c.hidden_dim, d.down.format)
                }),
            ),
            (
                format!("i2s_gemv down {}x{} (+residual)", d.down.rows, d.down.cols),
                d.down.bytes,
                Box::new(move || self.gemv(&d.down, None, self.x, 1, x_down)),
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

    /// The kernels' `expf_cpu(x)` and `silu_mul_cpu(x, 1)` for every `x` of
    /// `xs` (the suite compares them with core's `exp_f32` and SiLU bit for
    /// bit).
    pub fn exp_check(&self, xs: &[f32]) -> Result<(Vec<f32>, Vec<f32>), CudaError> {
        let input = self.stream.clone_htod(xs)?;
        let out = self.stream.alloc_zeros::<f32>(2 * xs.len())?;
        let (pi, po) = (ptr_f32(&input, &self.stream), ptr_f32(&out, &self.stream));
        let n = i32::try_from(xs.len())
            .map_err(|_| CudaError::Usage(format!("{} inputs", xs.len())))?;
        let cfg = LaunchConfig {
            grid_dim: (xs.len().div_ceil(256).clamp(1, 4096) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = KArgs::default();
        l.arg(&pi).arg(&po).arg(&n);
        // SAFETY: matches `exp_cpu_sweep`: `input` holds n floats and `out`
        // 2 n, both live until the copy below has synchronized.
        unsafe { self.launch(&self.f_exp, cfg, &mut l) }?;
        let v = self.stream.clone_dtoh(&out)?;
        self.stream.synchronize()?;
        let (e, silu) = v.split_at(xs.len());
        Ok((e.to_vec(), silu.to_vec()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelFile;
    use crate::engine::Loaded;

    fn fixture(name: &str) -> ModelFile {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/models")
            .join(name);
        ModelFile::open(p).unwrap()
    }

    /// What the GPU path takes from every fixture (no device needed): each
    /// projection's format, a width its kernels handle, the kernel id the
    /// receipts will name, and the embedding / head.
    #[test]
    fn every_fixture_maps_onto_gpu_formats() {
        for (name, want, head, untied) in [
            (
                "bitnet-b1.58-i2s.gguf",
                WeightFormat::I2s,
                HeadFormat::F16,
                false,
            ),
            (
                "shakespeare-i2s.gguf",
                WeightFormat::I2s,
                HeadFormat::F16,
                false,
            ),
            (
                "bitnet-tq2_0.gguf",
                WeightFormat::Tq2_0,
                HeadFormat::F32,
                false,
            ),
            (
                "shakespeare-tq2_0.gguf",
                WeightFormat::Tq2_0,
                HeadFormat::F16,
                false,
            ),
            (
                "bitnet-tq1_0.gguf",
                WeightFormat::Tq1_0,
                HeadFormat::F32,
                false,
            ),
            ("bitnet-f32.gguf", WeightFormat::F32, HeadFormat::F32, false),
            ("stories260K.gguf", WeightFormat::F32, HeadFormat::F32, true),
        ] {
            let file = fixture(name);
            let loaded = Loaded::new(&file).unwrap();
            let host = HostModel::from_model(&loaded.model).unwrap();
            assert_eq!(host.head_format, head, "{name}");
            assert_eq!(
                matches!(host.embedding, HostEmbedding::F32(_)),
                untied,
                "{name}"
            );
            for l in &host.layers {
                for p in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                    assert_eq!(p.format, want, "{name}");
                    assert!(p.cols.is_multiple_of(want.col_multiple()), "{name}");
                    let d = DevLinear {
                        w: 0,
                        ws: 0,
                        ps: 0,
                        rows: p.rows,
                        cols: p.cols,
                        bytes: p.counted_bytes,
                        format: p.format,
                    };
                    let id = gemv_id(&d, false);
                    match want {
                        WeightFormat::Tq1_0 => assert_eq!(id, ID_TQ1),
                        WeightFormat::F32 => assert_eq!(id, ID_F32),
                        _ => assert!(id.contains("cuda_dp4a")),
                    }
                }
            }
        }
    }

    /// The TQ1_0 fixture's layer-0 projections, repacked as at upload, give
    /// core's `vec_dot_tq1_0_q8_k` bit for bit through the CPU model of
    /// the `tq2_gemv` kernel.
    #[test]
    fn tq1_0_fixture_repacks_exactly() {
        use bitnet_core::quant::q8_k::quantize_row_q8_k;
        let file = fixture("bitnet-tq1_0.gguf");
        let loaded = Loaded::new(&file).unwrap();
        let host = HostModel::from_model(&loaded.model).unwrap();
        let l = &host.layers[0];
        for p in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
            let (k, nb) = (p.cols, p.cols / 256);
            let x: Vec<f32> = (0..k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let mut act = vec![BlockQ8K::ZERO; nb];
            quantize_row_q8_k(&x, &mut act).unwrap();
            let q: Vec<i8> = act.iter().flat_map(|b| b.qs).collect();
            let qd: Vec<f32> = act.iter().map(|b| b.d).collect();
            let qsum: Vec<i32> = act
                .iter()
                .map(|b| b.qs.iter().map(|&v| i32::from(v)).sum())
                .collect();
            let (mut codes, mut wd) = (Vec::new(), Vec::new());
            repack_tq1_0(p.body, &mut codes, &mut wd).unwrap();
            let rb = nb * BlockTq1_0::BYTES;
            for r in 0..p.rows {
                let cpu = vec_dot_tq1_0_q8_k(&p.body[r * rb..(r + 1) * rb], &act).unwrap();
                let gpu = super::super::tq2_dot_gpu_emulated(
                    &codes[r * k / 4..(r + 1) * k / 4],
                    &wd[r * nb..(r + 1) * nb],
                    &q,
                    &qd,
                    &qsum,
                );
                assert_eq!(cpu.to_bits(), gpu.to_bits(), "row {r}");
            }
        }
    }
}
