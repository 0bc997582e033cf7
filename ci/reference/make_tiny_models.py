#!/usr/bin/env python3
"""Seeded tiny random GGUF models for cross-checking bitnet_oracle.py against llama.cpp
(and usable as engine fixtures).

    python3 ci/reference/make_tiny_models.py --out-dir /tmp/tiny [--seed 1234]

Writes (vocabulary: the 512-token SentencePiece vocab of stories260K.gguf):
  bitnet-f32.gguf     arch `bitnet`, every tensor F32
  bitnet-tq2_0.gguf   arch `bitnet`, projections TQ2_0 + per-tensor `*.scale`, F16 token_embd
  bitnet-tq1_0.gguf   arch `bitnet`, projections TQ1_0 + per-tensor `*.scale`, F16 token_embd
  bitnet-b1.58-i2s.gguf  arch `bitnet-b1.58`, projections I2_S (type 36, DESIGN.md sec. 4),
                      F16 token_embd (tied LM head). Upstream llama.cpp cannot load it
                      (no such arch/type): oracle and engine only.
Shapes: hidden 256, 2 layers, 4 heads, 2 KV heads (head dim 64), FFN 512, ctx 256.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

import bitnet_oracle  # noqa: E402


HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VOCAB = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data", "stories260K.gguf"))

CFG = dict(n_embd=256, n_layer=2, n_head=4, n_head_kv=2, n_ff=512, n_ctx=256, eps=1e-5, rope_base=10000.0)


def copy_spm_vocab(w: gguf.GGUFWriter, vocab_path: str) -> int:
    r = gguf.GGUFReader(vocab_path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    w.add_tokenizer_model(f["tokenizer.ggml.model"].contents())
    w.add_token_list(tokens)
    w.add_token_scores([float(s) for s in f["tokenizer.ggml.scores"].contents()])
    w.add_token_types([int(t) for t in f["tokenizer.ggml.token_type"].contents()])
    w.add_bos_token_id(int(f["tokenizer.ggml.bos_token_id"].contents()))
    w.add_eos_token_id(int(f["tokenizer.ggml.eos_token_id"].contents()))
    w.add_unk_token_id(int(f["tokenizer.ggml.unknown_token_id"].contents()))
    return len(tokens)


def ternary(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.integers(-1, 2, size=(n, k)).astype(np.int8)


def build(path: str, arch: str, proj: str, seed: int, vocab_path: str) -> dict:
    """proj: 'F32' | 'TQ2_0' | 'TQ1_0' | 'I2_S'.

    Returns {tensor name: (ternary int8 [N, K], scale)} for I2_S tensors (for checks)."""
    i2s: dict = {}
    rng = np.random.default_rng(seed)
    c = CFG
    E, L, H, HKV, FF = c["n_embd"], c["n_layer"], c["n_head"], c["n_head_kv"], c["n_ff"]
    hd = E // H
    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tiny-{arch}-{proj.lower()}")
    w.add_context_length(c["n_ctx"])
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_rope_freq_base(c["rope_base"])
    w.add_rope_dimension_count(hd)
    n_vocab = copy_spm_vocab(w, vocab_path)

    def norm_w(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    emb = (0.25 * rng.standard_normal((n_vocab, E))).astype(np.float32)
    w.add_tensor("token_embd.weight", emb if proj == "F32" else emb.astype(np.float16))
    w.add_tensor("output_norm.weight", norm_w(E))

    def add_proj(name: str, n_out: int, n_in: int) -> None:
        if proj == "F32":
            m = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
            w.add_tensor(name + ".weight", m)
            return
        t = ternary(rng, n_out, n_in)
        if proj == "I2_S":
            scale = np.float32(rng.uniform(0.5, 1.5) / np.sqrt(n_in))
            raw = bitnet_oracle.encode_i2s(t, scale)            # n_out*n_in/4 + 32 bytes
            # GGUFWriter cannot write type 36: write the bytes as an I8 tensor with
            # the same byte count and n_dims (ne = [32, bytes/32]), patch dims/type below.
            w.add_tensor(name + ".weight", raw.view(np.int8).reshape(-1, 32), raw_dtype=QT.I8)
            i2s[name + ".weight"] = (t, scale)
            return
        qt = QT.TQ2_0 if proj == "TQ2_0" else QT.TQ1_0
        # per-256-block magnitude, so the block scales differ
        alpha = rng.uniform(0.5, 1.5, size=(n_out, n_in // 256, 1)).astype(np.float32)
        m = (t.reshape(n_out, n_in // 256, 256).astype(np.float32) * alpha).reshape(n_out, n_in)
        w.add_tensor(name + ".weight", gguf.quants.quantize(m, qt), raw_dtype=qt)
        # llama.cpp bitnet arch: optional per-tensor scale (shape {1}), multiplies the matmul output
        w.add_tensor(name + ".scale", np.array([rng.uniform(0.5, 1.5) / np.sqrt(n_in)], dtype=np.float32))

    for i in range(L):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm_w(E))
        add_proj(p + "attn_q", E, E)
        add_proj(p + "attn_k", HKV * hd, E)
        add_proj(p + "attn_v", HKV * hd, E)
        w.add_tensor(p + "attn_sub_norm.weight", norm_w(E))
        add_proj(p + "attn_output", E, E)
        w.add_tensor(p + "ffn_norm.weight", norm_w(E))
        add_proj(p + "ffn_gate", FF, E)
        add_proj(p + "ffn_up", FF, E)
        w.add_tensor(p + "ffn_sub_norm.weight", norm_w(FF))
        add_proj(p + "ffn_down", E, FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if i2s:
        patch_i2s(path, {k: (v[0].shape[1], v[0].shape[0]) for k, v in i2s.items()})
    return i2s


def patch_i2s(path: str, shapes: dict) -> None:
    """Rewrites the tensor infos of the placeholder I8 tensors to I2_S (type 36), ne = [K, N].
    Same n_dims and byte count, so no offset moves."""
    r = gguf.GGUFReader(path, "r+")
    done = set()
    for t in r.tensors:
        if t.name in shapes:
            K, N = shapes[t.name]
            assert t.n_bytes == K * N // 4 + 32
            parts = t.field.parts
            parts[3][:] = np.array([K, N], dtype=np.uint64)
            parts[4][0] = bitnet_oracle.I2_S_TYPE_ID
            done.add(t.name)
    r.data.flush()
    del r
    assert done == set(shapes), set(shapes) - done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB, help="GGUF with an SPM vocabulary to copy")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for fname, arch, proj in (("bitnet-f32.gguf", "bitnet", "F32"),
                              ("bitnet-tq2_0.gguf", "bitnet", "TQ2_0"),
                              ("bitnet-tq1_0.gguf", "bitnet", "TQ1_0"),
                              ("bitnet-b1.58-i2s.gguf", "bitnet-b1.58", "I2_S")):
        build(os.path.join(args.out_dir, fname), arch, proj, args.seed, args.vocab)
        print(os.path.join(args.out_dir, fname))
    return 0


if __name__ == "__main__":
    sys.exit(main())
