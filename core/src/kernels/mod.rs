//! SIMD kernels behind one runtime dispatch (BLAKE3 style).
//!
//! Three tiers never merge (DESIGN.md §9): readable references live in the
//! tests, the portable kernels in [`crate::quant`], and the ISA-specific
//! kernels here, one file per ISA ([`avx2`](self) and `avx512`). Every SIMD
//! kernel reproduces the portable one exactly: the same integers for the
//! ternary dot products (DESIGN.md §5) and the same float operations in the
//! same order for the float parts, so outputs are bit-identical.
//!
//! [`Platform`] is decided once ([`Platform::detect`]) and is the proof that
//! the CPU supports the ISA whose kernels it dispatches to: it can only be
//! built by detection (or capped below it by a [`KernelChoice`]). Every
//! dispatch method returns the stable id of the kernel that ran, for
//! receipts.
//!
//! | ISA tier | CPU features required                      |
//! |----------|--------------------------------------------|
//! | `Avx512` | AVX-512 F, BW, VL, VNNI (+ the AVX2 tier)  |
//! | `Avx2`   | AVX2, F16C                                 |
//! | `Scalar` | none (the portable kernels)                |
//!
//! Feature detection is a small CPUID/XGETBV routine here rather than the
//! `cpufeatures` crate: its 0.3 release knows neither `avx512vnni` nor `f16c`,
//! and it refuses to compile for the crate's thumbv7em/wasm32 targets.
//!
//! Every GEMV/GEMM works on a range of weight rows so that a caller can split
//! a matmul across threads; threads themselves stay out of this crate.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89 (and `as_chunks` since
//! 1.88), above the workspace's declared `rust-version`; clippy is told so
//! on the module declaration until that is raised.

use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::quant::QuantError;
use crate::quant::f16::dot_f16_f32;
use crate::quant::i2s::{I2S_BLOCK_BYTES, I2S_BLOCK_LEN, I2S_MAX_K, i2s_dot_i32, quantize_act_i2s};
use crate::quant::q8_k::{BlockQ8K, QK_K};
use crate::quant::tq1_0::{BlockTq1_0, vec_dot_tq1_0_q8_k};
use crate::quant::tq2_0::{BlockTq2_0, vec_dot_tq2_0_q8_k};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod detect;

/// Stable kernel ids, as recorded in receipts.
pub mod ids {
    /// Portable I2_S matmul ([`crate::quant::i2s::i2s_dot_i32`] per row and token).
    pub const I2S_GEMV_SCALAR: &str = "i2s_gemv_scalar";
    /// AVX2 I2_S GEMV (`vpmaddubsw`).
    pub const I2S_GEMV_AVX2: &str = "i2s_gemv_avx2";
    /// AVX2 I2_S GEMM (4 tokens per weight pass).
    pub const I2S_GEMM_AVX2: &str = "i2s_gemm_avx2";
    /// AVX-512 VNNI I2_S GEMV (`vpdpbusd`).
    pub const I2S_GEMV_AVX512VNNI: &str = "i2s_gemv_avx512vnni";
    /// AVX-512 VNNI I2_S GEMM (4 tokens per weight pass).
    pub const I2S_GEMM_AVX512VNNI: &str = "i2s_gemm_avx512vnni";
    /// Portable I2_S activation quantization.
    pub const I2S_QUANT_ACT_SCALAR: &str = "i2s_quant_act_scalar";
    /// AVX2 I2_S activation quantization.
    pub const I2S_QUANT_ACT_AVX2: &str = "i2s_quant_act_avx2";
    /// AVX-512 I2_S activation quantization.
    pub const I2S_QUANT_ACT_AVX512: &str = "i2s_quant_act_avx512";
    /// Portable TQ2_0 x Q8_K.
    pub const TQ2_0_GEMV_SCALAR: &str = "tq2_0_gemv_scalar";
    /// AVX2 TQ2_0 x Q8_K.
    pub const TQ2_0_GEMV_AVX2: &str = "tq2_0_gemv_avx2";
    /// AVX-512 VNNI TQ2_0 x Q8_K.
    pub const TQ2_0_GEMV_AVX512VNNI: &str = "tq2_0_gemv_avx512vnni";
    /// Portable TQ1_0 x Q8_K.
    pub const TQ1_0_GEMV_SCALAR: &str = "tq1_0_gemv_scalar";
    /// AVX2 TQ1_0 x Q8_K.
    pub const TQ1_0_GEMV_AVX2: &str = "tq1_0_gemv_avx2";
    /// Portable F16 x f32.
    pub const F16_GEMV_SCALAR: &str = "f16_gemv_scalar";
    /// F16C + AVX F16 x f32 (8 lanes, the portable order).
    pub const F16_GEMV_F16C: &str = "f16_gemv_f16c";
}

/// An instruction-set tier, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The portable kernels of [`crate::quant`].
    Scalar,
    /// AVX2 + F16C.
    Avx2,
    /// AVX-512 F/BW/VL/VNNI (and the AVX2 tier).
    Avx512,
}

impl Isa {
    /// Lower-case name (`scalar`, `avx2`, `avx512`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            2 => Self::Avx512,
            1 => Self::Avx2,
            _ => Self::Scalar,
        }
    }
}

/// Which kernels to run: the best detected ones, or a forced tier (the CLI's
/// `--kernel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelChoice {
    /// The best tier the CPU supports.
    #[default]
    Auto,
    /// The portable kernels.
    Scalar,
    /// The AVX2 tier.
    Avx2,
    /// The AVX-512 tier.
    Avx512,
}

/// A forced [`KernelChoice`] asked for a tier this CPU (or this build's
/// test-only features) does not provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelUnavailable {
    /// The tier asked for.
    pub requested: Isa,
    /// The best tier detected.
    pub detected: Isa,
}

impl core::fmt::Display for KernelUnavailable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "kernel tier {} requested, but this CPU supports at most {}",
            self.requested.name(),
            self.detected.name()
        )
    }
}

impl core::error::Error for KernelUnavailable {}

/// The kernel tier in use. Holding a `Platform` whose [`isa`](Self::isa) is
/// X proves that the CPU supports X: the only constructors are detection and
/// capping below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Platform {
    isa: Isa,
}

/// Detected tier cache: `u8::MAX` = not yet detected, else `Isa as u8`.
static DETECTED: AtomicU8 = AtomicU8::new(u8::MAX);

/// Runs CPUID once and applies the test-only `no_avx512` / `no_avx2` caps.
fn detect_uncached() -> Isa {
    #[cfg(target_arch = "x86_64")]
    let isa = detect::best_isa();
    #[cfg(not(target_arch = "x86_64"))]
    let isa = Isa::Scalar;
    #[cfg(feature = "no_avx512")]
    let isa = isa.min(Isa::Avx2);
    #[cfg(feature = "no_avx2")]
    let isa = isa.min(Isa::Scalar);
    isa
}

impl Platform {
    /// The best tier this CPU supports (detected once, then cached).
    pub fn detect() -> Self {
        let cached = DETECTED.load(Ordering::Relaxed);
        let isa = if cached == u8::MAX {
            let isa = detect_uncached();
            DETECTED.store(isa as u8, Ordering::Relaxed);
            isa
        } else {
            Isa::from_u8(cached)
        };
        Self { isa }
    }

    /// The portable kernels (always available).
    pub const fn portable() -> Self {
        Self { isa: Isa::Scalar }
    }

    /// The platform for `choice`, or an error when it forces a tier above
    /// the detected one.
    pub fn with_choice(choice: KernelChoice) -> Result<Self, KernelUnavailable> {
        let detected = Self::detect();
        let requested = match choice {
            KernelChoice::Auto => return Ok(detected),
            KernelChoice::Scalar => Isa::Scalar,
            KernelChoice::Avx2 => Isa::Avx2,
            KernelChoice::Avx512 => Isa::Avx512,
        };
        if requested <= detected.isa {
            Ok(Self { isa: requested })
        } else {
            Err(KernelUnavailable {
                requested,
                detected: detected.isa,
            })
        }
    }

    /// Every tier available here, lowest first (for tests and benchmarks).
    pub fn available() -> impl Iterator<Item = Self> {
        let best = Self::detect().isa;
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(move |&isa| isa <= best)
            .map(|isa| Self { isa })
    }

    /// The tier this platform dispatches to.
    pub const fn isa(self) -> Isa {
        self.isa
    }

    /// Quantizes one token's activations like
    /// [`crate::quant::i2s::quantize_act_i2s`] (bit-identical `q` and scale);
    /// returns the scale and the kernel id.
    pub fn i2s_quantize_act(
        self,
        x: &[f32],
        q: &mut [i8],
    ) -> Result<(f32, &'static str), QuantError> {
        if x.len() != q.len() {
            return Err(QuantError::LengthMismatch {
                what: "I2_S quantized activations",
                expected: x.len(),
                actual: q.len(),
            });
        }
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx512 platform is only built after detection found
            // AVX-512 F/BW/VL; lengths were checked above.
            Isa::Avx512 => Ok((
                unsafe { avx512::quantize_act_i2s(x, q) },
                ids::I2S_QUANT_ACT_AVX512,
            )),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx2 platform is only built after detection found
            // AVX2; lengths were checked above.
            Isa::Avx2 => Ok((
                unsafe { avx2::quantize_act_i2s(x, q) },
                ids::I2S_QUANT_ACT_AVX2,
            )),
            _ => Ok((quantize_act_i2s(x, q)?, ids::I2S_QUANT_ACT_SCALAR)),
        }
    }

    /// I2_S GEMV on a row range: `out[i] = i2s_dot_i32(row rows.start + i,
    /// q)` for the rows of `w` (row-major I2_S codes, `K / 4` bytes a row;
    /// the tensor's 32-byte tail may follow), `q` one token of `K` values.
    pub fn i2s_gemv(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        q: &[i8],
        out: &mut [i32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = i2s_row_bytes(k)?;
        check_rows(w.len(), row_bytes, &rows, out.len(), 1)?;
        check_eq("I2_S activations", k, q.len())?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI detected;
                // shapes checked above.
                unsafe { avx512::i2s_gemm(w, row_bytes, q, out) };
                Ok(ids::I2S_GEMV_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 detected; shapes checked above.
                unsafe { avx2::i2s_gemm(w, row_bytes, q, out) };
                Ok(ids::I2S_GEMV_AVX2)
            }
            _ => {
                for (row, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
                    *o = i2s_dot_i32(row, q)?;
                }
                Ok(ids::I2S_GEMV_SCALAR)
            }
        }
    }

    /// I2_S GEMM on a row range for a batch of tokens (`q` is `batch x K`):
    /// `out[i * batch + b] = i2s_dot_i32(row rows.start + i, token b)`, i.e.
    /// `out` is row-major by weight row so a row range owns a contiguous
    /// slice. Weights are loaded once per group of 4 tokens.
    pub fn i2s_gemm(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        q: &[i8],
        out: &mut [i32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = i2s_row_bytes(k)?;
        if !q.len().is_multiple_of(k) {
            return Err(QuantError::NotBlockMultiple {
                what: "I2_S batch activations",
                len: q.len(),
                block: k,
            });
        }
        let batch = q.len() / k;
        check_rows(w.len(), row_bytes, &rows, out.len(), batch)?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI detected;
                // shapes checked above.
                unsafe { avx512::i2s_gemm(w, row_bytes, q, out) };
                Ok(ids::I2S_GEMM_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 detected; shapes checked above.
                unsafe { avx2::i2s_gemm(w, row_bytes, q, out) };
                Ok(ids::I2S_GEMM_AVX2)
            }
            _ => {
                for (row, ob) in w
                    .chunks_exact(row_bytes)
                    .zip(out.chunks_exact_mut(batch.max(1)))
                {
                    for (o, qt) in ob.iter_mut().zip(q.chunks_exact(k)) {
                        *o = i2s_dot_i32(row, qt)?;
                    }
                }
                Ok(ids::I2S_GEMV_SCALAR)
            }
        }
    }

    /// TQ2_0 x Q8_K GEMV on a row range: `out[i] = vec_dot_tq2_0_q8_k(row
    /// rows.start + i, act)`, bit-identical.
    pub fn tq2_0_gemv(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = tq_row_bytes(k, BlockTq2_0::BYTES, act.len())?;
        check_rows(w.len(), row_bytes, &rows, out.len(), 1)?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI detected;
                // shapes checked above.
                unsafe { avx512::tq2_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ2_0_GEMV_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 detected; shapes checked above.
                unsafe { avx2::tq2_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ2_0_GEMV_AVX2)
            }
            _ => {
                for (row, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
                    *o = vec_dot_tq2_0_q8_k(row, act)?;
                }
                Ok(ids::TQ2_0_GEMV_SCALAR)
            }
        }
    }

    /// TQ1_0 x Q8_K GEMV on a row range, bit-identical to
    /// [`vec_dot_tq1_0_q8_k`] per row. The AVX-512 tier runs the AVX2 kernel.
    pub fn tq1_0_gemv(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = tq_row_bytes(k, BlockTq1_0::BYTES, act.len())?;
        check_rows(w.len(), row_bytes, &rows, out.len(), 1)?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 => {
                // SAFETY: Avx2 and Avx512 platforms => AVX2 detected; shapes
                // checked above.
                unsafe { avx2::tq1_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMV_AVX2)
            }
            _ => {
                for (row, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
                    *o = vec_dot_tq1_0_q8_k(row, act)?;
                }
                Ok(ids::TQ1_0_GEMV_SCALAR)
            }
        }
    }

    /// F16 x f32 GEMV on a row range: `out[i]` is `dot_f16_f32` of weight
    /// row `rows.start + i` and `x`, bit-identical (same 8-lane order). The
    /// AVX-512 tier runs the
    /// F16C kernel.
    pub fn f16_gemv(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        if k == 0 {
            return Err(QuantError::EmptyShape {
                rows: rows.len(),
                cols: k,
            });
        }
        let row_bytes = k.checked_mul(2).ok_or(QuantError::SizeOverflow {
            what: "F16 row bytes",
        })?;
        check_rows(w.len(), row_bytes, &rows, out.len(), 1)?;
        check_eq("F16 activations", k, x.len())?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 => {
                // SAFETY: Avx2 and Avx512 platforms => AVX2 and F16C
                // detected; shapes checked above.
                unsafe { avx2::f16_gemv(w, row_bytes, x, out) };
                Ok(ids::F16_GEMV_F16C)
            }
            _ => {
                for (row, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
                    *o = dot_f16_f32(row, x)?;
                }
                Ok(ids::F16_GEMV_SCALAR)
            }
        }
    }
}

/// `Ok` when `expected == actual`.
fn check_eq(what: &'static str, expected: usize, actual: usize) -> Result<(), QuantError> {
    if expected == actual {
        Ok(())
    } else {
        Err(QuantError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}

/// Bytes of an I2_S row of `k` weights (`k` a nonzero multiple of 128, at
/// most [`I2S_MAX_K`]).
fn i2s_row_bytes(k: usize) -> Result<usize, QuantError> {
    if k == 0 || !k.is_multiple_of(I2S_BLOCK_LEN) {
        return Err(QuantError::NotBlockMultiple {
            what: "I2_S row length",
            len: k,
            block: I2S_BLOCK_LEN,
        });
    }
    if k > I2S_MAX_K {
        return Err(QuantError::TooLarge {
            what: "I2_S row length",
            value: k,
            max: I2S_MAX_K,
        });
    }
    Ok(k / I2S_BLOCK_LEN * I2S_BLOCK_BYTES)
}

/// Bytes of a TQ row of `k` weights with `block_bytes` per 256, checking
/// that `act` has `k / 256` blocks.
fn tq_row_bytes(k: usize, block_bytes: usize, act_blocks: usize) -> Result<usize, QuantError> {
    if !k.is_multiple_of(QK_K) {
        return Err(QuantError::NotBlockMultiple {
            what: "TQ row length",
            len: k,
            block: QK_K,
        });
    }
    check_eq("Q8_K activation blocks", k / QK_K, act_blocks)?;
    (k / QK_K)
        .checked_mul(block_bytes)
        .ok_or(QuantError::SizeOverflow {
            what: "TQ row bytes",
        })
}

/// Checks a row range against the weight bytes and the output length
/// (`rows.len() * per_row` values).
fn check_rows(
    w_len: usize,
    row_bytes: usize,
    rows: &Range<usize>,
    out_len: usize,
    per_row: usize,
) -> Result<(), QuantError> {
    if rows.start > rows.end {
        return Err(QuantError::LengthMismatch {
            what: "row range end",
            expected: rows.start,
            actual: rows.end,
        });
    }
    let need = rows
        .end
        .checked_mul(row_bytes)
        .ok_or(QuantError::SizeOverflow {
            what: "weight rows bytes",
        })?;
    if need > w_len {
        return Err(QuantError::LengthMismatch {
            what: "weight bytes for the row range",
            expected: need,
            actual: w_len,
        });
    }
    let outs = rows
        .len()
        .checked_mul(per_row)
        .ok_or(QuantError::SizeOverflow { what: "outputs" })?;
    check_eq("outputs for the row range", outs, out_len)
}

/// How far ahead of the current I2_S weight block the SIMD kernels
/// prefetch: the hardware prefetcher alone left single-thread GEMV at about
/// 7-9 GB/s on cache-cold weights (Zen 4); see docs/perf.md.
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 1024;

/// `sum q` of one token, the I2_S kernels' correction term
/// (`|sum| <= 128 * I2S_MAX_K` fits an i32).
#[cfg(target_arch = "x86_64")]
fn sum_i8(q: &[i8]) -> i32 {
    q.iter().map(|&v| i32::from(v)).sum()
}

/// The scalar tail of the activation quantizers, the same expression as the
/// portable one: `clamp(round_half_even(v * s), -128, 127)`, NaN -> 0.
#[cfg(target_arch = "x86_64")]
fn quantize_act_value(v: f32, s: f32) -> i8 {
    libm::rintf(v * s).clamp(-128.0, 127.0) as i8
}

/// The portable activation scale from the absmax `m` (division in f64).
#[cfg(target_arch = "x86_64")]
fn act_scale(m: f32) -> f32 {
    (127.0f64 / f64::from(m)) as f32
}
