#!/usr/bin/env python3
"""Loss curves from train.py's log.csv files -> PNG.

    python3 xtask/train/plot_loss.py --final RUN2/a/log.csv --explore RUN1/a/log.csv --out docs/img/train-loss.png
"""
from __future__ import annotations

import argparse
import csv

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: str) -> dict:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ("step", "train_loss", "val_loss")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--final", required=True)
    ap.add_argument("--explore")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    panels = [("final run (shipped: best val step)", read(args.final))]
    if args.explore:
        panels.append(("exploration run: long schedule overfits", read(args.explore)))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, d) in zip(axes[0], panels):
        ax.plot(d["step"], d["train_loss"], label="train (no dropout, fixed subset)")
        ax.plot(d["step"], d["val_loss"], label="held-out (last 10%)")
        i = min(range(len(d["val_loss"])), key=d["val_loss"].__getitem__)
        ax.axvline(d["step"][i], color="gray", ls=":", lw=1)
        ax.annotate(f"best val {d['val_loss'][i]:.3f} @ {int(d['step'][i])}", (d["step"][i], d["val_loss"][i]),
                    textcoords="offset points", xytext=(8, 12), fontsize=8)
        ax.set_xlabel("step (64 x 256 tokens)")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_ylim(0, 7.5)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("BitNet b1.58 (6 x 512, 19.4M params) on tinyshakespeare, BPE vocab 1024", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
