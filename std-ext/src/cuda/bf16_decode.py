"""PyTorch bf16 decode baseline with the 2B-4T shapes (the 7 projections x 30
layers + the LM head as batch-1 GEMVs), timed with CUDA events; eager and
CUDA-graph replay. Usage: python3 bf16_decode.py [OUT_FILE]"""
import sys, torch
torch.manual_seed(0)
dev = "cuda"
dim, layers, kv, ff, vocab = 2560, 30, 640, 6912, 128256
shapes = [("q", dim, dim), ("k", kv, dim), ("v", kv, dim), ("o", dim, dim),
          ("gate", ff, dim), ("up", ff, dim), ("down", dim, ff)]
W = [[torch.randn(m, k, device=dev, dtype=torch.bfloat16) * 0.02 for (_, m, k) in shapes]
     for _ in range(layers)]
head = torch.randn(vocab, dim, device=dev, dtype=torch.bfloat16) * 0.02
x = torch.randn(1, dim, device=dev, dtype=torch.bfloat16)
h = torch.randn(1, ff, device=dev, dtype=torch.bfloat16)
def step():
    for l in range(layers):
        w = W[l]
        for i in range(6):
            (x @ w[i].t())
        (h @ w[6].t())
    return x @ head.t()
def timed(fn, reps):
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); return ts[len(ts) // 2]
for _ in range(3): step()
eager = timed(step, 20)
g = torch.cuda.CUDAGraph()
s = torch.cuda.Stream()
s.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(s):
    step()
torch.cuda.current_stream().wait_stream(s)
with torch.cuda.graph(g):
    step()
for _ in range(3): g.replay()
graph = timed(g.replay, 50)
nbytes = sum(2 * m * k for (_, m, k) in shapes) * layers + 2 * vocab * dim
lines = [f"torch {torch.__version__}, {torch.cuda.get_device_name()}",
         f"bf16 step bytes {nbytes} ({nbytes/1e6:.1f} MB)",
         f"bf16 decode step eager: {eager:.4f} ms ({1000/eager:.1f} tok/s)",
         f"bf16 decode step CUDA graph: {graph:.4f} ms ({1000/graph:.1f} tok/s)"]
# Per-matmul times (median of 200, events).
for (name, m, k), w in zip(shapes, W[0]):
    inp = h if name == "down" else x
    t = timed(lambda: inp @ w.t(), 200)
    lines.append(f"bf16 matmul {name} {m}x{k}: {t*1000:.2f} us ({2*m*k/(t*1e-3)/1e9:.0f} GB/s)")
t = timed(lambda: x @ head.t(), 100)
lines.append(f"bf16 matmul head {vocab}x{dim}: {t*1000:.2f} us")
out = "\n".join(lines)
print(out)
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write(out + "\n")
