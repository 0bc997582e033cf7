#!/usr/bin/env python3
"""Exports a quantized checkpoint (train.py's best.pt) to GGUF, arch `bitnet-b1.58`.

    python3 xtask/train/export_gguf.py --ckpt best.pt \
        --i2s tests/models/shakespeare-i2s.gguf --tq2 tests/models/shakespeare-tq2_0.gguf

* I2_S (type 36, DESIGN.md sec. 4, byte-exact Microsoft layout): codes c = w+1, 128-element
  blocks in 32 bytes, byte[32b+p] = c[128b+p]<<6 | c[128b+32+p]<<4 | c[128b+64+p]<<2 | c[128b+96+p],
  one f32 scale (mean|W|) at byte ne/4 inside a 32-byte tail. gguf 0.19 cannot write type 36:
  the bytes go in as an I8 tensor and the type/dims are patched afterwards
  (ci/reference/make_tiny_models.py: patch_i2s).
* TQ2_0: the same ternary weights times the per-tensor scale, quantized with gguf.quants
  (each 256-block gets d = f16(w_scale), or 0 for an all-zero block).
token_embd F16 (tied LM head), norms F32. Tokenizer: GGUF `gpt2` (byte-level BPE, pre `gpt2`).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "ci", "reference"))
import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

import bitnet_oracle  # noqa: E402
from make_tiny_models import patch_i2s  # noqa: E402
from model import PROJ, load_ckpt  # noqa: E402

ARCH = "bitnet-b1.58"
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3


def write(st: dict, path: str, proj: str, name: str) -> None:
    c = st["config"]
    tok = st["tokenizer"]
    T = st["tensors"]
    w = gguf.GGUFWriter(path, ARCH)
    w.add_name(name)
    w.add_context_length(c["ctx"])
    w.add_embedding_length(c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_head_count(c["n_head"])
    w.add_head_count_kv(c["n_head_kv"])
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_rope_freq_base(c["rope_base"])
    w.add_rope_dimension_count(c["n_embd"] // c["n_head"])
    w.add_vocab_size(c["vocab"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ2_0 if proj == "TQ2_0" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(tok["pre"])
    w.add_token_list(tok["tokens"])
    specials = {tok["bos_token_id"], tok["eos_token_id"]}
    w.add_token_types([TOKEN_CONTROL if i in specials else TOKEN_NORMAL for i in range(len(tok["tokens"]))])
    w.add_token_merges(tok["merges"])
    w.add_bos_token_id(tok["bos_token_id"])
    w.add_eos_token_id(tok["eos_token_id"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    i2s_shapes = {}
    w.add_tensor("token_embd.weight", T["token_embd.weight"].astype(np.float16))
    w.add_tensor("output_norm.weight", T["output_norm.weight"])
    for i in range(c["n_layer"]):
        p = f"blk.{i}."
        for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_sub_norm", "attn_output",
                  "ffn_norm", "ffn_gate", "ffn_up", "ffn_sub_norm", "ffn_down"):
            key = p + n + ".weight"
            if n not in PROJ:
                w.add_tensor(key, T[key])
                continue
            t, scale = T[key]
            N, K = t.shape
            if proj == "I2_S":
                raw = bitnet_oracle.encode_i2s(t, scale)          # N*K/4 + 32 bytes
                w.add_tensor(key, raw.view(np.int8).reshape(-1, 32), raw_dtype=QT.I8)
                i2s_shapes[key] = (K, N)
            else:
                m = t.astype(np.float32) * scale
                w.add_tensor(key, gguf.quants.quantize(m, QT.TQ2_0), raw_dtype=QT.TQ2_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if i2s_shapes:
        patch_i2s(path, i2s_shapes)


def verify(st: dict, path: str, proj: str) -> None:
    """Reads the file back through the oracle's reader and checks every tensor."""
    g = bitnet_oracle.GGUFModel(path)
    for key, v in st["tensors"].items():
        t = g.get(key)
        if isinstance(v, tuple):
            tern, scale = v
            if proj == "I2_S":
                assert t.type_id == bitnet_oracle.I2_S_TYPE_ID and t.ne == [tern.shape[1], tern.shape[0]], key
                wd, sd = bitnet_oracle.decode_i2s(t.raw, t.n_elements)
                assert np.array_equal(wd.reshape(tern.shape), tern) and sd == scale, key
            else:
                assert t.type_id == QT.TQ2_0, key
                wd, d = bitnet_oracle.decode_tq(t)
                assert np.array_equal(wd, tern), key
                nz = np.any(tern.reshape(d.shape[0], d.shape[1], -1) != 0, axis=-1)
                assert np.all(d[nz] == np.float32(np.float16(scale))) and np.all(d[~nz] == 0), key
        else:
            dec = bitnet_oracle.decode_float(t).reshape(v.shape)
            ref = v.astype(np.float16).astype(np.float32) if key == "token_embd.weight" else v
            assert np.array_equal(dec, ref), key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--i2s", help="output path, I2_S projections")
    ap.add_argument("--tq2", help="output path, TQ2_0 projections")
    ap.add_argument("--name", default="shakespeare-bitnet-b1.58")
    args = ap.parse_args()
    st = load_ckpt(args.ckpt)
    for path, proj in ((args.i2s, "I2_S"), (args.tq2, "TQ2_0")):
        if not path:
            continue
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write(st, path, proj, f"{args.name}-{proj.lower()}")
        verify(st, path, proj)
        print(f"{path}: {os.path.getsize(path)} bytes, {proj}, verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
