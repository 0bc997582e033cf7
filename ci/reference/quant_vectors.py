#!/usr/bin/env python3
"""Golden vectors for bitnet-core's quantization formats, from references
written outside this project.

- TQ1_0, TQ2_0, Q8_0, BF16: quantized and dequantized by the `gguf` package
  (gguf-py, `gguf/quants.py`, pinned in requirements.txt), whose numpy code
  is written to be bit-exact with llama.cpp's `quantize_row_*_ref`.
- F16: numpy's float32 -> float16 conversion (round to nearest even).
- I2_S: packed here with plain Python loops straight from the byte formula
  in DESIGN.md section 4 (independent of the Rust packer):
      byte[32b+p] = c[128b+p]<<6 | c[128b+32+p]<<4 | c[128b+64+p]<<2 | c[128b+96+p]
  with c = w + 1, then the f32 scale at byte offset ne/4 in a 32-byte tail.

Output: tests/golden/quant/vectors.txt, a line-oriented text file (hex of
little-endian bytes) read by core/tests/quant_golden.rs. The file records the
command that made it and an FNV-1a 64 hash of this script, so the Rust test
can tell when the file is stale and print the regenerate command:

    python3 ci/reference/quant_vectors.py
"""
from __future__ import annotations

import os
import struct
import sys
from importlib.metadata import version

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

COMMAND = "python3 ci/reference/quant_vectors.py"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "golden", "quant", "vectors.txt")
SEED = 20240817


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hexf32(a: np.ndarray) -> str:
    return np.ascontiguousarray(a, dtype="<f4").tobytes().hex()


def ternary(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(-1, 2, size=n, dtype=np.int8)


def ties_block(n: int) -> np.ndarray:
    """-1 .. 1 in steps of 1/8: max|x| = 1, so x/d hits the ties +-0.5."""
    return (np.arange(n) % 17 - 8).astype(np.float32) / 8


def gguf_case(name: str, qtype: T, x: np.ndarray, rows: int, cols: int) -> list[str]:
    x = x.astype(np.float32).reshape(rows, cols)
    q = quants.quantize(x, qtype)
    d = quants.dequantize(q, qtype).astype(np.float32)
    return [
        f"case {name} {qtype.name} {rows} {cols}",
        f"input_f32 {hexf32(x)}",
        f"bytes {q.tobytes().hex()}",
        f"dequant_f32 {hexf32(d)}",
        "end",
    ]


def f16_case(name: str, x: np.ndarray) -> list[str]:
    x = x.astype(np.float32)
    h = x.astype("<f2")
    return [
        f"case {name} F16 1 {x.size}",
        f"input_f32 {hexf32(x)}",
        f"bytes {h.tobytes().hex()}",
        f"dequant_f32 {hexf32(h.astype(np.float32))}",
        "end",
    ]


def pack_i2s(w: list[int], scale: float) -> bytes:
    """I2_S bytes of a flattened ternary tensor, from DESIGN.md section 4."""
    ne = len(w)
    assert ne % 128 == 0
    out = bytearray(ne // 4 + 32)
    for b in range(ne // 128):
        for p in range(32):
            c = [w[128 * b + 32 * j + p] + 1 for j in range(4)]
            out[32 * b + p] = (c[0] << 6) | (c[1] << 4) | (c[2] << 2) | c[3]
    out[ne // 4 : ne // 4 + 4] = struct.pack("<f", scale)
    return bytes(out)


def i2s_case(name: str, rng: np.random.Generator, rows: int, cols: int) -> list[str]:
    w = [int(v) for v in ternary(rng, rows * cols)]
    scale = float(np.float32(rng.uniform(0.01, 3.0)))
    deq = np.array(w, dtype=np.float32) * np.float32(scale)
    return [
        f"case {name} I2_S {rows} {cols}",
        f"input_i8 {bytes(np.array(w, dtype=np.int8).view(np.uint8)).hex()}",
        f"scale_f32 {struct.pack('<f', scale).hex()}",
        f"bytes {pack_i2s(w, scale).hex()}",
        f"dequant_f32 {hexf32(deq)}",
        "end",
    ]


def main() -> None:
    rng = np.random.default_rng(SEED)
    with open(os.path.abspath(__file__), "rb") as f:
        script_hash = fnv1a64(f.read())
    lines = [
        "# Golden vectors for bitnet-core quant formats (core/tests/quant_golden.rs).",
        "# Generated; do not edit. Regenerate with the command on the next line.",
        f"generator {COMMAND}",
        f"generator_fnv1a64 {script_hash:016x}",
        f"gguf {version('gguf')}",
        f"numpy {np.__version__}",
        f"seed {SEED}",
    ]
    for qtype, tag in [(T.TQ2_0, "tq2_0"), (T.TQ1_0, "tq1_0")]:
        # Ternary weights times a per-row scale (what a BitNet conversion holds).
        rows, cols = 3, 512
        w = ternary(rng, rows * cols).astype(np.float32).reshape(rows, cols)
        scales = rng.uniform(0.05, 2.0, size=(rows, 1)).astype(np.float32)
        lines += gguf_case(f"{tag}_ternary", qtype, w * scales, rows, cols)
        # General floats (rounded to ternary by the quantizer) and exact ties.
        lines += gguf_case(f"{tag}_float", qtype, rng.standard_normal(2 * 256), 2, 256)
        lines += gguf_case(f"{tag}_ties", qtype, ties_block(256), 1, 256)
        lines += gguf_case(f"{tag}_zero_block", qtype, np.zeros(256), 1, 256)
    lines += gguf_case("q8_0_float", T.Q8_0, rng.standard_normal(4 * 96) * 3, 4, 96)
    # max|x| = 127 per block makes d = 1, so x/d = x: exact .5 ties.
    ties = np.arange(64, dtype=np.float32) - np.float32(31.5)
    ties[0::32] = 127
    lines += gguf_case("q8_0_ties", T.Q8_0, ties, 1, 64)
    lines += gguf_case("q8_0_zero_block", T.Q8_0, np.zeros(32), 1, 32)
    bf = np.concatenate([rng.standard_normal(61) * 100, 1 + np.arange(1, 8) / 256])
    lines += gguf_case("bf16_float", T.BF16, bf, 1, bf.size)
    lines += f16_case("f16_float", np.concatenate([rng.standard_normal(45), 1 + np.arange(1, 4) / 2048]))
    lines += i2s_case("i2s_3x384", rng, 3, 384)
    lines += i2s_case("i2s_1x2560", rng, 1, 2560)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
