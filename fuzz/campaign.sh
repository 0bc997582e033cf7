#!/usr/bin/env bash
# Every fuzz target at once in libFuzzer's fork mode, as the 16-core phases
# of docs/security.md ran: campaign.sh BIN_DIR CORPUS_DIR SECONDS LOG_DIR
#   BIN_DIR     the built targets (cargo +nightly fuzz build -O; they may be
#               stripped and copied to another machine)
#   CORPUS_DIR  one folder per target, grown in place
#   LOG_DIR     <target>.log, crash artifacts under art/<target>/, rc.txt
# Workers per target: BITNET_FUZZ_FORK (default 2), receipt_verify twice that.
set -u
bin=$1 corpus=$2 secs=$3 logs=$4
fork=${BITNET_FUZZ_FORK:-2}
mkdir -p "$logs"
for t in gguf_parse gguf_roundtrip model_load tokenizer tokenizer_vocab receipt_verify ffi; do
  n=$fork; [ "$t" = receipt_verify ] && n=$((2 * fork))
  mkdir -p "$corpus/$t" "$logs/art/$t"
  ( "$bin/$t" "$corpus/$t" -fork="$n" -ignore_crashes=1 -max_total_time="$secs" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$logs/art/$t/" \
      > "$logs/$t.log" 2>&1; echo "$t rc=$?" >> "$logs/rc.txt" ) &
done
wait
cat "$logs/rc.txt"
