//! A GGUF v3 writer: metadata plus tensors into one byte buffer. Used by
//! tests, fixture generators and the model exporter.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::error::GgufError;
use super::reader::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAX_ALIGNMENT};
use super::types::GgmlType;
use super::value::{OwnedArray, OwnedValue, ValueType};

/// A tensor to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Type (its byte size must match `data`).
    pub ggml_type: GgmlType,
    /// Dimensions, ne0 first.
    pub dims: Vec<u64>,
    /// Raw bytes in the type's layout.
    pub data: Vec<u8>,
}

/// Builds a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    kvs: Vec<(String, OwnedValue)>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty version-3 file.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Sets the version written (2 or 3; they share the layout).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds (or replaces) a metadata entry; file order is insertion order.
    pub fn kv(&mut self, key: &str, value: OwnedValue) -> &mut Self {
        if let Some(slot) = self.kvs.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.kvs.push((key.to_string(), value));
        }
        self
    }

    /// Adds a tensor.
    pub fn tensor(&mut self, spec: TensorSpec) -> &mut Self {
        self.tensors.push(spec);
        self
    }

    fn alignment(&self) -> Result<u64, GgufError> {
        match self.kvs.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some((_, OwnedValue::U32(a)))
                if *a != 0 && a.is_power_of_two() && u64::from(*a) <= MAX_ALIGNMENT =>
            {
                Ok(u64::from(*a))
            }
            Some(_) => Err(GgufError::Unencodable {
                what: "general.alignment must be a power-of-two u32".to_string(),
            }),
        }
    }

    /// Serializes the file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        let alignment = self.alignment()?;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut out, k);
            put_value(&mut out, v);
        }
        let mut offset: u64 = 0;
        for t in &self.tensors {
            let size = t
                .ggml_type
                .tensor_bytes(&t.dims)
                .map_err(|_| GgufError::Unencodable {
                    what: alloc::format!("tensor '{}' has a shape its type cannot hold", t.name),
                })?;
            if size != t.data.len() as u64 {
                return Err(GgufError::Unencodable {
                    what: alloc::format!(
                        "tensor '{}': {} bytes of data, its type and shape need {size}",
                        t.name,
                        t.data.len()
                    ),
                });
            }
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + size).div_ceil(alignment) * alignment;
        }
        pad_to(&mut out, alignment);
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            pad_to(&mut out, alignment);
        }
        Ok(out)
    }
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let len = out.len() as u64;
    let target = len.div_ceil(alignment) * alignment;
    out.resize(target as usize, 0);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &OwnedValue) -> ValueType {
    match v {
        OwnedValue::U8(_) => ValueType::U8,
        OwnedValue::I8(_) => ValueType::I8,
        OwnedValue::U16(_) => ValueType::U16,
        OwnedValue::I16(_) => ValueType::I16,
        OwnedValue::U32(_) => ValueType::U32,
        OwnedValue::I32(_) => ValueType::I32,
        OwnedValue::F32(_) => ValueType::F32,
        OwnedValue::Bool(_) => ValueType::Bool,
        OwnedValue::String(_) => ValueType::String,
        OwnedValue::Array(_) => ValueType::Array,
        OwnedValue::U64(_) => ValueType::U64,
        OwnedValue::I64(_) => ValueType::I64,
        OwnedValue::F64(_) => ValueType::F64,
    }
}

fn put_value(out: &mut Vec<u8>, v: &OwnedValue) {
    out.extend_from_slice(&value_type(v).id().to_le_bytes());
    match v {
        OwnedValue::U8(x) => out.push(*x),
        OwnedValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::Bool(x) => out.push(u8::from(*x)),
        OwnedValue::String(s) => put_str(out, s),
        OwnedValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        OwnedValue::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &OwnedArray) {
    macro_rules! scalars {
        ($ty:ident, $xs:expr) => {{
            out.extend_from_slice(&ValueType::$ty.id().to_le_bytes());
            out.extend_from_slice(&($xs.len() as u64).to_le_bytes());
            for x in $xs {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }};
    }
    match a {
        OwnedArray::U8(xs) => scalars!(U8, xs),
        OwnedArray::I8(xs) => scalars!(I8, xs),
        OwnedArray::U16(xs) => scalars!(U16, xs),
        OwnedArray::I16(xs) => scalars!(I16, xs),
        OwnedArray::U32(xs) => scalars!(U32, xs),
        OwnedArray::I32(xs) => scalars!(I32, xs),
        OwnedArray::F32(xs) => scalars!(F32, xs),
        OwnedArray::U64(xs) => scalars!(U64, xs),
        OwnedArray::I64(xs) => scalars!(I64, xs),
        OwnedArray::F64(xs) => scalars!(F64, xs),
        OwnedArray::Bool(xs) => {
            out.extend_from_slice(&ValueType::Bool.id().to_le_bytes());
            out.extend_from_slice(&(xs.len() as u64).to_le_bytes());
            out.extend(xs.iter().map(|&b| u8::from(b)));
        }
        OwnedArray::String(xs) => {
            out.extend_from_slice(&ValueType::String.id().to_le_bytes());
            out.extend_from_slice(&(xs.len() as u64).to_le_bytes());
            for s in xs {
                put_str(out, s);
            }
        }
    }
}
