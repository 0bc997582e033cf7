#!/usr/bin/env bash
# Every GPU check and measurement of the CUDA backend in one call on a
# machine with a GPU and no Rust. Build here first and carry the binaries:
#   cargo build --release -p bitnet-std --features cuda --bin bitnet-cuda-suite --bin bitnet
#   cargo build --release -p xtask
#   mkdir -p target/gpu-carry && cp target/release/{bitnet-cuda-suite,bitnet,xtask} target/gpu-carry/
#   strip target/gpu-carry/*
# then, from the repository root there: bash std-ext/src/cuda/device_run.sh target/gpu-carry OUT
# Writes to OUT: gpu.txt, suite-synthetic.md, bf16.txt, suite-fixtures.md,
# suite-fixtures-nopdl.md, suite-fixtures-per-kernel.md, suite-phases.md,
# suite-floor.md, suite-cluster.md, suite-persist.md, gpu-inference.json,
# all.log (everything
# printed). The
# last thing printed is the table of the per-kernel against the persistent
# decode step.
set -u
BIN=$1
OUT=$2
mkdir -p "$OUT"
exec > >(tee "$OUT/all.log") 2>&1
fail=0
echo "== card"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
  --format=csv | tee "$OUT/gpu.txt"
echo "== synthetic 2B-4T decode (bitnet)"
"$BIN/bitnet-cuda-suite" "$OUT" synthetic || fail=1
echo "== PyTorch bf16 decode, same shapes"
PYTHONUNBUFFERED=1 python3 std-ext/src/cuda/bf16_decode.py "$OUT/bf16.txt" || fail=1
echo "== fixtures (GPU vs CPU)"
"$BIN/bitnet-cuda-suite" "$OUT" fixtures || fail=1
echo "== receipt: xtask benchmark --backend gpu --tokens 128 --deterministic"
"$BIN/xtask" benchmark --backend gpu --tokens 128 --deterministic \
  --model tests/models/shakespeare-i2s.gguf --out "$OUT/gpu-inference.json" || fail=1
"$BIN/xtask" verify-receipt --path "$OUT/gpu-inference.json" --require-gpu-kernels || fail=1
echo "== bitnet run --device cuda / -ngl 99 vs the CPU (greedy, 32 tokens, every fixture)"
for m in shakespeare-i2s shakespeare-tq2_0 bitnet-b1.58-i2s bitnet-tq2_0 bitnet-tq1_0 \
  bitnet-f32 stories260K; do
  args=(run -m "tests/models/$m.gguf" -p "ROMEO:" -n 32 --temp 0 --json)
  cpu=$("$BIN/bitnet" "${args[@]}" 2>/dev/null)
  gpu=$("$BIN/bitnet" "${args[@]}" --device cuda 2>&1)
  ngl=$("$BIN/bitnet" "${args[@]}" -ngl 99 2>&1)
  if [ "$cpu" = "$gpu" ] && [ "$cpu" = "$ngl" ]; then
    echo "$m: identical ($cpu)"
  else
    echo "$m: DIFFERENT"; echo " cpu $cpu"; echo " gpu $gpu"; echo " ngl $ngl"; fail=1
  fi
done
echo "== fixtures without programmatic dependent launch"
"$BIN/bitnet-cuda-suite" "$OUT" fixtures-nopdl || fail=1
echo "== fixtures on the per-kernel step (the fallback for TQ2_0 models)"
"$BIN/bitnet-cuda-suite" "$OUT" fixtures-per-kernel || fail=1
echo "== compute-sanitizer memcheck on the fixtures (bounded)"
if command -v compute-sanitizer >/dev/null; then
  timeout 120 compute-sanitizer --tool memcheck --leak-check no --print-limit 5 \
    "$BIN/bitnet-cuda-suite" /tmp fixtures 2>&1 | grep -E "ERROR SUMMARY|Invalid|error" | head -20
fi
echo "== the persistent step's time per phase (measuring build)"
"$BIN/bitnet-cuda-suite" "$OUT" phases || fail=1
echo "== the least one grid-wide dependency costs (sync_floor), and inside a cluster"
"$BIN/bitnet-cuda-suite" "$OUT" floor || fail=1
"$BIN/bitnet-cuda-suite" "$OUT" cluster || fail=1
echo "== per-kernel vs persistent decode step (synthetic 2B-4T)"
"$BIN/bitnet-cuda-suite" "$OUT" persist || fail=1
echo "== done, fail=$fail"
exit $fail
