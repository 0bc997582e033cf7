// bitnet CUDA kernels. Compiled at run time by NVRTC with --fmad=false,
// --prec-div=true, --prec-sqrt=true, so every float operation rounds as the
// CPU's does (no contraction into FMA). The decode step's float state
// (norms, RoPE, attention, SiLU) follows core's operations and order, so
// it is the CPU's bit for bit (see "The CPU's float functions" below);
// only the LM head's and the F32 projections' dot products are summed in
// another order.
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
typedef unsigned long long u64;

// Bytes per 128 quantized activations in the GEMV's activation buffer:
// 128 + 32 padding keeps a warp's 16-byte loads (lanes 2 chunks apart are
// 160 bytes apart) spread over the L1 banks.
#define QBLOCK_STRIDE 160

// Programmatic dependent launch (sm_90): launched with the attribute, a
// kernel may start while its predecessor still runs. pdl_launch_next() lets
// the next kernel start (it is called first thing: all of this grid's blocks
// are then resident, so waiting blocks of the next can never crowd them
// out); pdl_wait() returns once the predecessor has completed and its
// writes are visible. Every kernel calls pdl_wait() before it reads
// anything an earlier kernel wrote and before it writes anything; only
// constant weights are touched before it. Without the attribute (or below
// sm_90) both do nothing.
__device__ __forceinline__ void pdl_launch_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Pulls `bytes` of constant weights at `p` towards L2 (no registers held).
__device__ __forceinline__ void prefetch_l2(const void* p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// Publishing data to other blocks and reading theirs. SYNC_ACQREL 1: a
// release atomic / store by thread 0 after a __syncthreads (cumulative:
// it orders every write the block made before the __syncthreads) and an
// acquire load or atomic by thread 0 before one (the block's reads after
// it see what the releasing block wrote); 0: sequentially consistent
// fences around relaxed accesses (__threadfence, the former code). The
// host may set it.
#ifndef SYNC_ACQREL
#define SYNC_ACQREL 1
#endif

// atomicAdd, ordered after every write the block made before the caller's
// __syncthreads; returns the old value.
__device__ __forceinline__ u32 atomic_add_rel(u32* p, u32 v) {
#if SYNC_ACQREL
    u32 old;
    asm volatile("atom.add.release.gpu.global.u32 %0, [%1], %2;"
                 : "=r"(old)
                 : "l"(p), "r"(v)
                 : "memory");
    return old;
#else
    __threadfence();
    return atomicAdd(p, v);
#endif
}

// *p, ordered before every later read (the block's, after a
// __syncthreads).
__device__ __forceinline__ u32 load_acq(const u32* p) {
#if SYNC_ACQREL
    u32 v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
#else
    const u32 v = *(const volatile u32*)p;
    __threadfence();
    return v;
#endif
}

// The global nanosecond timer (PHASE_TIMES stamps).
__device__ __forceinline__ usize globaltimer() {
    usize t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

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

// ---------------------------------------------------------------------
// The CPU's float functions, bit for bit. The decode step's float state
// (norms, RoPE, attention, the gated activation) must round exactly as
// core's does: an activation on an int8 / Q8_K rounding boundary would
// otherwise quantize to the neighbouring integer now and then, and its K/V
// row would stay in the cache. The _rn intrinsics keep these operations
// separate and round-to-nearest whatever the compile options.
// ---------------------------------------------------------------------

// scalbnf(x, n) = x * 2^n as libm 0.2.16's generic scalbn for f32 (the
// prescaling by 2^127 / 2^-102 of large |n|, then one multiplication).
__device__ __forceinline__ float scalbnf_cpu(float x, int n) {
    if (n > 127) {
        x = __fmul_rn(x, __int_as_float(0x7f000000));  // 2^127
        n -= 127;
        if (n > 127) {
            x = __fmul_rn(x, __int_as_float(0x7f000000));
            n -= 127;
            if (n > 127) n = 127;
        }
    } else if (n < -126) {
        x = __fmul_rn(x, __int_as_float(0x0c800000));  // 2^-102
        n += 102;
        if (n < -126) {
            x = __fmul_rn(x, __int_as_float(0x0c800000));
            n += 102;
            if (n < -126) n = -126;
        }
    }
    return __fmul_rn(x, __int_as_float((127 + n) << 23));
}

// e^x as core's `exp_f32` (libm 0.2.16 `expf`, FreeBSD e_expf.c),
// operation for operation: the same bits for every input (checked on a
// sweep by `bitnet-cuda-suite OUT fixtures`). CUDA's own expf differs
// from it in the last bit for some inputs. Called, not inlined: the
// softmax's unrolled loops would otherwise hold a copy per register (code
// size is time in the persistent kernel: see PB_NOINLINE).
__device__ __noinline__ float expf_cpu(float x) {
    const float LN2_HI = 6.9314575195e-01f;   // 0x3f317200
    const float LN2_LO = 1.4286067653e-06f;   // 0x35bfbe8e
    const float INV_LN2 = 1.4426950216e+00f;  // 0x3fb8aa3b
    const float P1 = 1.6666625440e-1f;        // 0xaaaa8f.0p-26
    const float P2 = -2.7667332906e-3f;       // -0xb55215.0p-32
    u32 hx = __float_as_uint(x);
    const int sign = (int)(hx >> 31);
    hx &= 0x7fffffffu;
    if (hx >= 0x42aeac50u) {  // |x| >= 87.33655 or NaN
        if (hx > 0x7f800000u) return x;  // NaN
        if (hx >= 0x42b17218u && !sign) return __fmul_rn(x, __int_as_float(0x7f000000));
        if (sign && hx >= 0x42cff1b5u) return 0.0f;  // x <= -103.972084
    }
    int k;
    float hi, lo;
    if (hx > 0x3eb17218u) {  // |x| > 0.5 ln2
        if (hx > 0x3f851592u) {  // |x| > 1.5 ln2
            // Rust's `as i32`: truncation (|k| <= 150 here).
            k = __float2int_rz(__fadd_rn(__fmul_rn(INV_LN2, x), sign ? -0.5f : 0.5f));
        } else {
            k = 1 - sign - sign;
        }
        const float kf = (float)k;
        hi = __fsub_rn(x, __fmul_rn(kf, LN2_HI));
        lo = __fmul_rn(kf, LN2_LO);
        x = __fsub_rn(hi, lo);
    } else if (hx > 0x39000000u) {  // |x| > 2^-14
        k = 0;
        hi = x;
        lo = 0.0f;
    } else {
        return __fadd_rn(1.0f, x);
    }
    const float xx = __fmul_rn(x, x);
    const float c = __fsub_rn(x, __fmul_rn(xx, __fadd_rn(P1, __fmul_rn(xx, P2))));
    const float y = __fadd_rn(
        1.0f, __fadd_rn(__fsub_rn(__fdiv_rn(__fmul_rn(x, c), __fsub_rn(2.0f, c)), lo), hi));
    return (k == 0) ? y : scalbnf_cpu(y, k);
}

// silu(t) * u as core: t / (1 + exp(-t)), then * u.
__device__ __forceinline__ float silu_mul_cpu(float t, float u) {
    return __fmul_rn(__fdiv_rn(t, __fadd_rn(1.0f, expf_cpu(-t))), u);
}

// A GEMV's store of output row r from its dot t: with two matrices (NM ==
// 2, gate|up) the gated activation of t and the up row's u (act 0:
// relu(t)^2 * u, else silu(t) * u); with one, t added to the row's old
// value (mode 1, the residual) or stored as is.
template <int NM>
__device__ __forceinline__ void gemv_store(float* out, int r, float t, float u, float old,
                                           int act, int mode) {
    if (NM == 2) {
        if (act == 0) {
            const float g = fmaxf(t, 0.0f);
            t = g * g * u;
        } else {
            t = silu_mul_cpu(t, u);
        }
        out[r] = t;
    } else if (mode == 1) {
        out[r] = old + t;
    } else {
        out[r] = t;
    }
}

// Order-free stand-ins for the CPU's sequential f64 sums. The CPU adds n
// non-negative f64 terms in index order and uses only f(sum), f monotone
// (RMSNorm: the f32 mean (float)(sum / K); softmax: (float)(1 / sum)).
// Any order of the same additions lands within gamma_{n-1} * S of the exact
// S (gamma_m = m u / (1 - m u), u = 2^-53), so the CPU's sum and a block's
// tree sum t are less than 2 gamma_{n-1} S apart. sum_window gives
// [t (1 - 4 n u), t (1 + 4 n u)], which holds the CPU's sum (the margin
// also covers the rounding of these two products); where f takes one
// value at both ends it takes it on the whole window, so that value is the
// CPU's bit for bit. Otherwise (the window straddles an f32 rounding
// boundary: about 8 n u / 2^-24 = n 2^-26 of the time) the caller redoes
// the sum sequentially in index order. Not finite: the tree sum is +inf or
// NaN exactly when the CPU's is, and f of it is then used as is.
__device__ __forceinline__ void sum_window(double t, int n, double& lo, double& hi) {
    const double b = (double)n * 0x1p-51;
    lo = t - t * b;
    hi = t + t * b;
}

// The CPU's sequential f64 sum of n terms read through L2, in index order
// by thread 0, returned to every thread: x_i * x_i in f32 (mode SEQ_SQ),
// expf_cpu(x_i - m) (SEQ_EXP: the softmax's e_t), else x_i. Block-uniform
// call; sh: a double of shared memory.
#define SEQ_SQ 1
#define SEQ_EXP 2
__device__ __noinline__ double seq_sum_cpu(const float* x, int n, int mode, float m, double* sh) {
    __syncthreads();
    if (threadIdx.x == 0) {
        double acc = 0.0;
        for (int i = 0; i < n; ++i) {
            const float v = __ldcg(x + i);
            acc += (double)((mode == SEQ_SQ)    ? __fmul_rn(v, v)
                            : (mode == SEQ_EXP) ? expf_cpu(__fsub_rn(v, m))
                                                : v);
        }
        *sh = acc;
    }
    __syncthreads();
    const double r = *sh;
    __syncthreads();
    return r;
}

// The CPU's RMSNorm mean: (float)(sum / K), sum = sum_i (double)(x_i * x_i)
// in index order. tree: the block's sum of the same terms (every thread
// holds it); x: the K inputs, summed again sequentially only where the
// window of sum_window leaves the f32 mean undecided. sh: a double of
// shared memory. Block-uniform; every thread returns the same value.
__device__ float rms_mean_cpu(double tree, const float* x, int K, double* sh) {
    double lo, hi;
    sum_window(tree, K, lo, hi);
    if (!isfinite(tree)) return (float)(tree / (double)K);
    const float mlo = (float)(lo / (double)K);
    if (mlo == (float)(hi / (double)K)) return mlo;
    return (float)(seq_sum_cpu(x, K, SEQ_SQ, 0.0f, sh) / (double)K);
}

// Largest K the activation quantizer keeps in registers (1024 threads x 8).
#define QA_THREADS 1024
#define QA_PER_THREAD 8
// Positions one attention block covers (fixed: the split, and so the
// reduction order, never depends on timing).
#define ATT_CHUNK 64
// attention_body's staging: each thread keeps up to ATT_REG of the
// head's scores in registers (more positions are re-read through L2); the
// values go through shared memory in tiles of ATT_VTILE floats (T = min(
// ATT_VTILE / hd, ATT_TMAX) positions), the next tile's loads in flight in
// registers while the current one is summed; a key row is loaded 4 x
// ATT_KVEC float4s (128 floats) at a time, spread over the position's
// threads.
#define ATT_REG 8
#define ATT_VTILE 4096
#define ATT_TMAX 512
#define ATT_KVEC 8
// Output elements of one value work item (attention_values; a multiple
// of 4).
#ifndef ATT_VGROUP
#define ATT_VGROUP 16
#endif

// The input of one matmul, once: RMSNorm (nw != 0; the CPU's f32 mean of
// the f64 sum of f32 squares, rms_mean_cpu) and the I2_S activation quantization of DESIGN.md
// section 5. One block of QA_THREADS; K <= QA_THREADS * QA_PER_THREAD.
// x is K floats.
// q: the quantized activations in the GEMV's layout (blocks of 128 bytes
// at a stride of QBLOCK_STRIDE).
// fmt 0 (I2_S): one scale; meta[0] = s as float bits, meta[1] = sum_k q_k.
// fmt 1 (Q8_K, for TQ2_0 and repacked TQ1_0): per 256 values, llama.cpp's
// quantize_row_q8_K_ref (core's quantize_row_q8_k) bit for bit;
// meta[2 + 2b] = d of block b as float bits, meta[3 + 2b] = its sum of q.
// fmt 2 (F32 projections, no quantization): the normed floats to xf[0..K)
// (q and meta untouched).
extern "C" __global__ void __launch_bounds__(QA_THREADS) quantize_act(
    const float* __restrict__ x, const float* __restrict__ nw, float eps, int K, int fmt,
    u8* __restrict__ q,
    int* __restrict__ meta, float* __restrict__ xf) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    __shared__ float xs[QA_THREADS * QA_PER_THREAD];
    pdl_launch_next();
    pdl_wait();
    float v[QA_PER_THREAD];
    double acc = 0.0;
#pragma unroll
    for (int j = 0; j < QA_PER_THREAD; ++j) {
        const int i = threadIdx.x + j * QA_THREADS;
        const float t = (i < K) ? x[i] : 0.0f;
        v[j] = t;
        acc += (double)(t * t);
    }
    if (nw != 0) {
        const float mean = rms_mean_cpu(block_sum_d(acc, shd), x, K, shd);
        const float nscale = 1.0f / sqrtf(mean + eps);
#pragma unroll
        for (int j = 0; j < QA_PER_THREAD; ++j) {
            const int i = threadIdx.x + j * QA_THREADS;
            if (i < K) v[j] = v[j] * nscale * nw[i];
        }
    }
    if (fmt == 2) {
#pragma unroll
        for (int j = 0; j < QA_PER_THREAD; ++j) {
            const int i = threadIdx.x + j * QA_THREADS;
            if (i < K) xf[i] = v[j];
        }
        return;
    }
    if (fmt == 1) {
#pragma unroll
        for (int j = 0; j < QA_PER_THREAD; ++j) {
            const int i = threadIdx.x + j * QA_THREADS;
            if (i < K) xs[i] = v[j];
        }
        __syncthreads();
        const int lane = threadIdx.x & 31, b = threadIdx.x >> 5;
        if (b < K / 256) {
            const float* xb = xs + b * 256;
            // The first value of largest magnitude, with its sign.
            float amax = 0.0f;
            int at = -1;
            for (int k = lane; k < 256; k += 32) {
                const float av = fabsf(xb[k]);
                if (av > amax) {
                    amax = av;
                    at = k;
                }
            }
            for (int o = 16; o > 0; o >>= 1) {
                const float oa = __shfl_xor_sync(0xffffffffu, amax, o);
                const int ot = __shfl_xor_sync(0xffffffffu, at, o);
                if (oa > amax || (oa == amax && ot >= 0 && (at < 0 || ot < at))) {
                    amax = oa;
                    at = ot;
                }
            }
            int sq = 0;
            float d = 0.0f;
            if (amax != 0.0f) {
                const float iscale = -127.0f / xb[at];
                for (int k = lane; k < 256; k += 32) {
                    // nearest_int: the 1.5 * 2^23 bias trick of ggml.
                    const float biased = iscale * xb[k] + 12582912.0f;
                    int qi = (__float_as_int(biased) & 0x007fffff) - 0x00400000;
                    qi = min(127, max(-128, qi));
                    const int i = b * 256 + k;
                    q[(i >> 7) * QBLOCK_STRIDE + (i & 127)] = (u8)(i8)qi;
                    sq += qi;
                }
                d = 1.0f / iscale;
            } else {
                for (int k = lane; k < 256; k += 32) {
                    const int i = b * 256 + k;
                    q[(i >> 7) * QBLOCK_STRIDE + (i & 127)] = 0;
                }
            }
            sq = warp_sum_i(sq);
            if (lane == 0) {
                meta[2 + 2 * b] = __float_as_int(d);
                meta[3 + 2 * b] = sq;
            }
        }
        return;
    }
    float m = 0.0f;
#pragma unroll
    for (int j = 0; j < QA_PER_THREAD; ++j) {
        if (threadIdx.x + j * QA_THREADS < K) m = fmaxf(m, fabsf(v[j]));
    }
    m = block_max_f(m, shf);
    m = fmaxf(1e-5f, m);
    const float s = (float)(127.0 / (double)m);
    int sq = 0;
#pragma unroll
    for (int j = 0; j < QA_PER_THREAD; ++j) {
        const int i = threadIdx.x + j * QA_THREADS;
        if (i < K) {
            const float r = rintf(v[j] * s);
            const int qi = (r != r) ? 0 : (int)fminf(fmaxf(r, -128.0f), 127.0f);
            q[(i >> 7) * QBLOCK_STRIDE + (i & 127)] = (u8)(i8)qi;
            sq += qi;
        }
    }
    sq = block_sum_i(sq, shi);
    if (threadIdx.x == 0) {
        meta[0] = __float_as_int(s);
        meta[1] = sq;
    }
}

// One 16-byte chunk of an I2_S row: bytes p0..p0+15 of a 32-byte block hold
// the codes of weights p, 32+p, 64+p, 96+p (bits 7..6, 5..4, 3..2, 1..0).
// Masking keeps each code in place: group 0 shifted to bits 5..4 (x16),
// group 1 at bits 5..4 (x16), group 2 at 3..2 (x4), group 3 at 1..0 (x1).
// q0..q3: the 16 activations of each group.
__device__ __forceinline__ void i2s_chunk(uint4 w, int4 q0, int4 q1, int4 q2, int4 q3, int& a16,
                                          int& a4, int& a1) {
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

// sq plus the sum of a chunk's 64 int8 activations q0..q3.
__device__ __forceinline__ int sum_q_chunk(int4 q0, int4 q1, int4 q2, int4 q3, int sq) {
    const int ones = 0x01010101;
#define SUMQ_INT4(q)                   \
    sq = __dp4a((q).x, ones, sq);      \
    sq = __dp4a((q).y, ones, sq);      \
    sq = __dp4a((q).z, ones, sq);      \
    sq = __dp4a((q).w, ones, sq);
    SUMQ_INT4(q0)
    SUMQ_INT4(q1)
    SUMQ_INT4(q2)
    SUMQ_INT4(q3)
#undef SUMQ_INT4
    return sq;
}

// Rows one warp computes together (their loads in flight at once); the
// host may set it (-DGEMV_RPW=n) and sizes the grid from the same value.
#ifndef GEMV_RPW
#define GEMV_RPW 4
#endif
// Chunks (16 bytes) per lane and row loaded before any is used.
#ifndef GEMV_UNROLL
#define GEMV_UNROLL 2
#endif

// Before pdl_wait(): pull this warp's first rows (of NM matrices) to L2.
template <int NM>
__device__ __forceinline__ void gemv_prefetch(const u8* W, const u8* W2, int r0, int rows,
                                              usize rb, int lane) {
#pragma unroll
    for (int j = 0; j < NM * GEMV_RPW; ++j) {
        const int r = r0 + (j % GEMV_RPW);
        if (r < rows) {
            const u8* row = ((j < GEMV_RPW) ? W : W2) + (usize)r * rb;
            // 128-byte lines.
            for (usize o = (usize)lane * 128; o < rb; o += 32 * 128) prefetch_l2(row + o);
        }
    }
}

// The rows of the I2_S GEMVs with int8 activations (dp4a). NM matrices
// (1, or 2 for gate|up) of `rows` rows; each warp takes GEMV_RPW rows of
// each matrix: rows r0 .. r0 + GEMV_RPW - 1, r0 = GEMV_RPW * gw (gw: the
// warp's index among the nwt warps taking part), striding by all warps.
// Lane l reads chunks l, l + 32, ... of every row (the order
// `i2s_dot_gpu_emulated` models). q: the quantized activations (read-only
// for this kernel: the non-coherent path); s / sumq: their scale and sum.
// y = ((dot as f32) / s) * ws[r]; y = y * ps[r] (the CPU's two roundings).
// NM == 1: mode 0 out[r] = y, mode 1 out[r] += y (the old value read
// through L2: another block of a persistent kernel may have written it).
// NM == 2: out[r] = act(gate) * up with act 0 = relu^2, 1 = silu.
template <int NM>
__device__ __forceinline__ void i2s_gemv_rows(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ ws,
    const float* __restrict__ ps, const float* __restrict__ ws2, const float* __restrict__ ps2,
    const u8* __restrict__ q, float s, int sumq, int K, int rows, float* __restrict__ out,
    int mode, int act, int gw, int nwt) {
    const int lane = threadIdx.x & 31;
    const int stride = nwt * GEMV_RPW;
    const int nchunk = K >> 6;
    const usize rb = (usize)(K >> 2);
    for (int r0 = gw * GEMV_RPW; r0 < rows; r0 += stride) {
        int a16[NM * GEMV_RPW], a4[NM * GEMV_RPW], a1[NM * GEMV_RPW];
        // The row scales (and, mode 1, the old outputs: only this warp
        // writes its rows) are loaded with the first weights, not after
        // the dot: one memory round trip less per row group.
        float sw[NM * GEMV_RPW], sp[NM * GEMV_RPW], old[GEMV_RPW];
#pragma unroll
        for (int j = 0; j < NM * GEMV_RPW; ++j) {
            a16[j] = 0;
            a4[j] = 0;
            a1[j] = 0;
            const int r = r0 + (j % GEMV_RPW);
            sw[j] = 0.0f;
            sp[j] = 0.0f;
            if (r < rows) {
                sw[j] = (j < GEMV_RPW) ? ws[r] : ws2[r];
                sp[j] = (j < GEMV_RPW) ? ps[r] : ps2[r];
            }
            if (j < GEMV_RPW) old[j] = (NM == 1 && mode == 1 && lane == 0 && r < rows) ? __ldcg(out + r) : 0.0f;
        }
        for (int c0 = lane; c0 < nchunk; c0 += 32 * GEMV_UNROLL) {
            uint4 w[GEMV_UNROLL][NM * GEMV_RPW];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; ++u) {
                const int c = c0 + 32 * u;
#pragma unroll
                for (int j = 0; j < NM * GEMV_RPW; ++j) {
                    const int r = r0 + (j % GEMV_RPW);
                    const u8* base = (j < GEMV_RPW) ? W : W2;
                    if (c < nchunk && r < rows) {
                        w[u][j] = __ldg((const uint4*)(base + (usize)r * rb) + c);
                    } else {
                        w[u][j] = make_uint4(0u, 0u, 0u, 0u);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; ++u) {
                const int c = c0 + 32 * u;
                if (c < nchunk) {
                    const u8* qb = q + (c >> 1) * QBLOCK_STRIDE + (c & 1) * 16;
                    const int4 q0 = __ldg((const int4*)(qb));
                    const int4 q1 = __ldg((const int4*)(qb + 32));
                    const int4 q2 = __ldg((const int4*)(qb + 64));
                    const int4 q3 = __ldg((const int4*)(qb + 96));
#pragma unroll
                    for (int j = 0; j < NM * GEMV_RPW; ++j)
                        i2s_chunk(w[u][j], q0, q1, q2, q3, a16[j], a4[j], a1[j]);
                }
            }
        }
        float y[NM * GEMV_RPW];
#pragma unroll
        for (int j = 0; j < NM * GEMV_RPW; ++j) {
            // a16 is 16 x an integer, a4 is 4 x an integer: the divisions
            // are exact.
            const int cq = warp_sum_i(a16[j] / 16 + a4[j] / 4 + a1[j]);
            const int r = r0 + (j % GEMV_RPW);
            float t = 0.0f;
            if (r < rows) {
                t = ((float)(cq - sumq) / s) * sw[j];
                t = t * sp[j];
            }
            y[j] = t;
        }
        if (lane == 0) {
#pragma unroll
            for (int j = 0; j < GEMV_RPW; ++j) {
                const int r = r0 + j;
                if (r < rows)
                    gemv_store<NM>(out, r, y[j], y[(NM - 1) * GEMV_RPW + j], old[j], act, mode);
            }
        }
    }
}

// The I2_S GEMV kernels' body: pull the first rows to L2, wait for the
// predecessor (quantize_act), then every warp of the grid takes rows.
// q / meta: from quantize_act.
template <int NM>
__device__ __forceinline__ void i2s_gemv_body(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ ws,
    const float* __restrict__ ps, const float* __restrict__ ws2, const float* __restrict__ ps2,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int mode, int act) {
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    const int gw = blockIdx.x * warps + (threadIdx.x >> 5);
    const usize rb = (usize)(K >> 2);
    pdl_launch_next();
    gemv_prefetch<NM>(W, W2, gw * GEMV_RPW, rows, rb, lane);
    pdl_wait();
    const float s = __int_as_float(__ldg(meta));
    const int sumq = __ldg(meta + 1);
    i2s_gemv_rows<NM>(W, W2, ws, ps, ws2, ps2, q, s, sumq, K, rows, out, mode, act, gw,
                      gridDim.x * warps);
}

// One I2_S projection (mode 0: out = W x; mode 1: out += W x).
extern "C" __global__ void __launch_bounds__(128) i2s_gemv(
    const u8* __restrict__ W, const float* __restrict__ ws, const float* __restrict__ ps,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int mode) {
    i2s_gemv_body<1>(W, 0, ws, ps, 0, 0, q, meta, K, rows, out, mode, 0);
}

// Gate and up projections and the gated activation in one launch.
extern "C" __global__ void __launch_bounds__(128) i2s_gemv_glu(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ ws,
    const float* __restrict__ ps, const float* __restrict__ ws2, const float* __restrict__ ps2,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int act) {
    i2s_gemv_body<2>(W, W2, ws, ps, ws2, ps2, q, meta, K, rows, out, 0, act);
}

// One 16-byte chunk of a TQ2_0 row's codes: byte m of a 32-byte group
// holds the codes of values m, 32+m, 64+m, 96+m at bits 1..0, 3..2, 5..4,
// 7..6 (llama.cpp's layout; I2_S's with the bit pairs reversed). Returns
// sum c * q over the chunk's 64 values (codes as stored, 0..3).
__device__ __forceinline__ int tq2_chunk(uint4 w, int4 q0, int4 q1, int4 q2, int4 q3) {
    int a16 = 0, a4 = 0, a1 = 0;
#define TQ2_WORD(wv, c)                                          \
    a1 = __dp4a((int)((wv) & 0x03030303u), q0.c, a1);            \
    a4 = __dp4a((int)((wv) & 0x0c0c0c0cu), q1.c, a4);            \
    a16 = __dp4a((int)((wv) & 0x30303030u), q2.c, a16);          \
    a16 = __dp4a((int)(((wv) >> 2) & 0x30303030u), q3.c, a16);
    TQ2_WORD(w.x, x)
    TQ2_WORD(w.y, y)
    TQ2_WORD(w.z, z)
    TQ2_WORD(w.w, w)
#undef TQ2_WORD
    return a16 / 16 + a4 / 4 + a1;
}

// The TQ2_0 x Q8_K GEMVs (core's vec_dot_tq2_0_q8_k): rows of K / 4 code
// bytes (the 64 code bytes of each 256-value block, repacked contiguous at
// upload) and wd[r * nb + b], the block scales as f32. Integer per block
// sumi = sum c q - sum q (exact, = sum (c - 1) q); then, in block order,
// sumf += (float)sumi * (d_q * d_w), as the CPU. Rows and lanes as
// i2s_gemv_body; the four lanes of a block add their chunks by shuffles.
// Then out as i2s_gemv_body (y = sumf * ps[r]). Needs K % 256 == 0.
template <int NM>
__device__ __forceinline__ void tq2_gemv_body(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ wd,
    const float* __restrict__ ps, const float* __restrict__ wd2, const float* __restrict__ ps2,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int mode, int act) {
    // Block sums of each row a warp holds: [warp][row slot][block].
    __shared__ int sums[4][NM * GEMV_RPW][32];
    const int lane = threadIdx.x & 31;
    const int wib = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int gw = blockIdx.x * warps + wib;
    const int stride = gridDim.x * warps * GEMV_RPW;
    const int nchunk = K >> 6;
    const int nb = K >> 8;
    const usize rb = (usize)(K >> 2);
    pdl_launch_next();
    gemv_prefetch<NM>(W, W2, gw * GEMV_RPW, rows, rb, lane);
    pdl_wait();
    for (int r0 = gw * GEMV_RPW; r0 < rows; r0 += stride) {
        for (int c0 = 0; c0 < nchunk; c0 += 32 * GEMV_UNROLL) {
            uint4 w[GEMV_UNROLL][NM * GEMV_RPW];
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; ++u) {
                const int c = c0 + lane + 32 * u;
#pragma unroll
                for (int j = 0; j < NM * GEMV_RPW; ++j) {
                    const int r = r0 + (j % GEMV_RPW);
                    const u8* base = (j < GEMV_RPW) ? W : W2;
                    if (c < nchunk && r < rows) {
                        w[u][j] = __ldg((const uint4*)(base + (usize)r * rb) + c);
                    } else {
                        w[u][j] = make_uint4(0u, 0u, 0u, 0u);
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < GEMV_UNROLL; ++u) {
                const int c = c0 + lane + 32 * u;
                int4 q0 = make_int4(0, 0, 0, 0), q1 = q0, q2 = q0, q3 = q0;
                if (c < nchunk) {
                    const u8* qb = q + (c >> 1) * QBLOCK_STRIDE + (c & 1) * 16;
                    q0 = __ldg((const int4*)(qb));
                    q1 = __ldg((const int4*)(qb + 32));
                    q2 = __ldg((const int4*)(qb + 64));
                    q3 = __ldg((const int4*)(qb + 96));
                }
#pragma unroll
                for (int j = 0; j < NM * GEMV_RPW; ++j) {
                    int v = tq2_chunk(w[u][j], q0, q1, q2, q3);
                    v += __shfl_xor_sync(0xffffffffu, v, 1);
                    v += __shfl_xor_sync(0xffffffffu, v, 2);
                    if ((lane & 3) == 0 && c < nchunk) sums[wib][j][c >> 2] = v;
                }
            }
        }
        __syncwarp();
        if (lane < NM * GEMV_RPW) {
            const int j = lane;
            const int r = r0 + (j % GEMV_RPW);
            const float* wdr = ((j < GEMV_RPW) ? wd : wd2) + (usize)r * nb;
            float y = 0.0f;
            if (r < rows) {
                float sumf = 0.0f;
                for (int b = 0; b < nb; ++b) {
                    const int sumi = sums[wib][j][b] - __ldg(meta + 3 + 2 * b);
                    const float d = __int_as_float(__ldg(meta + 2 + 2 * b)) * wdr[b];
                    sumf += (float)sumi * d;
                }
                y = sumf * ((j < GEMV_RPW) ? ps[r] : ps2[r]);
            }
            sums[wib][j][0] = __float_as_int(y);
        }
        __syncwarp();
        if (lane < GEMV_RPW) {
            const int r = r0 + lane;
            if (r < rows)
                gemv_store<NM>(out, r, __int_as_float(sums[wib][lane][0]),
                               __int_as_float(sums[wib][(NM - 1) * GEMV_RPW + lane][0]),
                               (mode == 1) ? out[r] : 0.0f, act, mode);
        }
        __syncwarp();
    }
}

// One TQ2_0 projection (mode 0: out = W x; mode 1: out += W x).
extern "C" __global__ void __launch_bounds__(128) tq2_gemv(
    const u8* __restrict__ W, const float* __restrict__ wd, const float* __restrict__ ps,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int mode) {
    tq2_gemv_body<1>(W, 0, wd, ps, 0, 0, q, meta, K, rows, out, mode, 0);
}

// TQ2_0 gate and up projections and the gated activation in one launch.
extern "C" __global__ void __launch_bounds__(128) tq2_gemv_glu(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ wd,
    const float* __restrict__ ps, const float* __restrict__ wd2, const float* __restrict__ ps2,
    const u8* __restrict__ q, const int* __restrict__ meta, int K, int rows,
    float* __restrict__ out, int act) {
    tq2_gemv_body<2>(W, W2, wd, ps, wd2, ps2, q, meta, K, rows, out, 0, act);
}

// The F32 GEMVs (core's dot_f32 up to the order of the f32 additions):
// rows of K floats (any K; 16-byte loads where K % 4 == 0), x the K input
// floats (normed by quantize_act fmt 2, or the raw attention / FFN output
// where the block has no sub-norm), written by an earlier kernel. Rows and
// warps as i2s_gemv_body (GEMV_RPW rows per warp); lane l sums elements
// (or float4s) l, l + 32, ... of each row in f32 in that order, then the
// warp sum. y = dot * ps[r] (the CPU's `out *= scale`); the outputs as
// i2s_gemv_rows: NM == 1 mode 0 out[r] = y, mode 1 out[r] += y; NM == 2
// out[r] = act(gate) * up (act 0 relu^2, 1 silu).
template <int NM>
__device__ __forceinline__ void f32_gemv_body(const float* __restrict__ W,
                                              const float* __restrict__ W2,
                                              const float* __restrict__ ps,
                                              const float* __restrict__ ps2,
                                              const float* __restrict__ x, int K, int rows,
                                              float* __restrict__ out, int mode, int act) {
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    const int gw = blockIdx.x * warps + (threadIdx.x >> 5);
    const int stride = gridDim.x * warps * GEMV_RPW;
    const usize rk = (usize)K;
    pdl_launch_next();
    pdl_wait();
    for (int r0 = gw * GEMV_RPW; r0 < rows; r0 += stride) {
        float a[NM * GEMV_RPW];
#pragma unroll
        for (int j = 0; j < NM * GEMV_RPW; ++j) a[j] = 0.0f;
        if ((K & 3) == 0) {
            const int n4 = K >> 2;
            for (int c = lane; c < n4; c += 32) {
                const float4 xv = __ldg((const float4*)x + c);
#pragma unroll
                for (int j = 0; j < NM * GEMV_RPW; ++j) {
                    const int r = r0 + (j % GEMV_RPW);
                    if (r < rows) {
                        const float* base = (j < GEMV_RPW) ? W : W2;
                        const float4 w = __ldg((const float4*)(base + (usize)r * rk) + c);
                        a[j] += w.x * xv.x;
                        a[j] += w.y * xv.y;
                        a[j] += w.z * xv.z;
                        a[j] += w.w * xv.w;
                    }
                }
            }
        } else {
            for (int i = lane; i < K; i += 32) {
                const float xv = __ldg(x + i);
#pragma unroll
                for (int j = 0; j < NM * GEMV_RPW; ++j) {
                    const int r = r0 + (j % GEMV_RPW);
                    if (r < rows) {
                        const float* base = (j < GEMV_RPW) ? W : W2;
                        a[j] += __ldg(base + (usize)r * rk + i) * xv;
                    }
                }
            }
        }
        float y[NM * GEMV_RPW];
#pragma unroll
        for (int j = 0; j < NM * GEMV_RPW; ++j) {
            const float d = warp_sum_f(a[j]);
            const int r = r0 + (j % GEMV_RPW);
            y[j] = (r < rows) ? d * ((j < GEMV_RPW) ? ps[r] : ps2[r]) : 0.0f;
        }
        if (lane == 0) {
#pragma unroll
            for (int j = 0; j < GEMV_RPW; ++j) {
                const int r = r0 + j;
                if (r < rows)
                    gemv_store<NM>(out, r, y[j], y[(NM - 1) * GEMV_RPW + j],
                                   (mode == 1) ? out[r] : 0.0f, act, mode);
            }
        }
    }
}

// One F32 projection (mode 0: out = W x; mode 1: out += W x).
extern "C" __global__ void __launch_bounds__(128) f32_gemv(
    const float* __restrict__ W, const float* __restrict__ ps, const float* __restrict__ x, int K,
    int rows, float* __restrict__ out, int mode) {
    f32_gemv_body<1>(W, 0, ps, 0, x, K, rows, out, mode, 0);
}

// F32 gate and up projections and the gated activation in one launch.
extern "C" __global__ void __launch_bounds__(128) f32_gemv_glu(
    const float* __restrict__ W, const float* __restrict__ W2, const float* __restrict__ ps,
    const float* __restrict__ ps2, const float* __restrict__ x, int K, int rows,
    float* __restrict__ out, int act) {
    f32_gemv_body<2>(W, W2, ps, ps2, x, K, rows, out, 0, act);
}

// Softmax (core's `softmax`) and values (core's `weigh_values`) of head
// h's output elements i0..i0+ni, once the head's scores are in ps
// (attention_body: written by a kernel before this one, or, with cnt != 0,
// by blocks of this launch that then count their slices in *cnt: this
// function waits for all ns = ceil(n_seen / ATT_CHUNK) of them after it
// has issued the first value tile's loads, which need no score). Every
// value item of a head forms the softmax itself from the scores, so no
// block waits for another's softmax:
//   m = max_t score_t (order-free: a zero's sign cannot change score - m's
//     exponential), e_t = expf_cpu(score_t - m),
//   sum = sum_t e_t in f64 in position order (the block's tree sum where
//     it decides inv, else sequential: see sum_window),
//   inv = (float)(1 / sum), p_t = e_t inv (e_t formed again per tile by
//     the same function: the same bits),
//   out_i = sum_t p_t v_ti in f32 over t in order from 0 (separate
//     multiply and add), one thread per element, so any split of the
// elements over blocks gives the CPU's bits. In tiles of T = min(ATT_VTILE
// / tw, ATT_TMAX) positions (tw >= ni, the same for every item): the block
// stores tile j's p_t and value rows (ni floats each) to shared memory,
// issues tile j + 1's loads into registers, then threads i < ni add tile j's
// products. The current position's value row comes from q|k|v (its cache
// store may be in flight in another block); everything written in this
// launch is read through L2. Needs ni % 4 == 0, i0 % 4 == 0, ni <= NTHR.
// sm: ATT_VTILE + T floats. stamp != 0 (a measuring build): thread 0
// writes the time at which the scores were in there.
template <int NTHR>
__device__ __noinline__ void attention_values(
    const float* __restrict__ qkv, const float* __restrict__ vc, const float* __restrict__ ps,
    float* __restrict__ att_out, int n_heads, int n_kv_heads, int hd, int h, int i0, int ni,
    int tw, int n_seen, int n_split, const int* cnt, usize* stamp, float* sm) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int nthr = NTHR;
    static_assert(ATT_TMAX / NTHR <= ATT_REG, "tile 0's scores come from the softmax registers");
    const int group = n_heads / n_kv_heads;
    const int g = h / group;
    const int q_dim = n_heads * hd, kv_dim = n_kv_heads * hd;
    const int pos = n_seen - 1;
    const float* vh = qkv + q_dim + kv_dim + g * hd + i0;
    const float* vb = vc + g * hd + i0;
    const float* psh = ps + (usize)h * n_split * ATT_CHUNK;
    float* vt = sm;
    const int T = min(ATT_VTILE / tw, ATT_TMAX);
    float* pt = vt + ATT_VTILE;
    const int q4 = ni >> 2;
    const int n_tiles = (n_seen + T - 1) / T;
    float4 rv[ATT_VTILE / 4 / NTHR];
    float rp[ATT_TMAX / NTHR];
#define ATT_VROW(t) (((t) == pos) ? vh : vb + (usize)(t) * kv_dim)
    // The loads of tile j into rv / rp (this thread's share: float4 f =
    // threadIdx.x + k nthr of the tile's rows, score u = threadIdx.x + k
    // nthr).
#define ATT_LOAD_V(j)                                                                     \
    {                                                                                     \
        const int ta = (j) * T, nt = min(T, n_seen - ta);                                 \
        _Pragma("unroll") for (int k = 0; k < ATT_VTILE / 4 / NTHR; ++k) {                \
            const int f = threadIdx.x + k * nthr;                                         \
            if (f < nt * q4) {                                                            \
                const int t = ta + f / q4;                                                \
                rv[k] = __ldcg((const float4*)ATT_VROW(t) + f % q4);                      \
            }                                                                             \
        }                                                                                 \
    }
#define ATT_STORE_V(j)                                                                    \
    {                                                                                     \
        const int nt = min(T, n_seen - (j) * T);                                          \
        _Pragma("unroll") for (int k = 0; k < ATT_VTILE / 4 / NTHR; ++k) {                \
            const int f = threadIdx.x + k * nthr;                                         \
            if (f < nt * q4) ((float4*)vt)[f] = rv[k];                                    \
        }                                                                                 \
    }
#define ATT_LOAD_P(j)                                                                     \
    {                                                                                     \
        const int ta = (j) * T, nt = min(T, n_seen - ta);                                 \
        _Pragma("unroll") for (int k = 0; k < ATT_TMAX / NTHR; ++k) {                     \
            const int u = threadIdx.x + k * nthr;                                         \
            if (u < nt) rp[k] = __ldcg(psh + ta + u);                                     \
        }                                                                                 \
    }
    // The caller's earlier use of sm before the first tile.
    __syncthreads();
    // Tile 0's values go to shared memory while thread 0 waits for the
    // head's scores (its own loads have long arrived by then).
    ATT_LOAD_V(0);
    if (cnt != 0 && threadIdx.x == 0) {
        const u32 ns = (u32)((n_seen + ATT_CHUNK - 1) / ATT_CHUNK);
        while (load_acq((const u32*)cnt) < ns) {
        }
    }
    ATT_STORE_V(0);
    __syncthreads();
    if (stamp != 0 && threadIdx.x == 0) *stamp = globaltimer();
    // The softmax's sums: position t = threadIdx.x + k nthr in r[k] where
    // they all fit.
    const bool in_regs = n_seen <= ATT_REG * nthr;
    float r[ATT_REG];
    float lmax = __int_as_float(0xff800000);
#pragma unroll
    for (int k = 0; k < ATT_REG; ++k) {
        const int t = threadIdx.x + k * nthr;
        r[k] = (in_regs && t < n_seen) ? __ldcg(psh + t) : 0.0f;
        if (in_regs && t < n_seen) lmax = fmaxf(lmax, r[k]);
    }
    if (!in_regs)
        for (int t = threadIdx.x; t < n_seen; t += nthr) lmax = fmaxf(lmax, __ldcg(psh + t));
    const float mx = block_max_f(lmax, shf);
    double ls = 0.0;
    if (in_regs) {
#pragma unroll
        for (int k = 0; k < ATT_REG; ++k) {
            const int t = threadIdx.x + k * nthr;
            if (t < n_seen) ls += (double)expf_cpu(__fsub_rn(r[k], mx));
        }
    } else {
        for (int t = threadIdx.x; t < n_seen; t += nthr)
            ls += (double)expf_cpu(__fsub_rn(__ldcg(psh + t), mx));
    }
    const double tree = block_sum_d(ls, shd);
    double lo, hi;
    sum_window(tree, n_seen, lo, hi);
    float inv = (float)(1.0 / lo);
    if (!isfinite(tree)) {
        inv = (float)(1.0 / tree);
    } else if (inv != (float)(1.0 / hi)) {
        inv = (float)(1.0 / seq_sum_cpu(psh, n_seen, SEQ_EXP, mx, shd));
    }
    // Tile 0's scores: the same positions as r[k] (k < ATT_TMAX / NTHR).
    if (in_regs) {
#pragma unroll
        for (int k = 0; k < ATT_TMAX / NTHR; ++k) rp[k] = r[k];
    } else {
        ATT_LOAD_P(0);
    }
    float o = 0.0f;
    for (int j = 0; j < n_tiles; ++j) {
        const int nt = min(T, n_seen - j * T);
        if (j > 0) {
            // Every thread is done with tile j - 1.
            __syncthreads();
            ATT_STORE_V(j);
        }
#pragma unroll
        for (int k = 0; k < ATT_TMAX / NTHR; ++k) {
            const int u = threadIdx.x + k * nthr;
            if (u < nt) pt[u] = __fmul_rn(expf_cpu(__fsub_rn(rp[k], mx)), inv);
        }
        __syncthreads();
        if (j + 1 < n_tiles) {
            ATT_LOAD_V(j + 1);
            ATT_LOAD_P(j + 1);
        }
        if ((int)threadIdx.x < ni) {
            const int i = threadIdx.x;
            int u = 0;
            for (; u + 8 <= nt; u += 8) {
                float pp[8], vv[8];
#pragma unroll
                for (int w = 0; w < 8; ++w) {
                    pp[w] = pt[u + w];
                    vv[w] = vt[(u + w) * ni + i];
                }
#pragma unroll
                for (int w = 0; w < 8; ++w) o = __fadd_rn(o, __fmul_rn(pp[w], vv[w]));
            }
            for (; u < nt; ++u) o = __fadd_rn(o, __fmul_rn(pt[u], vt[u * ni + i]));
        }
    }
#undef ATT_LOAD_P
#undef ATT_STORE_V
#undef ATT_LOAD_V
#undef ATT_VROW
    if ((int)threadIdx.x < ni) att_out[h * hd + i0 + threadIdx.x] = o;
}

// RoPE on the current position's q and k (from the fused qkv buffer), the
// KV-cache store, and the scores of one work item (head h, slice sp of
// ATT_CHUNK positions), with core's operations in core's order
// (model/attention.rs, math.rs), so they are the CPU's bit for bit:
//   score_t = (sum_d q_d k_td, in f32 over d in order from 0) * attn_scale,
//     one thread per position of the slice, to ps[h][t];
// the softmax and the value sums are attention_values' (every value item
// of the head forms the softmax itself). cnt != 0 (the persistent kernel):
// the block then adds 1 to *cnt, ordered after its scores (whoever waits
// on it resets it after a grid barrier); else the next launch reads them.
// Blocks past the last position return at once. kc / vc: this layer's
// cache, [n_ctx][kv_dim]; ps: [n_heads][n_split * ATT_CHUNK] floats. q|k|v
// is read through L2 (a persistent kernel's other blocks wrote it). Needs
// hd % 4 == 0 and blockDim.x == NTHR, a multiple of ATT_CHUNK (ATT_CHUNK,
// 2 or 4 x it). sm: 3 hd floats of shared memory. Not inlined: inlined
// into decode_persistent, its registers pushed that kernel (128 at 2
// blocks/SM) into a 48-byte stack frame (resource_report.py).
template <int NTHR>
__device__ __noinline__ void attention_body(
    const float* __restrict__ qkv, float* __restrict__ kc, float* __restrict__ vc,
    const float* __restrict__ rope_cos, const float* __restrict__ rope_sin, int pos,
    float* __restrict__ ps, int n_heads, int n_kv_heads, int hd, int n_rot, int neox,
    float attn_scale, int h, int sp, int n_split, int* cnt, float* sm) {
    const int n_seen = pos + 1;
    const int t0 = sp * ATT_CHUNK;
    if (t0 >= n_seen) return;
    const int t1 = min(n_seen, t0 + ATT_CHUNK);
    float* qsh = sm;
    float* ksh = sm + hd;
    float* vsh = sm + 2 * hd;
    const int group = n_heads / n_kv_heads;
    const int g = h / group;
    const int q_dim = n_heads * hd, kv_dim = n_kv_heads * hd;
    const float* qh = qkv + h * hd;
    const float* kh = qkv + q_dim + g * hd;
    const float* vh = qkv + q_dim + kv_dim + g * hd;
    const int half = n_rot / 2;
    const float* cs = rope_cos + (usize)pos * half;
    const float* sn = rope_sin + (usize)pos * half;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) {
        float qv = __ldcg(qh + i), kv = __ldcg(kh + i);
        if (i < n_rot) {
            if (neox) {
                const int j = (i < half) ? i : i - half;
                const float q0 = __ldcg(qh + j), q1 = __ldcg(qh + j + half);
                const float k0 = __ldcg(kh + j), k1 = __ldcg(kh + j + half);
                if (i < half) {
                    qv = q0 * cs[j] - q1 * sn[j];
                    kv = k0 * cs[j] - k1 * sn[j];
                } else {
                    qv = q0 * sn[j] + q1 * cs[j];
                    kv = k0 * sn[j] + k1 * cs[j];
                }
            } else {
                const int j = i >> 1;
                const float q0 = __ldcg(qh + 2 * j), q1 = __ldcg(qh + 2 * j + 1);
                const float k0 = __ldcg(kh + 2 * j), k1 = __ldcg(kh + 2 * j + 1);
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
        vsh[i] = __ldcg(vh + i);
    }
    __syncthreads();
    if (sp == 0 && h % group == 0) {
        for (int i = threadIdx.x; i < hd; i += blockDim.x) {
            kc[(usize)pos * kv_dim + g * hd + i] = ksh[i];
            vc[(usize)pos * kv_dim + g * hd + i] = vsh[i];
        }
    }
    float* psh = ps + (usize)h * n_split * ATT_CHUNK;
    // The current position comes from shared memory: another block may be
    // writing it to the cache right now.
#define ATT_ROW(base, sh, t) (((t) == pos) ? (const float*)(sh) : (base) + (usize)(t) * kv_dim + g * hd)
    // Scores: the TPP = NTHR / ATT_CHUNK threads j TPP .. j TPP + TPP - 1
    // (neighbouring lanes) take position t0 + j. Per round of 4 ATT_KVEC
    // float4s of the key row, each thread loads its KV of them (a row of
    // hd <= 128 is in flight at once: one memory round trip, where one
    // thread per position took four); then the threads add their products
    // in turn, passing the sum on by a shuffle, so it runs over d in order
    // from 0 (the same operations in the same order as one thread's loop).
    {
        constexpr int TPP = NTHR / ATT_CHUNK;
        constexpr int KV = ATT_KVEC * 4 / TPP;
        static_assert(NTHR % ATT_CHUNK == 0 && TPP <= 32 && (TPP & (TPP - 1)) == 0,
                      "threads per position: a power of two dividing a warp");
        const int sub = threadIdx.x % TPP;
        const int lead = (threadIdx.x & 31) & ~(TPP - 1);
        const int t = t0 + (int)threadIdx.x / TPP;
        const bool live = t < t1;
        const float* kr = ATT_ROW(kc, ksh, live ? t : pos);
        const int hd4 = hd >> 2;
        float acc = 0.0f;
        for (int f0 = 0; f0 < hd4; f0 += TPP * KV) {
            const int fs = f0 + sub * KV;
            float4 kv[KV];
#pragma unroll
            for (int u = 0; u < KV; ++u)
                kv[u] = (live && fs + u < hd4) ? *((const float4*)kr + fs + u)
                                               : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            // Not unrolled: one copy of the chain's code.
#pragma unroll 1
            for (int s2 = 0; s2 < TPP; ++s2) {
                if (sub == s2) {
#pragma unroll
                    for (int u = 0; u < KV; ++u) {
                        if (fs + u < hd4) {
                            const float4 qv = *((const float4*)qsh + fs + u);
                            acc = __fadd_rn(acc, __fmul_rn(qv.x, kv[u].x));
                            acc = __fadd_rn(acc, __fmul_rn(qv.y, kv[u].y));
                            acc = __fadd_rn(acc, __fmul_rn(qv.z, kv[u].z));
                            acc = __fadd_rn(acc, __fmul_rn(qv.w, kv[u].w));
                        }
                    }
                }
                if (TPP > 1) acc = __shfl_sync(0xffffffffu, acc, lead + s2);
            }
        }
        if (live && sub == 0) psh[t] = __fmul_rn(acc, attn_scale);
    }
    // Publish the scores: count this slice.
    if (cnt != 0) {
        __syncthreads();
        if (threadIdx.x == 0) atomic_add_rel((u32*)cnt, 1u);
    }
#undef ATT_ROW
}

extern "C" __global__ void __launch_bounds__(128) attention_rope(
    const float* __restrict__ qkv, float* __restrict__ kc, float* __restrict__ vc,
    const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
    const int* __restrict__ params, float* __restrict__ ps, int n_heads, int n_kv_heads, int hd,
    int n_rot, int neox, float attn_scale) {
    extern __shared__ __align__(16) float att_sm[];
    pdl_launch_next();
    pdl_wait();
    attention_body<128>(qkv, kc, vc, rope_cos, rope_sin, params[1], ps, n_heads, n_kv_heads, hd,
                        n_rot, neox, attn_scale, blockIdx.x, blockIdx.y, gridDim.y, 0, att_sm);
}

// The per-kernel step's softmax and value sums (after attention_rope,
// whose scores it reads): block (h, y) takes head h's elements y ATT_VGROUP .. +
// ATT_VGROUP (attention_values). 128 threads; shared memory ATT_VTILE +
// min(ATT_VTILE / min(ATT_VGROUP, hd), ATT_TMAX) floats.
extern "C" __global__ void __launch_bounds__(128) attention_values_k(
    const float* __restrict__ qkv, const float* __restrict__ vc,
    const int* __restrict__ params, const float* __restrict__ ps, float* __restrict__ att_out,
    int n_heads, int n_kv_heads, int hd, int n_split) {
    extern __shared__ __align__(16) float att_sm[];
    pdl_launch_next();
    pdl_wait();
    const int i0 = blockIdx.y * ATT_VGROUP;
    attention_values<128>(qkv, vc, ps, att_out, n_heads, n_kv_heads, hd, blockIdx.x, i0,
                          min(ATT_VGROUP, hd - i0), min(ATT_VGROUP, hd), params[1] + 1, n_split,
                          0, 0, att_sm);
}

// ---------------------------------------------------------------------
// The persistent decode step: one cooperative launch runs every layer,
// grid-wide barriers in place of kernel boundaries (I2_S projections).
// ---------------------------------------------------------------------

// Threads of a persistent block (8 warps).
#define PB_THREADS 256
// Matrices ahead a block pulls to L2 (0: none; the host may set it), at
// the end of each GEMV phase: each warp, after its own rows and before the
// barrier, pulls its rows of the matrix PF_AHEAD on, so the memory works
// through the barrier, the next phase's quantization and attention.
// Issued at the start of a phase instead, the prefetch measured slower
// than none on the H100 (it queues in front of that phase's own loads).
#ifndef PF_AHEAD
#define PF_AHEAD 1
#endif

// Grid-wide barrier of a cooperative launch (every block resident), the
// scheme of cooperative_groups' grid sync: one counter; block 0 adds
// 0x80000000 - (blocks - 1), every other block 1, so each barrier flips
// the top bit exactly once and leaves the low bits as they were (zero:
// the counter starts zeroed and every launch passes whole barriers, so a
// replayed graph needs no reset). A block waits until the top bit differs
// from the value its own add returned. The release add and the acquire
// polls (atomic_add_rel, load_acq) order every block's writes before the
// barrier against every read after it (reads of data written in this
// launch go through L2: __ldcg). One atomic round trip per block, no reset
// and no separate generation word.
// PHASE_TIMES (a measuring build; the host sets it): thread 0 of every
// block stamps %globaltimer (ns) at its arrival and its exit of every
// barrier, slot k = barrier k + 1 (slot 0: the kernel's start, as an exit;
// the last slot: its end, as an arrival), at times[(k * blocks + block) *
// 3 + {0: arrival, 1: exit}]; blocks with rows of a GEMV phase also stamp
// the end of their quantization there, at + 2 of the slot of the barrier
// that ends the phase.
#ifndef PHASE_TIMES
#define PHASE_TIMES 0
#endif

__device__ __forceinline__ void phase_stamp(usize* times, int slot, int which) {
    if (PHASE_TIMES && times != 0 && threadIdx.x == 0)
        times[((usize)slot * gridDim.x + blockIdx.x) * 3 + which] = globaltimer();
}

__device__ __forceinline__ void grid_barrier(u32* bar, usize* times, int& slot) {
    __syncthreads();
    if (threadIdx.x == 0) {
        phase_stamp(times, slot, 0);
        const u32 nb = (blockIdx.x == 0) ? 0x80000000u - (gridDim.x - 1) : 1u;
        const u32 old = atomic_add_rel(bar, nb);
        while (((old ^ load_acq(bar)) & 0x80000000u) == 0) {
        }
        phase_stamp(times, slot, 1);
    }
    ++slot;
    __syncthreads();
}

// Pulls `bytes` (a multiple of 16, 16-byte aligned) of constant weights at
// p into L2 without waiting (sm_90: one bulk prefetch; before: 128-byte
// lines).
__device__ __forceinline__ void prefetch_l2_bulk(const void* p, u32 bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
    for (u32 o = 0; o < bytes; o += 128) prefetch_l2((const u8*)p + o);
#endif
}

// This warp's rows of one matrix (the rows i2s_gemv_rows will give it) to
// L2: lane l takes the warp's l-th group of fr rows.
__device__ __forceinline__ void prefetch_rows(const u8* W, int rows, int K, int fr, int gw,
                                              int nwt) {
    const int lane = threadIdx.x & 31;
    const usize rb = (usize)(K >> 2);
    const int stride = nwt * fr;
    for (int r0 = gw * fr + lane * stride; r0 < rows; r0 += 32 * stride) {
        const int n = min(fr, rows - r0);
        prefetch_l2_bulk(W + (usize)r0 * rb, (u32)(n * rb));
    }
}

// Rows per matrix of a persistent GEMV warp's row group: PB_FR in the
// single-matrix phases, PB_FR_GLU in gate|up (4 gives each of 1728 warps
// one group of 6912 x 2 matrices, where 2 leaves 1344 of the 2112 warps
// two groups one after the other, but measured slower on the H100: see
// docs/perf.md). Even; the host may set them.
#ifndef PB_FR
#define PB_FR 2
#endif
#ifndef PB_FR_GLU
#define PB_FR_GLU 2
#endif

// The persistent kernel's I2_S GEMV rows: the operations and outputs of
// i2s_gemv_rows (the integer dot of a row is exact however it is split),
// with another split. Warp gw takes the row groups r0 = FR gw + k FR nwt:
// rows r0 .. r0 + FR - 1 of each of NM matrices, as NM FR / 2 pairs of
// neighbouring rows; lanes 0..15 take each pair's first row, 16..31 its
// second, lane l the 16-byte chunks (l & 15) + 16 u of its rows, U16 per
// row in flight at once (a row of 2560 is 40 chunks: 3 rounds of 16 lanes
// with 8 idle slots, where 32 lanes x 2 left 24), then the half-warp sums.
// qs: the block's quantized input (shared memory), s its scale. Each lane
// also sums the q of its chunks (one dp4a per 4), so the half-warp's sum
// of (dot - sum q) over its lanes is the row's dot minus the sum of all q
// (the I2_S codes are w + 1): no block reduction of q before the GEMV.
template <int NM, int FR, int U16>
__device__ __forceinline__ void pair_gemv(
    const u8* __restrict__ W, const u8* __restrict__ W2, const float* __restrict__ ws,
    const float* __restrict__ ps, const float* __restrict__ ws2, const float* __restrict__ ps2,
    const u8* __restrict__ qs, float s, int K, int rows, float* __restrict__ out, int mode,
    int act, int gw, int nwt) {
    constexpr int HP = FR / 2;   // pairs per matrix
    constexpr int NP = NM * HP;  // pairs per group
    static_assert(FR % 2 == 0, "rows per group: even");
    const int lane = threadIdx.x & 31, half = lane >> 4, hl = lane & 15;
    const int nchunk = K >> 6;
    const usize rb = (usize)(K >> 2);
    for (int r0 = gw * FR; r0 < rows; r0 += nwt * FR) {
        int a16[NP], a4[NP], a1[NP], sq = 0;
        // The row scales (and, mode 1, the old outputs: only this warp
        // writes its rows), loaded with the first weights by the lanes
        // that finish the rows.
        float sw[NP], sp[NP], old[HP];
#pragma unroll
        for (int p = 0; p < NP; ++p) {
            a16[p] = 0;
            a4[p] = 0;
            a1[p] = 0;
            const int r = r0 + 2 * (p % HP) + half;
            const bool mine = hl == 0 && r < rows;
            sw[p] = mine ? ((p < HP) ? ws[r] : ws2[r]) : 0.0f;
            sp[p] = mine ? ((p < HP) ? ps[r] : ps2[r]) : 0.0f;
            if (p < HP) old[p] = (NM == 1 && mode == 1 && mine) ? __ldcg(out + r) : 0.0f;
        }
        for (int c0 = 0; c0 < nchunk; c0 += 16 * U16) {
            uint4 w[U16][NP];
#pragma unroll
            for (int u = 0; u < U16; ++u) {
                const int c = c0 + hl + 16 * u;
#pragma unroll
                for (int p = 0; p < NP; ++p) {
                    const int r = r0 + 2 * (p % HP) + half;
                    const u8* base = (p < HP) ? W : W2;
                    w[u][p] = (c < nchunk && r < rows)
                                  ? __ldg((const uint4*)(base + (usize)r * rb) + c)
                                  : make_uint4(0u, 0u, 0u, 0u);
                }
            }
#pragma unroll
            for (int u = 0; u < U16; ++u) {
                const int c = c0 + hl + 16 * u;
                if (c < nchunk) {
                    const u8* qb = qs + (c >> 1) * QBLOCK_STRIDE + (c & 1) * 16;
                    const int4 q0 = *(const int4*)qb;
                    const int4 q1 = *(const int4*)(qb + 32);
                    const int4 q2 = *(const int4*)(qb + 64);
                    const int4 q3 = *(const int4*)(qb + 96);
                    sq = sum_q_chunk(q0, q1, q2, q3, sq);
#pragma unroll
                    for (int p = 0; p < NP; ++p)
                        i2s_chunk(w[u][p], q0, q1, q2, q3, a16[p], a4[p], a1[p]);
                }
            }
        }
        float y[NP];
#pragma unroll
        for (int p = 0; p < NP; ++p) {
            // a16 is 16 x an integer, a4 is 4 x an integer: the divisions
            // are exact. The sum over the half-warp.
            int v = a16[p] / 16 + a4[p] / 4 + a1[p] - sq;
            for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            float t = ((float)v / s) * sw[p];
            y[p] = t * sp[p];
        }
        if (hl == 0) {
#pragma unroll
            for (int p = 0; p < HP; ++p) {
                const int r = r0 + 2 * p + half;
                if (r < rows) gemv_store<NM>(out, r, y[p], y[(NM - 1) * HP + p], old[p], act, mode);
            }
        }
    }
}

// float4s of the block input per thread: K <= PB_THREADS * 4 * BQ_VEC.
#define BQ_VEC 8

// One block's own RMSNorm (nw != 0) + I2_S int8 quantization of x (K
// floats written earlier in this launch: read through L2), the operations
// of quantize_act (fmt 0) in a block of PB_THREADS: f32 squares summed in
// f64 (the CPU's mean: rms_mean_cpu), scale in f32, v = (x * nscale) * nw; s = 127 / max|v|
// (f64, at least 1e-5), q = rint(v * s) clamped. Every block runs the same
// code on the same input, so all get the same bits. All loads of x and nw
// are issued at once (one L2 round trip, not one per element); the values
// stay in registers. qs: the padded layout in shared memory. Returns s
// (pair_gemv sums the q itself). Needs K % 4 == 0 and K <= PB_THREADS * 4
// * NV (NV float4s per thread; no more than K needs: the unrolled code for
// unused ones would still be fetched and issued). shd / shf: 32 of each in
// shared memory.
template <int NV>
__device__ __forceinline__ float block_quant_i2s_v(const float* x, const float* __restrict__ nw,
                                                   float eps, int K, u8* qs, double* shd,
                                                   float* shf) {
    const int n4 = K >> 2;
    float4 v[NV], g[NV];
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        const int f = threadIdx.x + j * PB_THREADS;
        const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        v[j] = (f < n4) ? __ldcg((const float4*)x + f) : z;
        g[j] = (nw != 0 && f < n4) ? __ldg((const float4*)nw + f) : z;
    }
    float nscale = 1.0f;
    if (nw != 0) {
        // Padding is zero: adds nothing. Four chains of additions (any
        // order of them is a tree sum for rms_mean_cpu's window).
        double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma unroll
        for (int j = 0; j < NV; ++j) {
            a0 += (double)(v[j].x * v[j].x);
            a1 += (double)(v[j].y * v[j].y);
            a2 += (double)(v[j].z * v[j].z);
            a3 += (double)(v[j].w * v[j].w);
        }
        const float mean = rms_mean_cpu(block_sum_d((a0 + a1) + (a2 + a3), shd), x, K, shd);
        nscale = 1.0f / sqrtf(mean + eps);
#pragma unroll
        for (int j = 0; j < NV; ++j) {
            v[j].x = v[j].x * nscale * g[j].x;
            v[j].y = v[j].y * nscale * g[j].y;
            v[j].z = v[j].z * nscale * g[j].z;
            v[j].w = v[j].w * nscale * g[j].w;
        }
    }
    float m0 = 0.0f, m1 = 0.0f, m2 = 0.0f, m3 = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        m0 = fmaxf(m0, fabsf(v[j].x));
        m1 = fmaxf(m1, fabsf(v[j].y));
        m2 = fmaxf(m2, fabsf(v[j].z));
        m3 = fmaxf(m3, fabsf(v[j].w));
    }
    float m = block_max_f(fmaxf(fmaxf(m0, m1), fmaxf(m2, m3)), shf);
    m = fmaxf(1e-5f, m);
    const float s = (float)(127.0 / (double)m);
#pragma unroll
    for (int j = 0; j < NV; ++j) {
        const int f = threadIdx.x + j * PB_THREADS;
        if (f < n4) {
            const float e[4] = {v[j].x, v[j].y, v[j].z, v[j].w};
            u32 packed = 0;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const float r = rintf(e[c] * s);
                const int qi = (r != r) ? 0 : (int)fminf(fmaxf(r, -128.0f), 127.0f);
                packed |= (u32)(u8)(i8)qi << (8 * c);
            }
            const int i = 4 * f;
            *(u32*)(qs + (i >> 7) * QBLOCK_STRIDE + (i & 127)) = packed;
        }
    }
    // Publishes qs to the whole block.
    __syncthreads();
    return s;
}

// The persistent kernel's per-phase functions are called, not inlined
// (PB_NOINLINE 1): one copy of their code serves the four GEMV phases of
// every layer and stays in the instruction cache; inlined, each phase's
// straight-line copy is fetched anew per layer. The host may set it.
#ifndef PB_NOINLINE
#define PB_NOINLINE 1
#endif
#if PB_NOINLINE
#define PB_CALL __noinline__
#else
#define PB_CALL __forceinline__
#endif

// block_quant_i2s_v with BQ_VEC float4s per thread, or (QUANT_NARROW, where
// called, not inlined) 3 for inputs of up to 3072 (the 2B model's 2560).
// A third width (7 for 6912) measured no faster: its code is fetched too.
#ifndef QUANT_NARROW
#define QUANT_NARROW 1
#endif
__device__ PB_CALL float block_quant_i2s(const float* x, const float* __restrict__ nw,
                                            float eps, int K, u8* qs) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    if (QUANT_NARROW && PB_NOINLINE && K <= PB_THREADS * 4 * 3)
        return block_quant_i2s_v<3>(x, nw, eps, K, qs, shd, shf);
    return block_quant_i2s_v<BQ_VEC>(x, nw, eps, K, qs, shd, shf);
}

// A single-matrix GEMV phase of the persistent kernel (pair_gemv on the
// block's quantized input; a 2560 row in one round of 3 chunks per lane,
// a 6912 row in one of 7).
__device__ PB_CALL void persist_gemv(const u8* __restrict__ W, const float* __restrict__ ws,
                                     const float* __restrict__ ps, const u8* __restrict__ qs,
                                     float s, int K, int rows, float* __restrict__ out,
                                     int mode, int gw, int nwt) {
    if (K <= 64 * 16 * 3) {
        pair_gemv<1, PB_FR, 3>(W, 0, ws, ps, 0, 0, qs, s, K, rows, out, mode, 0, gw, nwt);
    } else {
        pair_gemv<1, PB_FR, 7>(W, 0, ws, ps, 0, 0, qs, s, K, rows, out, mode, 0, gw, nwt);
    }
}

// Per-layer device pointers of the persistent kernel, as the host lays
// them out: PL_STRIDE 64-bit words per layer.
#define PL_QKV_W 0
#define PL_QKV_WS 1
#define PL_QKV_PS 2
#define PL_O_W 3
#define PL_O_WS 4
#define PL_O_PS 5
#define PL_GATE_W 6
#define PL_GATE_WS 7
#define PL_GATE_PS 8
#define PL_UP_W 9
#define PL_UP_WS 10
#define PL_UP_PS 11
#define PL_DOWN_W 12
#define PL_DOWN_WS 13
#define PL_DOWN_PS 14
#define PL_ATTN_NORM 15
#define PL_ATTN_SUB_NORM 16
#define PL_FFN_NORM 17
#define PL_FFN_SUB_NORM 18
#define PL_KC 19
#define PL_VC 20
#define PL_STRIDE 24

// Shapes and scalars of the persistent kernel (one struct parameter).
struct DecodeDims {
    int n_layers, dim, q_dim, kv_dim, hidden, n_heads, n_kv_heads, hd, n_rot, neox, act, n_split;
    float eps, attn_scale;
    // 1: stop after layer 0's q|k|v (the exactness check); 0: whole step.
    int stop;
};

// The weight matrix with index m of the step (4 per layer: q|k|v, o,
// gate|up, down) to L2: this warp's rows.
__device__ __forceinline__ void prefetch_matrix(const usize* __restrict__ lp, const DecodeDims& d,
                                                int m, int gw, int nwt) {
    if (m >= 4 * d.n_layers) return;
    const usize* L = lp + (usize)(m >> 2) * PL_STRIDE;
    switch (m & 3) {
        case 0:
            prefetch_rows((const u8*)L[PL_QKV_W], d.q_dim + 2 * d.kv_dim, d.dim, PB_FR, gw, nwt);
            break;
        case 1:
            prefetch_rows((const u8*)L[PL_O_W], d.dim, d.q_dim, PB_FR, gw, nwt);
            break;
        case 2:
            prefetch_rows((const u8*)L[PL_GATE_W], d.hidden, d.dim, PB_FR_GLU, gw, nwt);
            prefetch_rows((const u8*)L[PL_UP_W], d.hidden, d.dim, PB_FR_GLU, gw, nwt);
            break;
        default:
            prefetch_rows((const u8*)L[PL_DOWN_W], d.dim, d.hidden, PB_FR, gw, nwt);
            break;
    }
}

// Whether the persistent kernel also pulls the small tensors of a GEMV
// phase to L2 ahead of it (PF_SMALL 1; the host may set it): the norm
// weights its quantization reads and the row scales its GEMV reads. Each
// is read once a step, so the step's weight stream (1.2 GB through a 50 MB
// L2) has evicted it by then, and its load would wait on HBM at the start
// of the phase's chain.
#ifndef PF_SMALL
#define PF_SMALL 1
#endif

// The norm weights (warp 0, one bulk prefetch) and row scales (each warp:
// the scale lines of the rows it will compute, 32 rows a line) of the
// GEMV phase of matrix m (as prefetch_matrix) to L2.
__device__ __forceinline__ void prefetch_small(const usize* __restrict__ lp, const DecodeDims& d,
                                               int m, int gw, int nwt) {
    if (m >= 4 * d.n_layers) return;
    const usize* L = lp + (usize)(m >> 2) * PL_STRIDE;
    const int lane = threadIdx.x & 31;
    int norm, k, rows, fr, ns;
    int sc[4] = {PL_QKV_WS, PL_QKV_PS, 0, 0};
    switch (m & 3) {
        case 0:
            norm = PL_ATTN_NORM, k = d.dim, rows = d.q_dim + 2 * d.kv_dim, fr = PB_FR, ns = 2;
            break;
        case 1:
            norm = PL_ATTN_SUB_NORM, k = d.q_dim, rows = d.dim, fr = PB_FR, ns = 2;
            sc[0] = PL_O_WS, sc[1] = PL_O_PS;
            break;
        case 2:
            norm = PL_FFN_NORM, k = d.dim, rows = d.hidden, fr = PB_FR_GLU, ns = 4;
            sc[0] = PL_GATE_WS, sc[1] = PL_GATE_PS, sc[2] = PL_UP_WS, sc[3] = PL_UP_PS;
            break;
        default:
            norm = PL_FFN_SUB_NORM, k = d.hidden, rows = d.dim, fr = PB_FR, ns = 2;
            sc[0] = PL_DOWN_WS, sc[1] = PL_DOWN_PS;
            break;
    }
    if (gw == 0 && lane == 0 && L[norm] != 0) prefetch_l2_bulk((const void*)L[norm], (u32)(k * 4));
    if (lane < 2 * ns) {
        const float* a = (const float*)L[sc[lane >> 1]];
        // Lane pairs: the first and the last row of each 32-row run (the
        // run may straddle two lines).
        const int off = (lane & 1) ? 31 : 0;
        for (int r0 = gw * fr; r0 < rows; r0 += nwt * fr)
            if ((r0 & 31) == 0) prefetch_l2(a + min(r0 + off, rows - 1));
    }
}

// The whole decode step after the embedding, for I2_S projections: per
// layer five phases separated by grid barriers (no other launch):
//   A  every block: RMSNorm + quantize x itself; q|k|v rows -> qkv
//   B  attention_body work items (head, slice of 64 positions: scores),
//      then attention_values items (head, ATT_VGROUP elements: softmax
//      and values) -> att
//   C  every block: sub-norm + quantize att; o rows, added to x
//   D  every block: norm + quantize x; gate|up rows, act(gate) * up -> hb
//   E  every block: sub-norm + quantize hb; down rows, added to x
// Rows go to warps in groups (pair_gemv: PB_FR, PB_FR_GLU per warp, striding
// over all warps of the grid); the end of matrix m's phase pulls matrix
// m + PF_AHEAD to L2 (bulk prefetch), so the weight stream runs on over
// barriers, quantization and attention. The float parts are the
// per-kernel path's functions (the CPU's bits); nothing depends on timing.
// lp: n_layers x PL_STRIDE pointers. params[1]: the position. times: see
// PHASE_TIMES (unused without it). Block 0 also
// writes layer 0's quantized q|k|v input to qact / qmeta (the layout and
// meta of quantize_act) for the exactness check. bar: two zeroed words.
// done: n_heads zeroed ints (attention's slice counts; left zeroed).
// Dynamic shared memory: attention_body's or attention_values' floats
// (the larger),
// then, at qs_offset, max K / 128 * QBLOCK_STRIDE bytes (the block's
// quantized input).
extern "C" __global__ void __launch_bounds__(PB_THREADS, 2) decode_persistent(
    const usize* __restrict__ lp, DecodeDims d, float* x, float* qkv, float* att, float* hb,
    const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
    const int* __restrict__ params, float* ps, int* done, u32* bar,
    u8* __restrict__ qact, int* __restrict__ qmeta, int qs_offset, usize* times) {
    extern __shared__ __align__(16) float psm[];
    int slot = 0;
    phase_stamp(times, slot++, 1);
    u8* qs = (u8*)psm + qs_offset;
    const int warps = PB_THREADS / 32;
    const int gw = blockIdx.x * warps + (threadIdx.x >> 5);
    const int nwt = gridDim.x * warps;
    const int pos = params[1];
    const int qkv_rows = d.q_dim + 2 * d.kv_dim;
    const int n_items = d.n_heads * ((pos + ATT_CHUNK) / ATT_CHUNK);
    const int ns = (pos + ATT_CHUNK) / ATT_CHUNK;
    const int ng = (d.hd + ATT_VGROUP - 1) / ATT_VGROUP;
    const int n_vitems = d.n_heads * ng;
    // Matrix 0 is loaded right away, so only the next ones.
    for (int m = 1; m < PF_AHEAD; ++m) prefetch_matrix(lp, d, m, gw, nwt);
    if (PF_SMALL) prefetch_small(lp, d, 1, gw, nwt);
    // The prefetch at the end of matrix m's phase (the small tensors two
    // phases ahead).
#define PF_PHASE(m)                                                  \
    if (PF_SMALL) prefetch_small(lp, d, (m) + 2, gw, nwt);           \
    if (PF_AHEAD > 0) prefetch_matrix(lp, d, (m) + PF_AHEAD, gw, nwt)
    float qscale;
    // Whether this block has rows of a matrix of `rows` rows (blocks
    // without any skip the quantization too; block-uniform).
#define HAS_ROWS(rows, fr) (blockIdx.x * warps * (fr) < (rows))
    for (int l = 0; l < d.n_layers; ++l) {
        const usize* L = lp + (usize)l * PL_STRIDE;
        // A: q|k|v.
        if (HAS_ROWS(qkv_rows, PB_FR)) {
            qscale = block_quant_i2s(x, (const float*)L[PL_ATTN_NORM], d.eps, d.dim, qs);
            phase_stamp(times, slot, 2);
            if (l == 0 && blockIdx.x == 0) {
                __shared__ int shi[32];
                int sq = 0;
                for (int i = threadIdx.x; i < (d.dim >> 7) * QBLOCK_STRIDE; i += PB_THREADS) {
                    qact[i] = qs[i];
                    if ((i % QBLOCK_STRIDE) < 128) sq += (i8)qs[i];
                }
                sq = block_sum_i(sq, shi);
                if (threadIdx.x == 0) {
                    qmeta[0] = __float_as_int(qscale);
                    qmeta[1] = sq;
                }
            }
            persist_gemv((const u8*)L[PL_QKV_W], (const float*)L[PL_QKV_WS],
                         (const float*)L[PL_QKV_PS], qs, qscale, d.dim, qkv_rows, qkv, 0, gw, nwt);
        }
        if (d.stop) return;
        PF_PHASE(4 * l);
        grid_barrier(bar, times, slot);
        // B: attention. Items 0..n_items: scores, each slice counted in
        // done[head]; then n_heads x ng value items (head, ATT_VGROUP
        // elements), each waiting for its head's ns slices. A block takes
        // items it = blockIdx.x + k gridDim.x in order, so it finishes all
        // its score items before it waits on any count: every count
        // completes (no deadlock: all blocks are resident).
        for (int it = blockIdx.x; it < n_items + n_vitems; it += gridDim.x) {
            __syncthreads();
            if (it < n_items) {
                attention_body<PB_THREADS>(qkv, (float*)L[PL_KC], (float*)L[PL_VC], rope_cos,
                                           rope_sin, pos, ps, d.n_heads, d.n_kv_heads, d.hd,
                                           d.n_rot, d.neox, d.attn_scale, it / ns, it % ns,
                                           d.n_split, done + it / ns, psm);
            } else {
                const int j = it - n_items, h = j / ng, i0 = (j % ng) * ATT_VGROUP;
                attention_values<PB_THREADS>(qkv, (const float*)L[PL_VC], ps, att, d.n_heads,
                                             d.n_kv_heads, d.hd, h, i0,
                                             min(ATT_VGROUP, d.hd - i0),
                                             min(ATT_VGROUP, d.hd), pos + 1, d.n_split,
                                             done + h,
                                             PHASE_TIMES ? times + ((usize)slot * gridDim.x +
                                                                    blockIdx.x) * 3 + 2
                                                         : 0,
                                             psm);
            }
        }
        grid_barrier(bar, times, slot);
        // Every value item has seen its count: clear them for the next
        // layer (barriers apart from its phase B).
        if (blockIdx.x == 0)
            for (int i = threadIdx.x; i < d.n_heads; i += PB_THREADS) done[i] = 0;
        // C: o, added to the residual.
        if (HAS_ROWS(d.dim, PB_FR)) {
            qscale = block_quant_i2s(att, (const float*)L[PL_ATTN_SUB_NORM], d.eps, d.q_dim, qs);
            phase_stamp(times, slot, 2);
            persist_gemv((const u8*)L[PL_O_W], (const float*)L[PL_O_WS],
                         (const float*)L[PL_O_PS], qs, qscale, d.q_dim, d.dim, x, 1, gw, nwt);
        }
        PF_PHASE(4 * l + 1);
        grid_barrier(bar, times, slot);
        // D: gate|up and the activation.
        if (HAS_ROWS(d.hidden, PB_FR_GLU)) {
            qscale = block_quant_i2s(x, (const float*)L[PL_FFN_NORM], d.eps, d.dim, qs);
            phase_stamp(times, slot, 2);
            pair_gemv<2, PB_FR_GLU, 3>((const u8*)L[PL_GATE_W], (const u8*)L[PL_UP_W],
                                       (const float*)L[PL_GATE_WS], (const float*)L[PL_GATE_PS],
                                       (const float*)L[PL_UP_WS], (const float*)L[PL_UP_PS], qs,
                                       qscale, d.dim, d.hidden, hb, 0, d.act, gw, nwt);
        }
        PF_PHASE(4 * l + 2);
        grid_barrier(bar, times, slot);
        // E: down, added to the residual.
        if (HAS_ROWS(d.dim, PB_FR)) {
            qscale = block_quant_i2s(hb, (const float*)L[PL_FFN_SUB_NORM], d.eps, d.hidden, qs);
            phase_stamp(times, slot, 2);
            persist_gemv((const u8*)L[PL_DOWN_W], (const float*)L[PL_DOWN_WS],
                         (const float*)L[PL_DOWN_PS], qs, qscale, d.hidden, d.dim, x, 1, gw, nwt);
        }
        PF_PHASE(4 * l + 3);
        if (l + 1 < d.n_layers) grid_barrier(bar, times, slot);
    }
    if (PHASE_TIMES) {
        __syncthreads();
        phase_stamp(times, slot, 0);
    }
#undef PF_PHASE
#undef HAS_ROWS
}

// The least one dependency of the persistent step can cost (the suite's
// `floor`): `rounds` rounds of what a GEMV phase does before any weight or
// quantization arithmetic. Each round every block writes its share of n
// floats, all meet at a grid barrier, then every block reads the whole
// vector through L2 and sums it in one block reduction. Rounds alternate
// between two vectors at vec (2 n floats): a block writes one only after
// the barrier that every reader of its previous round has passed. Thread 0
// of block 0 stamps %globaltimer before the first round and after a last
// barrier (times[0], times[1], ns); out[block] keeps each block's last sum.
// Launched cooperatively on (at most) the persistent step's grid; bar:
// two zeroed words (left at a zero count).
extern "C" __global__ void __launch_bounds__(PB_THREADS, 2) sync_floor(
    float* vec, int n, int rounds, u32* bar, float* out, usize* times) {
    __shared__ double shd[32];
    int slot = 0;
    if (blockIdx.x == 0 && threadIdx.x == 0) times[0] = globaltimer();
    const int per = (n + gridDim.x - 1) / gridDim.x;
    double s = 0.0;
    for (int r = 0; r < rounds; ++r) {
        float* v = vec + (usize)(r & 1) * n;
        for (int i = threadIdx.x; i < per; i += PB_THREADS) {
            const int k = blockIdx.x * per + i;
            if (k < n) v[k] = (float)(r + k);
        }
        grid_barrier(bar, 0, slot);
        double a = 0.0;
        for (int i = 4 * threadIdx.x; i + 3 < n; i += 4 * PB_THREADS) {
            const float4 f = __ldcg((const float4*)(v + i));
            a += (double)f.x + (double)f.y + (double)f.z + (double)f.w;
        }
        s = block_sum_d(a, shd);
    }
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
    grid_barrier(bar, 0, slot);
    if (blockIdx.x == 0 && threadIdx.x == 0) times[1] = globaltimer();
}

// Tagged entries (flag_floor): a float and the tag of the round that wrote
// it in one aligned 64-bit word, value in bits 0..31, tag in 32..63. A
// 64-bit store is single-copy atomic, so a reader that sees the tag it
// waits for has the value written with it: the data is its own flag.
__device__ __forceinline__ void st_tagged(u64* p, float v, u32 tag) {
    const u64 e = (u64)__float_as_uint(v) | ((u64)tag << 32);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    asm volatile("st.relaxed.gpu.global.b64 [%0], %1;" ::"l"(p), "l"(e) : "memory");
#else
    *(volatile u64*)p = e;
#endif
}

__device__ __forceinline__ u64 ld_tagged(const u64* p) {
    u64 e;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
    asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];" : "=l"(e) : "l"(p) : "memory");
#else
    e = *(const volatile u64*)p;
#endif
    return e;
}

// Most entries per thread of flag_floor (n <= PB_THREADS * FLAG_MAX).
#define FLAG_MAX 28

// A dependency handed over by tagged entries instead of a barrier (the
// suite's `floor`): `rounds` rounds of: each block writes its share of an
// n-float vector (entries b, b + blocks, ...: every block has one, n >=
// blocks) as entries tagged tag0 + round, then every block waits for
// every entry of the round (each thread its own n / PB_THREADS, all loads
// issued at once, then each missing one polled again after a short sleep)
// and sums them in one block reduction. Rounds alternate between two
// vectors of n entries at vec: a block writes one again only after it has
// read the other round completely, which needs every block's share of it,
// written after that block read this one. A grid barrier before the
// first round and after the last frames the stamps (times[0], times[1],
// ns); out[block] keeps each block's last sum. Cooperative launch (blocks
// wait for each other); bar: two zeroed words; vec: 2 n entries whose tags
// differ from tag0 .. tag0 + rounds - 1.
extern "C" __global__ void __launch_bounds__(PB_THREADS, 2) flag_floor(
    u64* vec, int n, int rounds, u32 tag0, u32* bar, float* out, usize* times) {
    __shared__ double shd[32];
    int slot = 0;
    grid_barrier(bar, 0, slot);
    if (blockIdx.x == 0 && threadIdx.x == 0) times[0] = globaltimer();
    double s = 0.0;
    for (int r = 0; r < rounds; ++r) {
        u64* v = vec + (usize)(r & 1) * n;
        const u32 tag = tag0 + (u32)r;
        for (int k = blockIdx.x + threadIdx.x * gridDim.x; k < n; k += PB_THREADS * gridDim.x)
            st_tagged(v + k, (float)(r + k), tag);
        u64 e[FLAG_MAX];
#pragma unroll
        for (int j = 0; j < FLAG_MAX; ++j) {
            const int k = threadIdx.x + j * PB_THREADS;
            e[j] = (k < n) ? ld_tagged(v + k) : ((u64)tag << 32);
        }
        double a = 0.0;
#pragma unroll
        for (int j = 0; j < FLAG_MAX; ++j) {
            const int k = threadIdx.x + j * PB_THREADS;
            while ((u32)(e[j] >> 32) != tag) {
                __nanosleep(32);
                e[j] = ld_tagged(v + k);
            }
            a += (double)__uint_as_float((u32)e[j]);
        }
        s = block_sum_d(a, shd);
    }
    grid_barrier(bar, 0, slot);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
    if (blockIdx.x == 0 && threadIdx.x == 0) times[1] = globaltimer();
}

// One dependency inside a thread-block cluster (the suite's `cluster`;
// sm_90: the blocks of a cluster run on one GPC and reach each other's
// shared memory). `rounds` rounds of: each block writes its share (per
// floats, a multiple of 4) of an n-float vector into its own shared
// memory, a cluster barrier (release / acquire), then every block reads
// the whole vector from the cluster's shared memories and sums it in one
// block reduction. Rounds alternate between two buffers (a block writes
// one only after the barrier that every reader of its previous round has
// passed). A cluster barrier before the first round (every block started)
// and after the last (no block exits while others read its memory).
// Thread 0 of block 0 stamps %globaltimer around the rounds (times[0],
// times[1], ns); out[block] keeps each block's last sum. Dynamic shared
// memory: 2 per floats. Before sm_90 it traps (the host runs it only on
// cc >= 9.0).
__device__ __forceinline__ void cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::
                     : "memory");
#endif
}

extern "C" __global__ void __launch_bounds__(PB_THREADS) cluster_floor(int n, int per, int rounds,
                                                                      float* out, usize* times) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    extern __shared__ __align__(16) float csm[];
    __shared__ double shd[32];
    u32 rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    cluster_sync();
    if (blockIdx.x == 0 && threadIdx.x == 0) times[0] = globaltimer();
    double s = 0.0;
    for (int r = 0; r < rounds; ++r) {
        float* own = csm + (r & 1) * per;
        for (int i = threadIdx.x; i < per; i += PB_THREADS) own[i] = (float)(r + (int)rank * per + i);
        cluster_sync();
        const u32 base = (u32)__cvta_generic_to_shared(own);
        double a = 0.0;
        for (int k = 4 * threadIdx.x; k + 3 < n; k += 4 * PB_THREADS) {
            const u32 owner = (u32)(k / per), off = (u32)(k % per);
            u32 remote;
            asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
                         : "=r"(remote)
                         : "r"(base + 4 * off), "r"(owner));
            float f0, f1, f2, f3;
            asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
                         : "=f"(f0), "=f"(f1), "=f"(f2), "=f"(f3)
                         : "r"(remote)
                         : "memory");
            a += (double)f0 + (double)f1 + (double)f2 + (double)f3;
        }
        s = block_sum_d(a, shd);
    }
    cluster_sync();
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
    if (blockIdx.x == 0 && threadIdx.x == 0) times[1] = globaltimer();
#else
    __trap();
#endif
}

// Reads `passes` times this block's contiguous share of n16 16-byte words
// at src (the suite's `cluster`: what a few SMs can pull from L2 when the
// data is there); out[block] keeps an xor of what it read.
extern "C" __global__ void __launch_bounds__(1024) l2_read(const uint4* __restrict__ src,
                                                          usize n16, int passes, u32* out) {
    const usize per = (n16 + gridDim.x - 1) / gridDim.x;
    const usize lo = per * blockIdx.x, hi = min(n16, lo + per);
    u32 x = 0;
    for (int p = 0; p < passes; ++p) {
        for (usize i = lo + threadIdx.x; i < hi; i += 4 * blockDim.x) {
            uint4 v[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                const usize j = i + (usize)u * blockDim.x;
                v[u] = (j < hi) ? __ldcg(src + j) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < 4; ++u) x ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
        }
    }
    __shared__ u32 sx[32];
    for (int o = 16; o > 0; o >>= 1) x ^= __shfl_xor_sync(0xffffffffu, x, o);
    if ((threadIdx.x & 31) == 0) sx[threadIdx.x >> 5] = x;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w) x ^= sx[w];
        out[blockIdx.x] = x;
    }
}

// out[i] = expf_cpu(in[i]), out[n + i] = silu_mul_cpu(in[i], 1) (the
// suite's bit-for-bit check against core's exp_f32 and SiLU).
extern "C" __global__ void exp_cpu_sweep(const float* __restrict__ in, float* __restrict__ out,
                                         int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        out[i] = expf_cpu(in[i]);
        out[n + i] = silu_mul_cpu(in[i], 1.0f);
    }
}

// x = embedding row of the token in params[0]; F16 table.
extern "C" __global__ void embed_f16(const u16* __restrict__ emb, const int* __restrict__ params,
                                     float* __restrict__ x, int dim) {
    pdl_launch_next();
    pdl_wait();
    const usize t = (usize)params[0];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        x[i] = h2f(emb[t * dim + i]);
}

// x = embedding row of the token in params[0]; F32 table.
extern "C" __global__ void embed_f32(const float* __restrict__ emb, const int* __restrict__ params,
                                     float* __restrict__ x, int dim) {
    pdl_launch_next();
    pdl_wait();
    const usize t = (usize)params[0];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        x[i] = emb[t * dim + i];
}

// LM head: out = W (rows x K; F16, or F32 when F32) times rmsnorm(x)
// (f32 accumulation; the norm as rms_mean_cpu). Dynamic shared memory: K
// floats.
template <bool F32>
__device__ __forceinline__ void head_gemv_rmsnorm(const u8* __restrict__ W,
                                                  const float* __restrict__ x,
                                                  const float* __restrict__ nw, float eps, int K,
                                                  int rows, float* __restrict__ out) {
    extern __shared__ __align__(16) float xs[];
    __shared__ double shd[32];
    pdl_launch_next();
    pdl_wait();
    double acc = 0.0;
    for (int i = threadIdx.x; i < K; i += blockDim.x) {
        const float v = x[i];
        acc += (double)(v * v);
    }
    const float mean = rms_mean_cpu(block_sum_d(acc, shd), x, K, shd);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = threadIdx.x; i < K; i += blockDim.x) xs[i] = x[i] * scale * nw[i];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    // 16-byte chunks: 8 halves or 4 floats.
    const int per = F32 ? 4 : 8;
    const int nchunk = K / per;
    const usize row_bytes = (usize)K * (F32 ? 4 : 2);
    for (int r = blockIdx.x * nwarps + warp; r < rows; r += gridDim.x * nwarps) {
        const uint4* wr = (const uint4*)(W + (usize)r * row_bytes);
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
                    const float* xv = xs + c * per;
                    if (F32) {
                        a += __uint_as_float(w[u].x) * xv[0];
                        a += __uint_as_float(w[u].y) * xv[1];
                        a += __uint_as_float(w[u].z) * xv[2];
                        a += __uint_as_float(w[u].w) * xv[3];
                    } else {
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
        }
        a = warp_sum_f(a);
        if (lane == 0) out[r] = a;
    }
}

// Final RMSNorm + F16 LM head.
extern "C" __global__ void __launch_bounds__(256) f16_gemv_rmsnorm(
    const u8* __restrict__ W, const float* __restrict__ x, const float* __restrict__ nw,
    float eps, int K, int rows, float* __restrict__ out) {
    head_gemv_rmsnorm<false>(W, x, nw, eps, K, rows, out);
}

// Final RMSNorm + F32 LM head.
extern "C" __global__ void __launch_bounds__(256) f32_gemv_rmsnorm(
    const u8* __restrict__ W, const float* __restrict__ x, const float* __restrict__ nw,
    float eps, int K, int rows, float* __restrict__ out) {
    head_gemv_rmsnorm<true>(W, x, nw, eps, K, rows, out);
}

// Greedy next token: the first index of the largest logit (NaN skipped, as
// core's `argmax`). Writes it to params[0] and out_tokens[pos], and
// advances params[1] (the position) for the next step. One block.
extern "C" __global__ void __launch_bounds__(1024) argmax_next(const float* __restrict__ logits,
                                                               int n, int* params,
                                                               int* __restrict__ out_tokens) {
    __shared__ float sv[32];
    __shared__ int si[32];
    pdl_launch_next();
    pdl_wait();
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
