#!/usr/bin/env bash
# Installs the pinned Python packages of ci/reference/requirements.txt, only
# when one is missing or at another version (idempotent: a second run
# checks and installs nothing). Used by setup.sh and by
# tokenizer_diff_live.sh (.ci/run).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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
  echo "reference/python-deps: pip install -r $HERE/requirements.txt" >&2
  python3 -m pip install -q -r "$HERE/requirements.txt" >&2
fi
