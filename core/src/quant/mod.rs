//! Quantization formats (I2_S, TQ1_0, TQ2_0, Q8_0, F16, BF16, F32) and their
//! portable dot-product kernels.
//!
//! One file per format, candle/ggml style: a `#[repr(C)]` block struct with a
//! size assertion and a bits-per-weight comment, the quantizer that writes
//! the format, a dequantizer, and the portable (scalar) dot product of one
//! weight row with one activation row quantized the way the format expects:
//!
//! | weights | activations                          | dot                      |
//! |---------|--------------------------------------|--------------------------|
//! | I2_S    | per-token i8, absmax over all of K   | [`i2s::i2s_dot_i32`]     |
//! | TQ1_0   | [`q8_k::BlockQ8K`] (llama.cpp Q8_K)  | [`tq1_0::vec_dot_tq1_0_q8_k`] |
//! | TQ2_0   | [`q8_k::BlockQ8K`]                   | [`tq2_0::vec_dot_tq2_0_q8_k`] |
//! | Q8_0    | [`q8_0::BlockQ8_0`]                  | [`q8_0::vec_dot_q8_0_q8_0`] |
//! | F16/BF16/F32 | f32                             | [`f16::dot_f16_f32`], ...  |
//!
//! Kernels are plain functions over slices, so SIMD variants can be added
//! beside them behind one dispatch; the integer parts of the ternary dots are
//! the contract those variants must reproduce bit for bit (DESIGN.md §5).
//! [`QuantizedLinear`] multiplies activations by a borrowed (zero-copy)
//! weight matrix in any of these formats without dequantizing it.
//!
//! Nothing here panics on bad sizes: every shape is checked (with checked
//! arithmetic) and reported as a [`QuantError`].

pub mod bf16;
pub mod f16;
pub mod f32;
pub mod i2s;
mod linear;
pub mod q8_0;
pub mod q8_head;
pub mod q8_k;
pub mod tl;
pub mod tl_tq;
pub mod tq1_0;
pub mod tq2_0;

pub use linear::{ActScratch, QuantizedLinear};

use core::fmt;

use crate::gguf::GgmlType;

/// Why a quantization routine or kernel refused its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantError {
    /// A length (`len` elements of `what`) is not a multiple of the format's
    /// block length `block`.
    NotBlockMultiple {
        /// Which length.
        what: &'static str,
        /// The offending length.
        len: usize,
        /// The block length it must be a multiple of.
        block: usize,
    },
    /// A buffer (`what`) has `actual` elements or bytes where `expected` are
    /// required.
    LengthMismatch {
        /// Which buffer.
        what: &'static str,
        /// The length the shape implies.
        expected: usize,
        /// The length that was passed.
        actual: usize,
    },
    /// A size computation for `what` overflowed `usize`.
    SizeOverflow {
        /// Which size.
        what: &'static str,
    },
    /// A dimension is so large that the i32 accumulator of an integer dot
    /// product could overflow.
    TooLarge {
        /// Which dimension.
        what: &'static str,
        /// The offending value.
        value: usize,
        /// The largest accepted value.
        max: usize,
    },
    /// A weight handed to a ternary quantizer is not -1, 0 or +1.
    NotTernary {
        /// Flat index of the weight.
        index: usize,
        /// Its value.
        value: i8,
    },
    /// A matrix shape with a zero dimension.
    EmptyShape {
        /// Rows (output features).
        rows: usize,
        /// Columns (input features).
        cols: usize,
    },
    /// Growing a scratch buffer to `bytes` bytes failed.
    AllocFailed {
        /// The requested size.
        bytes: usize,
    },
    /// A GGUF tensor type that has no kernel here.
    UnsupportedType {
        /// The ggml name of the type.
        name: &'static str,
    },
}

impl fmt::Display for QuantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotBlockMultiple { what, len, block } => {
                write!(
                    f,
                    "{what} has length {len}, not a multiple of the block length {block}"
                )
            }
            Self::LengthMismatch {
                what,
                expected,
                actual,
            } => {
                write!(f, "{what} has length {actual}, expected {expected}")
            }
            Self::SizeOverflow { what } => write!(f, "size of {what} overflows usize"),
            Self::TooLarge { what, value, max } => {
                write!(f, "{what} = {value} exceeds the maximum {max}")
            }
            Self::NotTernary { index, value } => {
                write!(f, "weight {index} is {value}, not one of -1, 0, +1")
            }
            Self::EmptyShape { rows, cols } => {
                write!(f, "matrix shape {rows}x{cols} has a zero dimension")
            }
            Self::AllocFailed { bytes } => write!(f, "allocating {bytes} bytes of scratch failed"),
            Self::UnsupportedType { name } => write!(f, "no matmul kernel for tensor type {name}"),
        }
    }
}

impl core::error::Error for QuantError {}

/// A weight format that [`QuantizedLinear`] can multiply by.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// IEEE f32, little-endian.
    F32,
    /// IEEE half precision, little-endian.
    F16,
    /// bfloat16 (upper half of an f32), little-endian.
    BF16,
    /// llama.cpp Q8_0: 32-element blocks, f16 scale, i8 values.
    Q8_0,
    /// llama.cpp TQ1_0: 256-element blocks of base-3 packed trits, f16 scale.
    TQ1_0,
    /// llama.cpp TQ2_0: 256-element blocks of 2-bit codes, f16 scale.
    TQ2_0,
    /// Microsoft's I2_S: 128-element blocks of 2-bit codes, one f32 scale per
    /// tensor in a 32-byte tail (DESIGN.md §4).
    I2S,
}

impl QuantType {
    /// The name llama.cpp / bitnet.cpp give the type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q8_0 => "Q8_0",
            Self::TQ1_0 => "TQ1_0",
            Self::TQ2_0 => "TQ2_0",
            Self::I2S => "I2_S",
        }
    }

    /// Elements per block; a row length must be a multiple of it.
    pub const fn block_len(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q8_0 => q8_0::QK8_0,
            Self::TQ1_0 | Self::TQ2_0 => q8_k::QK_K,
            Self::I2S => i2s::I2S_BLOCK_LEN,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q8_0 => q8_0::BlockQ8_0::BYTES,
            Self::TQ1_0 => tq1_0::BlockTq1_0::BYTES,
            Self::TQ2_0 => tq2_0::BlockTq2_0::BYTES,
            Self::I2S => i2s::I2S_BLOCK_BYTES,
        }
    }

    /// Bytes of one row of `cols` elements (for I2_S without the per-tensor
    /// tail).
    pub fn row_bytes(self, cols: usize) -> Result<usize, QuantError> {
        let block = self.block_len();
        if !cols.is_multiple_of(block) {
            return Err(QuantError::NotBlockMultiple {
                what: "row length",
                len: cols,
                block,
            });
        }
        (cols / block)
            .checked_mul(self.block_bytes())
            .ok_or(QuantError::SizeOverflow { what: "row bytes" })
    }

    /// Bytes of a `rows x cols` tensor, including the 32-byte I2_S tail.
    pub fn tensor_bytes(self, rows: usize, cols: usize) -> Result<usize, QuantError> {
        let body = self
            .row_bytes(cols)?
            .checked_mul(rows)
            .ok_or(QuantError::SizeOverflow {
                what: "tensor bytes",
            })?;
        let tail = match self {
            Self::I2S => i2s::I2S_TAIL_BYTES,
            _ => 0,
        };
        body.checked_add(tail).ok_or(QuantError::SizeOverflow {
            what: "tensor bytes",
        })
    }

    /// The id of the portable kernel [`QuantizedLinear::forward`] runs for
    /// this type, as recorded in receipts (`<format>_gemv_scalar`).
    pub const fn scalar_kernel_id(self) -> &'static str {
        match self {
            Self::F32 => "f32_gemv_scalar",
            Self::F16 => "f16_gemv_scalar",
            Self::BF16 => "bf16_gemv_scalar",
            Self::Q8_0 => "q8_0_gemv_scalar",
            Self::TQ1_0 => "tq1_0_gemv_scalar",
            Self::TQ2_0 => "tq2_0_gemv_scalar",
            Self::I2S => "i2s_gemv_scalar",
        }
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<GgmlType> for QuantType {
    type Error = QuantError;

    fn try_from(t: GgmlType) -> Result<Self, QuantError> {
        Ok(match t {
            GgmlType::F32 => Self::F32,
            GgmlType::F16 => Self::F16,
            GgmlType::BF16 => Self::BF16,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::TQ1_0 => Self::TQ1_0,
            GgmlType::TQ2_0 => Self::TQ2_0,
            GgmlType::I2S => Self::I2S,
            other => return Err(QuantError::UnsupportedType { name: other.name() }),
        })
    }
}

impl From<QuantType> for GgmlType {
    fn from(t: QuantType) -> Self {
        match t {
            QuantType::F32 => Self::F32,
            QuantType::F16 => Self::F16,
            QuantType::BF16 => Self::BF16,
            QuantType::Q8_0 => Self::Q8_0,
            QuantType::TQ1_0 => Self::TQ1_0,
            QuantType::TQ2_0 => Self::TQ2_0,
            QuantType::I2S => Self::I2S,
        }
    }
}

/// Checks that `actual == expected` for the buffer `what`.
fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), QuantError> {
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

/// `len / block` when `len` is a multiple of `block` (`block > 0`).
fn blocks_of(what: &'static str, len: usize, block: usize) -> Result<usize, QuantError> {
    if block == 0 || !len.is_multiple_of(block) {
        return Err(QuantError::NotBlockMultiple { what, len, block });
    }
    Ok(len / block)
}

/// `a * b` or [`QuantError::SizeOverflow`] naming `what`.
fn mul_size(what: &'static str, a: usize, b: usize) -> Result<usize, QuantError> {
    a.checked_mul(b).ok_or(QuantError::SizeOverflow { what })
}

/// Reads the little-endian f16 at `bytes[0..2]` (callers pass exact slices).
fn f16_le(lo: u8, hi: u8) -> half::f16 {
    half::f16::from_bits(u16::from_le_bytes([lo, hi]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [QuantType; 7] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::BF16,
        QuantType::Q8_0,
        QuantType::TQ1_0,
        QuantType::TQ2_0,
        QuantType::I2S,
    ];

    #[test]
    fn sizes_agree_with_the_gguf_type_table() {
        for t in ALL {
            let g = GgmlType::from(t);
            assert_eq!(QuantType::try_from(g), Ok(t));
            assert_eq!(g.name(), t.name());
            let (blk, bytes) = g.block_layout();
            assert_eq!(
                (blk as usize, bytes as usize),
                (t.block_len(), t.block_bytes()),
                "{t}"
            );
            for (rows, cols) in [(1, 256), (3, 512), (67, 2560)] {
                let want = g.tensor_bytes(&[cols as u64, rows as u64]).unwrap();
                assert_eq!(
                    t.tensor_bytes(rows, cols),
                    Ok(want as usize),
                    "{t} {rows}x{cols}"
                );
            }
        }
        assert_eq!(
            QuantType::try_from(GgmlType::Q4_K),
            Err(QuantError::UnsupportedType { name: "Q4_K" })
        );
    }

    #[test]
    fn row_and_tensor_bytes_reject_bad_shapes() {
        assert_eq!(
            QuantType::TQ2_0.row_bytes(300),
            Err(QuantError::NotBlockMultiple {
                what: "row length",
                len: 300,
                block: 256
            })
        );
        assert!(QuantType::F32.tensor_bytes(usize::MAX, 2).is_err());
        assert!(QuantType::I2S.tensor_bytes(usize::MAX / 32, 128).is_err());
        assert_eq!(QuantType::I2S.tensor_bytes(2, 128), Ok(96));
        assert_eq!(QuantType::I2S.scalar_kernel_id(), "i2s_gemv_scalar");
    }
}
