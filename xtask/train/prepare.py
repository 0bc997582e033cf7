#!/usr/bin/env python3
"""Splits tinyshakespeare (first 90% train, last 10% held out), trains the BPE on the
train split, and writes token arrays for training.

    python3 xtask/train/prepare.py --corpus ../shared/data/tinyshakespeare.txt --out xtask/train/data
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402


def split_text(text: str) -> tuple[str, str]:
    n = int(len(text) * 0.9)
    return text[:n], text[n:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=1024)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    train_text, val_text = split_text(text)
    d = bpe.train(train_text, args.vocab)
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(d, f, ensure_ascii=False, indent=0)
    tok = bpe.Tokenizer(d)
    for name, t in (("train", train_text), ("val", val_text)):
        ids = np.array(tok.encode(t), dtype=np.uint16)
        assert tok.decode(ids.tolist()) == t
        np.save(os.path.join(args.out, f"{name}.npy"), ids)
        print(f"{name}: {len(t)} chars -> {len(ids)} tokens ({len(t) / len(ids):.2f} chars/token)")
    print(f"vocab {len(d['tokens'])} ({len(d['merges'])} merges), bos {d['bos_token_id']}, eos {d['eos_token_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
