//! [`peek_header`]: what a GGUF file is and how many bytes it needs, read
//! from a prefix of it.
//!
//! A browser page gets a model as a `File` whose bytes arrive slowly; the
//! peek lets it reject a file that is not GGUF, has an unsupported version
//! or tensor type, or is larger than the page can hold, after reading only
//! the header. It walks the same structures as [`super::Gguf::parse`] with
//! the same caps, bounds checks and type table, but allocates nothing per
//! entry and skips the checks that need the whole file (tensor overlap,
//! duplicates, values it does not read): the full parse stays the authority.

use alloc::string::{String, ToString};
use core::fmt;

use super::error::{GgufError, KeyContext};
use super::reader::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_ARRAY_LEN, MAX_DIMS, MAX_KV_COUNT,
    MAX_STRING_LEN, MAX_TENSOR_COUNT, MAX_TENSOR_NAME, key_after,
};
use super::types::{GgmlType, I2S_TYPE_ID, ShapeError, TL1_TYPE_ID, TL2_OR_MXFP4_TYPE_ID};
use super::value::ValueType;

/// What a GGUF header says, read by [`peek_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPeek {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Tensor count.
    pub n_tensors: u64,
    /// Metadata entry count.
    pub n_kv: u64,
    /// `general.architecture`, when present as a string.
    pub architecture: Option<String>,
    /// `general.name`, when present as a string.
    pub name: Option<String>,
    /// Alignment of the data section.
    pub alignment: u64,
    /// Absolute offset of the data section (the header's size, aligned).
    pub data_offset: u64,
    /// The smallest file that holds every tensor: `data_offset` plus the
    /// largest tensor end. A file shorter than this fails the full parse.
    pub file_bytes: u64,
}

/// Why [`peek_header`] gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekError {
    /// The prefix ends inside the header; call again with at least
    /// `need_at_least` bytes (a lower bound: later fields may need more).
    NeedMoreBytes {
        /// Bytes given.
        have: u64,
        /// Bytes the next field needs, from the start of the file.
        need_at_least: u64,
    },
    /// The header is invalid whatever follows.
    Invalid(GgufError),
}

impl fmt::Display for PeekError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeedMoreBytes {
                have,
                need_at_least,
            } => write!(
                f,
                "GGUF header continues past the {have} bytes read (need at least {need_at_least})"
            ),
            Self::Invalid(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for PeekError {}

impl PeekError {
    /// [`GgufError::in_entry`] for an invalid header.
    fn in_entry(self, entry: impl FnOnce() -> KeyContext) -> Self {
        match self {
            Self::Invalid(e) => Self::Invalid(e.in_entry(entry)),
            more => more,
        }
    }
}

impl From<GgufError> for PeekError {
    fn from(e: GgufError) -> Self {
        Self::Invalid(e)
    }
}

/// A bounds-checked reader over the prefix.
struct Prefix<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Prefix<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], PeekError> {
        let remaining = (self.bytes.len() - self.pos) as u64;
        if n > remaining {
            return Err(PeekError::NeedMoreBytes {
                have: self.bytes.len() as u64,
                need_at_least: (self.pos as u64).saturating_add(n),
            });
        }
        // n <= remaining <= usize::MAX, so the cast is lossless.
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PeekError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N as u64)?);
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, PeekError> {
        self.array::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, PeekError> {
        self.array::<8>().map(u64::from_le_bytes)
    }

    /// A length-prefixed UTF-8 string, with its offset.
    fn string(&mut self, what: &'static str) -> Result<(&'a str, u64), PeekError> {
        let start = self.pos as u64;
        let len = self.u64()?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::StringTooLong {
                what,
                offset: start,
                len,
                max: MAX_STRING_LEN,
                context: KeyContext::None,
            }
            .into());
        }
        let offset = self.pos as u64;
        let b = self.take(len)?;
        let s = core::str::from_utf8(b).map_err(|_| GgufError::InvalidUtf8 {
            what,
            offset,
            context: KeyContext::None,
        })?;
        Ok((s, start))
    }

    /// Skips one metadata value of type `ty`.
    fn skip_value(&mut self, key: &str, ty: ValueType) -> Result<(), PeekError> {
        match ty {
            ValueType::String => self.string("metadata string").map(drop),
            ValueType::Array => {
                let type_id = self.u32()?;
                let elem =
                    ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                        key: key.to_string(),
                        type_id,
                    })?;
                let count = self.u64()?;
                if count > MAX_ARRAY_LEN {
                    return Err(GgufError::TooMany {
                        what: "array length",
                        count,
                        max: MAX_ARRAY_LEN,
                        context: KeyContext::None,
                    }
                    .into());
                }
                match elem {
                    ValueType::Array => Err(GgufError::NestedArray {
                        key: key.to_string(),
                    }
                    .into()),
                    ValueType::String => {
                        for _ in 0..count {
                            self.string("array string element")?;
                        }
                        Ok(())
                    }
                    _ => {
                        let size = elem.scalar_size().unwrap_or(1) as u64;
                        // count <= 2^24 and size <= 8: no overflow.
                        self.take(count * size).map(drop)
                    }
                }
            }
            _ => self.take(ty.scalar_size().unwrap_or(1) as u64).map(drop),
        }
    }
}

/// The tensor type an id means in a file of architecture `arch`, as the
/// full reader decides it (DESIGN.md §3).
fn tensor_type(name: &str, type_id: u32, arch: Option<&str>) -> Result<GgmlType, GgufError> {
    let is_bitnet = arch.is_some_and(|a| a.starts_with("bitnet"));
    let unsupported = |reason| GgufError::UnsupportedTensorType {
        tensor: name.to_string(),
        type_id,
        reason,
    };
    match type_id {
        I2S_TYPE_ID if is_bitnet => Ok(GgmlType::I2S),
        I2S_TYPE_ID => Err(unsupported(
            "I2_S (bitnet.cpp) is only defined for the bitnet architectures",
        )),
        TL1_TYPE_ID => Err(unsupported(
            "bitnet.cpp TL1: its layout depends on the build that wrote it; re-convert the model to I2_S or TQ2_0",
        )),
        TL2_OR_MXFP4_TYPE_ID if is_bitnet => Err(unsupported(
            "bitnet.cpp TL2: its layout depends on the build that wrote it; re-convert the model to I2_S or TQ2_0",
        )),
        TL2_OR_MXFP4_TYPE_ID => Ok(GgmlType::MXFP4),
        id => GgmlType::from_plain_id(id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.to_string(),
            type_id: id,
        }),
    }
}

/// Reads the GGUF header from `prefix`, the first bytes of a file.
///
/// Returns [`PeekError::NeedMoreBytes`] while the header (metadata and
/// tensor infos) is not complete in `prefix`, and [`PeekError::Invalid`]
/// for a header no amount of further bytes can fix: bad magic, version,
/// caps, value or tensor types, shapes, alignment. Never panics.
pub fn peek_header(prefix: &[u8]) -> Result<HeaderPeek, PeekError> {
    let mut c = Prefix {
        bytes: prefix,
        pos: 0,
    };
    let magic = c.array::<4>()?;
    if &magic != b"GGUF" {
        return Err(GgufError::BadMagic { found: magic }.into());
    }
    let version = c.u32()?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion { version }.into());
    }
    let n_tensors = c.u64()?;
    let n_kv = c.u64()?;
    for (what, count, max) in [
        ("metadata count", n_kv, MAX_KV_COUNT),
        ("tensor count", n_tensors, MAX_TENSOR_COUNT),
    ] {
        if count > max {
            return Err(GgufError::TooMany {
                what,
                count,
                max,
                context: KeyContext::None,
            }
            .into());
        }
    }

    let (mut architecture, mut name, mut alignment) = (None, None, DEFAULT_ALIGNMENT);
    let mut prev_key = None;
    for _ in 0..n_kv {
        // Errors name the entry, as in the full parse.
        let (key, _) = c
            .string("metadata key")
            .map_err(|e| e.in_entry(|| key_after(prev_key)))?;
        let in_value = |e: PeekError| e.in_entry(|| KeyContext::ValueOf(key.to_string()));
        let type_id = c.u32()?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.to_string(),
            type_id,
        })?;
        match (key, ty) {
            ("general.architecture", ValueType::String) => {
                let (s, _) = c.string("metadata string").map_err(in_value)?;
                architecture = Some(s.to_string());
            }
            ("general.name", ValueType::String) => {
                let (s, _) = c.string("metadata string").map_err(in_value)?;
                name = Some(s.to_string());
            }
            (ALIGNMENT_KEY, ValueType::U32) => {
                let a = u64::from(c.u32()?);
                if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                    return Err(GgufError::BadAlignment {
                        value: a,
                        max: MAX_ALIGNMENT,
                    }
                    .into());
                }
                alignment = a;
            }
            (ALIGNMENT_KEY, other) => {
                return Err(GgufError::WrongType {
                    key: ALIGNMENT_KEY.to_string(),
                    expected: "u32",
                    found: other.name(),
                }
                .into());
            }
            _ => c.skip_value(key, ty).map_err(in_value)?,
        }
        prev_key = Some(key);
    }

    let mut data_end = 0u64;
    for _ in 0..n_tensors {
        let (tname, name_offset) = c.string("tensor name")?;
        if tname.is_empty() || tname.len() as u64 > MAX_TENSOR_NAME {
            return Err(GgufError::BadTensorName {
                offset: name_offset,
                len: tname.len() as u64,
                max: MAX_TENSOR_NAME,
            }
            .into());
        }
        let n_dims = c.u32()?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: tname.to_string(),
                n_dims,
            }
            .into());
        }
        let mut dims = [0u64; MAX_DIMS as usize];
        for d in dims.iter_mut().take(n_dims as usize) {
            *d = c.u64()?;
        }
        let dims = &dims[..n_dims as usize];
        let type_id = c.u32()?;
        let offset = c.u64()?;
        let ty = tensor_type(tname, type_id, architecture.as_deref())?;
        let size = ty.tensor_bytes(dims).map_err(|e| match e {
            ShapeError::Overflow => GgufError::SizeOverflow {
                tensor: tname.to_string(),
            },
            ShapeError::RowNotBlockMultiple { ne0, block } => GgufError::BadShape {
                tensor: tname.to_string(),
                type_name: ty.name(),
                ne0,
                block,
            },
        })?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: tname.to_string(),
                offset,
                alignment,
            }
            .into());
        }
        let end = offset
            .checked_add(size)
            .ok_or_else(|| GgufError::SizeOverflow {
                tensor: tname.to_string(),
            })?;
        data_end = data_end.max(end);
    }

    let header_end = c.pos as u64;
    let data_offset = header_end.div_ceil(alignment) * alignment;
    let file_bytes = data_offset
        .checked_add(data_end)
        .ok_or(GgufError::SizeOverflow {
            tensor: String::from("(data section end)"),
        })?;
    Ok(HeaderPeek {
        version,
        n_tensors,
        n_kv,
        architecture,
        name,
        alignment,
        data_offset,
        file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;

    const STORIES: &[u8] = include_bytes!("../../../tests/models/stories260K.gguf");
    const I2S: &[u8] = include_bytes!("../../../tests/models/bitnet-b1.58-i2s.gguf");

    #[test]
    fn whole_files_agree_with_the_full_parse() {
        for bytes in [STORIES, I2S] {
            let g = Gguf::parse(bytes).unwrap();
            let p = peek_header(bytes).unwrap();
            assert_eq!(p.version, g.version());
            assert_eq!(p.n_tensors, g.tensors().len() as u64);
            assert_eq!(p.n_kv, g.metadata().len() as u64);
            assert_eq!(p.alignment, g.alignment());
            assert_eq!(p.data_offset, g.data_offset());
            let end = g.tensors().iter().map(|t| t.offset + t.size).max().unwrap();
            assert_eq!(p.file_bytes, g.data_offset() + end);
            assert!(p.file_bytes <= bytes.len() as u64);
            assert!(p.architecture.is_some());
        }
    }

    #[test]
    fn every_short_prefix_asks_for_more_and_the_header_prefix_suffices() {
        let full = peek_header(STORIES).unwrap();
        // The tensor infos end at most `alignment` bytes before data_offset.
        let header_end = (full.data_offset - full.alignment) as usize;
        let mut last_need = 0;
        for len in (0..header_end).step_by(97).chain([header_end - 1]) {
            match peek_header(&STORIES[..len]) {
                Err(PeekError::NeedMoreBytes {
                    have,
                    need_at_least,
                }) => {
                    assert_eq!(have, len as u64);
                    assert!(need_at_least > have);
                    assert!(need_at_least >= last_need);
                    last_need = need_at_least;
                }
                other => panic!("prefix of {len} bytes: {other:?}"),
            }
        }
        assert_eq!(
            peek_header(&STORIES[..full.data_offset as usize]).unwrap(),
            full
        );
    }

    #[test]
    fn invalid_headers_are_rejected_early() {
        assert!(matches!(
            peek_header(b"GGML\x03\0\0\0"),
            Err(PeekError::Invalid(GgufError::BadMagic { .. }))
        ));
        assert!(matches!(
            peek_header(b"GGUF\x01\0\0\0"),
            Err(PeekError::Invalid(GgufError::UnsupportedVersion {
                version: 1
            }))
        ));
        let mut huge = b"GGUF\x03\0\0\0".to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            peek_header(&huge),
            Err(PeekError::Invalid(GgufError::TooMany { .. }))
        ));
    }

    #[test]
    fn corrupted_headers_never_panic() {
        let head = &STORIES[..4096.min(STORIES.len())];
        let mut buf = head.to_vec();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % buf.len();
            buf[i] = (x >> 32) as u8;
            let _ = peek_header(&buf);
            if x.is_multiple_of(8) {
                buf.copy_from_slice(head);
            }
        }
    }
}
