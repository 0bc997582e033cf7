#!/usr/bin/env python3
"""Dumps a quantized checkpoint (train.py's best.pt) for `cargo xtask export-model`.

The GGUF files are written by our own Rust writer (xtask/src/export_model.rs); this script
is only the part that needs PyTorch: it reads the checkpoint through model.py's load_ckpt
and writes an interchange of plain JSON + raw bytes.

    python3 xtask/train/dump.py --ckpt best.pt --out /tmp/dump
    cargo xtask export-model --from /tmp/dump \
        --i2s tests/models/shakespeare-i2s.gguf --tq2 tests/models/shakespeare-tq2_0.gguf
    python3 xtask/train/dump.py --ckpt best.pt \
        --check-i2s tests/models/shakespeare-i2s.gguf --check-tq2 tests/models/shakespeare-tq2_0.gguf

Interchange (format "bitnet-train-dump", version 1):
* DIR/model.json: config (train.py's Config), tokenizer (model "gpt2", pre, tokens, merges,
  bos_token_id, eos_token_id), tensors: name, shape (PyTorch order, last dimension
  contiguous: [out, in] for a projection), dtype "f32" | "ternary", offset into
  tensors.bin, and for a ternary tensor scale_offset; source (checkpoint step, losses).
* DIR/tensors.bin: little-endian. f32: the values (norms, embedding). ternary: one int8 in
  {-1, 0, 1} per weight, and at scale_offset the f32 per-tensor scale (absmean).

--check-i2s / --check-tq2 read exported files back through the numpy oracle's reader
(ci/reference/bitnet_oracle.py, independent of our Rust reader) and compare every tensor
with the checkpoint: I2_S codes and scales exact, TQ2_0 codes exact with d = f16(scale)
(0 for an all-zero block), norms exact, embedding = f16(checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "ci", "reference"))
from model import load_ckpt  # noqa: E402

FORMAT, VERSION = "bitnet-train-dump", 1
CONFIG_KEYS = ("vocab", "n_embd", "n_layer", "n_head", "n_head_kv", "n_ff", "ctx", "eps", "rope_base")


def dump(st: dict, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    tok = st["tokenizer"]
    entries = []
    with open(os.path.join(out, "tensors.bin"), "wb") as f:
        for name, v in st["tensors"].items():
            e = {"name": name, "offset": f.tell()}
            if isinstance(v, tuple):
                tern, scale = v
                assert tern.dtype == np.int8 and np.all(np.abs(tern) <= 1), name
                e.update(shape=list(tern.shape), dtype="ternary")
                f.write(np.ascontiguousarray(tern).tobytes())
                e["scale_offset"] = f.tell()
                f.write(np.float32(scale).astype("<f4").tobytes())
            else:
                e.update(shape=list(v.shape), dtype="f32")
                f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
            entries.append(e)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": {k: st["config"][k] for k in CONFIG_KEYS},
        "tokenizer": {k: tok[k] for k in ("model", "pre", "tokens", "merges", "bos_token_id", "eos_token_id")},
        "tensors": entries,
        "source": {k: st.get(k) for k in ("step", "val_loss", "train_loss")},
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def check(st: dict, path: str, proj: str) -> None:
    """Reads the file back through the oracle's reader and checks every tensor."""
    import bitnet_oracle
    from gguf import GGMLQuantizationType as QT

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
    ap.add_argument("--out", help="interchange folder for `cargo xtask export-model --from`")
    ap.add_argument("--check-i2s", help="exported I2_S file to compare with the checkpoint")
    ap.add_argument("--check-tq2", help="exported TQ2_0 file to compare with the checkpoint")
    args = ap.parse_args()
    if not (args.out or args.check_i2s or args.check_tq2):
        ap.error("nothing to do: pass --out and/or --check-i2s / --check-tq2")
    st = load_ckpt(args.ckpt)
    if args.out:
        dump(st, args.out)
        print(f"{args.out}: model.json + tensors.bin ({len(st['tensors'])} tensors)")
    for path, proj in ((args.check_i2s, "I2_S"), (args.check_tq2, "TQ2_0")):
        if path:
            check(st, path, proj)
            print(f"{path}: {proj}, every tensor matches the checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
