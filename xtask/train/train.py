#!/usr/bin/env python3
"""Trains a small BitNet b1.58 model on tinyshakespeare tokens (from prepare.py).

    python3 xtask/train/train.py --data xtask/train/data --out OUTDIR [--n-embd 512 ...]

Prints a summary line at the end. Writes OUTDIR/log.csv (step, seconds, lr, train loss, val loss) and OUTDIR/best.pt:
the quantized state (ternary weights packed 2 bits + per-tensor f32 absmean scale,
f32 norms, f32 embedding) of the step with the lowest held-out loss, plus config.
Every training window starts with BOS: [BOS] + text[i : i+ctx-1], targets text[i : i+ctx]
(the engine prepends BOS to every prompt).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import BitNet, Config, quantized_state  # noqa: E402


def windows(ids: torch.Tensor, ctx: int, bos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping eval windows: inputs [BOS] + ids[i:i+ctx-1], targets ids[i:i+ctx]."""
    n = (len(ids) - 0) // ctx
    y = ids[: n * ctx].view(n, ctx)
    x = torch.cat([torch.full((n, 1), bos, dtype=ids.dtype, device=ids.device), y[:, :-1]], dim=1)
    return x, y


@torch.no_grad()
def eval_loss(model, x: torch.Tensor, y: torch.Tensor, bs: int) -> float:
    model.eval()
    tot, cnt = 0.0, 0
    for i in range(0, len(x), bs):
        logits = model(x[i:i + bs])
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + bs].reshape(-1), reduction="sum").item()
        cnt += y[i:i + bs].numel()
    model.train()
    return tot / cnt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-embd", type=int, default=512)
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--n-head-kv", type=int, default=4)
    ap.add_argument("--n-ff", type=int, default=1536)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4000,
                    help="total optimizer steps (cosine schedule length); 0 = auto: time steps 10..60 and "
                         "fit the rest into --budget-seconds (the chosen number is printed and logged)")
    ap.add_argument("--budget-seconds", type=float, default=440.0, help="wall-clock budget for --steps 0")
    ap.add_argument("--max-seconds", type=float, default=1e9, help="hard stop (keeps the best checkpoint)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dev = torch.device(args.device)
    with open(os.path.join(args.data, "tokenizer.json")) as f:
        tok = json.load(f)
    bos = tok["bos_token_id"]
    train_ids = torch.from_numpy(np.load(os.path.join(args.data, "train.npy")).astype(np.int64)).to(dev)
    val_ids = torch.from_numpy(np.load(os.path.join(args.data, "val.npy")).astype(np.int64)).to(dev)

    c = Config(vocab=len(tok["tokens"]), n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
               n_head_kv=args.n_head_kv, n_ff=args.n_ff, ctx=args.ctx, rope_base=args.rope_base,
               dropout=args.dropout)
    model = BitNet(c).to(dev)
    counts = model.n_params()
    print(f"config {c.to_dict()} params {counts}", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=dev.type == "cuda")
    fwd = torch.compile(model) if args.compile else model

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        total = args.steps if args.steps > 0 else 10**9   # auto: fixed at step 60, inside the warmup
        t = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
        return args.lr * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    vx, vy = windows(val_ids, c.ctx, bos)
    g = torch.Generator(device=dev)
    g.manual_seed(args.seed)
    # fixed train subset for a dropout-free train loss, same size as the val set
    tsel = torch.randint(0, len(train_ids) - c.ctx, (len(vx),), generator=g, device=dev)
    ty = torch.stack([train_ids[i:i + c.ctx] for i in tsel.tolist()])
    tx = torch.cat([torch.full((len(ty), 1), bos, device=dev, dtype=torch.int64), ty[:, :-1]], dim=1)

    log_path = os.path.join(args.out, "log.csv")
    logf = open(log_path, "w", newline="")
    wr = csv.writer(logf)
    wr.writerow(["step", "seconds", "lr", "train_loss_batch", "train_loss", "val_loss", "tokens_seen"])
    best = (float("inf"), -1)
    offs = torch.arange(c.ctx, device=dev)
    t0 = time.time()
    run_loss = None
    step = 0
    bos_col = torch.full((args.batch, 1), bos, device=dev, dtype=torch.int64)
    t10 = None
    while True:
        if args.steps == 0 and step == 10:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t10 = time.time()
        if args.steps == 0 and step == 60:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            rate = (time.time() - t10) / 50
            remaining = args.budget_seconds - (time.time() - t0)
            args.steps = 60 + max(0, int(remaining * 0.95 / rate))
            assert args.steps > args.warmup, "budget too small for the warmup"
            print(f"auto steps: {rate * 1000:.1f} ms/step -> --steps {args.steps}", flush=True)
        last = (args.steps > 0 and step >= args.steps) or (time.time() - t0) > args.max_seconds
        if step % args.eval_every == 0 or last:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            vl = eval_loss(model, vx, vy, 64)
            tl = eval_loss(model, tx, ty, 64)
            el = time.time() - t0
            wr.writerow([step, f"{el:.1f}", f"{lr_at(step):.6g}", "" if run_loss is None else f"{run_loss:.4f}",
                         f"{tl:.4f}", f"{vl:.4f}", step * args.batch * c.ctx])
            logf.flush()
            print(f"step {step:6d} t {el:7.1f}s lr {lr_at(step):.2e} train {tl:.4f} val {vl:.4f}"
                  f" (batch {run_loss if run_loss is None else round(run_loss, 4)})", flush=True)
            if vl < best[0]:
                best = (vl, step)
                st = quantized_state(model)
                st.update(step=step, val_loss=vl, train_loss=tl, args=vars(args), params=counts,
                          tokenizer=tok, seconds=el)
                torch.save(st, os.path.join(args.out, "best.pt"))
        if last:
            break
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step)
        starts = torch.randint(0, len(train_ids) - c.ctx, (args.batch,), generator=g, device=dev)
        y = train_ids[starts[:, None] + offs[None, :]]
        x = torch.cat([bos_col, y[:, :-1]], dim=1)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = fwd(x)
        loss = F.cross_entropy(logits.float().reshape(-1, c.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            lv = loss.item()
            run_loss = lv if run_loss is None else 0.9 * run_loss + 0.1 * lv
    logf.close()
    summary = {"best_val_loss": best[0], "best_step": best[1], "steps": step, "seconds": time.time() - t0,
               "params": counts, "config": c.to_dict(), "args": vars(args)}
    print("summary", json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
