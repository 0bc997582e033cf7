#!/usr/bin/env python3
"""Encode throughput of tiktoken (Llama-3 ranks and pattern) and
sentencepiece (llama2-tokenizer.model) on tinyshakespeare.txt: the
reference figures next to `cargo bench -p bitnet-std --bench tokenizer`.
Single-threaded (tiktoken's encode_ordinary on one string)."""
import sys
import time
from pathlib import Path

import sentencepiece
import tiktoken
from tiktoken.load import load_tiktoken_bpe

DATA = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared" / "data")
PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def best_of(fn, n=10):
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


text = (DATA / "tinyshakespeare.txt").read_text()
mb = len(text.encode()) / 1e6
enc = tiktoken.Encoding("llama3", pat_str=PATTERN, mergeable_ranks=load_tiktoken_bpe(str(DATA / "llama3-tokenizer.model")),
                        special_tokens={})
t, ids = best_of(lambda: enc.encode_ordinary(text))
print(f"tiktoken llama3: {len(ids)} ids, {t*1e3:.1f} ms, {mb/t:.1f} MB/s")
sp = sentencepiece.SentencePieceProcessor(model_file=str(DATA / "llama2-tokenizer.model"))
t, ids = best_of(lambda: sp.encode(text))
print(f"sentencepiece llama2: {len(ids)} ids, {t*1e3:.1f} ms, {mb/t:.1f} MB/s")
