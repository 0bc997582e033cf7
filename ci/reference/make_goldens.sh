#!/usr/bin/env bash
# Regenerates the engine goldens for the tiny fixture models in tests/models/
# (made by `cargo xtask gen-fixtures`):
#   tests/golden/bitnet-{f32,tq2_0,tq1_0}.json      llama.cpp (llama_ref.py)
#   tests/golden/bitnet-b1.58-i2s.oracle.json       numpy oracle (llama.cpp has no I2_S)
#   tests/golden/bitnet-tq2_0.oracle.json           numpy oracle, cross-check of llama.cpp
# Each file records its generator command and the model's sha256; the Rust
# tests fail with this script's name when a fixture changed.
#
#   bash ci/reference/make_goldens.sh
#
# Prompt: 24 token ids (BOS + the first 23 tokens of stories260K's greedy
# story, i.e. real text in the fixtures' SentencePiece vocabulary); logits at
# every position and a 32-token greedy continuation.
#
# The I2_S oracle runs with --no-ggml-act-round: its F16 LM head then
# multiplies f32 activations by f16 weights widened to f32 (no f16 rounding
# of the activations), which is what the engine computes. (llama.cpp would
# round the activations to f16 first; the `bitnet` fixtures avoid the
# question with an F32 token_embd.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck disable=SC1090
source "$(bash ci/reference/setup.sh)"
TOKENS=1,403,407,261,378,432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419
N_GEN=32
for m in bitnet-f32 bitnet-tq2_0 bitnet-tq1_0; do
  python3 ci/reference/llama_ref.py --model "tests/models/$m.gguf" --tokens "$TOKENS" \
    --n-gen "$N_GEN" --out "tests/golden/$m.json"
done
python3 ci/reference/bitnet_oracle.py --model tests/models/bitnet-b1.58-i2s.gguf --tokens "$TOKENS" \
  --n-gen "$N_GEN" --no-ggml-act-round --out tests/golden/bitnet-b1.58-i2s.oracle.json
python3 ci/reference/bitnet_oracle.py --model tests/models/bitnet-tq2_0.gguf --tokens "$TOKENS" \
  --n-gen "$N_GEN" --out tests/golden/bitnet-tq2_0.oracle.json
echo "goldens written to tests/golden/"
