#!/usr/bin/env bash
# Idempotent setup for the Python reference tools:
#   - pip-installs ci/reference/requirements.txt through python-deps.sh
#     (only if something is missing or differs)
#   - builds llama.cpp through ci/setup-llama.sh (cached; fast when already built)
# Prints the env.sh to source for llama_ref.py:
#   source "$(bash ci/reference/setup.sh)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
bash "$HERE/python-deps.sh"
bash "$REPO/ci/setup-llama.sh"
