//! GGUF metadata values, borrowed from the file bytes.

use alloc::string::String;
use alloc::vec::Vec;

use super::error::GgufError;

/// The 13 metadata value types of GGUF (ids 0..=12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// Maps a type id read from the file.
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The id written to the file.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Byte size of one scalar of this type; `None` for strings and arrays.
    pub fn scalar_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// A name for error messages and `inspect`.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// A metadata value. Strings and arrays borrow from the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A non-negative integer of any integer type, as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float of either float type, as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// Converts to an owned value (for the writer and round-trip tests).
    pub fn to_owned_value(self) -> Result<OwnedValue, GgufError> {
        Ok(match self {
            Value::U8(v) => OwnedValue::U8(v),
            Value::I8(v) => OwnedValue::I8(v),
            Value::U16(v) => OwnedValue::U16(v),
            Value::I16(v) => OwnedValue::I16(v),
            Value::U32(v) => OwnedValue::U32(v),
            Value::I32(v) => OwnedValue::I32(v),
            Value::F32(v) => OwnedValue::F32(v),
            Value::Bool(v) => OwnedValue::Bool(v),
            Value::String(s) => OwnedValue::String(String::from(s)),
            Value::U64(v) => OwnedValue::U64(v),
            Value::I64(v) => OwnedValue::I64(v),
            Value::F64(v) => OwnedValue::F64(v),
            Value::Array(a) => OwnedValue::Array(a.to_owned_array()?),
        })
    }
}

/// An array value: element type, count, and the raw bytes of its elements
/// (already validated by the reader).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Array<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: usize,
    pub(crate) data: &'a [u8],
}

macro_rules! scalar_iter {
    ($name:ident, $t:ty, $vt:ident, $n:expr) => {
        /// The elements, or `None` when the array holds another type.
        pub fn $name(&self) -> Option<impl ExactSizeIterator<Item = $t> + 'a> {
            if self.elem != ValueType::$vt {
                return None;
            }
            Some(self.data.chunks_exact($n).map(|c| {
                let mut b = [0u8; $n];
                b.copy_from_slice(c);
                <$t>::from_le_bytes(b)
            }))
        }
    };
}

impl<'a> Array<'a> {
    /// Element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    scalar_iter!(iter_u8, u8, U8, 1);
    scalar_iter!(iter_i8, i8, I8, 1);
    scalar_iter!(iter_u16, u16, U16, 2);
    scalar_iter!(iter_i16, i16, I16, 2);
    scalar_iter!(iter_u32, u32, U32, 4);
    scalar_iter!(iter_i32, i32, I32, 4);
    scalar_iter!(iter_f32, f32, F32, 4);
    scalar_iter!(iter_u64, u64, U64, 8);
    scalar_iter!(iter_i64, i64, I64, 8);
    scalar_iter!(iter_f64, f64, F64, 8);

    /// Bools, or `None` when the array holds another type.
    pub fn iter_bool(&self) -> Option<impl ExactSizeIterator<Item = bool> + 'a> {
        if self.elem != ValueType::Bool {
            return None;
        }
        Some(self.data.iter().map(|&b| b != 0))
    }

    /// Strings, or `None` when the array holds another type. The reader has
    /// checked lengths and UTF-8 already, so iteration cannot fail.
    pub fn iter_str(&self) -> Option<StrIter<'a>> {
        if self.elem != ValueType::String {
            return None;
        }
        Some(StrIter {
            rest: self.data,
            left: self.len,
        })
    }

    fn to_owned_array(self) -> Result<OwnedArray, GgufError> {
        use ValueType as T;
        let wrong = || GgufError::Unencodable {
            what: String::from("array element type"),
        };
        Ok(match self.elem {
            T::U8 => OwnedArray::U8(self.iter_u8().ok_or_else(wrong)?.collect()),
            T::I8 => OwnedArray::I8(self.iter_i8().ok_or_else(wrong)?.collect()),
            T::U16 => OwnedArray::U16(self.iter_u16().ok_or_else(wrong)?.collect()),
            T::I16 => OwnedArray::I16(self.iter_i16().ok_or_else(wrong)?.collect()),
            T::U32 => OwnedArray::U32(self.iter_u32().ok_or_else(wrong)?.collect()),
            T::I32 => OwnedArray::I32(self.iter_i32().ok_or_else(wrong)?.collect()),
            T::F32 => OwnedArray::F32(self.iter_f32().ok_or_else(wrong)?.collect()),
            T::Bool => OwnedArray::Bool(self.iter_bool().ok_or_else(wrong)?.collect()),
            T::U64 => OwnedArray::U64(self.iter_u64().ok_or_else(wrong)?.collect()),
            T::I64 => OwnedArray::I64(self.iter_i64().ok_or_else(wrong)?.collect()),
            T::F64 => OwnedArray::F64(self.iter_f64().ok_or_else(wrong)?.collect()),
            T::String => OwnedArray::String(
                self.iter_str()
                    .ok_or_else(wrong)?
                    .map(String::from)
                    .collect(),
            ),
            T::Array => return Err(wrong()),
        })
    }
}

/// Iterator over the strings of a validated string array.
#[derive(Debug, Clone)]
pub struct StrIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for StrIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.left == 0 {
            return None;
        }
        // The reader validated every length and every string's UTF-8, so
        // these conversions succeed; a failure ends the iteration.
        let (len_bytes, rest) = self.rest.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len_bytes)).ok()?;
        let (s, rest) = rest.split_at_checked(len)?;
        let s = core::str::from_utf8(s).ok()?;
        self.rest = rest;
        self.left -= 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for StrIter<'_> {}

/// An owned metadata value, for the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(OwnedArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An owned homogeneous array, for the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}
