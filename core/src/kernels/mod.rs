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
//! | `Neon`   | AArch64 (NEON is base ISA; compile-time)   |
//! | `Simd128`| wasm32 built with `+simd128` (compile-time) |
//! | `Scalar` | none (the portable kernels)                |
//!
//! `Neon` has I2_S, TQ2_0, TQ1_0 and TL1/TL2 (`tbl`) kernels (`sdot`
//! variants of the first three when the target has `dotprod`, a
//! compile-time choice: see `neon.rs`), `Simd128` I2_S (GEMV/GEMM and
//! activation quantization), TQ2_0, TQ1_0, F16 and int8-head ones;
//! other formats fall back to the portable kernels there, and the returned
//! id says so. The TL1/TL2 families ([`Platform::tl_gemm`]) run on weights
//! repacked at load ([`crate::quant::tl`]); `--kernel tl1|tl2`
//! ([`KernelChoice::Tl1`]) asks the loader for that repacking.
//!
//! Feature detection is a small CPUID/XGETBV routine here rather than the
//! `cpufeatures` crate: its 0.3 release knows neither `avx512vnni` nor `f16c`,
//! and it refuses to compile for the crate's thumbv7em/wasm32 targets.
//!
//! Every GEMV/GEMM works on a range of weight rows so that a caller can split
//! a matmul across threads; threads themselves stay out of this crate.
//!
//! Rust versions this module needs: AVX-512 intrinsics and `avx512*` target
//! features 1.89 (`as_chunks` 1.88), `_mm_prefetch` as a safe function
//! 1.93, `__cpuid` as a safe function 1.94 (the workspace's `rust-version`).

use core::ops::Range;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::quant::QuantError;
use crate::quant::f16::dot_f16_f32;
use crate::quant::i2s::{I2S_BLOCK_BYTES, I2S_BLOCK_LEN, I2S_MAX_K, i2s_dot_i32, quantize_act_i2s};
use crate::quant::q8_head::{Q8Rows, q8_dot_i32};
use crate::quant::q8_k::{BlockQ8K, QK_K};
use crate::quant::tl::{
    TL_TILE_ROWS, TL2_WIDE_TILE_ROWS, TlKind, TlLayout, TlMatrix, check_tables, tl_tile_dot,
    tl2_wide_tile_dot,
};
use crate::quant::tq1_0::{BlockTq1_0, vec_dot_tq1_0_q8_k};
use crate::quant::tq2_0::{BlockTq2_0, vec_dot_tq2_0_q8_k};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::attention_scores as attention_scores_avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{
    attention_score_lanes as attention_score_lanes_avx512,
    attention_value_lanes as attention_value_lanes_avx512,
};
#[cfg(target_arch = "x86_64")]
mod detect;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(target_feature = "relaxed-simd")
))]
pub(crate) use simd128::max_of as max_of_simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) use simd128::{
    attention_scores as attention_scores_simd128, relu_squared_mul as relu_squared_mul_simd128,
};

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
    /// AVX2 TQ2_0 x Q8_K GEMM (2-row x 4-token tiles).
    pub const TQ2_0_GEMM_AVX2: &str = "tq2_0_gemm_avx2";
    /// AVX-512 VNNI TQ2_0 x Q8_K GEMM (4-row x 4-token tiles).
    pub const TQ2_0_GEMM_AVX512VNNI: &str = "tq2_0_gemm_avx512vnni";
    /// Portable TQ1_0 x Q8_K.
    pub const TQ1_0_GEMV_SCALAR: &str = "tq1_0_gemv_scalar";
    /// AVX2 TQ1_0 x Q8_K.
    pub const TQ1_0_GEMV_AVX2: &str = "tq1_0_gemv_avx2";
    /// AVX-512 VNNI TQ1_0 x Q8_K GEMV (the GEMM's 4-row tiles, one token).
    pub const TQ1_0_GEMV_AVX512VNNI: &str = "tq1_0_gemv_avx512vnni";
    /// AVX2 TQ1_0 x Q8_K GEMM (2-row x 4-token tiles).
    pub const TQ1_0_GEMM_AVX2: &str = "tq1_0_gemm_avx2";
    /// AVX-512 VNNI TQ1_0 x Q8_K GEMM (4-row x 4-token tiles).
    pub const TQ1_0_GEMM_AVX512VNNI: &str = "tq1_0_gemm_avx512vnni";
    /// Portable F16 x f32.
    pub const F16_GEMV_SCALAR: &str = "f16_gemv_scalar";
    /// F16C + AVX F16 x f32 (16 lanes in two accumulators, the portable
    /// order).
    pub const F16_GEMV_F16C: &str = "f16_gemv_f16c";
    /// Portable TL1 (pair tables, look-ups in a scalar loop).
    pub const TL1_GEMV_SCALAR: &str = "tl1_gemv_scalar";
    /// AVX2 TL1 GEMV (`pshufb` look-ups).
    pub const TL1_GEMV_AVX2: &str = "tl1_gemv_avx2";
    /// AVX2 TL1 GEMM (4 tokens per tile pass).
    pub const TL1_GEMM_AVX2: &str = "tl1_gemm_avx2";
    /// Portable TL2 (triple tables + sign, look-ups in a scalar loop).
    pub const TL2_GEMV_SCALAR: &str = "tl2_gemv_scalar";
    /// AVX2 TL2 GEMV (`pshufb` look-ups, `psignb` signs).
    pub const TL2_GEMV_AVX2: &str = "tl2_gemv_avx2";
    /// AVX2 TL2 GEMM (4 tokens per tile pass).
    pub const TL2_GEMM_AVX2: &str = "tl2_gemm_avx2";
    /// NEON I2_S GEMV (`smull`/`smlal` + `sadalp`).
    pub const I2S_GEMV_NEON: &str = "i2s_gemv_neon";
    /// NEON I2_S GEMM (token by token over each row).
    pub const I2S_GEMM_NEON: &str = "i2s_gemm_neon";
    /// wasm simd128 I2_S GEMV (`i16x8.extmul` + `extadd_pairwise`).
    pub const I2S_GEMV_SIMD128: &str = "i2s_gemv_simd128";
    /// wasm simd128 I2_S GEMM (token by token).
    pub const I2S_GEMM_SIMD128: &str = "i2s_gemm_simd128";
    /// wasm simd128 I2_S GEMV built with `relaxed-simd`
    /// (`i16x8.relaxed_dot_i8x16_i7x16_s` on the codes 0..=2: exact).
    pub const I2S_GEMV_SIMD128_RELAXED: &str = "i2s_gemv_simd128_relaxed";
    /// wasm simd128 I2_S GEMM built with `relaxed-simd`.
    pub const I2S_GEMM_SIMD128_RELAXED: &str = "i2s_gemm_simd128_relaxed";
    /// wasm simd128 I2_S activation quantization (`f32x4.nearest`).
    pub const I2S_QUANT_ACT_SIMD128: &str = "i2s_quant_act_simd128";
    /// wasm simd128 TQ2_0 x Q8_K (`i16x8.extmul`).
    pub const TQ2_0_GEMV_SIMD128: &str = "tq2_0_gemv_simd128";
    /// wasm simd128 TQ1_0 x Q8_K (trits by 16-bit multiplies).
    pub const TQ1_0_GEMV_SIMD128: &str = "tq1_0_gemv_simd128";
    /// wasm simd128 F16 x f32 (f16 bits to f32 by shift and rebias, 16
    /// lanes in the portable order).
    pub const F16_GEMV_SIMD128: &str = "f16_gemv_simd128";
    /// wasm simd128 int8 LM head (`--lm-head q8`, changes numerics).
    pub const Q8_HEAD_GEMV_SIMD128: &str = "q8_head_gemv_simd128";
    /// NEON TQ2_0 x Q8_K.
    pub const TQ2_0_GEMV_NEON: &str = "tq2_0_gemv_neon";
    /// NEON I2_S GEMV, `sdot` products (targets with `dotprod`).
    pub const I2S_GEMV_NEON_DOTPROD: &str = "i2s_gemv_neon_dotprod";
    /// NEON I2_S GEMM, `sdot` products (targets with `dotprod`).
    pub const I2S_GEMM_NEON_DOTPROD: &str = "i2s_gemm_neon_dotprod";
    /// NEON TQ2_0 x Q8_K, `sdot` products (targets with `dotprod`).
    pub const TQ2_0_GEMV_NEON_DOTPROD: &str = "tq2_0_gemv_neon_dotprod";
    /// NEON TQ1_0 x Q8_K (`mul` + multiply-shift trits).
    pub const TQ1_0_GEMV_NEON: &str = "tq1_0_gemv_neon";
    /// NEON TQ1_0 x Q8_K, `sdot` products (targets with `dotprod`).
    pub const TQ1_0_GEMV_NEON_DOTPROD: &str = "tq1_0_gemv_neon_dotprod";
    /// NEON TL1 GEMV (`tbl` look-ups).
    pub const TL1_GEMV_NEON: &str = "tl1_gemv_neon";
    /// NEON TL2 GEMV (`tbl` look-ups, sign bits by `cmtst`).
    pub const TL2_GEMV_NEON: &str = "tl2_gemv_neon";
    /// AVX-512 TL2 GEMV (`pshufb` look-ups, signs as `k` masks).
    pub const TL2_GEMV_AVX512: &str = "tl2_gemv_avx512";
    /// AVX-512 TL2 GEMM (4 tokens per tile pass).
    pub const TL2_GEMM_AVX512: &str = "tl2_gemm_avx512";
    /// Portable wide-layout TL2 (look-ups in a scalar loop).
    pub const TL2_WIDE_GEMV_SCALAR: &str = "tl2_wide_gemv_scalar";
    /// AVX-512 VBMI wide-layout TL2 GEMV (`vpermi2b` look-ups, `vpdpbusd`
    /// sums).
    pub const TL2_GEMV_AVX512VBMI: &str = "tl2_gemv_avx512vbmi";
    /// AVX-512 VBMI wide-layout TL2 GEMM (the GEMV per token and tile).
    pub const TL2_GEMM_AVX512VBMI: &str = "tl2_gemm_avx512vbmi";
    /// Portable int8 LM head (`--lm-head q8`, changes numerics).
    pub const Q8_HEAD_GEMV_SCALAR: &str = "q8_head_gemv_scalar";
    /// AVX2 int8 LM head (`--lm-head q8`, changes numerics).
    pub const Q8_HEAD_GEMV_AVX2: &str = "q8_head_gemv_avx2";
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
    /// AArch64 NEON (always present on AArch64).
    Neon,
    /// wasm32 simd128 (when the build enables it).
    Simd128,
}

impl Isa {
    /// Lower-case name (`scalar`, `avx2`, `avx512`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::Neon => "neon",
            Self::Simd128 => "simd128",
        }
    }

    const fn from_u8(v: u8) -> Self {
        match v {
            4 => Self::Simd128,
            3 => Self::Neon,
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
    /// The TL1 lookup-table kernels (weights repacked at load by the
    /// caller, [`crate::model::Weights::repack_tl`]) on the best tier.
    Tl1,
    /// The TL2 lookup-table kernels (as [`Tl1`](Self::Tl1)).
    Tl2,
}

impl KernelChoice {
    /// The lookup-table family this choice asks the loader to repack
    /// into, if any.
    pub const fn lut(self) -> Option<TlKind> {
        match self {
            Self::Tl1 => Some(TlKind::Tl1),
            Self::Tl2 => Some(TlKind::Tl2),
            _ => None,
        }
    }
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

/// AVX-512 VBMI cache: `u8::MAX` = not yet detected, else 0 or 1.
#[cfg(target_arch = "x86_64")]
static VBMI: AtomicU8 = AtomicU8::new(u8::MAX);

/// Runs CPUID once and applies the test-only `no_avx512` / `no_avx2` caps.
fn detect_uncached() -> Isa {
    #[cfg(target_arch = "x86_64")]
    let isa = detect::best_isa();
    #[cfg(target_arch = "aarch64")]
    let isa = Isa::Neon;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let isa = Isa::Simd128;
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
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
            KernelChoice::Auto | KernelChoice::Tl1 | KernelChoice::Tl2 => return Ok(detected),
            KernelChoice::Scalar => Isa::Scalar,
            KernelChoice::Avx2 => Isa::Avx2,
            KernelChoice::Avx512 => Isa::Avx512,
        };
        if Self::available().any(|p| p.isa == requested) {
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
        // This architecture's tiers, lowest first.
        let tiers: &[Isa] = if cfg!(target_arch = "aarch64") {
            &[Isa::Scalar, Isa::Neon]
        } else if cfg!(target_arch = "wasm32") {
            &[Isa::Scalar, Isa::Simd128]
        } else {
            &[Isa::Scalar, Isa::Avx2, Isa::Avx512]
        };
        let n = tiers.iter().position(|&t| t == best).map_or(1, |i| i + 1);
        tiers[..n].iter().map(|&isa| Self { isa })
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
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            // SAFETY: a Simd128 platform is only built when this build
            // enables simd128; lengths were checked above.
            Isa::Simd128 => Ok((
                unsafe { simd128::quantize_act_i2s(x, q) },
                ids::I2S_QUANT_ACT_SIMD128,
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
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: a Neon platform is only built on AArch64, where
                // NEON is always present; shapes checked above.
                unsafe { neon::i2s_gemm(w, row_bytes, q, out) };
                Ok(neon::I2S_GEMV_ID)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above.
                unsafe { simd128::i2s_gemm(w, row_bytes, q, out) };
                Ok(if cfg!(target_feature = "relaxed-simd") {
                    ids::I2S_GEMV_SIMD128_RELAXED
                } else {
                    ids::I2S_GEMV_SIMD128
                })
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
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: a Neon platform is only built on AArch64, where
                // NEON is always present; shapes checked above.
                unsafe { neon::i2s_gemm(w, row_bytes, q, out) };
                Ok(neon::I2S_GEMM_ID)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above.
                unsafe { simd128::i2s_gemm(w, row_bytes, q, out) };
                Ok(if cfg!(target_feature = "relaxed-simd") {
                    ids::I2S_GEMM_SIMD128_RELAXED
                } else {
                    ids::I2S_GEMM_SIMD128
                })
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
        let row_bytes = tq_row_bytes(k, BlockTq2_0::BYTES)?;
        check_eq("Q8_K activation blocks", k / QK_K, act.len())?;
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
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: a Neon platform is only built on AArch64, where
                // NEON is always present; shapes checked above.
                unsafe { neon::tq2_0_gemv(w, row_bytes, act, out) };
                Ok(neon::TQ2_0_GEMV_ID)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above.
                unsafe { simd128::tq2_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ2_0_GEMV_SIMD128)
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
    /// [`vec_dot_tq1_0_q8_k`] per row. The AVX-512 tier runs its GEMM with
    /// one token (4-row tiles): the trit decode is the cost here, and it
    /// measured 1.3-1.6x the AVX2 GEMV (docs/perf.md).
    pub fn tq1_0_gemv(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = tq_row_bytes(k, BlockTq1_0::BYTES)?;
        check_eq("Q8_K activation blocks", k / QK_K, act.len())?;
        check_rows(w.len(), row_bytes, &rows, out.len(), 1)?;
        let w = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI and AVX2
                // detected; shapes checked above (one token: `act` is one
                // row's blocks).
                unsafe { avx512::tq1_0_gemm(w, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMV_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 detected; shapes checked
                // above.
                unsafe { avx2::tq1_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMV_AVX2)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above.
                unsafe { simd128::tq1_0_gemv(w, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMV_SIMD128)
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: a Neon platform is only built on AArch64, where
                // NEON is always present; shapes checked above.
                unsafe { neon::tq1_0_gemv(w, row_bytes, act, out) };
                Ok(neon::TQ1_0_GEMV_ID)
            }
            _ => {
                for (row, o) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
                    *o = vec_dot_tq1_0_q8_k(row, act)?;
                }
                Ok(ids::TQ1_0_GEMV_SCALAR)
            }
        }
    }

    /// TQ2_0 x Q8_K GEMM on a row range for a batch of tokens (`act` is
    /// `batch x K / 256` blocks): `out[i * batch + b] =
    /// vec_dot_tq2_0_q8_k(row rows.start + i, token b)`, bit-identical;
    /// `out` is row-major by weight row (as [`i2s_gemm`](Self::i2s_gemm)).
    /// The AVX2 and AVX-512 tiers decode each weight block once per group of
    /// 4 tokens; the other tiers run their GEMV per row and token.
    pub fn tq2_0_gemm(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = tq_row_bytes(k, BlockTq2_0::BYTES)?;
        let batch = tq_batch(k, act.len())?;
        check_rows(w.len(), row_bytes, &rows, out.len(), batch)?;
        #[cfg(target_arch = "x86_64")]
        let wr = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI and AVX2
                // detected; shapes checked above.
                unsafe { avx512::tq2_0_gemm(wr, row_bytes, act, out) };
                Ok(ids::TQ2_0_GEMM_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 and F16C detected; shapes
                // checked above.
                unsafe { avx2::tq2_0_gemm(wr, row_bytes, act, out) };
                Ok(ids::TQ2_0_GEMM_AVX2)
            }
            _ => {
                let gemv = (Self::tq2_0_gemv as TqGemv, ids::TQ2_0_GEMV_SCALAR);
                self.tq_gemm_by_gemv(gemv, w, k, rows, act, out)
            }
        }
    }

    /// TQ1_0 x Q8_K GEMM on a row range, the contract of
    /// [`tq2_0_gemm`](Self::tq2_0_gemm) with [`vec_dot_tq1_0_q8_k`].
    pub fn tq1_0_gemm(
        self,
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let row_bytes = tq_row_bytes(k, BlockTq1_0::BYTES)?;
        let batch = tq_batch(k, act.len())?;
        check_rows(w.len(), row_bytes, &rows, out.len(), batch)?;
        #[cfg(target_arch = "x86_64")]
        let wr = &w[rows.start * row_bytes..rows.end * row_bytes];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: Avx512 platform => AVX-512 F/BW/VL/VNNI and AVX2
                // detected; shapes checked above.
                unsafe { avx512::tq1_0_gemm(wr, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMM_AVX512VNNI)
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: Avx2 platform => AVX2 and F16C detected; shapes
                // checked above.
                unsafe { avx2::tq1_0_gemm(wr, row_bytes, act, out) };
                Ok(ids::TQ1_0_GEMM_AVX2)
            }
            _ => {
                let gemv = (Self::tq1_0_gemv as TqGemv, ids::TQ1_0_GEMV_SCALAR);
                self.tq_gemm_by_gemv(gemv, w, k, rows, act, out)
            }
        }
    }

    /// A TQ GEMM (shapes already checked) as this tier's `gemv` run per
    /// row and token; returns that GEMV's id (`scalar` when nothing ran).
    fn tq_gemm_by_gemv(
        self,
        (gemv, scalar): (TqGemv, &'static str),
        w: &[u8],
        k: usize,
        rows: Range<usize>,
        act: &[BlockQ8K],
        out: &mut [f32],
    ) -> Result<&'static str, QuantError> {
        let nb = k / QK_K;
        let batch = act.len() / nb.max(1);
        let mut id = scalar;
        for (r, ob) in rows.zip(out.chunks_exact_mut(batch.max(1))) {
            for (o, a) in ob.iter_mut().zip(act.chunks_exact(nb.max(1))) {
                id = gemv(self, w, k, r..r + 1, a, core::slice::from_mut(o))?;
            }
        }
        Ok(id)
    }

    /// Transposes a 16x16 tile in place: `tile[c][r]` becomes the old
    /// `tile[r][c]` (values move, bits unchanged). The batch matmuls turn
    /// their row-major outputs token-major with it; as a scalar move per
    /// value it was ~8 % of a 2B-4T prefill.
    pub fn transpose16(self, tile: &mut [[f32; 16]; 16]) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx512 platform is only built when AVX-512 F was
            // detected.
            Isa::Avx512 => unsafe { avx512::transpose16(tile) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an Avx2 platform is only built when AVX2 was
            // detected.
            Isa::Avx2 => unsafe { avx2::transpose16(tile) },
            _ => {
                let old = *tile;
                for (c, row) in tile.iter_mut().enumerate() {
                    for (v, from) in row.iter_mut().zip(&old) {
                        *v = from[c];
                    }
                }
            }
        }
    }

    /// F16 x f32 GEMV on a row range: `out[i]` is `dot_f16_f32` of weight
    /// row `rows.start + i` and `x`, bit-identical (same 16-lane order). The
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
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above.
                unsafe { simd128::f16_gemv(w, row_bytes, x, out) };
                Ok(ids::F16_GEMV_SIMD128)
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

impl Platform {
    /// TL1 / TL2 GEMV (one token) or GEMM on a row range of a repacked
    /// matrix: `tables` holds `batch` tokens' activation tables
    /// ([`crate::quant::tl::tl_build_tables`]), and `out[i * batch + b]`
    /// becomes the integer dot of row `rows.start + i` with token `b`,
    /// equal to [`i2s_dot_i32`] of the I2_S row it was repacked from.
    pub fn tl_gemm(
        self,
        w: &TlMatrix,
        rows: Range<usize>,
        tables: &[i8],
        out: &mut [i32],
    ) -> Result<&'static str, QuantError> {
        let per_token = check_tables(w, tables.len())?;
        let batch = tables.len() / per_token;
        if rows.start > rows.end || rows.end > w.rows() {
            return Err(QuantError::LengthMismatch {
                what: "TL row range end",
                expected: w.rows(),
                actual: rows.end,
            });
        }
        check_eq("outputs for the row range", rows.len() * batch, out.len())?;
        if w.layout() == TlLayout::Wide {
            return Ok(self.tl2_wide_gemm(w, rows, tables, per_token, out));
        }
        let tile_bytes = w.tile_bytes();
        let id = match (w.kind(), self.isa, batch == 1) {
            (TlKind::Tl1, Isa::Scalar, _) => ids::TL1_GEMV_SCALAR,
            (TlKind::Tl1, Isa::Neon, _) => ids::TL1_GEMV_NEON,
            (TlKind::Tl1, Isa::Simd128, _) => ids::TL1_GEMV_SCALAR,
            (TlKind::Tl2, Isa::Simd128, _) => ids::TL2_GEMV_SCALAR,
            (TlKind::Tl2, Isa::Neon, _) => ids::TL2_GEMV_NEON,
            (TlKind::Tl1, _, true) => ids::TL1_GEMV_AVX2,
            (TlKind::Tl1, _, false) => ids::TL1_GEMM_AVX2,
            (TlKind::Tl2, Isa::Scalar, _) => ids::TL2_GEMV_SCALAR,
            (TlKind::Tl2, Isa::Avx2, true) => ids::TL2_GEMV_AVX2,
            (TlKind::Tl2, Isa::Avx2, false) => ids::TL2_GEMM_AVX2,
            (TlKind::Tl2, Isa::Avx512, true) => ids::TL2_GEMV_AVX512,
            (TlKind::Tl2, Isa::Avx512, false) => ids::TL2_GEMM_AVX512,
        };
        let mut buf = [[0i32; TL_TILE_ROWS]; 4];
        for tile in rows.start / TL_TILE_ROWS..rows.end.div_ceil(TL_TILE_ROWS) {
            let td = &w.data()[tile * tile_bytes..(tile + 1) * tile_bytes];
            let r0 = tile * TL_TILE_ROWS;
            let (lo, hi) = (rows.start.max(r0), rows.end.min(r0 + TL_TILE_ROWS));
            let mut b0 = 0;
            while b0 < batch {
                let n = (batch - b0).min(4);
                let tt = &tables[b0 * per_token..(b0 + n) * per_token];
                let o = &mut buf[..n];
                match self.isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 if w.kind() == TlKind::Tl2 => {
                        // SAFETY: Avx512 platform => AVX-512 F/BW/VL and AVX2
                        // detected; the tile, tables and outputs have the
                        // shapes checked above (TlMatrix built them).
                        unsafe { avx512::tl2_tile_dot(td, w.groups(), tt, o) };
                    }
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 | Isa::Avx512 => {
                        // SAFETY: Avx2 and Avx512 platforms => AVX2
                        // detected; shapes as checked above.
                        unsafe {
                            avx2::tl_tile_dot(w.kind() == TlKind::Tl2, td, w.groups(), tt, o)
                        };
                    }
                    #[cfg(target_arch = "aarch64")]
                    Isa::Neon => {
                        for (ot, tab) in o.iter_mut().zip(tt.chunks_exact(per_token)) {
                            // SAFETY: NEON is always present on AArch64;
                            // shapes as checked above.
                            unsafe {
                                neon::tl_tile_dot(w.kind() == TlKind::Tl2, td, w.groups(), tab, ot)
                            };
                        }
                    }
                    _ => {
                        for (ot, tab) in o.iter_mut().zip(tt.chunks_exact(per_token)) {
                            tl_tile_dot(w.kind(), td, tab, ot);
                        }
                    }
                }
                for r in lo..hi {
                    for (t, ot) in o.iter().enumerate() {
                        out[(r - rows.start) * batch + b0 + t] = ot[r - r0];
                    }
                }
                b0 += n;
            }
        }
        Ok(id)
    }

    /// Whether a batch (prefill) through an I2_S matrix that also has a
    /// TL repacking runs on the I2_S GEMM rather than the TL one: on the
    /// x86 tiers, whose 4-token I2_S GEMMs measured 2.1-2.5x the TL GEMMs
    /// (docs/perf.md). One token always takes the TL GEMV. Both give the
    /// same integers.
    pub const fn batch_prefers_i2s(self) -> bool {
        matches!(self.isa, Isa::Avx2 | Isa::Avx512)
    }

    /// The layout [`tl_gemm`](Self::tl_gemm) runs fastest on here for
    /// `kind`: the wide TL2 layout on AVX-512 with VBMI, else the tiles.
    pub fn tl_layout(self, kind: TlKind) -> TlLayout {
        if kind == TlKind::Tl2 && self.has_vbmi() {
            TlLayout::Wide
        } else {
            TlLayout::Tiles
        }
    }

    /// Builds one token's activation tables for `w` like
    /// [`TlMatrix::build_tables`] (the same bytes): with AVX-512 VBMI for
    /// the wide layout, else the portable builder.
    pub fn tl_build_tables(
        self,
        w: &TlMatrix,
        q: &[i8],
        tables: &mut [i8],
    ) -> Result<(), QuantError> {
        #[cfg(target_arch = "x86_64")]
        if w.layout() == TlLayout::Wide && self.has_vbmi() {
            check_eq("TL activations", w.cols(), q.len())?;
            check_eq("wide TL2 activation tables", w.table_bytes(), tables.len())?;
            // SAFETY: `has_vbmi` => AVX-512 F/BW/VL/VBMI detected; the
            // tables are the 256 bytes per block of `q` the matrix's row
            // length gives (checked above).
            unsafe { avx512::tl2_wide_tables(q, tables) };
            return Ok(());
        }
        w.build_tables(q, tables)
    }

    /// `true` on the AVX-512 tier of a CPU with AVX-512 VBMI.
    fn has_vbmi(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self.isa == Isa::Avx512 {
            let cached = VBMI.load(Ordering::Relaxed);
            if cached != u8::MAX {
                return cached == 1;
            }
            let has = detect::has_avx512_vbmi();
            VBMI.store(u8::from(has), Ordering::Relaxed);
            return has;
        }
        false
    }

    /// [`tl_gemm`](Self::tl_gemm) on a wide TL2 matrix (shapes checked
    /// there): tile by tile, each token's dot through the AVX-512 VBMI
    /// kernel or the portable one.
    fn tl2_wide_gemm(
        self,
        w: &TlMatrix,
        rows: Range<usize>,
        tables: &[i8],
        per_token: usize,
        out: &mut [i32],
    ) -> &'static str {
        let batch = tables.len() / per_token;
        let vbmi = self.has_vbmi();
        let tile_bytes = w.tile_bytes();
        let mut bufs = [[0i32; TL2_WIDE_TILE_ROWS]; 2];
        let tiles = rows.start / TL2_WIDE_TILE_ROWS..rows.end.div_ceil(TL2_WIDE_TILE_ROWS);
        let mut tile = tiles.start;
        while tile < tiles.end {
            // Tiles in pairs where the VBMI kernel runs.
            let n = if vbmi && tile + 1 < tiles.end { 2 } else { 1 };
            let td = &w.data()[tile * tile_bytes..(tile + n) * tile_bytes];
            for (t, tab) in tables.chunks_exact(per_token).enumerate() {
                #[cfg(target_arch = "x86_64")]
                if vbmi {
                    let [b0, b1] = &mut bufs;
                    if n == 2 {
                        let (ta, tb) = td.split_at(tile_bytes);
                        // SAFETY: `vbmi` => an Avx512 platform (AVX-512
                        // F/BW/VL/VNNI and AVX2 detected) on a CPU with
                        // VBMI; the tiles and one token's tables have the
                        // shapes `check_tables` and the TlMatrix guarantee.
                        unsafe { avx512::tl2_wide_tiles_dot::<2>([ta, tb], tab, [b0, b1]) };
                    } else {
                        // SAFETY: as above, one tile.
                        unsafe { avx512::tl2_wide_tiles_dot::<1>([td], tab, [b0]) };
                    }
                } else {
                    tl2_wide_tile_dot(td, tab, &mut bufs[0]);
                }
                #[cfg(not(target_arch = "x86_64"))]
                tl2_wide_tile_dot(td, tab, &mut bufs[0]);
                for (k, buf) in bufs.iter().enumerate().take(n) {
                    let r0 = (tile + k) * TL2_WIDE_TILE_ROWS;
                    for r in rows.start.max(r0)..rows.end.min(r0 + TL2_WIDE_TILE_ROWS) {
                        out[(r - rows.start) * batch + t] = buf[r - r0];
                    }
                }
            }
            tile += n;
        }
        match (vbmi, batch == 1) {
            (true, true) => ids::TL2_GEMV_AVX512VBMI,
            (true, false) => ids::TL2_GEMM_AVX512VBMI,
            (false, _) => ids::TL2_WIDE_GEMV_SCALAR,
        }
    }

    /// Int8 LM-head GEMV on a row range (`--lm-head q8`): `out[i]` is the
    /// exact integer dot of row `rows.start + i` of `w` with the token `q`
    /// ([`q8_dot_i32`]). The AVX-512 tier runs the AVX2 kernel.
    pub fn q8_head_gemv(
        self,
        w: &Q8Rows,
        rows: Range<usize>,
        q: &[i8],
        out: &mut [i32],
    ) -> Result<&'static str, QuantError> {
        let k = w.cols();
        check_eq("q8 head activations", k, q.len())?;
        check_rows(w.qs().len(), k, &rows, out.len(), 1)?;
        let ws = &w.qs()[rows.start * k..rows.end * k];
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 => {
                // SAFETY: Avx2 and Avx512 platforms => AVX2 detected;
                // shapes checked above; Q8Rows codes are in -127..=127.
                unsafe { avx2::q8_head_gemv(ws, k, q, out) };
                Ok(ids::Q8_HEAD_GEMV_AVX2)
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: a Simd128 platform is only built when this build
                // enables simd128; shapes checked above; Q8Rows codes are in
                // -127..=127.
                unsafe { simd128::q8_head_gemv(ws, k, q, out) };
                Ok(ids::Q8_HEAD_GEMV_SIMD128)
            }
            _ => {
                for (o, row) in out.iter_mut().zip(ws.chunks_exact(k)) {
                    *o = q8_dot_i32(row, q);
                }
                Ok(ids::Q8_HEAD_GEMV_SCALAR)
            }
        }
    }
}

/// A TQ GEMV dispatch entry ([`Platform::tq2_0_gemv`] /
/// [`Platform::tq1_0_gemv`]).
type TqGemv = fn(
    Platform,
    &[u8],
    usize,
    Range<usize>,
    &[BlockQ8K],
    &mut [f32],
) -> Result<&'static str, QuantError>;

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

/// Bytes of a TQ row of `k` weights (a nonzero multiple of 256) with
/// `block_bytes` per 256.
fn tq_row_bytes(k: usize, block_bytes: usize) -> Result<usize, QuantError> {
    if k == 0 {
        return Err(QuantError::EmptyShape { rows: 0, cols: k });
    }
    if !k.is_multiple_of(QK_K) {
        return Err(QuantError::NotBlockMultiple {
            what: "TQ row length",
            len: k,
            block: QK_K,
        });
    }
    (k / QK_K)
        .checked_mul(block_bytes)
        .ok_or(QuantError::SizeOverflow {
            what: "TQ row bytes",
        })
}

/// The number of tokens in `act_blocks` Q8_K blocks of rows of `k`
/// weights (`k` a nonzero multiple of 256).
fn tq_batch(k: usize, act_blocks: usize) -> Result<usize, QuantError> {
    let nb = k / QK_K;
    if nb == 0 || !act_blocks.is_multiple_of(nb) {
        return Err(QuantError::NotBlockMultiple {
            what: "TQ batch activation blocks",
            len: act_blocks,
            block: nb,
        });
    }
    Ok(act_blocks / nb)
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
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn sum_i8(q: &[i8]) -> i32 {
    q.iter().map(|&v| i32::from(v)).sum()
}

/// The scalar tail of the activation quantizers: the portable function
/// itself (`clamp(round_half_even(v * s), -128, 127)`, NaN -> 0).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
use crate::quant::i2s::quantize_act_value;

/// The portable activation scale from the absmax `m` (division in f64).
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
fn act_scale(m: f32) -> f32 {
    (127.0f64 / f64::from(m)) as f32
}
