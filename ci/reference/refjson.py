"""Shared helpers for the Python reference tools (llama_ref.py, bitnet_oracle.py).

JSON layout written by both tools (one object):
  model, model_sha256, generator, tokens, logits (one row of n_vocab float32
  values per position of `tokens`), greedy (ids), greedy_margin (top1 - top2
  logit at each greedy step), plus tool-specific keys.

Floats are written with numpy's shortest round-trip repr for float32
(`str(np.float32(v))`): parsing the text as f64 and casting to f32 gives back
the exact float32 value. No rounding beyond float32 itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys

import numpy as np


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def command_line(prefix: str = "") -> str:
    """The command line that produced this output, relative to the repo root when possible."""
    argv = list(sys.argv)
    script = os.path.abspath(argv[0])
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    if script.startswith(repo + os.sep):
        script = os.path.relpath(script, repo)
    return prefix + " ".join(shlex.quote(a) for a in ["python3", script] + argv[1:])


def f32_list_json(row) -> str:
    a = np.asarray(row, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("non-finite logit; refusing to write JSON")
    return "[" + ",".join(str(v) for v in a) + "]"


def argmax_first(row) -> int:
    """argmax, first max wins (np.argmax semantics)."""
    return int(np.argmax(np.asarray(row, dtype=np.float32)))


def top_margin(row) -> float:
    a = np.asarray(row, dtype=np.float32)
    if a.size < 2:
        return float("inf")
    part = np.partition(a, -2)[-2:]
    return float(str(np.float32(part[1] - part[0])))  # exact f32 value, short repr


def write_json(path: str, obj: dict, float_rows: dict[str, list]) -> None:
    """Writes obj as JSON; keys in float_rows are lists of float32 rows written exactly."""
    obj = dict(obj)
    for k, rows in float_rows.items():
        obj[k] = _F32Rows(rows)
    text = _dump(obj, 0)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.write("\n")
    os.replace(tmp, path)


class _F32Rows:
    def __init__(self, rows):
        self.rows = rows


def _dump(v, ind: int) -> str:
    """JSON with dicts indented, lists of scalars on one line, float32 rows exact."""
    pad = " " * (ind + 1)
    if isinstance(v, _F32Rows):
        return "[\n" + ",\n".join(pad + f32_list_json(r) for r in v.rows) + "\n" + " " * ind + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [pad + json.dumps(str(k)) + ": " + _dump(x, ind + 1) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    if isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple, _F32Rows)) for x in v):
            return "[" + ",".join(json.dumps(x) for x in v) + "]"
        return "[\n" + ",\n".join(pad + _dump(x, ind + 1) for x in v) + "\n" + " " * ind + "]"
    if isinstance(v, float) and v != v:
        raise ValueError("NaN in JSON output")
    return json.dumps(v)


def parse_tokens(s: str) -> list[int]:
    s = s.strip()
    if not s:
        return []
    return [int(t) for t in s.split(",")]
