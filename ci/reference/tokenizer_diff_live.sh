#!/usr/bin/env bash
# The tokenizer differential test against the real libraries, not only the
# checked-in ids (.ci/run runs it):
#   1. installs the pinned tiktoken and sentencepiece if missing (python-deps.sh);
#   2. regenerates the corpus and the reference ids into target/tokenizer-diff/;
#   3. runs core's tokenizer_diff test against those fresh ids;
#   4. fails when tests/tokenizer/corpus.json or reference_ids.json differ
#      from the fresh files (stale), with the commands that regenerate them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash ci/reference/python-deps.sh
out=target/tokenizer-diff
mkdir -p "$out"
python3 ci/reference/tokenizer_diff.py corpus > "$out/corpus.json"
python3 ci/reference/tokenizer_diff.py ids tests/tokenizer/corpus.json > "$out/reference_ids.json"

# Absolute: cargo runs the test in core/.
BITNET_TOKENIZER_DIFF="$PWD/$out/reference_ids.json" \
  cargo test -p bitnet-core --test tokenizer_diff -- --nocapture

stale=0
for f in corpus.json reference_ids.json; do
  if ! diff -u "tests/tokenizer/$f" "$out/$f" >&2; then
    echo "tests/tokenizer/$f is stale (differs from $out/$f)" >&2
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  cat >&2 <<'MSG'
Regenerate the checked-in files with:
    python3 ci/reference/tokenizer_diff.py corpus > tests/tokenizer/corpus.json
    python3 ci/reference/tokenizer_diff.py ids tests/tokenizer/corpus.json > tests/tokenizer/reference_ids.json
MSG
  exit 1
fi
echo "tokenizer differential: live ids pass, checked-in corpus and ids current"
