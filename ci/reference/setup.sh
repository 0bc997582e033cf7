#!/usr/bin/env bash
# Idempotent setup for the Python reference tools:
#   - pip-installs ci/reference/requirements.txt (only if something is missing or differs)
#   - builds llama.cpp through ci/setup-llama.sh (cached; fast when already built)
# Prints the env.sh to source for llama_ref.py:
#   source "$(bash ci/reference/setup.sh)"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
if ! python3 - "$HERE/requirements.txt" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if want and have != want:
        sys.exit(1)
PY
then
  echo "reference/setup: pip install -r $HERE/requirements.txt" >&2
  python3 -m pip install -q -r "$HERE/requirements.txt" >&2
fi
bash "$REPO/ci/setup-llama.sh"
