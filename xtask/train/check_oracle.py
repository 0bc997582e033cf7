#!/usr/bin/env python3
"""Checks the exported GGUF against the numpy oracle: eval.py's PyTorch forward (read from the
same GGUF) must give the oracle's greedy tokens and nearly the same prompt logits.

    python3 ci/reference/bitnet_oracle.py --model tests/models/shakespeare-i2s.gguf \
        --tokens 1023,813,58 --n-gen 40 --out /tmp/o.json
    python3 xtask/train/check_oracle.py --gguf tests/models/shakespeare-i2s.gguf --oracle /tmp/o.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import eval as ev  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--oracle", required=True)
    args = ap.parse_args()
    o = json.load(open(args.oracle))
    c, T, tokd = ev.load(argparse.Namespace(ckpt=None, gguf=args.gguf))
    m = ev.Exact(c, T, torch.device("cpu"))
    g = ev.greedy(m, o["tokens"], len(o["greedy"]))
    lg = m.logits(torch.tensor([o["tokens"]]))[0].numpy()
    ol = np.asarray(o["logits"], dtype=np.float32)
    diff = float(np.max(np.abs(lg - ol)))
    tok = bpe.Tokenizer(tokd)
    same = g == o["greedy"]
    print(json.dumps({"greedy_equal": same, "n_gen": len(g), "prompt_logits_max_abs_diff": diff,
                      "min_oracle_margin": float(min(o["greedy_margin"])),
                      "text": tok.decode(o["tokens"] + o["greedy"])}, indent=1))
    return 0 if same and diff < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
