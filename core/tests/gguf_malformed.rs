//! Hostile GGUF files built byte by byte: each must be rejected with the
//! specific error, and valid edge cases must parse.

use bitnet_core::gguf::{Gguf, GgufError, KeyContext, MAX_ALIGNMENT, MAX_STRING_LEN, Value};

/// Writes arbitrary GGUF bytes, valid or not.
#[derive(Default, Clone)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A key with a u32 value.
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(8).str(v)
    }
    /// A tensor info.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to `align` then appends `n` data bytes.
    fn data(&mut self, align: usize, n: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self.0.extend(std::iter::repeat_n(0xAB, n));
        self
    }
    fn build(&self) -> Vec<u8> {
        self.0.clone()
    }
}

fn err(bytes: &[u8]) -> GgufError {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("hostile file parsed"),
        Err(e) => {
            // Every error renders to a message naming the problem.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

/// One f32 tensor `t` of 4 elements, valid.
fn one_tensor_file() -> Raw {
    let mut r = Raw::header(3, 1, 1);
    r.kv_str("general.architecture", "llama");
    r.tensor("t", &[4], 0, 0).data(32, 16);
    r
}

// --- Truncation at every structural boundary -------------------------------

#[test]
fn truncation_at_every_byte_is_an_error() {
    let full = one_tensor_file().build();
    assert!(Gguf::parse(&full).is_ok());
    // Every strict prefix fails cleanly (never a panic).
    for cut in 0..full.len() {
        let e = err(&full[..cut]);
        assert!(
            matches!(
                e,
                GgufError::Truncated { .. }
                    | GgufError::CountExceedsData { .. }
                    | GgufError::TensorOutOfBounds { .. }
            ),
            "cut {cut}: {e:?}"
        );
    }
}

#[test]
fn truncated_magic() {
    assert!(matches!(
        err(b"GG"),
        GgufError::Truncated { what: "magic", .. }
    ));
}

#[test]
fn truncated_version() {
    assert!(matches!(
        err(b"GGUF\x03\x00"),
        GgufError::Truncated {
            what: "version",
            ..
        }
    ));
}

#[test]
fn truncated_counts() {
    let mut r = Raw::default();
    r.bytes(b"GGUF").u32(3).u64(0);
    assert!(matches!(
        err(&r.build()),
        GgufError::Truncated {
            what: "metadata count",
            ..
        }
    ));
}

#[test]
fn truncated_in_key() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(100).bytes(b"general.architecture");
    assert!(matches!(
        err(&r.build()),
        GgufError::Truncated {
            what: "metadata key",
            needed: 100,
            ..
        }
    ));
}

#[test]
fn truncated_in_value() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(10).u32(1);
    let e = err(&r.build());
    assert!(
        matches!(
            &e,
            GgufError::Truncated {
                what: "metadata value",
                context: KeyContext::ValueOf(key),
                ..
            } if key == "a"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("metadata key 'a'"), "{e}");
}

#[test]
fn truncated_in_tensor_info() {
    let mut r = Raw::header(3, 1, 0);
    r.str("t").u32(1).u64(4).u32(0);
    assert!(matches!(
        err(&r.build()),
        GgufError::Truncated {
            what: "tensor offset",
            ..
        }
    ));
}

#[test]
fn truncated_tensor_data() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[4], 0, 0).data(32, 15);
    assert!(matches!(
        err(&r.build()),
        GgufError::TensorOutOfBounds { .. }
    ));
}

// --- Magic and version -------------------------------------------------------

#[test]
fn bad_magic() {
    let mut b = Raw::header(3, 0, 0).build();
    b[0] = b'X';
    assert!(matches!(err(&b), GgufError::BadMagic { found } if &found == b"XGUF"));
}

#[test]
fn version_0_1_4_rejected() {
    for v in [0, 1, 4] {
        assert_eq!(
            err(&Raw::header(v, 0, 0).build()),
            GgufError::UnsupportedVersion { version: v }
        );
    }
}

#[test]
fn byte_swapped_version_rejected_with_hint() {
    let e = err(&Raw::header(3u32.swap_bytes(), 0, 0).build());
    assert_eq!(
        e,
        GgufError::UnsupportedVersion {
            version: 3u32.swap_bytes()
        }
    );
    assert!(e.to_string().contains("big-endian"));
}

// --- Counts -------------------------------------------------------------------

#[test]
fn kv_count_2_pow_63() {
    assert!(matches!(
        err(&Raw::header(3, 0, 1 << 63).build()),
        GgufError::TooMany {
            what: "metadata count",
            context: KeyContext::None,
            ..
        }
    ));
}

#[test]
fn kv_count_u64_max() {
    assert!(matches!(
        err(&Raw::header(3, 0, u64::MAX).build()),
        GgufError::TooMany { .. }
    ));
}

#[test]
fn kv_count_beyond_remaining_bytes() {
    let e = err(&Raw::header(3, 0, 1000).build());
    assert!(
        matches!(e, GgufError::CountExceedsData { count: 1000, .. }),
        "{e:?}"
    );
}

#[test]
fn tensor_count_2_pow_63() {
    assert!(matches!(
        err(&Raw::header(3, 1 << 63, 0).build()),
        GgufError::TooMany {
            what: "tensor count",
            ..
        }
    ));
}

#[test]
fn tensor_count_u64_max() {
    assert!(matches!(
        err(&Raw::header(3, u64::MAX, 0).build()),
        GgufError::TooMany { .. }
    ));
}

#[test]
fn tensor_count_beyond_remaining_bytes() {
    let e = err(&Raw::header(3, 50, 0).build());
    assert!(
        matches!(
            e,
            GgufError::CountExceedsData {
                what: "tensor count",
                ..
            }
        ),
        "{e:?}"
    );
}

// --- Strings --------------------------------------------------------------------

#[test]
fn key_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(100).bytes(b"abcdefghijklmnopqrstuvwxyz");
    assert!(matches!(
        err(&r.build()),
        GgufError::Truncated { needed: 100, .. }
    ));
}

#[test]
fn key_length_huge() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX).bytes(b"abcdefghijklmnop");
    assert_eq!(
        err(&r.build()),
        GgufError::StringTooLong {
            what: "metadata key",
            offset: 24,
            len: u64::MAX,
            max: MAX_STRING_LEN,
            context: KeyContext::None,
        }
    );
}

#[test]
fn key_length_7e10_after_a_damaged_value() {
    // The shape of the damage in corrupt-mangled-llama-spm.gguf: a value
    // grew by two bytes, and the next key's length is read from the wrong
    // place. The error names the entry before it.
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("ok", 1).u64(70_000_000_000).bytes(b"xyz");
    let e = err(&r.build());
    assert!(
        matches!(
            &e,
            GgufError::StringTooLong {
                what: "metadata key",
                len: 70_000_000_000,
                context: KeyContext::KeyAfter(key),
                ..
            } if key == "ok"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("after 'ok'"), "{e}");
}

#[test]
fn string_value_length_7e10() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(8).u64(70_000_000_000).bytes(b"xyz");
    let e = err(&r.build());
    assert!(
        matches!(
            &e,
            GgufError::StringTooLong {
                what: "metadata string",
                context: KeyContext::ValueOf(key),
                ..
            } if key == "k"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("metadata key 'k'"), "{e}");
}

#[test]
fn invalid_utf8_key() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(0);
    assert!(matches!(
        err(&r.build()),
        GgufError::InvalidUtf8 {
            what: "metadata key",
            ..
        }
    ));
}

#[test]
fn invalid_utf8_string_value() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(8).u64(1).u8(0x80);
    assert!(matches!(
        err(&r.build()),
        GgufError::InvalidUtf8 {
            what: "metadata string",
            context: KeyContext::ValueOf(key),
            ..
        } if key == "k"
    ));
}

// --- Values ----------------------------------------------------------------------

#[test]
fn unknown_value_type() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(13).u32(0);
    assert_eq!(
        err(&r.build()),
        GgufError::UnknownValueType {
            key: "k".into(),
            type_id: 13
        }
    );
}

#[test]
fn bool_byte_2() {
    let mut r = Raw::header(3, 0, 1);
    r.str("flag").u32(7).u8(2);
    assert!(matches!(
        err(&r.build()),
        GgufError::InvalidBool { value: 2, .. }
    ));
}

#[test]
fn bool_array_with_byte_2() {
    let mut r = Raw::header(3, 0, 1);
    r.str("flags").u32(9).u32(7).u64(3).bytes(&[0, 1, 2]);
    assert!(matches!(
        err(&r.build()),
        GgufError::InvalidBool { value: 2, .. }
    ));
}

#[test]
fn nested_array() {
    let mut r = Raw::header(3, 0, 1);
    r.str("nest").u32(9).u32(9).u64(1).u32(4).u64(1).u32(5);
    assert_eq!(
        err(&r.build()),
        GgufError::NestedArray { key: "nest".into() }
    );
}

#[test]
fn array_unknown_element_type() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(9).u32(77).u64(1);
    assert!(matches!(
        err(&r.build()),
        GgufError::UnknownValueType { type_id: 77, .. }
    ));
}

#[test]
fn array_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(9).u32(4).u64(10).u32(1);
    assert_eq!(
        err(&r.build()),
        GgufError::CountExceedsData {
            what: "array length",
            count: 10,
            remaining: 4,
            context: KeyContext::ValueOf("a".into()),
        }
    );
}

#[test]
fn array_length_huge() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(9).u32(6).u64(u64::MAX);
    let e = err(&r.build());
    assert_eq!(
        e,
        GgufError::TooMany {
            what: "array length",
            count: u64::MAX,
            max: bitnet_core::gguf::MAX_ARRAY_LEN,
            context: KeyContext::ValueOf("a".into()),
        }
    );
    assert!(e.to_string().contains("metadata key 'a'"), "{e}");
}

#[test]
fn string_array_length_past_eof() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(9).u32(8).u64(1 << 20).str("x");
    assert!(matches!(
        err(&r.build()),
        GgufError::CountExceedsData {
            context: KeyContext::ValueOf(key),
            ..
        } if key == "a"
    ));
}

#[test]
fn string_array_element_too_long() {
    let mut r = Raw::header(3, 0, 1);
    r.str("a").u32(9).u32(8).u64(1).u64(1 << 40);
    assert!(matches!(
        err(&r.build()),
        GgufError::StringTooLong {
            what: "array string element",
            context: KeyContext::ValueOf(key),
            ..
        } if key == "a"
    ));
}

#[test]
fn duplicate_keys() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a.b", 1).kv_u32("a.b", 2);
    assert_eq!(
        err(&r.build()),
        GgufError::DuplicateKey { key: "a.b".into() }
    );
}

// --- Alignment -------------------------------------------------------------------

fn with_alignment(a: u32) -> Vec<u8> {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", a);
    r.build()
}

#[test]
fn alignment_0() {
    assert_eq!(
        err(&with_alignment(0)),
        GgufError::BadAlignment {
            value: 0,
            max: MAX_ALIGNMENT
        }
    );
}

#[test]
fn alignment_3() {
    assert_eq!(
        err(&with_alignment(3)),
        GgufError::BadAlignment {
            value: 3,
            max: MAX_ALIGNMENT
        }
    );
}

#[test]
fn alignment_2_pow_31() {
    assert!(matches!(
        err(&with_alignment(1 << 31)),
        GgufError::BadAlignment { .. }
    ));
}

#[test]
fn alignment_wrong_type() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_str("general.alignment", "32");
    assert!(matches!(
        err(&r.build()),
        GgufError::WrongType {
            expected: "u32",
            ..
        }
    ));
}

// --- Tensor infos ----------------------------------------------------------------

#[test]
fn n_dims_5() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1, 1, 1, 1, 1], 0, 0).data(32, 4);
    assert_eq!(
        err(&r.build()),
        GgufError::TooManyDims {
            tensor: "t".into(),
            n_dims: 5
        }
    );
}

#[test]
fn n_dims_huge() {
    let mut r = Raw::header(3, 1, 0);
    r.str("t").u32(u32::MAX).u64(1).u32(0).u64(0);
    assert!(matches!(
        err(&r.build()),
        GgufError::TooManyDims {
            n_dims: u32::MAX,
            ..
        }
    ));
}

#[test]
fn dimension_product_overflows_u64() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 32, 1 << 32, 2], 0, 0).data(32, 4);
    assert_eq!(
        err(&r.build()),
        GgufError::SizeOverflow { tensor: "t".into() }
    );
}

#[test]
fn byte_size_overflows_u64() {
    // 2^62 elements fit, 2^62 * 4 bytes do not.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 31, 1 << 31], 0, 0).data(32, 4);
    assert_eq!(
        err(&r.build()),
        GgufError::SizeOverflow { tensor: "t".into() }
    );
}

#[test]
fn huge_but_representable_size_is_out_of_bounds() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[1 << 30, 1 << 30], 0, 0).data(32, 4);
    assert!(matches!(
        err(&r.build()),
        GgufError::TensorOutOfBounds { .. }
    ));
}

#[test]
fn unknown_tensor_type() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 99, 0).data(32, 16);
    assert_eq!(
        err(&r.build()),
        GgufError::UnknownTensorType {
            tensor: "w".into(),
            type_id: 99
        }
    );
}

#[test]
fn removed_type_id_4_is_unknown() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[32], 4, 0).data(32, 64);
    assert!(matches!(
        err(&r.build()),
        GgufError::UnknownTensorType { type_id: 4, .. }
    ));
}

#[test]
fn empty_tensor_name() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("", &[4], 0, 0).data(32, 16);
    assert!(matches!(
        err(&r.build()),
        GgufError::BadTensorName { len: 0, .. }
    ));
}

fn i2s_file(arch: &str, dims: &[u64], data_len: usize) -> Vec<u8> {
    let mut r = Raw::header(3, 1, 1);
    r.kv_str("general.architecture", arch);
    r.tensor("blk.0.attn_q.weight", dims, 36, 0)
        .data(32, data_len);
    r.build()
}

#[test]
fn i2s_valid_in_bitnet_arch() {
    let b = i2s_file("bitnet-b1.58", &[256, 4], 256 * 4 / 4 + 32);
    let g = Gguf::parse(&b).unwrap();
    let t = g.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(t.size, 256 + 32);
    assert_eq!(g.tensor_data(t).len(), 288);
}

#[test]
fn i2s_byte_size_mismatch() {
    // Data section one byte short of M*K/4 + 32.
    let e = err(&i2s_file("bitnet-b1.58", &[256, 4], 256 + 31));
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { size: 288, .. }),
        "{e:?}"
    );
}

#[test]
fn i2s_k_not_multiple_of_128() {
    let e = err(&i2s_file("bitnet-b1.58", &[192, 4], 1024));
    assert_eq!(
        e,
        GgufError::BadShape {
            tensor: "blk.0.attn_q.weight".into(),
            type_name: "I2_S",
            ne0: 192,
            block: 128
        }
    );
}

#[test]
fn i2s_outside_bitnet_arch() {
    let e = err(&i2s_file("llama", &[256, 4], 288));
    assert!(matches!(
        e,
        GgufError::UnsupportedTensorType { type_id: 36, .. }
    ));
}

#[test]
fn tl2_in_bitnet_arch_is_refused() {
    let e = err(&i2s_file_type("bitnet", 39));
    assert!(
        matches!(e, GgufError::UnsupportedTensorType { type_id: 39, .. }),
        "{e:?}"
    );
}

#[test]
fn tl1_is_refused() {
    let e = err(&i2s_file_type("bitnet-b1.58", 38));
    assert!(matches!(
        e,
        GgufError::UnsupportedTensorType { type_id: 38, .. }
    ));
}

#[test]
fn id_39_outside_bitnet_is_mxfp4() {
    let b = i2s_file_type("llama", 39);
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.tensors()[0].ggml_type.name(), "MXFP4");
}

fn i2s_file_type(arch: &str, ty: u32) -> Vec<u8> {
    let mut r = Raw::header(3, 1, 1);
    r.kv_str("general.architecture", arch);
    r.tensor("w", &[256, 2], ty, 0).data(32, 4096);
    r.build()
}

#[test]
fn tq2_0_row_not_multiple_of_256() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[128, 2], 35, 0).data(32, 1024);
    assert!(matches!(
        err(&r.build()),
        GgufError::BadShape { block: 256, .. }
    ));
}

#[test]
fn offset_unaligned() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[4], 0, 4).data(32, 64);
    assert_eq!(
        err(&r.build()),
        GgufError::MisalignedTensor {
            tensor: "t".into(),
            offset: 4,
            alignment: 32
        }
    );
}

#[test]
fn offset_past_eof() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[4], 0, 1 << 20).data(32, 64);
    assert!(matches!(
        err(&r.build()),
        GgufError::TensorOutOfBounds {
            offset: 0x100000,
            ..
        }
    ));
}

#[test]
fn offset_plus_size_overflows() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[4], 0, u64::MAX - 31).data(32, 64);
    assert!(matches!(
        err(&r.build()),
        GgufError::TensorOutOfBounds { .. }
    ));
}

#[test]
fn overlapping_tensors() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[16], 0, 0)
        .tensor("b", &[16], 0, 32)
        .data(32, 128);
    assert_eq!(
        err(&r.build()),
        GgufError::TensorOverlap {
            first: "a".into(),
            second: "b".into()
        }
    );
}

#[test]
fn overlap_hidden_behind_an_empty_tensor() {
    // a[0..128], z (0 bytes at 32), c[64..80]: sorted by offset, z sits
    // between a and c; a and c still overlap.
    let mut r = Raw::header(3, 3, 0);
    r.tensor("a", &[32], 0, 0)
        .tensor("z", &[0], 0, 32)
        .tensor("c", &[4], 0, 64)
        .data(32, 128);
    assert_eq!(
        err(&r.build()),
        GgufError::TensorOverlap {
            first: "a".into(),
            second: "c".into()
        }
    );
}

#[test]
fn overlap_with_a_tensor_before_the_neighbour() {
    // a[0..128] holds both b[32..48] and c[64..80]; b and c do not overlap.
    let mut r = Raw::header(3, 3, 0);
    r.tensor("a", &[32], 0, 0)
        .tensor("b", &[4], 0, 32)
        .tensor("c", &[4], 0, 64)
        .data(32, 128);
    assert_eq!(
        err(&r.build()),
        GgufError::TensorOverlap {
            first: "a".into(),
            second: "b".into()
        }
    );
}

#[test]
fn empty_tensor_inside_another_is_allowed() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[32], 0, 0)
        .tensor("z", &[0], 0, 32)
        .data(32, 128);
    assert!(Gguf::parse(&r.build()).is_ok());
}

#[test]
fn duplicate_tensor_names() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[4], 0, 0)
        .tensor("a", &[4], 0, 32)
        .data(32, 64);
    assert_eq!(
        err(&r.build()),
        GgufError::DuplicateTensor { name: "a".into() }
    );
}

#[test]
fn typed_getter_wrong_type_and_missing() {
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("n", 5);
    let b = r.build();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.get_u32("n"), Ok(5));
    assert!(matches!(
        g.get_str("n"),
        Err(GgufError::WrongType {
            expected: "string",
            found: "u32",
            ..
        })
    ));
    assert_eq!(
        g.get_u32("m"),
        Err(GgufError::MissingKey { key: "m".into() })
    );
    assert!(matches!(
        g.get_f32_array("n"),
        Err(GgufError::WrongType { .. })
    ));
}

// --- Valid edge cases ------------------------------------------------------------

#[test]
fn zero_tensors_zero_keys() {
    let b = Raw::header(3, 0, 0).build();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.tensors().len(), 0);
    assert_eq!(g.metadata().len(), 0);
    assert_eq!(g.alignment(), 32);
}

#[test]
fn version_2_parses() {
    let mut r = one_tensor_file();
    r.0[4] = 2;
    assert_eq!(Gguf::parse(&r.build()).unwrap().version(), 2);
}

#[test]
fn alignment_1_and_64() {
    for a in [1u32, 64] {
        let mut r = Raw::header(3, 2, 1);
        r.kv_u32("general.alignment", a);
        let second = if a == 1 { 12 } else { 64 };
        r.tensor("x", &[3], 0, 0).tensor("y", &[2], 0, second);
        let mut b = r.build();
        while !b.len().is_multiple_of(a as usize) {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(1u8, 128));
        let g = Gguf::parse(&b).unwrap();
        assert_eq!(g.alignment(), u64::from(a));
        assert_eq!(g.tensor_data(g.tensor("y").unwrap()).len(), 8);
    }
}

#[test]
fn n_dims_0_scalar_and_empty_string_and_array() {
    let mut r = Raw::header(3, 1, 2);
    r.kv_str("empty", "");
    r.str("arr").u32(9).u32(8).u64(0);
    r.tensor("s", &[], 0, 0).data(32, 4);
    let b = r.build();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.get("empty"), Some(Value::String("")));
    assert!(g.get_array("arr").unwrap().is_empty());
    assert_eq!(g.tensor("s").unwrap().size, 4);
}

#[test]
fn zero_sized_tensor_is_allowed() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("z", &[0, 4], 0, 0)
        .tensor("t", &[4], 0, 0)
        .data(32, 16);
    let b = r.build();
    let g = Gguf::parse(&b).unwrap();
    assert_eq!(g.tensor("z").unwrap().size, 0);
}

#[test]
fn tensor_data_of_a_foreign_tensor_info_is_empty() {
    // A TensorInfo not from this file (its fields are public): the range
    // overflows u64 or lies past the end, and no slice is taken.
    let b = one_tensor_file().build();
    let g = Gguf::parse(&b).unwrap();
    let mut t = g.tensors()[0].clone();
    for (offset, size) in [(u64::MAX, 1), (0, u64::MAX), (1 << 20, 16)] {
        t.offset = offset;
        t.size = size;
        assert!(g.tensor_data(&t).is_empty(), "{offset} {size}");
    }
}
