// The fp32 fused attention kernels on CUDA cores (device code only), included by attention.cu,
// with the pieces they share with the bf16 tensor-core kernels of kernels/attention_mma.cuh (AttnArgs, the
// score functions, load_tile, the dynamic shared memory). Kept apart from the host code so that
// tests/test_cuda_emulated.cpp can also compile them as plain C++ against a CPU emulation of the
// CUDA execution model (tests/cuda_emu.h) and check them where no GPU is present. The design is
// described at the top of attention.cu.
#pragma once
#include <cuda_bf16.h>
#ifndef SINKLAB_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/device_utils.cuh"
#include "model/attention_variant.h"

#ifdef SINKLAB_CUDA_EMU
#define SINKLAB_DYNAMIC_SMEM(name) unsigned char* name = ::emu::dynamic_smem()
#else
#define SINKLAB_DYNAMIC_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace sinklab::cuda::attn {

using bf16 = __nv_bfloat16;

// The attention variant's math (score bias, score function, normaliser, mask) comes from
// attention_variant.h, shared with the CPU reference; the kernels only decide where it applies.
struct AttnArgs {
    const float* qkv;    // (B, T, 3C)
    float* out;          // (B, T, C)        forward
    float* lse;          // (B, H, T)        forward writes, backward reads (saved)
    float* z;            // (B, H, T)        forward writes, backward reads (att_z)
    const float* dout;   // (B, T, C)        backward
    const float* delta;  // (B, H, T)        backward
    float* dqkv;         // (B, T, 3C)       backward (+=)
    int T, C, H, D;
    float scale;         // 1 / sqrt(D)
    AttentionSpec spec;
    const float* slot_s;  // (B, H, T)      forward: the key slot's score s_i* (null: no slot; attention_slot.cuh)
};

// The arguments every attention kernel shares, for qkv of shape (B, T, 3C) with H heads. The caller
// sets the buffers of its pass (out, lse, z; or dout, delta, dqkv) and has checked the shape.
inline AttnArgs attention_args(const float* qkv, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
    AttnArgs a{};
    a.qkv = qkv;
    a.T = int(Tn);
    a.C = int(C);
    a.H = int(H);
    a.D = int(C / H);
    a.scale = float(1.0 / std::sqrt(double(C / H)));
    a.spec = for_shape(spec, int(Tn), int(H));
    return a;
}

// DeviceMath (device_utils.cuh): exp and the reciprocal for attention_variant.h in the fp32 kernels.

// k* (or v*, or the sink logit) of head h: per head, or one row shared by all heads.
//   slot: (spec.slot_heads(H), width)
__device__ __forceinline__ const float* slot_row(const float* slot, const AttentionSpec& spec, int h, int width) {
    return slot + (spec.slot_shared ? 0 : size_t(h) * width);
}

// The running statistics of a row before its first key tile, in the units of the caller's m
// (`units`: 1, or log2(e) for the exp2-based tensor-core kernels): nothing (m = -inf, l = 0), or the
// slot's s_i*: softmax m = s*, l = exp(s* - m) = 1; otherwise l = sim(s*).
__device__ __forceinline__ void slot_row_start(const float* slot_s, const AttentionSpec& spec, size_t row, float units,
                                               float& m, float& l) {
    m = -INFINITY;
    l = 0.0f;
    if (!slot_s) return;
    const float s = slot_s[row];
    if (spec.is_softmax()) {
        m = s * units;
        l = 1.0f;
    } else {
        l = sim<DeviceMath>(spec.score, s);
    }
}

// fp32 -> the element type of a shared tile (float here, bf16 in attention_mma.cuh).
template <typename Tin>
__device__ __forceinline__ Tin to_in(float x) {
    if constexpr (std::is_same_v<Tin, bf16>)
        return __float2bfloat16(x);
    else
        return x;
}

constexpr size_t align128(size_t x) { return (x + 127) / 128 * 128; }

// Tile sizes and shared-memory layout of the fp32 kernels for one padded head dim. (The bf16
// tensor-core kernels have their own, MmaCfg in attention_mma.cuh.)
template <int Dp_>
struct Cfg {
    static constexpr int Dp = Dp_;
    static constexpr int NT = 128;        // threads per block (4 warps)
    static constexpr int Br = 32;         // query rows per tile
    static constexpr int Bc = Br;         // keys per tile (the causal walk assumes Br == Bc)
    static constexpr int TPR = NT / Br;   // threads per row in the forward's row pass
    // Row strides in floats, padded by one word, which keeps the column walks of tile_gemm free of
    // bank conflicts.
    static constexpr int kPad = 1;
    static constexpr int ldIn = Dp + kPad;  // Q, K, V, dO tiles (rows x Dp)
    static constexpr int ldS = Bc + kPad;   // score tiles S, dP (Br x Bc)
    static constexpr int ldP = Bc + kPad;   // weight tiles P, W, dS (Br x Bc)
    static constexpr int ldO = Dp + kPad;   // accumulators O, dQ, dK, dV (rows x Dp)
    static constexpr size_t kIn = align128(size_t(Br) * ldIn * sizeof(float));
    static constexpr size_t kS = align128(size_t(Br) * ldS * sizeof(float));
    static constexpr size_t kP = align128(size_t(Br) * ldP * sizeof(float));
    static constexpr size_t kO = align128(size_t(Br) * ldO * sizeof(float));
    static constexpr size_t kRow = align128(size_t(Br) * sizeof(float));
    // forward: Q K V | S | P | O | rowinv
    static constexpr size_t kForwardBytes = 3 * kIn + kS + kP + kO + kRow;
    // dK/dV: Q dO K V | S dP | W dS | dK dV | stat delta
    static constexpr size_t kBackwardKVBytes = 4 * kIn + 2 * kS + 2 * kP + 2 * kO + 2 * kRow;
    // dQ: Q dO K V | S dP | dS | dQ | stat delta
    static constexpr size_t kBackwardQBytes = 4 * kIn + 2 * kS + kP + kO + 2 * kRow;
    static_assert(Dp % 4 == 0 && NT % Br == 0 && TPR <= 32, "tile shape");
};

// C (M x N, row stride ldc) = or += A (M x K) . B (K x N), all fp32 in shared memory, by the whole
// block:  A(m, k) = kTransA ? A[k lda + m] : A[m lda + k];   B(k, n) = kTransB ? B[n ldb + k] : B[k ldb + n]
// One thread per output element, k in increasing order. Callers put a barrier before (inputs
// ready) and after.
template <int M, int N, int K, bool kTransA, bool kTransB, bool kAccumulate, int NT>
__device__ __forceinline__ void tile_gemm(float* C, int ldc, const float* A, int lda, const float* B, int ldb) {
    for (int e = int(threadIdx.x); e < M * N; e += NT) {
        const int m = e / N, n = e % N;
        float sum = kAccumulate ? C[m * ldc + n] : 0.0f;
#pragma unroll 8
        for (int k = 0; k < K; k++) {
            const float a = kTransA ? A[k * lda + m] : A[m * lda + k];
            const float b = kTransB ? B[n * ldb + k] : B[k * ldb + n];
            sum = fmaf(a, b, sum);
        }
        C[m * ldc + n] = sum;
    }
}

// Four values into a tile row: one 8-byte store for bf16 (the mma kernels' rows are 16-byte
// aligned and d is a multiple of 4), four single stores for fp32 (whose padded rows are not).
template <typename Tin>
__device__ __forceinline__ void store4(Tin* t, float4 x) {
    if constexpr (std::is_same_v<Tin, bf16>) {
        const __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y), hi = __floats2bfloat162_rn(x.z, x.w);
        uint2 packed;
        std::memcpy(&packed.x, &lo, sizeof(packed.x));
        std::memcpy(&packed.y, &hi, sizeof(packed.y));
        *reinterpret_cast<uint2*>(t) = packed;
    } else {
        t[0] = x.x;
        t[1] = x.y;
        t[2] = x.z;
        t[3] = x.w;
    }
}

// Rows [row0, row0 + R) of a (T, D) slice with row stride `stride` into a (R x Dp) shared tile,
// zero-filled beyond T and beyond D. 16-byte loads when the slice allows them (D and the stride
// multiples of 4 floats, a 16-byte aligned start), issued kBatch at a time before their stores so
// that several loads are in flight per thread; else one float per thread per step. Tin: float
// (the kernels below) or bf16 (kernels/attention_mma.cuh), the values rounded on the way in.
template <typename Tin, int R, int Dp, int NT>
__device__ __forceinline__ void load_tile(Tin* tile, int ld, const float* src, size_t stride, int row0, int T,
                                          int D) {
    const bool vec = D % 4 == 0 && stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0;
    if (vec) {  // uniform across the block
        constexpr int V = Dp / 4, kItems = R * V, kBatch = 4;
        for (int e0 = 0; e0 < kItems; e0 += kBatch * NT) {
            float4 x[kBatch];
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * NT + int(threadIdx.x), r = e / V, d = (e % V) * 4;
                x[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (e < kItems && row0 + r < T && d < D)
                    x[u] = *reinterpret_cast<const float4*>(src + size_t(row0 + r) * stride + d);
            }
#pragma unroll
            for (int u = 0; u < kBatch; u++) {
                const int e = e0 + u * NT + int(threadIdx.x), r = e / V, d = (e % V) * 4;
                if (e < kItems) store4<Tin>(tile + r * ld + d, x[u]);
            }
        }
    } else {
        for (int e = int(threadIdx.x); e < R * Dp; e += NT) {
            const int r = e / Dp, d = e % Dp;
            float x = 0.0f;
            if (row0 + r < T && d < D) x = src[size_t(row0 + r) * stride + d];
            tile[r * ld + d] = to_in<Tin>(x);
        }
    }
}

template <int N, int NT>
__device__ __forceinline__ void zero_acc(float* acc, int ld, int rows) {
    for (int e = int(threadIdx.x); e < rows * N; e += NT) acc[(e / N) * ld + e % N] = 0.0f;
}

// Sum / max over the TPR consecutive lanes that share a row (all lanes of the warp take part).
template <int TPR>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <int TPR>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
    for (int o = TPR / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// ------------------------------------------------------------------------------------------------
// Forward. grid (ceil(T / Br), B H), block NT. kRunningMax must equal a.spec.keeps_log_normaliser().
// Q, K, V, the scores S, the weights P and the output accumulator O all live in shared memory
// (fp32); a group of TPR threads per row applies the score function and, for softmax and softpick,
// keeps the running maximum and rescales the row of O.
template <int Dp, bool kRunningMax>
__global__ void __launch_bounds__(Cfg<Dp>::NT) attention_forward_kernel(AttnArgs a) {
    using K = Cfg<Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT, TPR = K::TPR;
    SINKLAB_DYNAMIC_SMEM(smem);
    float* Qs = reinterpret_cast<float*>(smem);
    float* Ks = reinterpret_cast<float*>(smem + K::kIn);
    float* Vs = reinterpret_cast<float*>(smem + 2 * K::kIn);
    float* S = reinterpret_cast<float*>(smem + 3 * K::kIn);
    float* P = reinterpret_cast<float*>(smem + 3 * K::kIn + K::kS);
    float* O = reinterpret_cast<float*>(smem + 3 * K::kIn + K::kS + K::kP);
    float* rowinv = reinterpret_cast<float*>(smem + 3 * K::kIn + K::kS + K::kP + K::kO);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * Br;  // the longest rows first
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* k_src = q_src + C;
    const float* v_src = q_src + 2 * size_t(C);

    load_tile<float, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
    zero_acc<Dp, NT>(O, K::ldO, Br);

    const int row = int(threadIdx.x) / TPR, part = int(threadIdx.x) % TPR;
    const int qi = q0 + row;
    float m, l;  // running maximum (softmax, softpick) and running sum, per row
    slot_row_start(qi < T ? a.slot_s : nullptr, a.spec, size_t(bh) * T + qi, 1.0f, m, l);
    if (a.spec.is_softpick()) m = 0.0f;  // softpick's m = max(max_j s_ij, 0) (no slot)
    // The key tiles that some row of this tile sees (attention_variant.h: the ranges are monotone).
    const int k_begin = keys_seen(a.spec, q0).begin / Bc * Bc;
    const int k_end = min(keys_seen(a.spec, min(q0 + Br, T) - 1).end, T);
    for (int k0 = k_begin; k0 < k_end; k0 += Bc) {
        __syncthreads();  // the previous tile's K, V and P are no longer read
        load_tile<float, Bc, Dp, NT>(Ks, K::ldIn, k_src, C3, k0, T, D);
        load_tile<float, Bc, Dp, NT>(Vs, K::ldIn, v_src, C3, k0, T, D);
        __syncthreads();
        tile_gemm<Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);  // S = Q K^T
        __syncthreads();
        float* srow = S + row * K::ldS;
        float* prow = P + row * K::ldP;
        float sum = 0.0f;
        if constexpr (kRunningMax) {
            float tile_max = -INFINITY;
            for (int j = part; j < Bc; j += TPR) {
                const bool valid = qi < T && key_visible(a.spec, qi, k0 + j);
                const float s = valid ? srow[j] * a.scale + score_bias<float>(a.spec, h, qi, k0 + j) : -INFINITY;
                srow[j] = s;
                tile_max = fmaxf(tile_max, s);
            }
            const float m_new = fmaxf(m, group_max<TPR>(tile_max));
            if (a.spec.is_softpick()) {  // p = relu(d), the sum of |d|, d = exp(s - m) - exp(-m)
                const float shift = expf(-m_new);
                for (int j = part; j < Bc; j += TPR) {
                    const float s = srow[j];
                    const float d = s == -INFINITY ? 0.0f : softpick_term<DeviceMath>(s, m_new, shift);
                    prow[j] = fmaxf(d, 0.0f);
                    sum += fabsf(d);
                }
            } else {
                for (int j = part; j < Bc; j += TPR) {
                    const float s = srow[j];
                    const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
                    prow[j] = p;
                    sum += p;
                }
            }
            sum = group_sum<TPR>(sum);
            const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
            l = l * alpha + sum;
            m = m_new;
            if (alpha != 1.0f)
                for (int d = part; d < Dp; d += TPR) O[row * K::ldO + d] *= alpha;
        } else {
            for (int j = part; j < Bc; j += TPR) {
                const bool valid = qi < T && key_visible(a.spec, qi, k0 + j);
                const float s = srow[j] * a.scale + score_bias<float>(a.spec, h, qi, k0 + j);
                const float g = valid ? sim<DeviceMath>(a.spec.score, s) : 0.0f;
                prow[j] = g;
                sum += g;
            }
            l += group_sum<TPR>(sum);
        }
        __syncthreads();
        tile_gemm<Br, Dp, Bc, false, false, true, NT>(O, K::ldO, P, K::ldP, Vs, K::ldIn);  // O += P V
    }
    // Statistics for the backward, and 1 / Z for the output.
    if (part == 0) {
        float inv = 1.0f;
        if (qi < T) {
            const size_t r = size_t(bh) * T + qi;
            if (a.spec.is_softpick()) {  // Z' = l + eps exp(-m); saved: log Z = m + log Z'
                const float zp = softpick_normaliser(l, expf(-m));
                a.lse[r] = m + logf(zp);
                a.z[r] = a.lse[r];
                inv = 1.0f / zp;
            } else if constexpr (kRunningMax) {
                const float zl = row_normaliser(a.spec, l);
                a.lse[r] = m + logf(zl);
                a.z[r] = 1.0f;
                inv = l > 0.0f ? 1.0f / zl : 0.0f;
            } else {
                const float zi = row_normaliser(a.spec, l);
                a.lse[r] = 0.0f;
                a.z[r] = zi;
                inv = 1.0f / normaliser_divisor(zi);
            }
        }
        rowinv[row] = inv;
    }
    __syncthreads();
    for (int e = int(threadIdx.x); e < Br * Dp; e += NT) {
        const int r = e / Dp, d = e % Dp;
        if (q0 + r < T && d < D) a.out[(size_t(b) * T + q0 + r) * C + size_t(h) * D + d] = O[r * K::ldO + d] * rowinv[r];
    }
}

// ------------------------------------------------------------------------------------------------
// Backward, shared part: S (scores q.k, unscaled) and dP (dO . v) of one (Br x Bc) tile -> the
// weights W (optional) and the score gradients dS (scaled by `scale`, ready for dQ and dK).
// stat: LSE_i (softmax), log Z_i (softpick) or 1 / Z_i (the other variants); delta: Delta_i.
template <int Dp, bool kWriteW>
__device__ __forceinline__ void scores_to_grads(const AttnArgs& a, const float* S, const float* dP, float* W,
                                                float* dS, const float* stat, const float* delta, int h, int q0,
                                                int k0) {
    using K = Cfg<Dp>;
    for (int e = int(threadIdx.x); e < K::Br * K::Bc; e += K::NT) {
        const int i = e / K::Bc, j = e % K::Bc;
        const int qi = q0 + i, kj = k0 + j;
        float w = 0.0f, ds = 0.0f;
        if (qi < a.T && key_visible(a.spec, qi, kj)) {
            const float s = S[i * K::ldS + j] * a.scale + score_bias<float>(a.spec, h, qi, kj);
            const float dp = dP[i * K::ldS + j];
            if (a.spec.is_softpick()) {  // e = exp(s - log Z_i), w = relu(e - exp(-log Z_i))
                const float ex = expf(s - stat[i]);
                w = fmaxf(ex - expf(-stat[i]), 0.0f);
                ds = softpick_score_grad(a.scale, dp, s, ex, delta[i]);
            } else {
                // softmax: w = exp(s - LSE_i); else g = sim(s), w = g (1 / Z_i)
                const float g = a.spec.is_softmax() ? expf(s - stat[i]) : sim<DeviceMath>(a.spec.score, s);
                const float inv_z = a.spec.is_softmax() ? 1.0f : stat[i];
                w = g * inv_z;
                ds = score_grad(a.spec, a.scale, dp, w, g, inv_z, delta[i]);
            }
        }
        if constexpr (kWriteW) W[i * K::ldP + j] = w;
        dS[i * K::ldP + j] = ds;
    }
}

// Per-row statistics of the query rows [q0, q0 + Br) into shared memory.
template <int Br, int NT>
__device__ __forceinline__ void load_row_stats(const AttnArgs& a, float* stat, float* delta, int bh, int q0) {
    for (int r = int(threadIdx.x); r < Br; r += NT) {
        const int qi = q0 + r;
        float st = 1.0f, dl = 0.0f;
        if (qi < a.T) {
            const size_t idx = size_t(bh) * a.T + qi;
            st = a.spec.keeps_log_normaliser() ? a.lse[idx] : 1.0f / normaliser_divisor(a.z[idx]);
            if (a.delta) dl = a.delta[idx];
        }
        stat[r] = st;
        delta[r] = dl;
    }
}

// dK and dV. grid (ceil(T / Bc), B H), block NT. The explicit minimum of 1 block per
// multiprocessor matters: without it ptxas (CUDA 13, sm_90) caps this kernel at 80 registers (64,
// with a spill, at Dp = 32) instead of the 106-112 it uses.
template <int Dp>
__global__ void __launch_bounds__(Cfg<Dp>::NT, 1) attention_backward_kv_kernel(AttnArgs a) {
    using K = Cfg<Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT;
    SINKLAB_DYNAMIC_SMEM(smem);
    unsigned char* p = smem;
    float* Qs = reinterpret_cast<float*>(p);  p += K::kIn;
    float* dOs = reinterpret_cast<float*>(p); p += K::kIn;
    float* Ks = reinterpret_cast<float*>(p);  p += K::kIn;
    float* Vs = reinterpret_cast<float*>(p);  p += K::kIn;
    float* S = reinterpret_cast<float*>(p);  p += K::kS;
    float* dP = reinterpret_cast<float*>(p); p += K::kS;
    float* W = reinterpret_cast<float*>(p);   p += K::kP;
    float* dS = reinterpret_cast<float*>(p);  p += K::kP;
    float* dK = reinterpret_cast<float*>(p);  p += K::kO;
    float* dV = reinterpret_cast<float*>(p);  p += K::kO;
    float* stat = reinterpret_cast<float*>(p); p += K::kRow;
    float* delta = reinterpret_cast<float*>(p);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int k0 = int(blockIdx.x) * Bc;
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;

    load_tile<float, Bc, Dp, NT>(Ks, K::ldIn, q_src + C, C3, k0, T, D);
    load_tile<float, Bc, Dp, NT>(Vs, K::ldIn, q_src + 2 * size_t(C), C3, k0, T, D);
    zero_acc<Dp, NT>(dK, K::ldO, Bc);
    zero_acc<Dp, NT>(dV, K::ldO, Bc);
    // The query tiles in which some row sees a key of this tile (the ranges are monotone).
    const int q_begin = queries_seeing(a.spec, k0, T).begin / Br * Br;
    const int q_end = min(queries_seeing(a.spec, min(k0 + Bc, T) - 1, T).end, T);
    for (int q0 = q_begin; q0 < q_end; q0 += Br) {
        __syncthreads();
        load_tile<float, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
        load_tile<float, Br, Dp, NT>(dOs, K::ldIn, do_src, size_t(C), q0, T, D);
        load_row_stats<Br, NT>(a, stat, delta, bh, q0);
        __syncthreads();
        tile_gemm<Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);    // S = Q K^T
        tile_gemm<Br, Bc, Dp, false, true, false, NT>(dP, K::ldS, dOs, K::ldIn, Vs, K::ldIn);  // dP = dO V^T
        __syncthreads();
        scores_to_grads<Dp, true>(a, S, dP, W, dS, stat, delta, h, q0, k0);
        __syncthreads();
        tile_gemm<Bc, Dp, Br, true, false, true, NT>(dV, K::ldO, W, K::ldP, dOs, K::ldIn);  // dV += W^T dO
        tile_gemm<Bc, Dp, Br, true, false, true, NT>(dK, K::ldO, dS, K::ldP, Qs, K::ldIn);  // dK += dS^T Q
    }
    __syncthreads();
    for (int e = int(threadIdx.x); e < Bc * Dp; e += NT) {
        const int j = e / Dp, d = e % Dp;
        if (k0 + j < T && d < D) {
            float* dst = a.dqkv + (size_t(b) * T + k0 + j) * C3 + size_t(h) * D + d;
            dst[C] += dK[j * K::ldO + d];
            dst[2 * size_t(C)] += dV[j * K::ldO + d];
        }
    }
}

// dQ. grid (ceil(T / Br), B H), block NT.
template <int Dp>
__global__ void __launch_bounds__(Cfg<Dp>::NT) attention_backward_q_kernel(AttnArgs a) {
    using K = Cfg<Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT;
    SINKLAB_DYNAMIC_SMEM(smem);
    unsigned char* p = smem;
    float* Qs = reinterpret_cast<float*>(p);  p += K::kIn;
    float* dOs = reinterpret_cast<float*>(p); p += K::kIn;
    float* Ks = reinterpret_cast<float*>(p);  p += K::kIn;
    float* Vs = reinterpret_cast<float*>(p);  p += K::kIn;
    float* S = reinterpret_cast<float*>(p);  p += K::kS;
    float* dP = reinterpret_cast<float*>(p); p += K::kS;
    float* dS = reinterpret_cast<float*>(p);  p += K::kP;
    float* dQ = reinterpret_cast<float*>(p);  p += K::kO;
    float* stat = reinterpret_cast<float*>(p); p += K::kRow;
    float* delta = reinterpret_cast<float*>(p);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * Br;
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;

    load_tile<float, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
    load_tile<float, Br, Dp, NT>(dOs, K::ldIn, do_src, size_t(C), q0, T, D);
    load_row_stats<Br, NT>(a, stat, delta, bh, q0);
    zero_acc<Dp, NT>(dQ, K::ldO, Br);
    const int k_begin = keys_seen(a.spec, q0).begin / Bc * Bc;
    const int k_end = min(keys_seen(a.spec, min(q0 + Br, T) - 1).end, T);
    for (int k0 = k_begin; k0 < k_end; k0 += Bc) {
        __syncthreads();
        load_tile<float, Bc, Dp, NT>(Ks, K::ldIn, q_src + C, C3, k0, T, D);
        load_tile<float, Bc, Dp, NT>(Vs, K::ldIn, q_src + 2 * size_t(C), C3, k0, T, D);
        __syncthreads();
        tile_gemm<Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);    // S = Q K^T
        tile_gemm<Br, Bc, Dp, false, true, false, NT>(dP, K::ldS, dOs, K::ldIn, Vs, K::ldIn);  // dP = dO V^T
        __syncthreads();
        scores_to_grads<Dp, false>(a, S, dP, nullptr, dS, stat, delta, h, q0, k0);
        __syncthreads();
        tile_gemm<Br, Dp, Bc, false, false, true, NT>(dQ, K::ldO, dS, K::ldP, Ks, K::ldIn);  // dQ += dS K
    }
    __syncthreads();
    for (int e = int(threadIdx.x); e < Br * Dp; e += NT) {
        const int r = e / Dp, d = e % Dp;
        if (q0 + r < T && d < D) a.dqkv[(size_t(b) * T + q0 + r) * C3 + size_t(h) * D + d] += dQ[r * K::ldO + d];
    }
}

// Delta_i = row_delta(dO_i . O_i, Z_i) per (b, h, i): one warp per row. z: the forward's att_z.
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, const float* z, int B,
                                       int T, int C, int H, int D, AttentionSpec spec) {
    const size_t w = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x) % 32;
    if (w >= size_t(B) * T * H) return;
    const size_t bt = w / H;
    const int h = int(w % H);
    const size_t b = bt / T, t = bt % T;
    const float* x = dout + bt * C + size_t(h) * D;
    const float* y = out + bt * C + size_t(h) * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += x[d] * y[d];
    s = warp_sum(s);
    const size_t row = (b * H + h) * T + t;
    if (lane == 0) delta[row] = row_delta(spec, s, z[row]);
}

// The materialising path for the sink analysis: one block per (row i, b h). att (B, H, T, T) gets
// the weights (exactly 0 for the keys i does not see), att_z (B, H, T) the normaliser (1 for softmax,
// log Z_i for softpick);
// with a key slot (slot_k (spec.slot_heads(H), D) or the sink logits, null for none or off-by-one)
// att_slot (B, H, T) its weights.
__global__ void attention_weights_kernel(float* att, float* att_z, float* att_slot, const float* qkv,
                                         const float* slot_k, int T, int C, int H, int D, float scale,
                                         AttentionSpec spec) {
    __shared__ float red[32];
    const int i = int(blockIdx.x), bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    float* w = att + (size_t(bh) * T + i) * T;
    const float* q = qkv + (size_t(b) * T + i) * C3 + size_t(h) * D;
    const IndexRange seen = keys_seen(spec, i);
    const bool slot = spec.has_key_slot();
    float slot_s = -INFINITY;  // the slot's score, computed by every thread
    if (slot) {
        const float* k = slot_k ? slot_row(slot_k, spec, h, spec.slot_score_width(D)) : nullptr;
        float dot = 0.0f;
        if (!spec.slot_is_logit())
            for (int d = 0; d < D; d++) dot += q[d] * k[d];
        slot_s = slot_score(spec, scale, dot, k);
    }
    float mx = slot_s;
    for (int j = int(threadIdx.x); j < T; j += int(blockDim.x)) {
        if (j >= seen.begin && j < seen.end) {
            const float* k = qkv + (size_t(b) * T + j) * C3 + C + size_t(h) * D;
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += q[d] * k[d];
            const float s = dot * scale + score_bias<float>(spec, h, i, j);
            w[j] = s;
            mx = fmaxf(mx, s);
        } else {
            w[j] = 0.0f;
        }
    }
    mx = block_max(mx, red);
    if (spec.is_softpick()) {  // m = max(max_j s_ij, 0); w = relu(d) / Z', d = exp(s - m) - exp(-m) (no slot)
        const float m = fmaxf(mx, 0.0f), shift = expf(-m);
        float abs_sum = 0.0f;
        for (int j = seen.begin + int(threadIdx.x); j < seen.end; j += int(blockDim.x)) {
            const float d = softpick_term<DeviceMath>(w[j], m, shift);
            w[j] = fmaxf(d, 0.0f);
            abs_sum += fabsf(d);
        }
        const float zp = softpick_normaliser(block_sum(abs_sum, red), shift);
        for (int j = seen.begin + int(threadIdx.x); j < seen.end; j += int(blockDim.x)) w[j] /= zp;
        if (threadIdx.x == 0) att_z[size_t(bh) * T + i] = m + logf(zp);
        return;
    }
    float slot_g = 0.0f;
    if (slot) slot_g = spec.is_softmax() ? expf(slot_s - mx) : sim<DeviceMath>(spec.score, slot_s);
    float sum = threadIdx.x == 0 ? slot_g : 0.0f;
    for (int j = seen.begin + int(threadIdx.x); j < seen.end; j += int(blockDim.x)) {
        const float g = spec.is_softmax() ? expf(w[j] - mx) : sim<DeviceMath>(spec.score, w[j]);
        w[j] = g;
        sum += g;
    }
    sum = block_sum(sum, red);
    const float z = row_normaliser(spec, sum);
    if (spec.is_normalised())
        for (int j = seen.begin + int(threadIdx.x); j < seen.end; j += int(blockDim.x)) w[j] /= normaliser_divisor(z);
    if (threadIdx.x == 0) att_z[size_t(bh) * T + i] = spec.is_softmax() ? 1.0f : z;
    if (slot && threadIdx.x == 0)
        att_slot[size_t(bh) * T + i] = spec.is_normalised() ? slot_g / normaliser_divisor(z) : slot_g;
}

}  // namespace sinklab::cuda::attn
