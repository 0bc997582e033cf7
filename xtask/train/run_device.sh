#!/usr/bin/env bash
# Runs on the device machine (one H100): several configurations at once (the model is
# small, so one GPU is far from busy with one of them); each writes $OUT/<name>/{log.csv,best.pt}
# and the interchange $OUT/<name>/dump/ of its best checkpoint (xtask/train/dump.py).
#   bash xtask/train/run_device.sh final|explore|smoke
# That machine has Python/PyTorch but no Rust: the GGUF export runs back here,
#   cargo xtask export-model --from $OUT/a/dump --i2s ... --tq2 ...   (see README.md)
set -u
MODE=${1:-final}
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
pids=()
if [ "$MODE" = explore ]; then
  # run 1 (explore): long auto-length schedules; all three overfit after ~500 steps (see README)
  COMMON="--data xtask/train/data --compile --steps 0 --budget-seconds 430 --eval-every 250 --max-seconds 490"
  python3 xtask/train/train.py $COMMON --out $OUT/a --n-layer 6 --dropout 0.2 > $OUT/a.log 2>&1 & pids+=($!)
  python3 xtask/train/train.py $COMMON --out $OUT/b --n-layer 8 --dropout 0.3 > $OUT/b.log 2>&1 & pids+=($!)
  python3 xtask/train/train.py $COMMON --out $OUT/c --n-layer 6 --dropout 0.1 --lr 1e-3 > $OUT/c.log 2>&1 & pids+=($!)
else
  # run 2 (final): short cosine schedules that end near the val-loss minimum, more dropout
  S=1; [ "$MODE" = smoke ] && S=0.1
  COMMON="--data xtask/train/data --compile --eval-every 50 --warmup 100 --max-seconds 400"
  python3 xtask/train/train.py $COMMON --out $OUT/a --n-layer 6 --dropout 0.3 --steps $(python3 -c "print(int(1000*$S))") > $OUT/a.log 2>&1 & pids+=($!)
  python3 xtask/train/train.py $COMMON --out $OUT/b --n-layer 8 --dropout 0.4 --steps $(python3 -c "print(int(1200*$S))") > $OUT/b.log 2>&1 & pids+=($!)
  python3 xtask/train/train.py $COMMON --out $OUT/c --n-layer 6 --dropout 0.4 --wd 0.3 --steps $(python3 -c "print(int(1500*$S))") > $OUT/c.log 2>&1 & pids+=($!)
fi
rc=0
for p in "${pids[@]}"; do wait $p || rc=1; done
for n in a b c; do echo "== $n"; grep -E '^(config|step|summary|auto)|Error|error' $OUT/$n.log | tail -n 12; done
# exact quantized held-out perplexity of each best checkpoint (GPU, f32, TF32 off)
for n in a b c; do
  [ -f $OUT/$n/best.pt ] && python3 xtask/train/eval.py --ckpt $OUT/$n/best.pt --corpus xtask/train/data/tinyshakespeare.txt \
     --device cuda --prompt "ROMEO:" --n-gen 30 --out /tmp/ev_$n.json 2>&1 | grep -E '"ppl"|"n_scored"|ROMEO|Error' | sed "s/^/$n: /"
done
# the interchange for `cargo xtask export-model`, which runs where Rust is
for n in a b c; do
  [ -f $OUT/$n/best.pt ] && { python3 xtask/train/dump.py --ckpt $OUT/$n/best.pt --out $OUT/$n/dump 2>&1 | sed "s/^/$n: /"; }
done
cat $OUT/a.log $OUT/b.log $OUT/c.log > $OUT/train.log; rm -f $OUT/a.log $OUT/b.log $OUT/c.log
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
exit $rc
