#!/usr/bin/env python3
"""Held-out perplexity and greedy samples of the QUANTIZED model, in PyTorch float32 with the
exact integer arithmetic of DESIGN.md sec. 5 (what the GGUF means, not the bf16 training path).

    python3 xtask/train/eval.py --gguf tests/models/shakespeare-i2s.gguf \
        --corpus ../shared/data/tinyshakespeare.txt --ctx 256 --out xtask/train/eval_result.json
    python3 xtask/train/eval.py --ckpt best.pt ...          (same numbers: the export is lossless
                                                             but for the F16 embedding, applied here)
Perplexity method (llama.cpp `llama-perplexity` convention): held-out text = the last 10% of
the corpus by characters (chars [int(0.9*len):]); tokens = [BOS] + encode(text); cut into
floor(len/ctx) non-overlapping chunks of ctx tokens; the first token of each chunk is replaced by
BOS; within a chunk only the second half is scored: logits at positions ctx/2 .. ctx-2 predict
tokens ctx/2+1 .. ctx-1 (ctx/2 - 1 predictions per chunk); ppl = exp(mean NLL).
Numerics follow ci/reference/bitnet_oracle.py: RMSNorm sum in f64, RoPE angles by repeated f32
multiplication, I2_S linear y = (sum q*w as f32 / s) * w_scale, LM-head input rounded to F16.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "ci", "reference"))
import bpe  # noqa: E402

F32 = np.float32


def load(args) -> tuple[dict, dict, dict]:
    """-> (config, tensors, tokenizer dict). Projections: (ternary int8 [N,K], f32 scale)."""
    if args.ckpt:
        from model import load_ckpt
        st = load_ckpt(args.ckpt)
        T = dict(st["tensors"])
        T["token_embd.weight"] = T["token_embd.weight"].astype(np.float16).astype(F32)
        return st["config"], T, st["tokenizer"]
    import bitnet_oracle as bo
    g = bo.GGUFModel(args.gguf)
    a = g.arch
    assert a == "bitnet-b1.58", a
    c = {"n_embd": int(g.key("embedding_length")), "n_layer": int(g.key("block_count")),
         "n_head": int(g.key("attention.head_count")), "n_head_kv": int(g.key("attention.head_count_kv")),
         "n_ff": int(g.key("feed_forward_length")), "ctx": int(g.key("context_length")),
         "eps": float(g.key("attention.layer_norm_rms_epsilon")), "rope_base": float(g.key("rope.freq_base"))}
    T = {}
    for name, t in g.tensors.items():
        if t.type_id == bo.I2_S_TYPE_ID:
            w, s = bo.decode_i2s(t.raw, t.n_elements)
            T[name] = (w.reshape(t.ne[1], t.ne[0]), F32(s))
        else:
            T[name] = bo.decode_float(t)
    m = g.meta
    tok = {"tokens": list(m["tokenizer.ggml.tokens"]), "merges": list(m["tokenizer.ggml.merges"]),
           "bos_token_id": int(m["tokenizer.ggml.bos_token_id"]), "eos_token_id": int(m["tokenizer.ggml.eos_token_id"]),
           "pre": m.get("tokenizer.ggml.pre")}
    c["vocab"] = len(tok["tokens"])
    return c, T, tok


class Exact:
    def __init__(self, c: dict, T: dict, dev: torch.device):
        self.c = c
        self.dev = dev
        E, H, HKV = c["n_embd"], c["n_head"], c["n_head_kv"]
        self.hd = E // H
        self.eps = F32(c["eps"])
        self.T = {}
        for k, v in T.items():
            if isinstance(v, tuple):
                self.T[k] = (torch.from_numpy(v[0].astype(F32)).to(dev), float(v[1]))
            else:
                self.T[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=F32)).to(dev)
        # RoPE tables as the oracle: theta_scale^i by repeated f32 multiplication
        n_rot = self.hd
        ts = np.power(F32(c["rope_base"]), F32(-2.0) / F32(n_rot), dtype=F32)
        cos = np.empty((c["ctx"], n_rot // 2), F32)
        sin = np.empty((c["ctx"], n_rot // 2), F32)
        for p in range(c["ctx"]):
            th = F32(p)
            for i in range(n_rot // 2):
                cos[p, i] = F32(np.cos(np.float64(th)))
                sin[p, i] = F32(np.sin(np.float64(th)))
                th = F32(th * ts)
        self.cos = torch.from_numpy(cos).to(dev)
        self.sin = torch.from_numpy(sin).to(dev)
        self.scale = float(F32(1.0) / np.sqrt(F32(self.hd), dtype=F32))

    def norm(self, x, w):
        ss = (x * x).double().sum(-1, keepdim=True)
        mean = (ss / x.shape[-1]).float()
        sc = 1.0 / torch.sqrt(mean + float(self.eps))
        return (x * sc) * w

    def lin(self, name, x):
        w, ws = self.T[name]
        m = x.abs().amax(-1, keepdim=True).clamp(min=1e-5)
        s = (127.0 / m.double()).float()
        q = torch.round(x * s).clamp(-128, 127)
        acc = q @ w.T                     # exact: integer partial sums < 2^24
        return (acc / s) * torch.tensor(ws, dtype=torch.float32, device=x.device)

    def rope(self, x, T):
        h = self.hd // 2
        cos, sin = self.cos[:T][None, :, None, :], self.sin[:T][None, :, None, :]
        x0, x1 = x[..., :h], x[..., h:]
        return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)

    @torch.no_grad()
    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        c, T_ = self.c, self.T
        B, T = idx.shape
        H, HKV, hd = c["n_head"], c["n_head_kv"], self.hd
        x = T_["token_embd.weight"][idx]
        mask = torch.full((T, T), float("-inf"), device=self.dev).triu(1)
        for i in range(c["n_layer"]):
            p = f"blk.{i}."
            h = self.norm(x, T_[p + "attn_norm.weight"])
            q = self.rope(self.lin(p + "attn_q.weight", h).view(B, T, H, hd), T)
            k = self.rope(self.lin(p + "attn_k.weight", h).view(B, T, HKV, hd), T)
            v = self.lin(p + "attn_v.weight", h).view(B, T, HKV, hd)
            grp = H // HKV
            k = k.repeat_interleave(grp, dim=2)
            v = v.repeat_interleave(grp, dim=2)
            s = torch.einsum("bthd,bshd->bhts", q, k) * self.scale + mask
            a = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v).reshape(B, T, H * hd)
            a = self.norm(a, T_[p + "attn_sub_norm.weight"])
            x = x + self.lin(p + "attn_output.weight", a)
            h = self.norm(x, T_[p + "ffn_norm.weight"])
            g = torch.relu(self.lin(p + "ffn_gate.weight", h))
            f = (g * g) * self.lin(p + "ffn_up.weight", h)
            f = self.norm(f, T_[p + "ffn_sub_norm.weight"])
            x = x + self.lin(p + "ffn_down.weight", f)
        x = self.norm(x, T_["output_norm.weight"])
        x = x.half().float()                # ggml rounds src1 to F16 for an F16 weight
        return (x.double() @ T_["token_embd.weight"].double().T).float()


def perplexity(model: Exact, tokens: list[int], ctx: int, bos: int, bs: int) -> dict:
    n_chunk = len(tokens) // ctx
    t = torch.tensor(tokens[: n_chunk * ctx], dtype=torch.int64).view(n_chunk, ctx)
    t[:, 0] = bos
    first = ctx // 2
    nll, cnt = 0.0, 0
    for i in range(0, n_chunk, bs):
        chunk = t[i:i + bs].to(model.dev)
        lg = model.logits(chunk)[:, first:ctx - 1].double()
        tgt = chunk[:, first + 1:ctx]
        lp = torch.log_softmax(lg, dim=-1).gather(-1, tgt[..., None])[..., 0]
        nll -= lp.sum().item()
        cnt += tgt.numel()
    return {"ppl": math.exp(nll / cnt), "mean_nll": nll / cnt, "n_chunks": n_chunk, "n_scored": cnt}


@torch.no_grad()
def greedy(model: Exact, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    out = []
    for _ in range(n):
        lg = model.logits(torch.tensor([ids[-model.c["ctx"]:]], device=model.dev))[0, -1]
        nxt = int(torch.argmax(lg).item())   # first max, as refjson.argmax_first
        out.append(nxt)
        ids.append(nxt)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--gguf")
    src.add_argument("--ckpt")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prompt", action="append", default=None, help="greedy sample prompts (repeatable)")
    ap.add_argument("--n-gen", type=int, default=40)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(args.device)
    c, T, tokd = load(args)
    tok = bpe.Tokenizer(tokd)
    model = Exact(c, T, dev)
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    n_train = int(len(text) * 0.9)
    held = text[n_train:]
    t0 = time.time()
    tokens = tok.encode(held, bos=True)
    r = perplexity(model, tokens, args.ctx, tok.bos, args.batch)
    el = time.time() - t0
    res = {
        "model": os.path.basename(args.gguf or args.ckpt),
        "held_out": f"{os.path.basename(args.corpus)} chars [{n_train}:{len(text)}] (last 10%), "
                    f"{len(tokens)} tokens with the leading BOS",
        "method": "llama-perplexity convention: [BOS]+tokens cut into non-overlapping chunks of ctx; "
                  "first token of each chunk set to BOS; score positions ctx/2..ctx-2 (predicting "
                  "tokens ctx/2+1..ctx-1); ppl = exp(mean NLL)",
        "ctx": args.ctx, **r, "seconds": round(el, 1),
        "numerics": "exact I2_S integer path (DESIGN.md sec. 5), f32 floats, F16-rounded LM-head input",
        "command": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
    }
    if args.prompt:
        res["samples"] = []
        for p in args.prompt:
            ids = tok.encode(p, bos=True)
            g = greedy(model, ids, args.n_gen)
            res["samples"].append({"prompt": p, "prompt_tokens": ids, "greedy": g, "text": p + tok.decode(g)})
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=1))
    for s_ in res.get("samples", []):
        print(repr(s_["text"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
