#!/usr/bin/env python3
"""Reference logits and greedy tokens from llama.cpp (through llama-cpp-python's
ctypes bindings; the library comes from ci/setup-llama.sh).

    source "$(bash ci/setup-llama.sh)"
    python3 ci/reference/llama_ref.py --model M.gguf --tokens 1,2,3 [--n-gen N] --out OUT.json
    python3 ci/reference/llama_ref.py --model M.gguf --bos-greedy N --out OUT.json
    python3 ci/reference/llama_ref.py --model M.gguf --prompt "text" [--n-gen N] [--bos-greedy N] --out OUT.json

Settings (deterministic): CPU only, F32 K and V cache, flash attention off,
1 thread (--threads), the whole prompt in one ubatch with logits requested
for every position, then greedy continuation fed one token at a time
(argmax over llama.cpp's logits, first max wins; EOS does not stop it).
--prompt tokenizes with llama.cpp's tokenizer (add_special=True, so BOS is
added when the vocabulary says so; parse_special=False).

Output JSON (see refjson.py): model, model_sha256, generator, tokens,
logits [len(tokens)][n_vocab] float32, greedy, greedy_margin, settings,
llama_cpp_version; with both a prompt and --bos-greedy, a "bos_greedy"
section {tokens, greedy, greedy_margin}.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import sys
import types
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refjson  # noqa: E402


def import_llama_cpp():
    """Returns (low-level module llama_cpp.llama_cpp, package version string).

    The package __init__ imports the high-level API (needs jinja2, diskcache);
    if those are missing we load only the ctypes layer."""
    try:
        import llama_cpp  # noqa: F401
        import llama_cpp.llama_cpp as C
        return C, getattr(llama_cpp, "__version__", "?")
    except ModuleNotFoundError as e:
        if e.name in ("llama_cpp",):
            raise SystemExit("llama_cpp not importable: source the env.sh printed by `bash ci/setup-llama.sh`")
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            raise
        for k in [k for k in sys.modules if k == "llama_cpp" or k.startswith("llama_cpp.")]:
            del sys.modules[k]
        pkg = types.ModuleType("llama_cpp")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["llama_cpp"] = pkg
        C = importlib.import_module("llama_cpp.llama_cpp")
        ver = "?"
        init = os.path.join(pkg.__path__[0], "__init__.py")
        for line in open(init):
            if line.startswith("__version__"):
                ver = line.split("=", 1)[1].strip().strip("\"'")
        return C, ver


C, PKG_VERSION = import_llama_cpp()

_LOG_LINES: list[str] = []


@C.llama_log_callback
def _log_cb(level, text, user_data):  # keep llama.cpp quiet; remember for errors
    try:
        _LOG_LINES.append(text.decode("utf-8", "replace"))
        if len(_LOG_LINES) > 400:
            del _LOG_LINES[:200]
    except Exception:
        pass


def llama_version_string() -> str:
    vendor = os.path.join(os.environ.get("LLAMA_CPP_DIR", ""), "src", "vendor", "llama.cpp", "CMakeLists.txt")
    parts = {}
    if os.path.exists(vendor):
        for line in open(vendor):
            line = line.strip()
            for k in ("MAJOR", "MINOR", "PATCH"):
                if line.startswith(f"set(LLAMA_VERSION_{k} "):
                    parts[k] = line.split()[1].rstrip(")")
    v = ".".join(parts.get(k, "?") for k in ("MAJOR", "MINOR", "PATCH")) if parts else "?"
    return f"llama-cpp-python {PKG_VERSION} (vendored llama.cpp {v})"


class LlamaRef:
    def __init__(self, path: str, n_ctx: int, n_batch: int, threads: int = 1):
        C.llama_log_set(_log_cb, ctypes.c_void_p(0))
        C.llama_backend_init()
        mp = C.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = C.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError("llama.cpp failed to load the model:\n" + "".join(_LOG_LINES[-30:]))
        self.vocab = C.llama_model_get_vocab(self.model)
        self.n_vocab = C.llama_vocab_n_tokens(self.vocab)
        cp = C.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_seq_max = 1
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.type_k = C.GGML_TYPE_F32
        cp.type_v = C.GGML_TYPE_F32
        cp.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.embeddings = False
        cp.offload_kqv = False
        cp.no_perf = True
        self.settings = {
            "n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_batch, "n_threads": threads,
            "type_k": "f32", "type_v": "f32", "flash_attn": False, "n_gpu_layers": 0,
        }
        self.ctx = C.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp failed to create a context:\n" + "".join(_LOG_LINES[-30:]))
        self.n_past = 0

    def close(self) -> None:
        C.llama_free(self.ctx)
        C.llama_model_free(self.model)

    def reset(self) -> None:
        C.llama_memory_clear(C.llama_get_memory(self.ctx), True)
        self.n_past = 0

    def tokenize(self, text: str) -> list[int]:
        b = text.encode("utf-8")
        n_max = len(b) + 16
        buf = (C.llama_token * n_max)()
        n = C.llama_tokenize(self.vocab, b, len(b), buf, n_max, True, False)
        if n < 0:
            raise RuntimeError("tokenize failed")
        return [int(buf[i]) for i in range(n)]

    def bos(self) -> int:
        return int(C.llama_vocab_bos(self.vocab))

    def decode(self, tokens: list[int]) -> np.ndarray:
        """Evaluates tokens (appended to the KV cache); returns logits for every one of them."""
        n = len(tokens)
        batch = C.llama_batch_init(n, 0, 1)
        try:
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = self.n_past + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1
            batch.n_tokens = n
            rc = C.llama_decode(self.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}:\n" + "".join(_LOG_LINES[-30:]))
            out = np.empty((n, self.n_vocab), dtype=np.float32)
            for i in range(n):
                p = C.llama_get_logits_ith(self.ctx, i)
                out[i] = np.ctypeslib.as_array(p, shape=(self.n_vocab,))
        finally:
            C.llama_batch_free(batch)
        self.n_past += n
        return out


def run(ref: LlamaRef, tokens: list[int], n_gen: int) -> tuple[np.ndarray, list[int], list[float]]:
    ref.reset()
    logits = ref.decode(tokens)
    greedy: list[int] = []
    margins: list[float] = []
    last = logits[-1]
    for _ in range(n_gen):
        nxt = refjson.argmax_first(last)
        greedy.append(nxt)
        margins.append(refjson.top_margin(last))
        last = ref.decode([nxt])[-1]
    return logits, greedy, margins


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--tokens", help="comma-separated token ids (prompt)")
    g.add_argument("--prompt", help="text, tokenized by llama.cpp (adds BOS if the vocab does)")
    ap.add_argument("--n-gen", type=int, default=0, help="greedy tokens to generate after the prompt")
    ap.add_argument("--bos-greedy", type=int, metavar="N",
                    help="start from [BOS] only and generate N greedy tokens")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.tokens is None and args.prompt is None and args.bos_greedy is None:
        ap.error("give --tokens, --prompt and/or --bos-greedy")

    # Context big enough for everything we will evaluate.
    prompt_len = len(refjson.parse_tokens(args.tokens)) if args.tokens is not None else \
        (len(args.prompt.encode()) + 8 if args.prompt is not None else 1)
    need = max(prompt_len + args.n_gen, 1 + (args.bos_greedy or 0), 8)
    n_ctx = ((need + 255) // 256) * 256
    ref = LlamaRef(args.model, n_ctx=n_ctx, n_batch=max(prompt_len, 1), threads=args.threads)

    out: dict[str, Any] = {
        "model": os.path.basename(args.model),
        "model_sha256": refjson.sha256_file(args.model),
        "generator": refjson.command_line('source "$(bash ci/setup-llama.sh)" && '),
        "reference": "llama.cpp",
        "llama_cpp_version": llama_version_string(),
        "system_info": C.llama_print_system_info().decode().strip(),
        "settings": ref.settings,
    }
    rows: dict[str, Any] = {}
    tokens = None
    if args.prompt is not None:
        tokens = ref.tokenize(args.prompt)
        out["prompt"] = args.prompt
    elif args.tokens is not None:
        tokens = refjson.parse_tokens(args.tokens)
    if tokens is not None:
        if not tokens:
            ap.error("empty prompt")
        logits, greedy, margins = run(ref, tokens, args.n_gen)
        out.update(tokens=tokens, greedy=greedy, greedy_margin=margins)
        rows["logits"] = logits
    if args.bos_greedy is not None:
        bt = [ref.bos()]
        logits, greedy, margins = run(ref, bt, args.bos_greedy)
        if tokens is None:
            out.update(tokens=bt, greedy=greedy, greedy_margin=margins)
            rows["logits"] = logits
        else:
            out["bos_greedy"] = {"tokens": bt, "greedy": greedy, "greedy_margin": margins}
    ref.close()
    refjson.write_json(args.out, out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
