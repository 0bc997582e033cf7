//! The pieces of a BitNet GGUF that `cargo xtask gen-fixtures` (seeded
//! random models) and `cargo xtask export-model` (the trained model) share:
//! the hyper-parameter keys, the projection names and shapes, and the
//! encoding of one ternary projection in each storage format through
//! bitnet-core's quantizers.

use bitnet_core::gguf::{GgmlType, GgufWriter, OwnedValue};
use bitnet_core::quant::i2s::quantize_i2s;
use bitnet_core::quant::tq1_0::quantize_row_tq1_0;
use bitnet_core::quant::tq2_0::quantize_row_tq2_0;
use half::f16;

/// Shape and hyper-parameters of one model.
#[derive(Clone, Copy)]
pub struct Shape {
    pub arch: &'static str,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ff: usize,
    pub vocab: usize,
    pub ctx: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
}

impl Shape {
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }
}

/// How projections are stored.
#[derive(Clone, Copy, PartialEq)]
pub enum Proj {
    /// `w * scale` as F32.
    F32,
    /// Pure ternary TQ2_0 blocks (d = 1) plus a one-element F32 `*.scale`
    /// tensor.
    Tq2WithScaleTensors,
    /// TQ2_0 of `w * scale` (llama.cpp's quantizer): each 256-block gets
    /// `d = f16(scale)`, or 0 when all its weights are 0.
    Tq2,
    /// TQ1_0 of `w * scale`.
    Tq1,
    /// I2_S (DESIGN.md §4): codes plus the f32 tensor scale in the tail.
    I2s,
}

/// One projection: ternary weights `rows x cols` (row-major, values in
/// {-1, 0, 1}) and the tensor scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Ternary {
    pub w: Vec<i8>,
    pub scale: f32,
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
        .collect()
}

/// The bytes and type of a projection in format `p`, plus the optional
/// `.scale` tensor value.
pub fn projection(
    t: &Ternary,
    rows: usize,
    cols: usize,
    p: Proj,
) -> Result<(GgmlType, Vec<u8>, Option<f32>), String> {
    let scaled = || -> Vec<f32> { t.w.iter().map(|&w| f32::from(w) * t.scale).collect() };
    let e = |e: bitnet_core::quant::QuantError| e.to_string();
    Ok(match p {
        Proj::F32 => (GgmlType::F32, f32_bytes(&scaled()), None),
        Proj::Tq2WithScaleTensors => {
            let plain: Vec<f32> = t.w.iter().map(|&w| f32::from(w)).collect();
            let mut out = vec![0u8; rows * cols / 256 * 66];
            quantize_row_tq2_0(&plain, &mut out).map_err(e)?;
            (GgmlType::TQ2_0, out, Some(t.scale))
        }
        Proj::Tq2 => {
            let mut out = vec![0u8; rows * cols / 256 * 66];
            quantize_row_tq2_0(&scaled(), &mut out).map_err(e)?;
            (GgmlType::TQ2_0, out, None)
        }
        Proj::Tq1 => {
            let mut out = vec![0u8; rows * cols / 256 * 54];
            quantize_row_tq1_0(&scaled(), &mut out).map_err(e)?;
            (GgmlType::TQ1_0, out, None)
        }
        Proj::I2s => (
            GgmlType::I2S,
            quantize_i2s(&t.w, t.scale, rows, cols).map_err(e)?,
            None,
        ),
    })
}

/// The architecture, name and hyper-parameter keys, in this order.
pub fn metadata(w: &mut GgufWriter, s: &Shape, name: &str) {
    let a = s.arch;
    let u = |v: usize| OwnedValue::U32(v as u32);
    w.kv("general.architecture", OwnedValue::String(a.into()));
    w.kv("general.name", OwnedValue::String(name.into()));
    w.kv(&format!("{a}.context_length"), u(s.ctx));
    w.kv(&format!("{a}.embedding_length"), u(s.dim));
    w.kv(&format!("{a}.block_count"), u(s.layers));
    w.kv(&format!("{a}.feed_forward_length"), u(s.ff));
    w.kv(&format!("{a}.attention.head_count"), u(s.heads));
    w.kv(&format!("{a}.attention.head_count_kv"), u(s.kv_heads));
    w.kv(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        OwnedValue::F32(s.rms_eps),
    );
    w.kv(&format!("{a}.rope.freq_base"), OwnedValue::F32(s.rope_base));
    w.kv(&format!("{a}.rope.dimension_count"), u(s.head_dim()));
}

/// A projection name, its `rows x cols` (out x in).
pub fn projections(s: &Shape) -> [(&'static str, usize, usize); 7] {
    let (d, q, kv, ff) = (
        s.dim,
        s.heads * s.head_dim(),
        s.kv_heads * s.head_dim(),
        s.ff,
    );
    [
        ("attn_q", q, d),
        ("attn_k", kv, d),
        ("attn_v", kv, d),
        ("attn_output", d, q),
        ("ffn_gate", ff, d),
        ("ffn_up", ff, d),
        ("ffn_down", d, ff),
    ]
}
