//! The table of ggml tensor types: block size and bytes per block.
//!
//! Sizes come from ggml's `ggml-common.h` (block structs) and
//! `ggml.c` (`type_traits`); I2_S from Microsoft's bitnet.cpp fork
//! (`ggml-bitnet-mad.cpp`), see DESIGN.md §4. The byte size of a tensor is
//! always computed from this table, never read from the file.

use core::fmt;

/// A ggml tensor type that this reader knows the byte layout of.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    /// Microsoft's ternary format (bitnet.cpp): 2-bit codes in 128-element
    /// blocks plus one f32 scale per tensor in a 32-byte tail.
    I2S,
    MXFP4,
}

/// Type id of I2_S in bitnet.cpp files.
pub const I2S_TYPE_ID: u32 = 36;
/// Type ids that bitnet.cpp uses for its build-specific TL1 / TL2 layouts.
pub const TL1_TYPE_ID: u32 = 38;
/// TL2 in bitnet.cpp; upstream ggml reuses this id for MXFP4.
pub const TL2_OR_MXFP4_TYPE_ID: u32 = 39;
/// I2_S stores elements in blocks of this many (a row's K must be a multiple).
pub const I2S_BLOCK: u64 = 128;
/// Bytes after the packed codes of an I2_S tensor (the f32 scale plus padding).
pub const I2S_TAIL_BYTES: u64 = 32;

impl GgmlType {
    /// Maps a ggml type id to a type, for ids whose meaning does not depend
    /// on the file (everything but 36 / 38 / 39, see [`crate::gguf::Gguf`]).
    pub fn from_plain_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            _ => return None,
        })
    }

    /// The id this type has on disk.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            I2S => I2S_TYPE_ID,
            MXFP4 => TL2_OR_MXFP4_TYPE_ID,
        }
    }

    /// The name llama.cpp prints for this type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            I2S => "I2_S",
            MXFP4 => "MXFP4",
        }
    }

    /// `(elements per block, bytes per block)`. For I2_S this is the packed
    /// part only (4 codes per byte); the 32-byte tail is added by
    /// [`GgmlType::tensor_bytes`].
    pub fn block_layout(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 | IQ4_NL => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            MXFP4 => (32, 17),
            Q2_K => (256, 84),
            Q3_K | IQ3_S => (256, 110),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            Q8_K => (256, 292),
            IQ2_XXS => (256, 66),
            IQ2_XS => (256, 74),
            IQ3_XXS => (256, 98),
            IQ1_S => (256, 50),
            IQ2_S => (256, 82),
            IQ4_XS => (256, 136),
            IQ1_M => (256, 56),
            // 1.6875 bits per weight: 48 bytes base-3 + 4 bytes + f16 scale.
            TQ1_0 => (256, 54),
            // 2.0625 bits per weight: 64 bytes of 2-bit codes + f16 scale.
            TQ2_0 => (256, 66),
            // 2 bits per weight (+ a 32-byte tail per tensor).
            I2S => (I2S_BLOCK, I2S_BLOCK / 4),
        }
    }

    /// Whether this is one of the ternary formats the engine multiplies
    /// directly (I2_S, TQ1_0, TQ2_0).
    pub fn is_ternary(self) -> bool {
        matches!(self, GgmlType::I2S | GgmlType::TQ1_0 | GgmlType::TQ2_0)
    }

    /// Byte size of a tensor of this type with dimensions `dims`
    /// (`dims[0]` = ne0, the contiguous row length). Fails when ne0 is not
    /// a multiple of the block size or when the size overflows `u64`.
    pub fn tensor_bytes(self, dims: &[u64]) -> Result<u64, ShapeError> {
        let (blk, bytes) = self.block_layout();
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % blk != 0 {
            return Err(ShapeError::RowNotBlockMultiple { ne0, block: blk });
        }
        let mut ne: u64 = 1;
        for &d in dims {
            ne = ne.checked_mul(d).ok_or(ShapeError::Overflow)?;
        }
        let packed = (ne / blk).checked_mul(bytes).ok_or(ShapeError::Overflow)?;
        if self == GgmlType::I2S {
            packed
                .checked_add(I2S_TAIL_BYTES)
                .ok_or(ShapeError::Overflow)
        } else {
            Ok(packed)
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a tensor shape does not fit its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeError {
    /// The row length is not a multiple of the type's block size.
    RowNotBlockMultiple { ne0: u64, block: u64 },
    /// The element count or byte size does not fit in 64 bits.
    Overflow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in 0..64 {
            if let Some(t) = GgmlType::from_plain_id(id) {
                assert_eq!(t.id(), id);
            }
        }
        assert_eq!(GgmlType::I2S.id(), 36);
        assert!(GgmlType::from_plain_id(36).is_none());
        assert!(GgmlType::from_plain_id(39).is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(GgmlType::F32.tensor_bytes(&[64, 512]), Ok(131072));
        assert_eq!(GgmlType::TQ2_0.tensor_bytes(&[256, 3]), Ok(3 * 66));
        assert_eq!(GgmlType::TQ1_0.tensor_bytes(&[512, 2]), Ok(4 * 54));
        // I2_S: M*K/4 + 32.
        assert_eq!(
            GgmlType::I2S.tensor_bytes(&[2560, 640]),
            Ok(2560 * 640 / 4 + 32)
        );
        assert_eq!(
            GgmlType::I2S.tensor_bytes(&[100, 2]),
            Err(ShapeError::RowNotBlockMultiple {
                ne0: 100,
                block: 128
            })
        );
        assert_eq!(
            GgmlType::F32.tensor_bytes(&[u64::MAX, 2]),
            Err(ShapeError::Overflow)
        );
        assert_eq!(GgmlType::F32.tensor_bytes(&[]), Ok(4));
    }
}
