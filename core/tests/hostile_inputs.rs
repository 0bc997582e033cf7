//! Hostile files against the loader, natively and on wasm32 (`cargo xtask
//! cross-test wasm32` runs this binary under Node's WASI, where `usize` is
//! 32 bits): the malformed suite fails with clear errors, loading allocates
//! at most a small multiple of the file size, and the fuzz regression
//! corpus (tests/fuzz-regressions/) replays through the fuzz targets'
//! own checks.

mod common;

#[path = "common/hostile.rs"]
mod hostile;
#[path = "common/replay.rs"]
mod replay;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; the counters are only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Tests measuring the peak take turns (the counters are global).
static MEASURE: Mutex<()> = Mutex::new(());

/// Bytes a load may allocate per file byte. The parsed container and the
/// model view borrow the file; what is owned is the tokenizer (each token
/// string, its hash-map entry and its decoded bytes) and small tables.
/// Measured: 4.8x for the GPT-2 vocabulary, 5.9x for the Llama SPM one,
/// 7.8x for a file that is nothing but one-character tokens (the worst
/// case, `vocabulary_only_file_stays_under_the_cap`), 0.07x for
/// stories260K; 16x leaves room for allocator growth policy.
const ALLOC_PER_FILE_BYTE: usize = 16;
/// Plus a constant for the fixed-size tables (the tokenizer's 256 byte
/// tokens, pre-tokenizer state, error strings).
const ALLOC_SLACK: usize = 1 << 20;

/// Peak heap growth while `f` runs, and its result.
fn peak_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (PEAK.load(Ordering::Relaxed) - base, r)
}

fn check_alloc(name: &str, data: &[u8]) -> Result<(), String> {
    let (peak, r) = peak_during(|| replay::load(data));
    let cap = ALLOC_PER_FILE_BYTE * data.len() + ALLOC_SLACK;
    assert!(
        peak <= cap,
        "{name}: loading {} bytes allocated {peak} bytes (cap {cap})",
        data.len()
    );
    r
}

#[test]
fn tiny_models_load_and_run() {
    for (i, (name, ..)) in hostile::TINY.iter().enumerate() {
        let bytes = hostile::tiny_model(i);
        replay::load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let logits = replay::model_load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            logits.iter().all(|&b| f32::from_bits(b).is_finite()),
            "{name}"
        );
    }
}

#[test]
fn malformed_suite_fails_cleanly_within_the_allocation_cap() {
    let _turn = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let (mut n, mut loaded) = (0, Vec::new());
    for (i, (model, ..)) in hostile::TINY.iter().enumerate() {
        for (case, bytes) in hostile::malformed(&hostile::tiny_model(i)) {
            // Loading stays under the cap and fails with a one-line error.
            match check_alloc(&format!("{model}: {case}"), &bytes) {
                Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "{model}: {case}: {e:?}"),
                Ok(()) => loaded.push(format!("{model}: {case}")),
            }
            // The whole pipeline, forward step included, must not panic.
            let _ = replay::model_load(&bytes);
            n += 1;
        }
    }
    assert!(
        loaded.is_empty(),
        "malformed files that loaded: {loaded:#?}"
    );
    assert!(n >= 250, "only {n} cases");
}

#[test]
fn real_files_load_within_the_allocation_cap() {
    let _turn = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    for name in [
        "stories260K.gguf",
        "ggml-vocab-gpt-2.gguf",
        "ggml-vocab-llama-spm.gguf",
    ] {
        let bytes = common::shared_data(name);
        let (peak, _) = peak_during(|| {
            let g = bitnet_core::gguf::Gguf::parse(&bytes).unwrap();
            bitnet_core::tokenizer::Tokenizer::from_gguf(&g).unwrap()
        });
        let cap = ALLOC_PER_FILE_BYTE * bytes.len() + ALLOC_SLACK;
        assert!(peak <= cap, "{name}: {peak} > {cap}");
    }
    for name in [
        "bitnet-b1.58-i2s.gguf",
        "bitnet-tq1_0.gguf",
        "shakespeare-tq2_0.gguf",
    ] {
        let bytes = common::fixture(name);
        check_alloc(name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let bad = common::shared_data("corrupt-mangled-llama-spm.gguf");
    let e = check_alloc("corrupt-mangled-llama-spm.gguf", &bad).unwrap_err();
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn vocabulary_only_file_stays_under_the_cap() {
    use bitnet_core::gguf::GgufWriter;
    use bitnet_core::tokenizer::{Vocab, VocabKind};
    let _turn = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    for kind in [VocabKind::Spm, VocabKind::Bpe] {
        let mut v = Vocab::new(kind);
        // Distinct one-character tokens: the most tokens per file byte.
        v.tokens = (0x100..0x100 + 50_000u32)
            .filter_map(char::from_u32)
            .map(String::from)
            .collect();
        let mut w = GgufWriter::new();
        v.write_gguf(&mut w);
        let bytes = w.to_bytes().unwrap();
        let (peak, tok) = peak_during(|| {
            let g = bitnet_core::gguf::Gguf::parse(&bytes).unwrap();
            bitnet_core::tokenizer::Tokenizer::from_gguf(&g).map(|_| ())
        });
        tok.unwrap();
        let cap = ALLOC_PER_FILE_BYTE * bytes.len() + ALLOC_SLACK;
        assert!(peak <= cap, "{kind:?}: {peak} > {cap}");
    }
}

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = common::root().join("tests/fuzz-regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect()
}

#[test]
fn fuzz_regressions_replay_cleanly() {
    for (_, data) in regressions("gguf_parse") {
        replay::gguf_parse(&data);
    }
    for (path, data) in regressions("model_load") {
        let _ = replay::model_load(&data);
        // A regression input loads within the cap like any other file.
        let _turn = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
        let _ = check_alloc(&path.display().to_string(), &data);
    }
    for (_, data) in regressions("receipt_verify") {
        for ceiling in [0.0, 1e12, f64::INFINITY] {
            replay::receipt_verify(&data, ceiling);
        }
    }
}

/// The tiny models are the checked-in seeds of the `model_load` fuzz
/// target; they must match the generator above.
#[test]
fn fuzz_seeds_are_current() {
    let dir = common::root().join("tests/fuzz-seeds/model_load");
    let regen = std::env::var_os("BITNET_REGEN_FUZZ_SEEDS").is_some();
    for (i, (name, ..)) in hostile::TINY.iter().enumerate() {
        let want = hostile::tiny_model(i);
        let path = dir.join(name);
        if regen {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: BITNET_REGEN_FUZZ_SEEDS=1 cargo test -p bitnet-core --test hostile_inputs fuzz_seeds",
            path.display()
        );
    }
}
