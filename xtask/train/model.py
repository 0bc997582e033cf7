"""BitNet b1.58 model (GGUF arch `bitnet-b1.58`) for training and for the exact
quantized reference forward.

Block (DESIGN.md sec. 6):
  x += Wo(attn_sub_norm(attn(rope(Wq n(x)), rope(Wk n(x)), Wv n(x))))
  x += Wdown(ffn_sub_norm(relu(Wgate n(x))^2 * Wup n(x)))
NEOX RoPE (dim i pairs with i + d/2), GQA (head h reads KV head h // (n_head/n_head_kv)),
RMSNorm eps 1e-5, no biases, tied F16 embedding as LM head.

Every projection is a BitLinear: per-tensor absmean ternary weights and per-token int8
absmax activations exactly as DESIGN.md sec. 5, with straight-through gradients.
"""
from __future__ import annotations

import math

import numpy as np
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

PROJ = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass
class Config:
    vocab: int = 1024
    n_embd: int = 512
    n_layer: int = 6
    n_head: int = 8
    n_head_kv: int = 4
    n_ff: int = 1536
    ctx: int = 256
    eps: float = 1e-5
    rope_base: float = 10000.0
    dropout: float = 0.0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)


def weight_quant(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """absmean: w_scale = mean|W| (f32), Wq = clamp(round(W / w_scale), -1, 1)."""
    wf = w.float()
    ws = wf.abs().mean().clamp(min=1e-8)
    return (wf / ws).round().clamp(-1, 1), ws


class BitLinear(nn.Module):
    """y = (q @ Wq^T) * w_scale / s; STE for weights and activations (scales detached)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.float()
        ws = w.abs().mean().clamp(min=1e-8).detach()
        wn = w / ws
        wq = wn + (wn.round().clamp(-1, 1) - wn).detach()
        xf = x.float()
        m = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5).detach()
        s = 127.0 / m
        xs = xf * s
        xq = xs + (xs.round().clamp(-128, 127) - xs).detach()
        dt = torch.bfloat16 if x.is_cuda else torch.float32
        y = F.linear(xq.to(dt), wq.to(dt)).float()   # integer-valued operands
        return y * (ws / s)


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(ctx: int, d: int, base: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    inv = base ** (-torch.arange(0, d // 2, dtype=torch.float64, device=device) * 2.0 / d)
    ang = torch.arange(ctx, dtype=torch.float64, device=device)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """NEOX: x [B, H, T, d]; dim i pairs with i + d/2."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        E, hd = c.n_embd, c.head_dim
        self.attn_norm = RMSNorm(E, c.eps)
        self.attn_q = BitLinear(E, c.n_head * hd)
        self.attn_k = BitLinear(E, c.n_head_kv * hd)
        self.attn_v = BitLinear(E, c.n_head_kv * hd)
        self.attn_sub_norm = RMSNorm(c.n_head * hd, c.eps)
        self.attn_output = BitLinear(c.n_head * hd, E)
        self.ffn_norm = RMSNorm(E, c.eps)
        self.ffn_gate = BitLinear(E, c.n_ff)
        self.ffn_up = BitLinear(E, c.n_ff)
        self.ffn_sub_norm = RMSNorm(c.n_ff, c.eps)
        self.ffn_down = BitLinear(c.n_ff, E)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        c = self.c
        B, T, _ = x.shape
        hd = c.head_dim
        h = self.attn_norm(x)
        q = self.attn_q(h).view(B, T, c.n_head, hd).transpose(1, 2)
        k = self.attn_k(h).view(B, T, c.n_head_kv, hd).transpose(1, 2)
        v = self.attn_v(h).view(B, T, c.n_head_kv, hd).transpose(1, 2)
        q = apply_rope(q, cos[:T], sin[:T])
        k = apply_rope(k, cos[:T], sin[:T])
        grp = c.n_head // c.n_head_kv
        k = k.repeat_interleave(grp, dim=1)
        v = v.repeat_interleave(grp, dim=1)
        dt = torch.bfloat16 if x.is_cuda else torch.float32
        a = F.scaled_dot_product_attention(q.to(dt), k.to(dt), v.to(dt), is_causal=True,
                                           dropout_p=c.dropout if self.training else 0.0)
        a = a.float().transpose(1, 2).reshape(B, T, c.n_head * hd)
        x = x + self.drop(self.attn_output(self.attn_sub_norm(a)))
        h = self.ffn_norm(x)
        g = F.relu(self.ffn_gate(h))
        f = g * g * self.ffn_up(h)
        x = x + self.drop(self.ffn_down(self.ffn_sub_norm(f)))
        return x


class BitNet(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.token_embd = nn.Embedding(c.vocab, c.n_embd)
        nn.init.normal_(self.token_embd.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.output_norm = RMSNorm(c.n_embd, c.eps)
        self.drop = nn.Dropout(c.dropout)
        cos, sin = rope_tables(c.ctx, c.head_dim, c.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.token_embd(idx).float())
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        x = self.output_norm(x)
        dt = torch.bfloat16 if x.is_cuda else torch.float32
        return F.linear(x.to(dt), self.token_embd.weight.to(dt)).float()

    def n_params(self) -> dict:
        tern = sum(getattr(b, n).weight.numel() for b in self.blocks for n in PROJ)
        tot = sum(p.numel() for p in self.parameters())
        return {"total": tot, "ternary": tern, "embedding": self.token_embd.weight.numel(),
                "norms": tot - tern - self.token_embd.weight.numel()}


# ---------------------------------------------------------------------------
# Quantized state: what the GGUF holds (ternary int8 + f32 scale per projection,
# f32 norms, embedding rounded to F16 at export).
# ---------------------------------------------------------------------------

def pack2(t: torch.Tensor) -> torch.Tensor:
    """ternary int8 (flattened, n % 4 == 0) -> uint8, 4 codes (w+1) per byte, lowest bits first."""
    c = (t.reshape(-1, 4).to(torch.int16) + 1).to(torch.uint8)
    return c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)


def unpack2(p: torch.Tensor, shape) -> torch.Tensor:
    c = torch.stack([(p >> s) & 3 for s in (0, 2, 4, 6)], dim=1).reshape(-1).to(torch.int8) - 1
    return c.reshape(shape)


@torch.no_grad()
def quantized_state(model: BitNet) -> dict:
    st: dict = {"config": model.c.to_dict(), "tensors": {}}
    T = st["tensors"]
    T["token_embd.weight"] = model.token_embd.weight.detach().float().cpu().clone()
    T["output_norm.weight"] = model.output_norm.weight.detach().float().cpu().clone()
    for i, b in enumerate(model.blocks):
        p = f"blk.{i}."
        for n in ("attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"):
            T[p + n + ".weight"] = getattr(b, n).weight.detach().float().cpu().clone()
        for n in PROJ:
            wq, ws = weight_quant(getattr(b, n).weight.detach())
            T[p + n + ".weight"] = {"packed": pack2(wq.to(torch.int8)).cpu(), "shape": list(wq.shape),
                                    "scale": float(ws.cpu())}
    return st


def load_ckpt(path: str) -> dict:
    """-> {config, tensors: name -> np.float32 array | (ternary int8 [N, K], f32 scale)}, tokenizer, meta."""
    st = torch.load(path, map_location="cpu", weights_only=False)
    out = {}
    for name, v in st["tensors"].items():
        if isinstance(v, dict):
            t = unpack2(v["packed"], v["shape"]).numpy().astype(np.int8)
            out[name] = (t, np.float32(v["scale"]))
        else:
            out[name] = v.numpy().astype(np.float32)
    st["tensors"] = out
    return st
