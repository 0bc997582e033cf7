#!/usr/bin/env python3
"""Readable numpy reference of the forward pass for the GGUF architectures
`bitnet-b1.58`, `bitnet` and `llama`.

    python3 ci/reference/bitnet_oracle.py --model M.gguf --tokens 1,2,3 [--n-gen N] --out OUT.json
    python3 ci/reference/bitnet_oracle.py --model M.gguf --bos-greedy N --out OUT.json

Output JSON has the same layout as llama_ref.py (see refjson.py).

Numerics (all in float32 unless said otherwise; this mirrors what ggml's CPU
backend does so the oracle can be checked tightly against llama.cpp):

* RMSNorm: sum of float32 x*x accumulated in float64, mean cast to f32,
  scale = 1/sqrt(mean + eps) in f32, y = (x*scale)*w.
* RoPE: theta_scale = base^(-2/n_rot) in f32; per pair i the angle is
  pos*theta_scale^i computed by repeated f32 multiplication (as
  ggml_rope_cache_init); cos/sin rounded to f32. `llama` uses NORM
  (pairs 2i, 2i+1); `bitnet` and `bitnet-b1.58` use NEOX (pairs i, i+n_rot/2).
* Attention: scores q.k in f32, softmax(scale*s + causal mask) with expf in
  f32 and the sum in f64, GQA head h reads KV head h // (n_head/n_head_kv).
* Linear layers by weight type:
  - F32: float32 matmul.  F16/BF16: the activation is first rounded to
    F16/BF16 (ggml converts src1 to the weight's vec_dot_type) -- switch off
    with --no-ggml-act-round.
  - TQ1_0/TQ2_0: activation quantized to Q8_K per 256-block exactly as
    ggml's quantize_row_q8_K_ref (signed max, iscale=-127/max,
    nearest_int = round-half-even, min(127, q), d = 1/iscale); per block the
    integer dot product times (d_act * d_weight) in f32, summed.
  - I2_S (type 36, DESIGN.md sec. 4/5): per token over all K,
    m = max(1e-5, max|x|), s = f32(127/f64(m)), q = clip(rint(f32(x*s)), -128, 127),
    y = (f32(sum_k w_k q_k) / s) * w_scale.
  Integer dot products are computed exactly (float32 BLAS on small integers:
  every partial sum is < 2^24, asserted).
* Optional per-tensor `*.scale` (bitnet arch: attn_q/k/v/output, ffn_gate/up/down)
  multiply the matmul output.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refjson  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

F32 = np.float32
I2_S_TYPE_ID = 36
QK_K = 256


# ----------------------------------------------------------------------------
# GGUF reading
# ----------------------------------------------------------------------------

class Tensor:
    def __init__(self, name: str, type_id: int, ne: list[int], offset: int, raw: np.ndarray):
        self.name = name
        self.type_id = type_id   # raw ggml type id
        self.ne = ne             # ggml order: ne[0] is the contiguous dimension
        self.offset = offset     # absolute file offset of the data
        self.raw = raw           # uint8 view of exactly the tensor's bytes

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne, dtype=np.int64))

    def type_name(self) -> str:
        if self.type_id == I2_S_TYPE_ID:
            return "I2_S"
        try:
            return QT(self.type_id).name
        except ValueError:
            return f"unknown({self.type_id})"


class Reader(gguf.GGUFReader):
    """gguf.GGUFReader that also accepts bitnet.cpp's I2_S (type id 36).

    The base class maps raw type ids through GGMLQuantizationType, which does
    not know 36, so tensor construction is replaced here: we keep name, type
    id, dims and the raw bytes, and decode ourselves.
    """

    def _build_tensors(self, start_offs: int, fields: list) -> None:  # noqa: D401
        self.raw_tensors: dict[str, Tensor] = {}
        file_size = self.data.shape[0]
        for field in fields:
            _name_len, name_data, _n_dims, dims, raw_dtype, offset_tensor = field.parts
            name = str(bytes(name_data), encoding="utf-8")
            if name in self.raw_tensors:
                raise ValueError(f"duplicated tensor {name}")
            type_id = int(raw_dtype[0])
            ne = [int(d) for d in dims]
            n = int(np.prod(ne, dtype=np.int64))
            if type_id == I2_S_TYPE_ID:
                if n % 128 != 0:
                    raise ValueError(f"{name}: I2_S needs a multiple of 128 elements, got {n}")
                nbytes = n // 4 + 32
            else:
                try:
                    qt = QT(type_id)
                except ValueError:
                    raise ValueError(f"tensor {name}: unknown ggml type id {type_id}") from None
                bs, ts = gguf.GGML_QUANT_SIZES[qt]
                if n % bs != 0:
                    raise ValueError(f"{name}: {n} elements not a multiple of block {bs} for {qt.name}")
                nbytes = n // bs * ts
            off = int(start_offs + offset_tensor[0])
            if off + nbytes > file_size:
                raise ValueError(f"{name}: data [{off}, {off + nbytes}) beyond file size {file_size}")
            self.raw_tensors[name] = Tensor(name, type_id, ne, off, self.data[off:off + nbytes])
        self.tensors = []


class GGUFModel:
    def __init__(self, path: str):
        self.path = path
        self.reader = Reader(path)
        self.tensors = self.reader.raw_tensors
        self.meta: dict[str, Any] = {}
        for k, f in self.reader.fields.items():
            if k.startswith("GGUF."):
                continue
            self.meta[k] = f.contents()
        self.arch = self.meta["general.architecture"]

    def key(self, suffix: str, default: Any = KeyError) -> Any:
        k = f"{self.arch}.{suffix}"
        if k in self.meta:
            return self.meta[k]
        if default is KeyError:
            raise KeyError(f"missing metadata key {k}")
        return default

    def has(self, name: str) -> bool:
        return name in self.tensors

    def get(self, name: str) -> Tensor:
        if name not in self.tensors:
            raise KeyError(f"missing tensor {name}")
        return self.tensors[name]


# ----------------------------------------------------------------------------
# Decoders
# ----------------------------------------------------------------------------

def decode_i2s(raw: np.ndarray, n: int) -> tuple[np.ndarray, np.float32]:
    """I2_S per DESIGN.md sec. 4: returns (ternary int8 values, flattened; f32 scale).

    128-element blocks in 32 bytes:
      byte[32b+p] = c[128b+p]<<6 | c[128b+32+p]<<4 | c[128b+64+p]<<2 | c[128b+96+p]
    c = w + 1 (code 3 is unused and reads as 0); one f32 scale at byte n/4.
    """
    raw = np.asarray(raw, dtype=np.uint8)
    if n % 128 != 0:
        raise ValueError("I2_S: element count must be a multiple of 128")
    if raw.size < n // 4 + 4:
        raise ValueError("I2_S: tensor too short")
    packed = raw[: n // 4].reshape(n // 128, 32)          # [block, p]
    codes = np.empty((n // 128, 4, 32), dtype=np.uint8)  # [block, group, p]
    codes[:, 0, :] = (packed >> 6) & 3
    codes[:, 1, :] = (packed >> 4) & 3
    codes[:, 2, :] = (packed >> 2) & 3
    codes[:, 3, :] = packed & 3
    lut = np.array([-1, 0, 1, 0], dtype=np.int8)          # code 3 -> 0
    w = lut[codes.reshape(n)]
    scale = raw[n // 4: n // 4 + 4].copy().view("<f4")[0]
    return w, F32(scale)


def encode_i2s(w: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of decode_i2s (for building test fixtures). w: ternary, flattened row-major."""
    w = np.asarray(w).reshape(-1)
    n = w.size
    if n % 128 != 0:
        raise ValueError("I2_S: element count must be a multiple of 128")
    if not np.all(np.isin(w, (-1, 0, 1))):
        raise ValueError("I2_S: weights must be ternary")
    c = (w.astype(np.int16) + 1).astype(np.uint8).reshape(n // 128, 4, 32)
    packed = (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(np.float32(scale).tobytes(), dtype=np.uint8)
    return np.concatenate([packed.reshape(-1).astype(np.uint8), tail])


def decode_float(t: Tensor) -> np.ndarray:
    """Dequantize float-ish tensors to float32 (shape reversed ne, i.e. [ne1, ne0])."""
    shape = tuple(reversed(t.ne))
    tid = t.type_id
    if tid == QT.F32:
        return t.raw.view("<f4").reshape(shape).astype(F32)
    if tid == QT.F16:
        return t.raw.view("<f2").reshape(shape).astype(F32)
    if tid == QT.BF16:
        u = t.raw.view("<u2").astype(np.uint32) << 16
        return u.view(F32).reshape(shape)
    raise ValueError(f"{t.name}: type {t.type_name()} is not a float type")


def decode_tq(t: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """TQ1_0/TQ2_0 -> (ternary int8 [N, K], per-block f32 scales [N, K/256]).

    Uses gguf.quants.dequantize for the bit layout, then divides by the
    block's f16 scale (exact: values are d * {-1, 0, 1})."""
    qt = QT(t.type_id)
    K, N = t.ne[0], int(np.prod(t.ne[1:], dtype=np.int64))
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    assert bs == QK_K
    blocks = np.asarray(t.raw).reshape(N * K // QK_K, ts)
    d_off = {QT.TQ2_0: 64, QT.TQ1_0: 52}[qt]          # offset of the f16 d in the block
    d = blocks[:, d_off:d_off + 2].copy().view("<f2").astype(F32).reshape(N, K // QK_K)
    deq = gguf.quants.dequantize(blocks.reshape(-1), qt).astype(F32).reshape(N, K // QK_K, QK_K)
    dd = d[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        tern = np.where(dd != 0, deq / np.where(dd != 0, dd, 1), 0)
    tern_i = np.rint(tern).astype(np.int8)
    if not np.array_equal(tern_i.astype(F32) * dd, deq) or not np.all(np.abs(tern_i) <= 1):
        raise ValueError(f"{t.name}: {qt.name} data is not d * ternary")
    return tern_i.reshape(N, K), d


# ----------------------------------------------------------------------------
# Linear layers
# ----------------------------------------------------------------------------

def int_matmul(q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact integer q[T,K] @ w[N,K]^T for |q| <= 128, |w| <= 1, via float32 BLAS."""
    K = q.shape[-1]
    if K * 128 >= (1 << 24):
        raise ValueError("K too large for exact float32 integer accumulation")
    return q.astype(F32) @ w.astype(F32).T   # exact: all partial sums are integers < 2^24


def quantize_q8_K(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ggml quantize_row_q8_K_ref on rows of x [T, K]: returns (q int [T, K], d f32 [T, K/256])."""
    T, K = x.shape
    xb = x.reshape(T, K // QK_K, QK_K).astype(F32)
    ax = np.abs(xb)
    idx = np.argmax(ax, axis=-1)                      # first index of the max |x| (strict '>' in C)
    mx = np.take_along_axis(xb, idx[..., None], axis=-1)[..., 0]
    amax = np.take_along_axis(ax, idx[..., None], axis=-1)[..., 0]
    zero = amax == 0
    safe = np.where(zero, F32(1), mx).astype(F32)
    iscale = (F32(-127.0) / safe).astype(F32)
    v = np.rint((iscale[..., None] * xb).astype(F32))  # nearest_int: round half to even
    q = np.minimum(v, 127).astype(np.int32)
    d = (F32(1.0) / iscale).astype(F32)
    q[zero] = 0
    d[zero] = 0
    return q.reshape(T, K), d


def quantize_i8_per_token(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DESIGN.md sec. 5 activation quantization for I2_S: per row over all K."""
    x = x.astype(F32)
    m = np.maximum(F32(1e-5), np.max(np.abs(x), axis=-1)).astype(F32)
    s = (127.0 / m.astype(np.float64)).astype(F32)
    q = np.clip(np.rint((x * s[:, None]).astype(F32)), -128, 127).astype(np.int32)
    return q, s


class Linear:
    def __init__(self, t: Tensor, act_round: bool = True, scale: np.float32 | None = None):
        self.name = t.name
        self.type_name = t.type_name()
        self.K = t.ne[0]
        self.N = int(np.prod(t.ne[1:], dtype=np.int64))
        self.scale = scale
        tid = t.type_id
        if tid == I2_S_TYPE_ID:
            self.kind = "i2s"
            w, self.w_scale = decode_i2s(t.raw, t.n_elements)
            self.w = w.reshape(self.N, self.K)
        elif tid in (QT.TQ1_0, QT.TQ2_0):
            self.kind = "q8k"
            self.w, self.d = decode_tq(t)
        elif tid in (QT.F32, QT.F16, QT.BF16):
            self.kind = "float"
            self.w = decode_float(t).reshape(self.N, self.K)
            self.act_round = None
            if act_round and tid == QT.F16:
                self.act_round = "f16"
            elif act_round and tid == QT.BF16:
                self.act_round = "bf16"
        else:
            raise ValueError(f"{t.name}: weight type {t.type_name()} not supported by the oracle")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=F32)
        assert x.shape[-1] == self.K, (self.name, x.shape, self.K)
        if self.kind == "float":
            if self.act_round == "f16":
                x = x.astype(np.float16).astype(F32)
            elif self.act_round == "bf16":
                u = x.view(np.uint32)
                # round-to-nearest-even to bf16 as ggml_compute_fp32_to_bf16 (NaN not expected)
                u = ((u + (0x7FFF + ((u >> 16) & 1))) & 0xFFFF0000).astype(np.uint32)
                x = u.view(F32)
            y = (x.astype(np.float64) @ self.w.T.astype(np.float64)).astype(F32)
        elif self.kind == "i2s":
            q, s = quantize_i8_per_token(x)
            acc = int_matmul(q, self.w)                       # exact integers as f32
            y = ((acc / s[:, None]).astype(F32) * self.w_scale).astype(F32)
        else:  # q8k
            q, da = quantize_q8_K(x)
            T = x.shape[0]
            nb = self.K // QK_K
            acc = np.zeros((T, self.N), dtype=np.float64)
            for b in range(nb):
                sl = slice(b * QK_K, (b + 1) * QK_K)
                sumi = int_matmul(q[:, sl], self.w[:, sl])              # [T, N]
                dd = (da[:, b][:, None] * self.d[None, :, b]).astype(F32)  # y.d * x.d in f32
                acc += (sumi * dd).astype(F32)
            y = acc.astype(F32)
        if self.scale is not None:
            y = (y * self.scale).astype(F32)
        return y


# ----------------------------------------------------------------------------
# Float building blocks (ggml CPU semantics)
# ----------------------------------------------------------------------------

def rms_norm(x: np.ndarray, w: np.ndarray, eps: np.float32) -> np.ndarray:
    x = x.astype(F32)
    ss = np.sum((x * x).astype(F32).astype(np.float64), axis=-1)
    mean = (ss / x.shape[-1]).astype(F32)
    scale = (F32(1.0) / np.sqrt((mean + eps).astype(F32))).astype(F32)
    return ((x * scale[:, None]).astype(F32) * w).astype(F32)


def rope_cache(pos: int, n_rot: int, base: np.float32, freq_scale: np.float32) -> tuple[np.ndarray, np.ndarray]:
    theta_scale = np.power(F32(base), F32(-2.0) / F32(n_rot), dtype=F32)
    theta = F32(pos)
    cos = np.empty(n_rot // 2, dtype=F32)
    sin = np.empty(n_rot // 2, dtype=F32)
    for i in range(n_rot // 2):
        t = F32(freq_scale * theta)
        cos[i] = F32(np.cos(np.float64(t)))
        sin[i] = F32(np.sin(np.float64(t)))
        theta = F32(theta * theta_scale)
    return cos, sin


def apply_rope(x: np.ndarray, positions: list[int], n_rot: int, neox: bool,
               base: np.float32, freq_scale: np.float32) -> np.ndarray:
    """x: [T, n_head, head_dim]; rotates the first n_rot dims of each head."""
    out = x.copy()
    for t, p in enumerate(positions):
        cos, sin = rope_cache(p, n_rot, base, freq_scale)
        if neox:
            h = n_rot // 2
            x0 = x[t, :, 0:h]
            x1 = x[t, :, h:n_rot]
            out[t, :, 0:h] = (x0 * cos - x1 * sin).astype(F32)
            out[t, :, h:n_rot] = (x0 * sin + x1 * cos).astype(F32)
        else:
            x0 = x[t, :, 0:n_rot:2]
            x1 = x[t, :, 1:n_rot:2]
            out[t, :, 0:n_rot:2] = (x0 * cos - x1 * sin).astype(F32)
            out[t, :, 1:n_rot:2] = (x0 * sin + x1 * cos).astype(F32)
    return out


def softmax_row(s: np.ndarray) -> np.ndarray:
    mx = np.max(s)
    e = np.exp((s - mx).astype(F32)).astype(F32)
    tot = np.sum(e.astype(np.float64))
    return (e * F32(1.0 / tot)).astype(F32)


def silu(x: np.ndarray) -> np.ndarray:
    x = x.astype(F32)
    return (x / (F32(1.0) + np.exp(-x).astype(F32))).astype(F32)


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

ARCHS = ("llama", "bitnet", "bitnet-b1.58")


class Model:
    def __init__(self, path: str, act_round: bool = True):
        g = GGUFModel(path)
        self.g = g
        arch = g.arch
        if arch not in ARCHS:
            raise ValueError(f"architecture {arch!r} not supported (supported: {', '.join(ARCHS)})")
        self.arch = arch
        self.n_embd = int(g.key("embedding_length"))
        self.n_layer = int(g.key("block_count"))
        self.n_head = int(g.key("attention.head_count"))
        self.n_head_kv = int(g.key("attention.head_count_kv", self.n_head))
        self.head_dim = int(g.key("attention.key_length", self.n_embd // self.n_head))
        if int(g.key("attention.value_length", self.head_dim)) != self.head_dim:
            raise ValueError("key_length != value_length not supported")
        self.n_rot = int(g.key("rope.dimension_count", self.head_dim))
        self.eps = F32(g.key("attention.layer_norm_rms_epsilon"))
        self.rope_base = F32(g.key("rope.freq_base", 10000.0))
        scaling = g.key("rope.scaling.type", "none")
        factor = float(g.key("rope.scaling.factor", 0.0) or 0.0)
        if scaling not in ("none", "linear"):
            raise ValueError(f"rope scaling {scaling!r} not supported by the oracle")
        self.freq_scale = F32(1.0 if factor == 0.0 else 1.0 / factor)
        self.attn_scale = F32(g.key("attention.scale", 0.0) or 0.0)
        if self.attn_scale == 0:
            self.attn_scale = F32(1.0 / np.sqrt(np.float32(self.head_dim), dtype=F32))
        self.neox = arch in ("bitnet", "bitnet-b1.58")
        self.sub_norms = arch in ("bitnet", "bitnet-b1.58")
        self.ffn_act = "relu2" if arch == "bitnet-b1.58" else "silu"
        if g.has("rope_freqs.weight") or g.has("blk.0.rope_freqs.weight"):
            raise ValueError("rope_freqs tensors not supported by the oracle")
        self.act_round = act_round

        emb = g.get("token_embd.weight")
        if emb.type_id in (QT.F32, QT.F16, QT.BF16):
            self.tok_embd = decode_float(emb)
        elif emb.type_id in (QT.TQ1_0, QT.TQ2_0):
            tern, d = decode_tq(emb)
            self.tok_embd = (tern.astype(F32).reshape(d.shape[0], -1, QK_K) * d[:, :, None]).reshape(tern.shape)
        else:
            raise ValueError(f"token_embd type {emb.type_name()} not supported")
        self.n_vocab = self.tok_embd.shape[0]
        self.output_norm = self._vec("output_norm.weight")
        # `bitnet` (upstream llama.cpp) always uses tok_embd as LM head and never loads
        # output.weight; `llama` and `bitnet-b1.58` (bitnet.cpp) use output.weight when present.
        if arch != "bitnet" and g.has("output.weight"):
            self.lm_head = Linear(g.get("output.weight"), act_round)
            self.lm_head_name = "output.weight"
        else:
            self.lm_head = Linear(emb, act_round)
            self.lm_head_name = "token_embd.weight"
        self.layers = []
        for i in range(self.n_layer):
            L: dict[str, Any] = {}
            p = f"blk.{i}."
            L["attn_norm"] = self._vec(p + "attn_norm.weight")
            L["ffn_norm"] = self._vec(p + "ffn_norm.weight")
            for nm in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
                L[nm] = self._lin(p + nm)
                L[nm + ".bias"] = self._vec(p + nm + ".bias") if (arch == "llama" and g.has(p + nm + ".bias")) else None
            if self.sub_norms:
                L["attn_sub_norm"] = self._vec(p + "attn_sub_norm.weight")
                L["ffn_sub_norm"] = self._vec(p + "ffn_sub_norm.weight")
            self.layers.append(L)
        self.n_ff = self.layers[0]["ffn_gate"].N
        # KV cache
        self.k_cache = [np.zeros((0, self.n_head_kv, self.head_dim), F32) for _ in range(self.n_layer)]
        self.v_cache = [np.zeros((0, self.n_head_kv, self.head_dim), F32) for _ in range(self.n_layer)]

    def _vec(self, name: str) -> np.ndarray:
        return decode_float(self.g.get(name)).reshape(-1)

    def _lin(self, prefix: str) -> Linear:
        scale = None
        sname = prefix + ".scale"
        if self.arch in ("bitnet", "bitnet-b1.58") and self.g.has(sname):
            sv = decode_float(self.g.get(sname)).reshape(-1)
            if sv.size != 1:
                raise ValueError(f"{sname}: expected 1 element")
            scale = F32(sv[0])
        return Linear(self.g.get(prefix + ".weight"), self.act_round, scale)

    def reset(self) -> None:
        for i in range(self.n_layer):
            self.k_cache[i] = self.k_cache[i][:0]
            self.v_cache[i] = self.v_cache[i][:0]

    def describe(self) -> dict:
        lin_types = sorted({L[n].type_name for L in self.layers for n in ("attn_q", "ffn_down")})
        return {
            "arch": self.arch, "n_embd": self.n_embd, "n_layer": self.n_layer, "n_head": self.n_head,
            "n_head_kv": self.n_head_kv, "head_dim": self.head_dim, "n_rot": self.n_rot, "n_ff": self.n_ff,
            "n_vocab": self.n_vocab, "eps": float(self.eps), "rope_base": float(self.rope_base),
            "rope": "neox" if self.neox else "norm", "ffn_act": self.ffn_act,
            "projection_types": lin_types, "lm_head": self.lm_head_name,
            "lm_head_type": self.lm_head.type_name, "ggml_act_round": self.act_round,
        }

    def forward(self, tokens: list[int]) -> np.ndarray:
        """Appends tokens to the KV cache; returns logits [len(tokens), n_vocab] (float32)."""
        T = len(tokens)
        start = self.k_cache[0].shape[0]
        positions = list(range(start, start + T))
        for t in tokens:
            if not 0 <= t < self.n_vocab:
                raise ValueError(f"token {t} out of range")
        x = self.tok_embd[np.asarray(tokens)].astype(F32)
        grp = self.n_head // self.n_head_kv
        for il, L in enumerate(self.layers):
            h = rms_norm(x, L["attn_norm"], self.eps)

            def lin(nm: str, inp: np.ndarray) -> np.ndarray:
                y = L[nm](inp)
                if L[nm + ".bias"] is not None:
                    y = (y + L[nm + ".bias"]).astype(F32)
                return y

            q = lin("attn_q", h).reshape(T, self.n_head, self.head_dim)
            k = lin("attn_k", h).reshape(T, self.n_head_kv, self.head_dim)
            v = lin("attn_v", h).reshape(T, self.n_head_kv, self.head_dim)
            q = apply_rope(q, positions, self.n_rot, self.neox, self.rope_base, self.freq_scale)
            k = apply_rope(k, positions, self.n_rot, self.neox, self.rope_base, self.freq_scale)
            self.k_cache[il] = np.concatenate([self.k_cache[il], k], axis=0)
            self.v_cache[il] = np.concatenate([self.v_cache[il], v], axis=0)
            K_all, V_all = self.k_cache[il], self.v_cache[il]
            att = np.empty((T, self.n_head, self.head_dim), F32)
            for t in range(T):
                n_ctx = positions[t] + 1   # causal
                for hh in range(self.n_head):
                    kv = hh // grp
                    s = (K_all[:n_ctx, kv, :].astype(np.float64) @ q[t, hh].astype(np.float64)).astype(F32)
                    p = softmax_row((s * self.attn_scale).astype(F32))
                    att[t, hh] = (p.astype(np.float64) @ V_all[:n_ctx, kv, :].astype(np.float64)).astype(F32)
            a = att.reshape(T, self.n_head * self.head_dim)
            if self.sub_norms:
                a = rms_norm(a, L["attn_sub_norm"], self.eps)
            o = lin("attn_output", a)
            x = (x + o).astype(F32)

            h = rms_norm(x, L["ffn_norm"], self.eps)
            gt = lin("ffn_gate", h)
            up = lin("ffn_up", h)
            if self.ffn_act == "silu":
                f = (silu(gt) * up).astype(F32)
            else:
                r = np.maximum(gt, F32(0))
                f = ((r * r).astype(F32) * up).astype(F32)
            if self.sub_norms:
                f = rms_norm(f, L["ffn_sub_norm"], self.eps)
            d = lin("ffn_down", f)
            x = (x + d).astype(F32)
        x = rms_norm(x, self.output_norm, self.eps)
        return self.lm_head(x)


def bos_id(model: Model) -> int:
    v = model.g.meta.get("tokenizer.ggml.bos_token_id")
    if v is None:
        raise ValueError("model has no tokenizer.ggml.bos_token_id")
    return int(v)


def run(model: Model, tokens: list[int], n_gen: int) -> tuple[np.ndarray, list[int], list[float]]:
    model.reset()
    logits = model.forward(tokens)
    greedy: list[int] = []
    margins: list[float] = []
    last = logits[-1]
    for _ in range(n_gen):
        nxt = refjson.argmax_first(last)
        greedy.append(nxt)
        margins.append(refjson.top_margin(last))
        last = model.forward([nxt])[-1]
    return logits, greedy, margins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", help="comma-separated token ids (prompt)")
    ap.add_argument("--n-gen", type=int, default=0, help="greedy tokens to generate after the prompt")
    ap.add_argument("--bos-greedy", type=int, metavar="N",
                    help="start from [BOS] only and generate N greedy tokens")
    ap.add_argument("--no-ggml-act-round", action="store_true",
                    help="do not round activations to F16/BF16 before F16/BF16 matmuls")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    model = Model(args.model, act_round=not args.no_ggml_act_round)
    out: dict[str, Any] = {
        "model": os.path.basename(args.model),
        "model_sha256": refjson.sha256_file(args.model),
        "generator": refjson.command_line(),
        "reference": "bitnet_oracle.py (numpy)",
        "config": model.describe(),
    }
    rows: dict[str, Any] = {}
    if args.tokens is not None:
        tokens = refjson.parse_tokens(args.tokens)
        logits, greedy, margins = run(model, tokens, args.n_gen)
        out.update(tokens=tokens, greedy=greedy, greedy_margin=margins)
        rows["logits"] = logits
    if args.bos_greedy is not None:
        bt = [bos_id(model)]
        logits, greedy, margins = run(model, bt, args.bos_greedy)
        if args.tokens is None:
            out.update(tokens=bt, greedy=greedy, greedy_margin=margins)
            rows["logits"] = logits
        else:
            out["bos_greedy"] = {"tokens": bt, "greedy": greedy, "greedy_margin": margins}
    if not rows:
        ap.error("give --tokens and/or --bos-greedy")
    refjson.write_json(args.out, out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
