#!/usr/bin/env python3
"""Tiny byte-level BPE (GPT-2 conventions) for the shakespeare model.

Trainer and encoder in plain Python (no `tokenizers` dependency), so that the
result is exactly a GGUF `gpt2` tokenizer:
  * pre-tokenizer: the GPT-2 regex (GGUF `tokenizer.ggml.pre = "gpt2"`),
  * tokens 0..255: the 256 bytes in GPT-2 byte-to-unicode form, in byte order,
  * then one token per merge, in merge-rank order ("a b" strings),
  * then the special tokens <|endoftext|> (EOS) and <|bos|> (BOS).
Encoding applies merges by rank (lowest rank first), as GPT-2 / llama.cpp do.

    python3 xtask/train/bpe.py train --text CORPUS --n-train-chars N --vocab 1024 --out tok.json
"""
from __future__ import annotations

import argparse
import collections
import json
import sys

import regex

GPT2_PAT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|bos|>"]


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def train(text: str, vocab_size: int) -> dict:
    n_merges = vocab_size - 256 - len(SPECIALS)
    words = collections.Counter(GPT2_PAT.findall(text))
    # each word as a list of token ids (bytes first)
    seqs = [list(w.encode("utf-8")) for w in words]
    freqs = [words[w] for w in words]
    pair_counts: collections.Counter = collections.Counter()
    where: dict[tuple[int, int], set[int]] = collections.defaultdict(set)
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    token_bytes = [bytes([i]) for i in range(256)]
    merges: list[tuple[int, int]] = []
    for _ in range(n_merges):
        if not pair_counts:
            break
        # most frequent pair; ties broken by the smaller (lexicographic) byte strings, deterministic
        best = max(pair_counts.items(), key=lambda kv: (kv[1], [-x for x in token_bytes[kv[0][0]] + b"\xff" + token_bytes[kv[0][1]]]))[0]
        if pair_counts[best] < 2:
            break
        new_id = len(token_bytes)
        token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
        merges.append(best)
        for i in list(where[best]):
            s = seqs[i]
            f = freqs[i]
            for a, b in zip(s, s[1:]):
                pair_counts[(a, b)] -= f
                if pair_counts[(a, b)] <= 0:
                    del pair_counts[(a, b)]
            out = []
            j = 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == best[0] and s[j + 1] == best[1]:
                    out.append(new_id)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for a, b in zip(out, out[1:]):
                pair_counts[(a, b)] += f
                where[(a, b)].add(i)
        where.pop(best, None)
    tokens = ["".join(B2U[b] for b in tb) for tb in token_bytes] + SPECIALS
    merge_strs = [f"{tokens[a]} {tokens[b]}" for a, b in merges]
    return {"tokens": tokens, "merges": merge_strs,
            "eos_token_id": tokens.index("<|endoftext|>"), "bos_token_id": tokens.index("<|bos|>"),
            "pre": "gpt2", "model": "gpt2"}


class Tokenizer:
    def __init__(self, d: dict):
        self.tokens = d["tokens"]
        self.id_of = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(d["merges"])}
        self.bos = d["bos_token_id"]
        self.eos = d["eos_token_id"]
        self.n_special = len(SPECIALS)
        self.u2b = {u: b for b, u in B2U.items()}
        self.cache: dict[str, list[int]] = {}

    @classmethod
    def load(cls, path: str) -> "Tokenizer":
        with open(path) as f:
            return cls(json.load(f))

    def _bpe(self, word: str) -> list[int]:
        if word in self.cache:
            return self.cache[word]
        parts = [B2U[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            a, b = parts[best[1]], parts[best[1] + 1]
            out, j = [], 0
            while j < len(parts):   # merge every occurrence of this pair, left to right
                if j + 1 < len(parts) and parts[j] == a and parts[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(parts[j])
                    j += 1
            parts = out
        ids = [self.id_of[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text: str, bos: bool = False) -> list[int]:
        ids = [self.bos] if bos else []
        for w in GPT2_PAT.findall(text):
            ids.extend(self._bpe(w))
        return ids

    def decode(self, ids: list[int]) -> str:
        bs = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in SPECIALS:
                continue
            bs.extend(self.u2b[c] for c in t)
        return bs.decode("utf-8", errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--text", required=True)
    t.add_argument("--n-train-chars", type=int, required=True)
    t.add_argument("--vocab", type=int, default=1024)
    t.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()[: args.n_train_chars]
    d = train(text, args.vocab)
    with open(args.out, "w") as f:
        json.dump(d, f, ensure_ascii=False, indent=0)
    print(f"vocab {len(d['tokens'])}, merges {len(d['merges'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
