//! Encode throughput on tinyshakespeare.txt (1.1 MB) for the Llama-3 BPE
//! vocabulary (built from llama3-tokenizer.model) and the LLaMA-2 SPM
//! vocabulary (ggml-vocab-llama-spm.gguf). Compare with
//! `python3 ci/reference/tokenizer_bench.py` (tiktoken / sentencepiece on
//! the same text); figures in docs/perf.md.

use std::path::PathBuf;

use bitnet_core::gguf::Gguf;
use bitnet_core::tokenizer::{EncodeOptions, Tokenizer, Vocab};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn shared_data(name: &str) -> PathBuf {
    std::env::var_os("BITNET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
        .join(name)
}

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(shared_data("tinyshakespeare.txt")).unwrap();
    let llama3 = Tokenizer::new(
        Vocab::llama3_from_tiktoken(
            &std::fs::read_to_string(shared_data("llama3-tokenizer.model")).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let spm_bytes = std::fs::read(shared_data("ggml-vocab-llama-spm.gguf")).unwrap();
    let spm = Tokenizer::from_gguf(&Gguf::parse(&spm_bytes).unwrap()).unwrap();
    let opts = EncodeOptions::default();
    let mut g = c.benchmark_group("encode_tinyshakespeare");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    g.bench_function("llama3_bpe", |b| {
        b.iter(|| llama3.encode(&text, opts).unwrap().len())
    });
    g.bench_function("llama2_spm", |b| {
        b.iter(|| spm.encode(&text, opts).unwrap().len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
