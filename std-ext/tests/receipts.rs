//! Receipts end to end: the golden files of both schema versions, the
//! writer on this host, and the tampering suite (each plausible edit of a
//! real receipt rejected by its own rule, exit code and message).

use std::path::{Path, PathBuf};

use bitnet_core::receipt::{
    Backend, KernelCounters, KernelRecord, ModelInfo, ParseError, Projections, Receipt, Rejection,
    RunInfo, verify,
};
use bitnet_std::receipt::policy::CPU_CEILING_BYTES_PER_SEC as CPU_CEILING;
use bitnet_std::receipt::{
    Allowlist, GpuInfo, ReceiptBuilder, host_fingerprint, policy_for, read_receipt, write_receipt,
};

const REGENERATE: &str = "cargo run --release -p xtask -- gen-golden-receipts";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden(name: &str) -> Receipt {
    let path = root().join("tests/golden/receipts").join(name);
    read_receipt(&path).unwrap_or_else(|e| {
        panic!("{e}\nthe golden receipt is stale or missing; regenerate with: {REGENERATE}")
    })
}

fn allowlist() -> Allowlist {
    Allowlist::load(&root().join("ci/known_fast_gpus.yml")).unwrap()
}

/// Writes `r` with the production writer, reads it back with core's parser
/// and verifies it as `cargo xtask verify-receipt` does.
fn check(r: &Receipt, require_gpu: bool) -> Result<(), (u8, String)> {
    let dir = std::env::temp_dir().join(format!("bitnet-receipts-{}", std::process::id()));
    let path = dir.join(format!("{:p}.json", r));
    write_receipt(&path, r).unwrap();
    let back = read_receipt(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&back, r, "writer / parser round trip");
    let list = allowlist();
    let policy = policy_for(&back, Some(&list), require_gpu);
    verify(&back, &policy).map_err(|rej| (rej.exit_code(), rej.to_string()))
}

#[test]
fn golden_receipts_of_both_schemas_verify() {
    let new = golden("receipt-1.1.0.json");
    assert_eq!(new.schema_version, "1.1.0");
    let fp = new
        .fingerprint
        .as_ref()
        .expect("1.1.0 golden has a fingerprint");
    assert!(!fp.cpu_id.is_empty() && fp.rustc.starts_with("rustc "));
    assert_eq!(check(&new, false), Ok(()));

    let old = golden("receipt-1.0.json");
    assert_eq!(old.schema_version, "1.0");
    assert!(old.fingerprint.is_none());
    assert_eq!(check(&old, false), Ok(()));
    let text =
        std::fs::read_to_string(root().join("tests/golden/receipts/receipt-1.0.json")).unwrap();
    assert!(
        !text.contains("fingerprint"),
        "1.0 receipts have no fingerprint key"
    );

    // "1.0.0" is the other legacy spelling.
    let mut old = old;
    old.schema_version = "1.0.0".try_into().unwrap();
    assert_eq!(check(&old, false), Ok(()));
}

#[test]
fn fingerprint_comes_from_this_host() {
    let fp = host_fingerprint(None);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(name) = bitnet_std::receipt::cpu_id_from_cpuinfo(&cpuinfo) {
        assert!(name.starts_with(fp.cpu_id.as_str()));
    }
    assert!(fp.os.starts_with(std::env::consts::OS));
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        assert!(fp.os.contains(release.trim()));
    }
    assert!(fp.rustc.starts_with("rustc "), "{}", fp.rustc);
    assert_eq!(fp.bitnet_version, env!("CARGO_PKG_VERSION"));
    assert_eq!((fp.gpu_cc, fp.gpu_name), (None, None));
    let gpu = GpuInfo {
        cc: "9.0".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
    };
    let fp = host_fingerprint(Some(&gpu));
    assert_eq!(fp.gpu_cc.as_deref(), Some("9.0"));
}

#[test]
fn builder_writes_what_the_counters_recorded() {
    let mut c = KernelCounters::new();
    for pass in 0..5 {
        for layer in 0..3 {
            c.record_projection(layer, Projections::ALL, "tq2_0_gemv_scalar", 4096);
        }
        c.end_pass(if pass == 0 { 6 } else { 1 }, 3);
    }
    let ids = [5, 9, 2, 2];
    let run = RunInfo {
        backend: Backend::Cpu,
        backend_summary: "cpu: test",
        deterministic: true,
        seed: 1,
        threads: 1,
        model: ModelInfo {
            name: "t.gguf",
            arch: "bitnet",
            sha256: bitnet_std::receipt::sha256(b"abc"),
            quant_types: &["TQ2_0"],
            parameters: 3 * 4096 * 4,
            layers: 3,
        },
        prompt_tokens: 6,
        requested_tokens: 4,
        generated_ids: &ids,
        load_ms: 1.0,
        prefill_ms: 1.0,
        decode_ms: 8.0,
    };
    let r = ReceiptBuilder::new(run).build(&c).unwrap();
    assert_eq!(r.compute_path, "real");
    assert_eq!(r.kernels.len(), 1);
    assert_eq!((r.kernels[0].calls, r.kernels[0].bytes), (15, 15 * 4096));
    assert_eq!(r.weight_bytes_per_token, 3 * 4096);
    assert_eq!(r.timings.tokens_per_sec, 500.0);
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        r.model.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(check(&r, false), Ok(()));
}

/// Applies `edit` to the 1.1.0 golden and expects rejection `code` with a
/// message containing `needle`.
fn tampered(edit: impl FnOnce(&mut Receipt), require_gpu: bool, code: u8, needle: &str) {
    let mut r = golden("receipt-1.1.0.json");
    edit(&mut r);
    match check(&r, require_gpu) {
        Err((c, msg)) => {
            assert_eq!(c, code, "wrong rule: {msg}");
            assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
        }
        Ok(()) => panic!("tampered receipt verified (expected exit {code}, {needle:?})"),
    }
}

/// Sets tokens/s and the decode time that produces it.
fn set_rate(r: &mut Receipt, tokens_per_sec: f64) {
    r.timings.tokens_per_sec = tokens_per_sec;
    r.timings.decode_ms = f64::from(r.tokens.generated) / tokens_per_sec * 1000.0;
}

fn code_of(rej: Rejection<'_>) -> u8 {
    rej.exit_code()
}

#[test]
fn tamper_compute_path() {
    for path in ["mock", "partial", "Real", ""] {
        let msg = format!("compute_path is {path:?}, not \"real\"");
        tampered(
            |r| r.compute_path = path.try_into().unwrap(),
            false,
            code_of(Rejection::ComputePathNotReal { found: "" }),
            &msg,
        );
    }
}

#[test]
fn tamper_kernels_emptied() {
    tampered(|r| r.kernels.clear(), false, 15, "no kernels recorded");
}

#[test]
fn tamper_mock_stub_fake_kernels() {
    for (id, marker) in [
        ("i2s_gemv_mock", "mock"),
        ("stub_gemv", "stub"),
        ("i2s_FakeKernel", "fake"),
    ] {
        tampered(
            |r| r.kernels[0].id = id.try_into().unwrap(),
            false,
            17,
            &format!("kernel id {id:?} names a {marker} kernel"),
        );
        // Added next to the real kernels, too.
        tampered(
            |r| {
                let k = KernelRecord {
                    id: id.try_into().unwrap(),
                    calls: 1,
                    bytes: 0,
                };
                r.kernels.push(k).unwrap();
            },
            false,
            17,
            marker,
        );
    }
}

#[test]
fn tamper_malformed_kernel_ids() {
    let cases = [
        ("", "malformed kernel id: empty"),
        ("i2s gemv", "character ' '"),
        ("I2S_GEMV", "character 'I'"),
        ("i2s-gemv", "character '-'"),
        ("_i2s_gemv", "character '_'"),
    ];
    for (id, needle) in cases {
        tampered(
            |r| r.kernels[0].id = id.try_into().unwrap(),
            false,
            16,
            needle,
        );
    }
    let long = format!("i2s_{}", "x".repeat(70));
    tampered(
        |r| r.kernels[0].id = long.as_str().try_into().unwrap(),
        false,
        16,
        "74 bytes",
    );
}

#[test]
fn tamper_token_counts_off_by_one() {
    tampered(
        |r| r.tokens.generated += 1,
        false,
        21,
        "generated 17 tokens but 16 were requested",
    );
    tampered(
        |r| r.tokens.requested -= 1,
        false,
        21,
        "generated 16 tokens but 15 were requested",
    );
}

#[test]
fn tamper_throughput_times_1000() {
    let r = golden("receipt-1.1.0.json");
    let implied = r.weight_bytes_per_token as f64 * r.timings.tokens_per_sec * 1000.0;
    assert!(
        implied > CPU_CEILING,
        "golden rate too low for this case ({implied} B/s); regenerate with: {REGENERATE}"
    );
    // tokens/s alone, or with the decode time that matches it.
    tampered(
        |r| r.timings.tokens_per_sec *= 1000.0,
        false,
        27,
        "throughput above the hardware ceiling",
    );
    tampered(
        |r| {
            let tps = r.timings.tokens_per_sec * 1000.0;
            set_rate(r, tps);
        },
        false,
        27,
        "throughput above the hardware ceiling",
    );
    // A smaller inflation stays under the ceiling but disagrees with the
    // decode time.
    tampered(
        |r| r.timings.tokens_per_sec *= 1.5,
        false,
        28,
        "disagrees with generated / decode time",
    );
}

/// Issue 7: the CPU ceiling depends on the run's threads. The golden at an
/// honest one-thread rate (5 GB/s of weights) verifies; x100 tokens/s with
/// the decode time to match (500 GB/s) stays under the socket's DRAM ceiling
/// but not under one core's, and is rejected by the throughput rule. The
/// same numbers from 64 threads stay under the ceiling.
#[test]
fn tamper_throughput_times_100_on_one_thread() {
    let honest = |r: &mut Receipt| {
        assert_eq!(r.threads, 1);
        let tps = 5e9 / r.weight_bytes_per_token as f64;
        set_rate(r, tps);
    };
    let mut r = golden("receipt-1.1.0.json");
    honest(&mut r);
    assert_eq!(check(&r, false), Ok(()));
    let inflated = r.timings.tokens_per_sec * 100.0;
    let implied = r.weight_bytes_per_token as f64 * inflated;
    assert!(
        implied < CPU_CEILING,
        "the socket ceiling alone would catch this"
    );
    tampered(
        |r| {
            honest(r);
            let tps = r.timings.tokens_per_sec * 100.0;
            set_rate(r, tps);
        },
        false,
        27,
        "throughput above the hardware ceiling",
    );
    set_rate(&mut r, inflated);
    r.threads = 64;
    assert_eq!(check(&r, false), Ok(()));
}

#[test]
fn tamper_decode_time() {
    tampered(
        |r| r.timings.decode_ms = 0.0,
        false,
        23,
        "decode time 0 ms is not positive",
    );
    tampered(
        |r| r.timings.decode_ms = -5.0,
        false,
        23,
        "decode time -5 ms",
    );
    tampered(
        |r| r.timings.prefill_ms = -1.0,
        false,
        24,
        "prefill_ms -1 ms is negative",
    );
}

#[test]
fn tamper_backend_flipped_to_cuda() {
    tampered(
        |r| r.backend = "cuda".try_into().unwrap(),
        false,
        20,
        "cuda receipt has no GPU kernel (backend cuda)",
    );
    tampered(
        |r| r.backend = "tpu".try_into().unwrap(),
        false,
        13,
        "unknown backend \"tpu\"",
    );
}

#[test]
fn require_gpu_kernels_rejects_a_cpu_receipt() {
    tampered(
        |_| {},
        true,
        20,
        "cpu receipt has no GPU kernel (--require-gpu-kernels)",
    );
}

#[test]
fn tamper_quantized_evidence() {
    tampered(
        |r| r.kernels.retain(|k| !k.id.starts_with("i2s_")),
        false,
        19,
        "cpu receipt has no quantized kernel",
    );
    // A few i2s calls kept, the per-layer evidence gone.
    tampered(
        |r| {
            for k in r.kernels.iter_mut().filter(|k| k.id.starts_with("i2s_")) {
                k.calls = 1;
            }
        },
        false,
        25,
        "fewer than layers x generated tokens = 96",
    );
    tampered(|r| r.kernels[0].calls = 0, false, 18, "listed with 0 calls");
}

#[test]
fn tamper_bytes_per_token_to_dodge_the_ceiling() {
    tampered(
        |r| r.weight_bytes_per_token /= 1000,
        false,
        26,
        "implausible",
    );
    tampered(|r| r.weight_bytes_per_token = 0, false, 26, "implausible");
}

#[test]
fn tamper_schema_and_fingerprint() {
    tampered(
        |r| r.schema_version = "2.0".try_into().unwrap(),
        false,
        11,
        "unknown schema_version \"2.0\"",
    );
    tampered(|r| r.fingerprint = None, false, 12, "has no fingerprint");
    tampered(
        |r| r.model.sha256 = "00".try_into().unwrap(),
        false,
        22,
        "model.sha256",
    );
}

/// A cuda receipt: the golden's numbers with GPU kernel ids and an H100
/// fingerprint (as a CUDA backend would record them).
fn as_cuda(r: &mut Receipt, gpu_cc: &str) {
    r.backend = "cuda".try_into().unwrap();
    for k in r.kernels.iter_mut() {
        let id = format!("{}_cuda", k.id);
        k.id = id.as_str().try_into().unwrap();
    }
    let fp = r.fingerprint.as_mut().unwrap();
    fp.gpu_cc = Some(gpu_cc.try_into().unwrap());
    fp.gpu_name = Some("NVIDIA H100 80GB HBM3".try_into().unwrap());
}

#[test]
fn allowlist_covers_fast_gpus_up_to_their_rate() {
    let mut r = golden("receipt-1.1.0.json");
    as_cuda(&mut r, "9.0");
    assert_eq!(check(&r, true), Ok(()));
    // Weights of a 2B-parameter I2_S model (~500 MB/token): every byte count
    // scaled alike, so the bytes rules still hold.
    for k in r.kernels.iter_mut() {
        k.bytes *= 30;
    }
    r.weight_bytes_per_token *= 30;
    assert_eq!(check(&r, true), Ok(()));
    // 15000 tokens/s x ~500 MB/token is above the 4.8 TB/s of cc 9.0, but
    // the allowlist vouches for 20000 tokens/s on cc 9.0.
    set_rate(&mut r, 15000.0);
    assert_eq!(check(&r, true), Ok(()));
    let no_list = policy_for(&r, None, true);
    assert_eq!(verify(&r, &no_list).map_err(|e| e.exit_code()), Err(27));
    // Above the vouched rate, or on a GPU the list does not name: rejected.
    set_rate(&mut r, 25000.0);
    assert_eq!(check(&r, true).map_err(|e| e.0), Err(27));
    as_cuda(&mut r, "8.0");
    set_rate(&mut r, 15000.0);
    assert_eq!(check(&r, true).map_err(|e| e.0), Err(27));
}

#[test]
fn hostile_receipt_files_are_parse_errors() {
    let dir = std::env::temp_dir().join(format!("bitnet-receipts-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.json");
    for bytes in [
        &b"{"[..],
        b"[[[[[[[[[[[[",
        b"\xff\xfe",
        b"{\"schema_version\":\"1.1.0\"}",
    ] {
        std::fs::write(&path, bytes).unwrap();
        let e = read_receipt(&path).unwrap_err();
        assert!(
            matches!(e, bitnet_std::receipt::ReceiptError::Parse { .. }),
            "{e}"
        );
    }
    assert_eq!(ParseError::EXIT_CODE, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}
