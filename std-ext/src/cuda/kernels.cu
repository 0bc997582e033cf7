// bitnet CUDA kernels. Compiled at run time by NVRTC with --fmad=false,
// --prec-div=true, --prec-sqrt=true, so every float operation rounds as the
// CPU's does (no contraction into FMA); only reduction orders differ.
//
// Integer contract (DESIGN.md section 5): the I2_S dot product
// sum_k (c_k - 1) * q_k is computed exactly with dp4a, as
// sum_k c_k * q_k - sum_k q_k, on the raw I2_S bytes (code 3 normalized to
// code 1 at upload, see mod.rs `normalize_i2s_codes`).

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long usize;

// Bytes of shared memory per 128 quantized activations: 128 + 32 padding
// keeps the warp's 16-byte loads free of bank conflicts.
#define QBLOCK_STRIDE 160

__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ int warp_sum_i(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block reductions: every thread returns the same value (fixed order).
__device__ double block_sum_d(double v, double* sh) {
    v = warp_sum_d(v);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    double r = 0.0;
    for (int i = 0; i < nw; ++i) r += sh[i];
    return r;
}

__device__ float block_max_f(float v, float* sh) {
    v = warp_max_f(v);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float r = sh[0];
    for (int i = 1; i < nw; ++i) r = fmaxf(r, sh[i]);
    return r;
}

__device__ int block_sum_i(int v, int* sh) {
    v = warp_sum_i(v);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    int r = 0;
    for (int i = 0; i < nw; ++i) r += sh[i];
    return r;
}

// RMSNorm (when nw != 0; sum of f32 squares in f64, as the CPU) followed by
// the I2_S activation quantization of DESIGN.md section 5, into the padded
// shared layout. Returns the activation scale; *sumq gets sum_k q_k.
__device__ float quantize_to_shared(const float* __restrict__ x, const float* __restrict__ nw,
                                    float eps, int K, u8* qs, int* sumq, double* shd,
                                    float* shf, int* shi) {
    float nscale = 1.0f;
    if (nw != 0) {
        double acc = 0.0;
        for (int i = threadIdx.x; i < K; i += blockDim.x) {
            const float v = x[i];
            acc += (double)(v * v);
        }
        const double sum = block_sum_d(acc, shd);
        const float mean = (float)(sum / (double)K);
        nscale = 1.0f / sqrtf(mean + eps);
    }
    float m = 0.0f;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        const float v = (nw != 0) ? x[i] * nscale * nw[i] : x[i];
        m = fmaxf(m, fabsf(v));
    }
    m = block_max_f(m, shf);
    m = fmaxf(1e-5f, m);
    const float s = (float)(127.0 / (double)m);
    int sq = 0;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        const float v = (nw != 0) ? x[i] * nscale * nw[i] : x[i];
        const float r = rintf(v * s);
        const int q = (r != r) ? 0 : (int)fminf(fmaxf(r, -128.0f), 127.0f);
        qs[(i >> 7) * QBLOCK_STRIDE + (i & 127)] = (u8)(i8)q;
        sq += q;
    }
    *sumq = block_sum_i(sq, shi);
    return s;
}

// One 16-byte chunk of an I2_S row: bytes p0..p0+15 of a 32-byte block hold
// the codes of weights p, 32+p, 64+p, 96+p (bits 7..6, 5..4, 3..2, 1..0).
// Masking keeps each code in place: group 0 shifted to bits 5..4 (x16),
// group 1 at bits 5..4 (x16), group 2 at 3..2 (x4), group 3 at 1..0 (x1).
__device__ __forceinline__ void i2s_chunk(uint4 w, const u8* qb, int& a16, int& a4, int& a1) {
    const int4 q0 = *(const int4*)(qb);
    const int4 q1 = *(const int4*)(qb + 32);
    const int4 q2 = *(const int4*)(qb + 64);
    const int4 q3 = *(const int4*)(qb + 96);
#define I2S_WORD(wv, c)                                          \
    a16 = __dp4a((int)(((wv) >> 2) & 0x30303030u), q0.c, a16);   \
    a16 = __dp4a((int)((wv) & 0x30303030u), q1.c, a16);          \
    a4 = __dp4a((int)((wv) & 0x0c0c0c0cu), q2.c, a4);            \
    a1 = __dp4a((int)((wv) & 0x03030303u), q3.c, a1);
    I2S_WORD(w.x, x)
    I2S_WORD(w.y, y)
    I2S_WORD(w.z, z)
    I2S_WORD(w.w, w)
#undef I2S_WORD
}

// sum_k c_k * q_k of one row (K / 4 bytes), the whole warp; every lane
// returns the total.
__device__ __forceinline__ int i2s_row_cq(const u8* __restrict__ row, const u8* qs, int nchunk,
                                          int lane) {
    const uint4* wr = (const uint4*)row;
    int a16 = 0, a4 = 0, a1 = 0;
    for (int c0 = lane; c0 < nchunk; c0 += 128) {
        uint4 w[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const int c = c0 + 32 * u;
            if (c < nchunk) {
                w[u] = __ldg(wr + c);
            } else {
                w[u] = make_uint4(0u, 0u, 0u, 0u);
            }
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const int c = c0 + 32 * u;
            if (c < nchunk) i2s_chunk(w[u], qs + (c >> 1) * QBLOCK_STRIDE + (c & 1) * 16, a16, a4, a1);
        }
    }
    // a16 is 16 x an integer, a4 is 4 x an integer: the divisions are exact.
    return warp_sum_i(a16 / 16 + a4 / 4 + a1);
}

// I2_S GEMV with int8 activations (dp4a). Prologue: RMSNorm (nw != 0) and
// activation quantization of x (K floats) into shared memory, per block.
// Each warp computes rows r = blockIdx.x * warps + warp + k * gridDim.x * warps.
// y = ((dot as f32) / s) * ws[r]; y = y * ps[r]  (the CPU's two roundings).
// mode 0: out[r] = y; mode 1: out[r] += y; mode 2 (gate/up): rows of W are
// the gate, rows of W2 the up projection, out[r] = act(gate) * up with
// act 0 = relu^2, 1 = silu.
extern "C" __global__ void __launch_bounds__(256) i2s_gemv(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ ws,
    const float* __restrict__ ps, const float* __restrict__ ws2, const float* __restrict__ ps2,
    const float* __restrict__ x, const float* __restrict__ nw, float eps, int K, int rows,
    float* __restrict__ out, int mode, int act) {
    extern __shared__ __align__(16) u8 qs[];
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    int sumq = 0;
    const float s = quantize_to_shared(x, nw, eps, K, qs, &sumq, shd, shf, shi);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int nchunk = K >> 6;
    const usize row_bytes = (usize)(K >> 2);
    for (int r = blockIdx.x * nwarps + warp; r < rows; r += gridDim.x * nwarps) {
        const int cq = i2s_row_cq(W + (usize)r * row_bytes, qs, nchunk, lane);
        float y = ((float)(cq - sumq) / s) * ws[r];
        y = y * ps[r];
        if (mode == 2) {
            const int cq2 = i2s_row_cq(W2 + (usize)r * row_bytes, qs, nchunk, lane);
            float u = ((float)(cq2 - sumq) / s) * ws2[r];
            u = u * ps2[r];
            if (act == 0) {
                const float g = fmaxf(y, 0.0f);
                y = g * g * u;
            } else {
                y = (y / (1.0f + expf(-y))) * u;
            }
        }
        if (lane == 0) {
            if (mode == 1) {
                out[r] = out[r] + y;
            } else {
                out[r] = y;
            }
        }
    }
}

// RoPE on the current position's q and k (from the fused qkv buffer), the
// KV-cache store, and causal attention for head blockIdx.x. Scores, softmax
// (expf, f64 sum) and the weighted sum of values follow the CPU's order.
// kc / vc: this layer's cache, [n_ctx][kv_dim]. Dynamic shared memory:
// (3 * hd + n_ctx) floats.
extern "C" __global__ void __launch_bounds__(128) attention_rope(
    const float* __restrict__ qkv, float* __restrict__ kc, float* __restrict__ vc,
    const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
    const int* __restrict__ params, float* __restrict__ att_out, int n_heads, int n_kv_heads,
    int hd, int n_rot, int neox, float attn_scale) {
    extern __shared__ __align__(16) float sm[];
    __shared__ double shd[32];
    __shared__ float shf[32];
    float* qsh = sm;
    float* ksh = sm + hd;
    float* vsh = sm + 2 * hd;
    float* sc = sm + 3 * hd;
    const int h = blockIdx.x;
    const int group = n_heads / n_kv_heads;
    const int g = h / group;
    const int pos = params[1];
    const int q_dim = n_heads * hd, kv_dim = n_kv_heads * hd;
    const float* qh = qkv + h * hd;
    const float* kh = qkv + q_dim + g * hd;
    const float* vh = qkv + q_dim + kv_dim + g * hd;
    const int half = n_rot / 2;
    const float* cs = rope_cos + (usize)pos * half;
    const float* sn = rope_sin + (usize)pos * half;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float qv = qh[i], kv = kh[i];
        if (i < n_rot) {
            if (neox) {
                const int j = (i < half) ? i : i - half;
                const float q0 = qh[j], q1 = qh[j + half];
                const float k0 = kh[j], k1 = kh[j + half];
                if (i < half) {
                    qv = q0 * cs[j] - q1 * sn[j];
                    kv = k0 * cs[j] - k1 * sn[j];
                } else {
                    qv = q0 * sn[j] + q1 * cs[j];
                    kv = k0 * sn[j] + k1 * cs[j];
                }
            } else {
                const int j = i >> 1;
                const float q0 = qh[2 * j], q1 = qh[2 * j + 1];
                const float k0 = kh[2 * j], k1 = kh[2 * j + 1];
                if ((i & 1) == 0) {
                    qv = q0 * cs[j] - q1 * sn[j];
                    kv = k0 * cs[j] - k1 * sn[j];
                } else {
                    qv = q0 * sn[j] + q1 * cs[j];
                    kv = k0 * sn[j] + k1 * cs[j];
                }
            }
        }
        qsh[i] = qv;
        ksh[i] = kv;
        vsh[i] = vh[i];
    }
    __syncthreads();
    if (h % group == 0) {
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            kc[(usize)pos * kv_dim + g * hd + i] = ksh[i];
            vc[(usize)pos * kv_dim + g * hd + i] = vsh[i];
        }
    }
    const int n_seen = pos + 1;
    float lmax = __int_as_float(0xff800000);
    for (int t = threadIdx.x; t < n_seen; t += blockDim.x) {
        // The current position comes from shared memory: another block may
        // be writing it to the cache right now.
        const float* kt = (t == pos) ? ksh : kc + (usize)t * kv_dim + g * hd;
        float d = 0.0f;
        for (int i = 0; i < hd; ++i) d += qsh[i] * kt[i];
        d = d * attn_scale;
        sc[t] = d;
        lmax = fmaxf(lmax, d);
    }
    const float mx = block_max_f(lmax, shf);
    double ls = 0.0;
    for (int t = threadIdx.x; t < n_seen; t += blockDim.x) {
        const float e = expf(sc[t] - mx);
        sc[t] = e;
        ls += (double)e;
    }
    const double sum = block_sum_d(ls, shd);
    const float inv = (float)(1.0 / sum);
    for (int t = threadIdx.x; t < n_seen; t += blockDim.x) sc[t] = sc[t] * inv;
    __syncthreads();
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float o = 0.0f;
        for (int t = 0; t < n_seen; ++t) {
            const float vv = (t == pos) ? vsh[i] : vc[(usize)t * kv_dim + g * hd + i];
            o += sc[t] * vv;
        }
        att_out[h * hd + i] = o;
    }
}

// x = embedding row of the token in params[0]; F16 table.
extern "C" __global__ void embed_f16(const u16* __restrict__ emb, const int* __restrict__ params,
                                     float* __restrict__ x, int dim) {
    const usize t = (usize)params[0];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        x[i] = h2f(emb[t * dim + i]);
}

// x = embedding row of the token in params[0]; F32 table.
extern "C" __global__ void embed_f32(const float* __restrict__ emb, const int* __restrict__ params,
                                     float* __restrict__ x, int dim) {
    const usize t = (usize)params[0];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        x[i] = emb[t * dim + i];
}

// LM head: out = F16 W (rows x K) times rmsnorm(x) (f32 accumulation, f64
// norm sum). Dynamic shared memory: K floats.
extern "C" __global__ void __launch_bounds__(256) f16_gemv_rmsnorm(
    const u16* __restrict__ W, const float* __restrict__ x, const float* __restrict__ nw,
    float eps, int K, int rows, float* __restrict__ out) {
    extern __shared__ __align__(16) float xs[];
    __shared__ double shd[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        const float v = x[i];
        acc += (double)(v * v);
    }
    const double sum = block_sum_d(acc, shd);
    const float mean = (float)(sum / (double)K);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = threadIdx.x; i < K; i += blockDim.x) xs[i] = x[i] * scale * nw[i];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int nchunk = K >> 3;
    for (int r = blockIdx.x * nwarps + warp; r < rows; r += gridDim.x * nwarps) {
        const uint4* wr = (const uint4*)(W + (usize)r * K);
        float a = 0.0f;
        for (int c0 = lane; c0 < nchunk; c0 += 128) {
            uint4 w[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int c = c0 + 32 * u;
                if (c < nchunk) {
                    w[u] = __ldg(wr + c);
                } else {
                    w[u] = make_uint4(0u, 0u, 0u, 0u);
                }
            }
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const int c = c0 + 32 * u;
                if (c < nchunk) {
                    const float* xv = xs + c * 8;
                    a += h2f((u16)(w[u].x & 0xffffu)) * xv[0];
                    a += h2f((u16)(w[u].x >> 16)) * xv[1];
                    a += h2f((u16)(w[u].y & 0xffffu)) * xv[2];
                    a += h2f((u16)(w[u].y >> 16)) * xv[3];
                    a += h2f((u16)(w[u].z & 0xffffu)) * xv[4];
                    a += h2f((u16)(w[u].z >> 16)) * xv[5];
                    a += h2f((u16)(w[u].w & 0xffffu)) * xv[6];
                    a += h2f((u16)(w[u].w >> 16)) * xv[7];
                }
            }
        }
        a = warp_sum_f(a);
        if (lane == 0) out[r] = a;
    }
}

// Greedy next token: the first index of the largest logit (NaN skipped, as
// core's `argmax`). Writes it to params[0] and out_tokens[pos], and
// advances params[1] (the position) for the next step. One block.
extern "C" __global__ void __launch_bounds__(1024) argmax_next(const float* __restrict__ logits,
                                                               int n, int* params,
                                                               int* __restrict__ out_tokens) {
    __shared__ float sv[32];
    __shared__ int si[32];
    float best = __int_as_float(0xff800000);
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = logits[i];
        if (v == v && (bi == 0x7fffffff || v > best)) {
            best = v;
            bi = i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi != 0x7fffffff && (bi == 0x7fffffff || ov > best || (ov == best && oi < bi))) {
            best = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sv[w] = best;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float b = sv[0];
        int id = si[0];
        for (int k = 1; k < nw; ++k) {
            if (si[k] != 0x7fffffff && (id == 0x7fffffff || sv[k] > b || (sv[k] == b && si[k] < id))) {
                b = sv[k];
                id = si[k];
            }
        }
        if (id == 0x7fffffff) id = 0;
        const int pos = params[1];
        out_tokens[pos] = id;
        params[0] = id;
        params[1] = pos + 1;
    }
}
