//! The zero-copy GGUF reader. The input is untrusted: every read is
//! bounds-checked, every size computed with checked arithmetic, every count
//! checked against the bytes that remain before anything is allocated.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;
use hashbrown::HashMap;

use super::error::{GgufError, KeyContext};
use super::types::{GgmlType, I2S_TYPE_ID, ShapeError, TL1_TYPE_ID, TL2_OR_MXFP4_TYPE_ID};
use super::value::{Array, Value, ValueType};

/// Longest string (key, value, array element) accepted: 16 MiB. Chat
/// templates, the longest strings in real files, are a few tens of KiB.
pub const MAX_STRING_LEN: u64 = 16 << 20;
/// Most elements in one metadata array: 2^24 (vocabularies have ~2^18).
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Most metadata entries: 2^16 (real files have a few dozen).
pub const MAX_KV_COUNT: u64 = 1 << 16;
/// Most tensors: 2^16 (the largest models have a few thousand).
pub const MAX_TENSOR_COUNT: u64 = 1 << 16;
/// Longest tensor name (ggml's own limit is 63 bytes).
pub const MAX_TENSOR_NAME: u64 = 256;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Largest `general.alignment` accepted: 64 KiB (real files use 32).
pub const MAX_ALIGNMENT: u64 = 1 << 16;
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key holding the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

// Smallest encodings, used to check counts against the remaining bytes.
const MIN_KV_BYTES: u64 = 8 + 4 + 1; // key length, type, 1-byte value
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 1 + 4 + 4 + 8; // name len, 1 byte name, n_dims, type, offset

/// One tensor's description, with its location resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// The tensor's name.
    pub name: &'a str,
    /// Dimensions, `dims[0]` (ne0) contiguous; 0 to 4 entries.
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Byte size computed from the type table.
    pub size: u64,
}

impl TensorInfo<'_> {
    /// Number of elements (product of dims; checked at parse time).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file borrowing the file's bytes.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    version: u32,
    alignment: u64,
    kvs: Vec<(&'a str, Value<'a>)>,
    kv_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo<'a>>,
    tensor_index: HashMap<&'a str, usize>,
    data_offset: u64,
    bytes: &'a [u8],
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if n > available {
            return Err(GgufError::Truncated {
                what,
                offset: self.pos as u64,
                needed: n,
                available,
                context: KeyContext::None,
            });
        }
        // n <= remaining <= usize::MAX, so the cast is lossless.
        let n = n as usize;
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        Ok(b)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed string; returns the raw bytes and their offset.
    fn string_bytes(&mut self, what: &'static str) -> Result<(&'a [u8], u64), GgufError> {
        let start = self.pos as u64;
        let len = self.u64(what)?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::StringTooLong {
                what,
                offset: start,
                len,
                max: MAX_STRING_LEN,
                context: KeyContext::None,
            });
        }
        let off = self.pos as u64;
        Ok((self.take(len, what)?, off))
    }

    fn string(&mut self, what: &'static str) -> Result<&'a str, GgufError> {
        let (b, offset) = self.string_bytes(what)?;
        core::str::from_utf8(b).map_err(|_| GgufError::InvalidUtf8 {
            what,
            offset,
            context: KeyContext::None,
        })
    }

    /// Checks a count against a cap and against the bytes that remain, given
    /// the smallest encoding of one element.
    fn check_count(
        &self,
        what: &'static str,
        count: u64,
        max: u64,
        min_elem_bytes: u64,
    ) -> Result<usize, GgufError> {
        if count > max {
            return Err(GgufError::TooMany {
                what,
                count,
                max,
                context: KeyContext::None,
            });
        }
        let remaining = self.remaining();
        if count
            .checked_mul(min_elem_bytes)
            .is_none_or(|n| n > remaining)
        {
            return Err(GgufError::CountExceedsData {
                what,
                count,
                remaining,
                context: KeyContext::None,
            });
        }
        usize::try_from(count).map_err(|_| GgufError::TooMany {
            what,
            count,
            max: usize::MAX as u64,
            context: KeyContext::None,
        })
    }

    fn value(&mut self, key: &str, ty: ValueType) -> Result<Value<'a>, GgufError> {
        let scalar_what = "metadata value";
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(scalar_what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array::<1>(scalar_what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array::<2>(scalar_what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array::<2>(scalar_what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array::<4>(scalar_what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array::<4>(scalar_what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array::<4>(scalar_what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array::<8>(scalar_what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array::<8>(scalar_what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array::<8>(scalar_what)?)),
            ValueType::Bool => {
                let offset = self.pos as u64;
                let b = self.array::<1>(scalar_what)?[0];
                Value::Bool(check_bool(key, offset, b)?)
            }
            ValueType::String => Value::String(self.string("metadata string")?),
            ValueType::Array => Value::Array(self.array_value(key)?),
        })
    }

    fn array_value(&mut self, key: &str) -> Result<Array<'a>, GgufError> {
        let type_id = self.u32("array element type")?;
        let elem = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.to_string(),
            type_id,
        })?;
        let count = self.u64("array length")?;
        let start = self.pos;
        match elem {
            ValueType::Array => Err(GgufError::NestedArray {
                key: key.to_string(),
            }),
            ValueType::String => {
                let len = self.check_count("array length", count, MAX_ARRAY_LEN, 8)?;
                for _ in 0..len {
                    self.string("array string element")?;
                }
                Ok(Array {
                    elem,
                    len,
                    data: &self.bytes[start..self.pos],
                })
            }
            _ => {
                // Scalars have a size; `scalar_size` is `Some` for them.
                let size = elem.scalar_size().unwrap_or(1) as u64;
                let len = self.check_count("array length", count, MAX_ARRAY_LEN, size)?;
                let data = self.take(count * size, "array data")?;
                if elem == ValueType::Bool {
                    for (i, &b) in data.iter().enumerate() {
                        check_bool(key, (start + i) as u64, b)?;
                    }
                }
                Ok(Array { elem, len, data })
            }
        }
    }
}

/// The context of an error in the key read after `prev` (`None`: the first).
pub(super) fn key_after(prev: Option<&str>) -> KeyContext {
    prev.map_or(KeyContext::None, |k| KeyContext::KeyAfter(k.to_string()))
}

fn check_bool(key: &str, offset: u64, b: u8) -> Result<bool, GgufError> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            key: key.to_string(),
            offset,
            value,
        }),
    }
}

/// Decides what a tensor type id means in this file (DESIGN.md §3): ids 36,
/// 38 and 39 mean different things to bitnet.cpp and to upstream ggml.
fn resolve_type(name: &str, type_id: u32, arch: Option<&str>) -> Result<GgmlType, GgufError> {
    let is_bitnet = arch.is_some_and(|a| a.starts_with("bitnet"));
    let unsupported = |reason| GgufError::UnsupportedTensorType {
        tensor: name.to_string(),
        type_id,
        reason,
    };
    match type_id {
        I2S_TYPE_ID if is_bitnet => Ok(GgmlType::I2S),
        I2S_TYPE_ID => Err(unsupported(
            "I2_S (bitnet.cpp) is only defined for the bitnet architectures, and upstream ggml has no type 36",
        )),
        TL1_TYPE_ID => Err(unsupported(
            "bitnet.cpp TL1: its layout depends on the build that wrote it; re-convert the model to I2_S or TQ2_0",
        )),
        TL2_OR_MXFP4_TYPE_ID if is_bitnet => Err(unsupported(
            "bitnet.cpp TL2 (id 39 in a bitnet architecture): its layout depends on the build that wrote it; re-convert the model to I2_S or TQ2_0",
        )),
        TL2_OR_MXFP4_TYPE_ID => Ok(GgmlType::MXFP4),
        id => GgmlType::from_plain_id(id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.to_string(),
            type_id: id,
        }),
    }
}

impl<'a> Gguf<'a> {
    /// Parses and validates a whole GGUF file held in memory.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic = c.array::<4>("magic")?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = c.u32("version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version });
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        let n_kv = c.check_count("metadata count", n_kv, MAX_KV_COUNT, MIN_KV_BYTES)?;

        let mut kvs = Vec::with_capacity(n_kv);
        let mut kv_index = HashMap::with_capacity(n_kv);
        let mut prev_key = None;
        for i in 0..n_kv {
            // Errors name the entry: a damaged length usually follows a
            // value that a text conversion changed (corrupt-mangled-llama-spm).
            let key = c
                .string("metadata key")
                .map_err(|e| e.in_entry(|| key_after(prev_key)))?;
            let in_value = |e: GgufError| e.in_entry(|| KeyContext::ValueOf(key.to_string()));
            let type_id = c.u32("metadata value type").map_err(in_value)?;
            let ty = ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
                key: key.to_string(),
                type_id,
            })?;
            let value = c.value(key, ty).map_err(in_value)?;
            if kv_index.insert(key, i).is_some() {
                return Err(GgufError::DuplicateKey {
                    key: key.to_string(),
                });
            }
            kvs.push((key, value));
            prev_key = Some(key);
        }

        let alignment = match kv_index.get(ALIGNMENT_KEY).map(|&i| kvs[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) => {
                let a = u64::from(a);
                if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                    return Err(GgufError::BadAlignment {
                        value: a,
                        max: MAX_ALIGNMENT,
                    });
                }
                a
            }
            Some(other) => {
                return Err(GgufError::WrongType {
                    key: ALIGNMENT_KEY.to_string(),
                    expected: "u32",
                    found: other.value_type().name(),
                });
            }
        };
        let arch = match kv_index.get("general.architecture").map(|&i| kvs[i].1) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };

        let n_tensors = c.check_count(
            "tensor count",
            n_tensors,
            MAX_TENSOR_COUNT,
            MIN_TENSOR_INFO_BYTES,
        )?;
        let mut tensors = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name_offset = c.pos as u64;
            let name = c.string("tensor name")?;
            if name.is_empty() || name.len() as u64 > MAX_TENSOR_NAME {
                return Err(GgufError::BadTensorName {
                    offset: name_offset,
                    len: name.len() as u64,
                    max: MAX_TENSOR_NAME,
                });
            }
            let n_dims = c.u32("tensor dimension count")?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::TooManyDims {
                    tensor: name.to_string(),
                    n_dims,
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64("tensor dimension")?);
            }
            let type_id = c.u32("tensor type")?;
            let offset = c.u64("tensor offset")?;
            let ggml_type = resolve_type(name, type_id, arch)?;
            let size = ggml_type.tensor_bytes(&dims).map_err(|e| match e {
                ShapeError::Overflow => GgufError::SizeOverflow {
                    tensor: name.to_string(),
                },
                ShapeError::RowNotBlockMultiple { ne0, block } => GgufError::BadShape {
                    tensor: name.to_string(),
                    type_name: ggml_type.name(),
                    ne0,
                    block,
                },
            })?;
            if offset % alignment != 0 {
                return Err(GgufError::MisalignedTensor {
                    tensor: name.to_string(),
                    offset,
                    alignment,
                });
            }
            if tensor_index.insert(name, i).is_some() {
                return Err(GgufError::DuplicateTensor {
                    name: name.to_string(),
                });
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                size,
            });
        }

        // The data section starts at the next multiple of the alignment.
        let header_end = c.pos as u64;
        let data_offset = header_end.div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        let data_len = file_len.saturating_sub(data_offset);
        for t in &tensors {
            let end = t.offset.checked_add(t.size);
            if end.is_none_or(|e| e > data_len) {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: t.name.to_string(),
                    offset: t.offset,
                    size: t.size,
                    data_len,
                });
            }
        }
        // Overlap: sort the non-empty tensors by offset (O(n log n)) and
        // compare neighbours. Empty tensors occupy no bytes and overlap
        // nothing, but they must be left out before sorting, not skipped
        // when comparing: `z` (0 bytes at 32) between a[0..128] and
        // c[64..80] would otherwise hide their overlap. Without overlaps
        // between neighbours the end offsets increase, so no pair further
        // apart can overlap either.
        let mut order: Vec<usize> = (0..tensors.len())
            .filter(|&i| tensors[i].size > 0)
            .collect();
        order.sort_unstable_by_key(|&i| (tensors[i].offset, tensors[i].size));
        for w in order.windows(2) {
            let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
            // In bounds, so offset + size cannot overflow.
            if a.offset + a.size > b.offset {
                return Err(GgufError::TensorOverlap {
                    first: a.name.to_string(),
                    second: b.name.to_string(),
                });
            }
        }

        Ok(Gguf {
            version,
            alignment,
            kvs,
            kv_index,
            tensors,
            tensor_index,
            data_offset,
            bytes,
        })
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of every tensor offset.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata entries in file order.
    pub fn metadata(&self) -> &[(&'a str, Value<'a>)] {
        &self.kvs
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor of this file (checked in bounds at parse time).
    /// Empty for a `TensorInfo` that does not lie inside this file.
    pub fn tensor_data(&self, t: &TensorInfo<'a>) -> &'a [u8] {
        self.tensor_range(t)
            .and_then(|r| self.bytes.get(r))
            .unwrap_or(&[])
    }

    /// A tensor's byte range in the file, `None` where it does not fit
    /// `u64` or `usize`.
    fn tensor_range(&self, t: &TensorInfo<'a>) -> Option<Range<usize>> {
        let start = self.data_offset.checked_add(t.offset)?;
        let end = start.checked_add(t.size)?;
        Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }

    /// The value of a key, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.kv_index.get(key).map(|&i| self.kvs[i].1)
    }

    fn require(&self, key: &str) -> Result<Value<'a>, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// `general.architecture`, if present and a string.
    pub fn architecture(&self) -> Option<&'a str> {
        match self.get("general.architecture") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

fn wrong(key: &str, expected: &'static str, found: Value<'_>) -> GgufError {
    GgufError::WrongType {
        key: String::from(key),
        expected,
        found: found.value_type().name(),
    }
}

macro_rules! typed_get {
    ($name:ident, $t:ty, $variant:ident, $tname:expr) => {
        #[doc = concat!("The value of `key` as ", $tname, "; an error when missing or of another type.")]
        pub fn $name(&self, key: &str) -> Result<$t, GgufError> {
            match self.require(key)? {
                Value::$variant(v) => Ok(v),
                other => Err(wrong(key, $tname, other)),
            }
        }
    };
}

impl<'a> Gguf<'a> {
    typed_get!(get_u8, u8, U8, "u8");
    typed_get!(get_i8, i8, I8, "i8");
    typed_get!(get_u16, u16, U16, "u16");
    typed_get!(get_i16, i16, I16, "i16");
    typed_get!(get_u32, u32, U32, "u32");
    typed_get!(get_i32, i32, I32, "i32");
    typed_get!(get_f32, f32, F32, "f32");
    typed_get!(get_bool, bool, Bool, "bool");
    typed_get!(get_str, &'a str, String, "string");
    typed_get!(get_array, Array<'a>, Array, "array");
    typed_get!(get_u64, u64, U64, "u64");
    typed_get!(get_i64, i64, I64, "i64");
    typed_get!(get_f64, f64, F64, "f64");

    /// A non-negative integer stored as any integer type, as `usize`.
    /// Hyper-parameters are written as u32 by most tools, u64 or i32 by some.
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| wrong(key, "a non-negative integer that fits usize", v))
    }

    /// A float stored as f32 or f64, as `f32`.
    pub fn get_float(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| wrong(key, "a float", v))
    }

    /// A string array.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&'a str>, GgufError> {
        let a = self.get_array(key)?;
        a.iter_str()
            .map(|it| it.collect())
            .ok_or_else(|| array_wrong(key, "an array of strings", a))
    }

    /// An `f32` array.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        let a = self.get_array(key)?;
        a.iter_f32()
            .map(|it| it.collect())
            .ok_or_else(|| array_wrong(key, "an array of f32", a))
    }

    /// An `i32` array.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        let a = self.get_array(key)?;
        a.iter_i32()
            .map(|it| it.collect())
            .ok_or_else(|| array_wrong(key, "an array of i32", a))
    }

    /// A `u32` array.
    pub fn get_u32_array(&self, key: &str) -> Result<Vec<u32>, GgufError> {
        let a = self.get_array(key)?;
        a.iter_u32()
            .map(|it| it.collect())
            .ok_or_else(|| array_wrong(key, "an array of u32", a))
    }
}

fn array_wrong(key: &str, expected: &'static str, a: Array<'_>) -> GgufError {
    let found = match a.elem_type() {
        ValueType::U8 => "an array of u8",
        ValueType::I8 => "an array of i8",
        ValueType::U16 => "an array of u16",
        ValueType::I16 => "an array of i16",
        ValueType::U32 => "an array of u32",
        ValueType::I32 => "an array of i32",
        ValueType::F32 => "an array of f32",
        ValueType::Bool => "an array of bool",
        ValueType::String => "an array of strings",
        ValueType::Array => "an array of arrays",
        ValueType::U64 => "an array of u64",
        ValueType::I64 => "an array of i64",
        ValueType::F64 => "an array of f64",
    };
    GgufError::WrongType {
        key: String::from(key),
        expected,
        found,
    }
}
