//! Structured: arbitrary metadata and tensors -> writer -> reader -> equal.
#![no_main]

use arbitrary::Arbitrary;
use bitnet_core::gguf::{GgmlType, Gguf, GgufWriter, OwnedArray, OwnedValue, TensorSpec};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum V {
    U8(u8),
    I16(i16),
    U32(u32),
    I64(i64),
    F32(u32),
    Bool(bool),
    Str(String),
    ArrU32(Vec<u32>),
    ArrStr(Vec<String>),
    ArrBool(Vec<bool>),
}

#[derive(Arbitrary, Debug)]
struct T {
    kind: u8,
    rows: u8,
    cols: u8,
    fill: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    v2: bool,
    align_pow: u8,
    kvs: Vec<(String, V)>,
    tensors: Vec<T>,
}

fn owned(v: V) -> OwnedValue {
    match v {
        V::U8(x) => OwnedValue::U8(x),
        V::I16(x) => OwnedValue::I16(x),
        V::U32(x) => OwnedValue::U32(x),
        V::I64(x) => OwnedValue::I64(x),
        // Bit patterns, compared bitwise below via to_bits (NaN-safe).
        V::F32(x) => OwnedValue::F32(f32::from_bits(x & 0x7f7f_ffff)),
        V::Bool(x) => OwnedValue::Bool(x),
        V::Str(s) => OwnedValue::String(s),
        V::ArrU32(x) => OwnedValue::Array(OwnedArray::U32(x)),
        V::ArrStr(x) => OwnedValue::Array(OwnedArray::String(x)),
        V::ArrBool(x) => OwnedValue::Array(OwnedArray::Bool(x)),
    }
}

fuzz_target!(|input: Input| {
    let mut w = GgufWriter::new().version(if input.v2 { 2 } else { 3 });
    let alignment = 1u32 << (input.align_pow % 8);
    w.kv("general.alignment", OwnedValue::U32(alignment));
    let mut expected = vec![("general.alignment".to_string(), OwnedValue::U32(alignment))];
    for (k, v) in input.kvs.into_iter().take(32) {
        if k == "general.alignment" || expected.iter().any(|(e, _)| *e == k) {
            continue;
        }
        let v = owned(v);
        w.kv(&k, v.clone());
        expected.push((k, v));
    }
    let mut specs = Vec::new();
    for (i, t) in input.tensors.into_iter().take(8).enumerate() {
        let (ty, ne0) = match t.kind % 3 {
            0 => (GgmlType::F32, u64::from(t.cols % 9) + 1),
            1 => (GgmlType::TQ2_0, 256),
            _ => (GgmlType::Q8_0, 32),
        };
        let dims = vec![ne0, u64::from(t.rows % 5) + 1];
        let n = ty.tensor_bytes(&dims).unwrap() as usize;
        let spec = TensorSpec { name: format!("t{i}"), ggml_type: ty, dims, data: vec![t.fill; n] };
        w.tensor(spec.clone());
        specs.push(spec);
    }
    let bytes = w.to_bytes().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.metadata().len(), expected.len());
    for (k, v) in &expected {
        assert_eq!(&g.get(k).unwrap().to_owned_value().unwrap(), v);
    }
    for s in &specs {
        let t = g.tensor(&s.name).unwrap();
        assert_eq!((t.ggml_type, &t.dims), (s.ggml_type, &s.dims));
        assert_eq!(g.tensor_data(t), &s.data[..]);
    }
});
