//! Build -> JSON -> parse -> verify round trips and hostile-input tests.
//! The golden files and the tampering suite live in `bitnet-std`.

use alloc::string::{String as StdString, ToString};
use alloc::vec::Vec as StdVec;

use super::*;

const CEILING: f64 = 200e9;

fn policy() -> Policy {
    Policy {
        require_gpu_kernels: false,
        bandwidth_ceiling_bytes_per_sec: CEILING,
        allowlisted_tokens_per_sec: None,
    }
}

fn fingerprint() -> Fingerprint {
    Fingerprint {
        gpu_cc: None,
        gpu_name: None,
        cpu_id: "test cpu".try_into().unwrap(),
        os: "linux test (x86_64)".try_into().unwrap(),
        rustc: "rustc test".try_into().unwrap(),
        bitnet_version: "0.0.0".try_into().unwrap(),
    }
}

/// Counters as a 2-layer model run would record them: one prefill pass over
/// 3 tokens, then one single-token pass per further generated token.
fn counters(generated: usize) -> KernelCounters {
    let mut c = KernelCounters::new();
    for pass in 0..generated {
        for layer in 0..2 {
            // One kernel call for the whole layer: a test of the builder,
            // not of how a forward pass splits its projections.
            c.record_projection(layer, Projections::ALL, "i2s_gemv_scalar", 1000);
        }
        c.record("f16_gemv_scalar", 500);
        c.end_pass(if pass == 0 { 3 } else { 1 }, 2);
    }
    c
}

fn build(generated: &[u32], c: &KernelCounters) -> Receipt {
    let run = RunInfo {
        backend: Backend::Cpu,
        backend_summary: "cpu: portable scalar kernels, 1 thread",
        deterministic: true,
        seed: 42,
        threads: 1,
        model: ModelInfo {
            name: "unit.gguf",
            arch: "bitnet",
            sha256: [0xab; 32],
            quant_types: &["I2_S", "F16"],
            parameters: 1234,
            layers: 2,
        },
        prompt_tokens: 3,
        requested_tokens: 4,
        generated_ids: generated,
        load_ms: 1.5,
        prefill_ms: 2.0,
        decode_ms: 40.0,
    };
    Receipt::build(&run, c, "2026-01-01T00:00:00Z", fingerprint()).unwrap()
}

#[test]
fn built_receipt_round_trips_and_verifies() {
    let r = build(&[1, 2, 3, 4], &counters(4));
    assert_eq!(r.compute_path, "real");
    assert_eq!(r.timings.tokens_per_sec, 100.0);
    assert_eq!(r.weight_bytes_per_token, 2500);
    let json = to_json(&r).unwrap();
    let back = parse(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(verify(&back, &policy()), Ok(()));
}

#[test]
fn a_run_with_too_few_passes_is_written_as_partial() {
    let r = build(&[1, 2, 3, 4], &counters(3));
    assert_eq!(r.compute_path, "partial");
    assert!(matches!(
        verify(&r, &policy()),
        Err(Rejection::ComputePathNotReal { found: "partial" })
    ));
}

/// Issue 7: "real" only if quantized kernels ran for every layer of every
/// generated token. Enough quantized calls (two per pass, as many as the
/// layers) but all on layer 0 in the last pass: written as partial.
#[test]
fn a_pass_that_skips_a_layer_is_written_as_partial() {
    let mut c = counters(3);
    c.record_projection(0, Projections::ALL, "i2s_gemv_scalar", 1000);
    c.record_projection(0, Projections::ALL, "i2s_gemv_scalar", 1000);
    c.record("f16_gemv_scalar", 500);
    c.end_pass(1, 2);
    let r = build(&[1, 2, 3, 4], &c);
    assert_eq!(r.compute_path, "partial");
    assert!(matches!(
        verify(&r, &policy()),
        Err(Rejection::ComputePathNotReal { found: "partial" })
    ));
}

#[test]
fn legacy_receipt_without_fingerprint_parses_and_verifies() {
    let mut r = build(&[1, 2, 3, 4], &counters(4));
    r.schema_version = "1.0.0".try_into().unwrap();
    r.fingerprint = None;
    let json = StdString::from_utf8(to_json(&r).unwrap()).unwrap();
    // A 1.0 writer never wrote the key at all.
    let json = json.replace(",\"fingerprint\":null", "");
    assert!(!json.contains("fingerprint"));
    let back = parse(json.as_bytes()).unwrap();
    assert_eq!(verify(&back, &policy()), Ok(()));
    r.schema_version = "1.1.0".try_into().unwrap();
    assert_eq!(verify(&r, &policy()), Err(Rejection::MissingFingerprint));
}

#[test]
fn numbers_that_overflow_to_infinity_are_parse_errors() {
    // Found by the receipt_verify fuzz target: `1e9998` parsed to an
    // infinity that did not survive the round trip through to_json.
    let r = build(&[1, 2, 3, 4], &counters(4));
    let json = StdString::from_utf8(to_json(&r).unwrap()).unwrap();
    for (from, to, field) in [
        ("\"load_ms\":1.5", "\"load_ms\":1.5e9998", "timings.load_ms"),
        (
            "\"decode_ms\":40.0",
            "\"decode_ms\":-4e999",
            "timings.decode_ms",
        ),
        (
            "\"tokens_per_sec\":100.0",
            "\"tokens_per_sec\":1E400",
            "timings.tokens_per_sec",
        ),
    ] {
        assert!(json.contains(from), "{json}");
        let e = parse(json.replace(from, to).as_bytes()).unwrap_err();
        assert_eq!(e, ParseError::NonFinite { field });
        assert!(e.to_string().contains(field));
    }
}

#[test]
fn escaped_strings_are_unescaped() {
    let r = build(&[7], &counters(1));
    let json = StdString::from_utf8(to_json(&r).unwrap()).unwrap();
    let json = json.replace("unit.gguf", "unit\\u0041\\n.gguf");
    assert_eq!(parse(json.as_bytes()).unwrap().model.name, "unitA\n.gguf");
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_a_receipt_never_a_panic() {
    let json = to_json(&build(&[1, 2, 3, 4], &counters(4))).unwrap();
    for n in 0..json.len() {
        assert!(parse(&json[..n]).is_err(), "prefix of {n} bytes parsed");
    }
    for i in 0..json.len() {
        for b in [b'"', b'{', b'[', b'\\', b'9', b'-', 0xff] {
            let mut j = json.clone();
            j[i] = b;
            let _ = parse(&j);
        }
    }
}

#[test]
fn hostile_shapes_are_errors() {
    let deep: StdVec<u8> = core::iter::repeat_n(b'[', 1000).collect();
    assert!(matches!(parse(&deep), Err(ParseError::TooDeep { .. })));
    let big = alloc::vec![b' '; MAX_RECEIPT_BYTES + 1];
    assert!(matches!(parse(&big), Err(ParseError::TooLarge { .. })));
    for bad in [
        &b""[..],
        b"null",
        b"{}",
        b"{\"schema_version\":\"1.1.0\"}",
        b"{\"schema_version\":1}",
        b"\"\\u",
    ] {
        assert!(parse(bad).is_err(), "{:?}", core::str::from_utf8(bad));
    }
}

#[test]
fn unknown_fields_and_over_capacity_values_are_errors() {
    let json = StdString::from_utf8(to_json(&build(&[1], &counters(1))).unwrap()).unwrap();
    let extra = json.replacen('{', "{\"extra\":1,", 1);
    assert!(parse(extra.as_bytes()).is_err());
    let long = "x".repeat(MODEL_NAME_CAP + 1);
    let over = json.replace("unit.gguf", &long);
    assert!(parse(over.as_bytes()).is_err());
    let neg = json.replace("\"seed\":42", "\"seed\":-42");
    assert!(parse(neg.as_bytes()).is_err());
    let huge = json.replace("\"seed\":42", "\"seed\":99999999999999999999999");
    assert!(parse(huge.as_bytes()).is_err());
}
