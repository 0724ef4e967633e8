// The fused attention kernels (device code only), included by attention.cu. Kept apart from the
// host code so that tests/test_cuda_emulated.cpp can also compile them as plain C++ against a CPU
// emulation of the CUDA execution model (tests/cuda_emu.h) and check them where no GPU is present.
// The design is described at the top of attention.cu.
#pragma once
#include <cuda_bf16.h>
#ifndef SINKLAB_CUDA_EMU
#include <cuda_runtime.h>
#include <mma.h>
#endif

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "device_utils.cuh"

#ifdef SINKLAB_CUDA_EMU
#define SINKLAB_DYNAMIC_SMEM(name) unsigned char* name = ::emu::dynamic_smem()
#else
#define SINKLAB_DYNAMIC_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace sinklab::cuda::attn {

using bf16 = __nv_bfloat16;

constexpr int kSoftmax = 0, kSigmoid = 1, kElu = 2;
constexpr float kNormEps = 1e-8f;  // kAttentionNormEps of ops.h

struct AttnArgs {
    const float* qkv;    // (B, T, 3C)
    float* out;          // (B, T, C)        forward
    float* lse;          // (B, H, T)        forward writes, backward reads (saved)
    float* z;            // (B, H, T)        forward writes, backward reads (att_z)
    const float* dout;   // (B, T, C)        backward
    const float* delta;  // (B, H, T)        backward
    float* dqkv;         // (B, T, 3C)       backward (+=)
    int T, C, H, D;
    float scale, bias;
    int score;
    bool normalize;
};

__device__ __forceinline__ float sim(int f, float s) {
    if (f == kSigmoid) return 1.0f / (1.0f + expf(-s));
    if (f == kElu) return s > 0.0f ? s + 1.0f : expf(s);
    return expf(s);
}
// Derivative written in terms of g = sim(s) (ops.h: attention_sim_grad).
__device__ __forceinline__ float sim_grad(int f, float g) {
    if (f == kSigmoid) return g * (1.0f - g);
    if (f == kElu) return g < 1.0f ? g : 1.0f;
    return g;
}

template <typename Tin>
__device__ __forceinline__ Tin to_in(float x) {
    if constexpr (std::is_same_v<Tin, bf16>)
        return __float2bfloat16(x);
    else
        return x;
}
template <typename Tin>
__device__ __forceinline__ float from_in(Tin x) {
    if constexpr (std::is_same_v<Tin, bf16>)
        return __bfloat162float(x);
    else
        return x;
}

constexpr size_t align128(size_t x) { return (x + 127) / 128 * 128; }

// Tile sizes and shared-memory layout for one (input type, padded head dim).
template <typename Tin, int Dp_>
struct Cfg {
    static constexpr bool kTensor = std::is_same_v<Tin, bf16>;
    static constexpr int Dp = Dp_;
    static constexpr int NT = kTensor ? 256 : 128;    // threads per block (8 or 4 warps)
    static constexpr int Br = kTensor ? 64 : 32;      // query rows per tile
    static constexpr int Bc = Br;                     // keys per tile (the causal walk assumes Br == Bc)
    static constexpr int TPR = NT / Br;               // threads per row in the forward's row pass
    // Row strides in elements. wmma needs 16-byte multiples and 32-byte aligned tiles; the CUDA-core
    // path pads by one word instead, which keeps its column walks free of bank conflicts.
    static constexpr int kPadIn = kTensor ? 8 : 1;
    static constexpr int kPadAcc = kTensor ? 4 : 1;
    static constexpr int ldIn = Dp + kPadIn;   // Q, K, V, dO tiles (rows x Dp), Tin
    static constexpr int ldS = Bc + kPadAcc;   // score tiles S, dP (Br x Bc), fp32
    static constexpr int ldP = Bc + kPadIn;    // weight tiles P, W, dS (Br x Bc), Tin
    static constexpr int ldO = Dp + kPadAcc;   // accumulators O, dQ, dK, dV (rows x Dp), fp32
    static constexpr size_t kIn = align128(size_t(Br) * ldIn * sizeof(Tin));
    static constexpr size_t kS = align128(size_t(Br) * ldS * sizeof(float));
    static constexpr size_t kP = align128(size_t(Br) * ldP * sizeof(Tin));
    static constexpr size_t kO = align128(size_t(Br) * ldO * sizeof(float));
    static constexpr size_t kRow = align128(size_t(Br) * sizeof(float));
    // forward: Q K V | S | P | O | rowinv
    static constexpr size_t kForwardBytes = 3 * kIn + kS + kP + kO + kRow;
    // dK/dV: Q dO K V | S dP | W dS | dK dV | stat delta. On the tensor-core path dK and dV stay in
    // registers and are staged at the end through the S dP and Q dO areas (free by then).
    static constexpr size_t kBackwardKVBytes = 4 * kIn + 2 * kS + 2 * kP + (kTensor ? 0 : 2 * kO) + 2 * kRow;
    static_assert(!kTensor || 2 * kIn >= size_t(Br) * ldO * sizeof(float), "dV staging fits in Q and dO");
    // Blocks per multiprocessor the dK/dV kernel asks the compiler for (__launch_bounds__). Two
    // would fit in the 228 KB of shared memory of an H100/H200 multiprocessor for Dp <= 96, but
    // cost register spills (ptxas: 108 bytes at Dp = 96); to be decided by measurement on the GPU.
    static constexpr int kKVMinBlocks = 1;
    // dQ: Q dO K V | S dP | dS | dQ | stat delta. On the tensor-core path dQ stays in registers and
    // is staged at the end through the S dP area (no longer read by then), which has room for it.
    static constexpr size_t kBackwardQBytes = 4 * kIn + 2 * kS + kP + (kTensor ? 0 : kO) + 2 * kRow;
    static_assert(!kTensor || 2 * kS >= size_t(Br) * ldO * sizeof(float), "dQ staging fits in S and dP");
    static_assert(Dp % 16 == 0 && Br % 16 == 0 && NT % Br == 0 && TPR <= 32, "tile shape");
};

// Register blocking of the wmma tile products: a TM x TN grid of 16x16 output tiles shared by NW
// warps, each warp taking blocks of bm x bn tiles with bm, bn in {1, 2} dividing TM, TN. Cost per
// k-step of the busiest warp, counting an mma and a fragment load from shared memory alike:
// rounds x (bm bn mmas + (bm + bn) loads).
constexpr int register_block_cost(int TM, int TN, int NW, int bm, int bn) {
    const int blocks = (TM / bm) * (TN / bn);
    return (blocks + NW - 1) / NW * (bm * bn + bm + bn);
}
constexpr int register_block_choice(int TM, int TN, int NW) {  // returns 2 * bm + bn (bm, bn in {1, 2})
    int best = 3, best_cost = register_block_cost(TM, TN, NW, 1, 1);
    for (int bm = 1; bm <= 2; bm++)
        for (int bn = 1; bn <= 2; bn++)
            if (TM % bm == 0 && TN % bn == 0) {
                const int cost = register_block_cost(TM, TN, NW, bm, bn);
                if (cost < best_cost) {
                    best_cost = cost;
                    best = 2 * bm + bn;
                }
            }
    return best;
}
constexpr int register_block_rows(int TM, int TN, int NW) { return (register_block_choice(TM, TN, NW) - 1) / 2; }
constexpr int register_block_cols(int TM, int TN, int NW) {
    return register_block_choice(TM, TN, NW) - 2 * register_block_rows(TM, TN, NW);
}
static_assert(register_block_rows(4, 4, 8) == 1 && register_block_cols(4, 4, 8) == 2, "S tile: 1 x 2 blocks");
static_assert(register_block_rows(4, 8, 8) == 2 && register_block_cols(4, 8, 8) == 2, "D=128: 2 x 2 blocks");
static_assert(register_block_rows(4, 6, 8) == 2 && register_block_cols(4, 6, 8) == 2, "D=96: 2 x 2 blocks");
static_assert(register_block_rows(4, 2, 8) == 1 && register_block_cols(4, 2, 8) == 1, "D=32: 1 x 1 blocks");
static_assert(register_block_rows(4, 1, 8) == 1 && register_block_cols(4, 1, 8) == 1, "D=16: 1 x 1 blocks");

// C (M x N, fp32, row stride ldc) = or += A (M x K) . B (K x N), all in shared memory, by the whole block.
//   A(m, k) = kTransA ? A[k lda + m] : A[m lda + k];   B(k, n) = kTransB ? B[n ldb + k] : B[k ldb + n]
// bf16: each warp takes blocks of 16x16 output tiles in turn (wmma, fp32 accumulation). fp32: one thread per
// output element, k in increasing order. Callers put a barrier before (inputs ready) and after.
template <typename Tin, int M, int N, int K, bool kTransA, bool kTransB, bool kAccumulate, int NT>
__device__ __forceinline__ void tile_gemm(float* C, int ldc, const Tin* A, int lda, const Tin* B, int ldb) {
    if constexpr (std::is_same_v<Tin, bf16>) {
        namespace wmma = nvcuda::wmma;
        using LayoutA = std::conditional_t<kTransA, wmma::col_major, wmma::row_major>;
        using LayoutB = std::conditional_t<kTransB, wmma::col_major, wmma::row_major>;
        static_assert(M % 16 == 0 && N % 16 == 0 && K % 16 == 0, "wmma tiles");
        constexpr int TM = M / 16, TN = N / 16, NW = NT / 32;
        // Each warp computes a block of BM x BN output tiles, reusing each A fragment BN times and
        // each B fragment BM times (fewer shared-memory reads per mma); the block shape minimises
        // the tiles of the busiest warp, then the fragment loads per mma.
        constexpr int BM = register_block_rows(TM, TN, NW), BN = register_block_cols(TM, TN, NW);
        constexpr int GN = TN / BN, blocks = (TM / BM) * GN;
        const int warp = int(threadIdx.x) / 32;
        for (int blk = warp; blk < blocks; blk += NW) {
            const int tm0 = (blk / GN) * BM, tn0 = (blk % GN) * BN;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[BM][BN];
#pragma unroll
            for (int i = 0; i < BM; i++)
#pragma unroll
                for (int j = 0; j < BN; j++) {
                    if constexpr (kAccumulate)
                        wmma::load_matrix_sync(acc[i][j], C + (tm0 + i) * 16 * ldc + (tn0 + j) * 16, unsigned(ldc),
                                               wmma::mem_row_major);
                    else
                        wmma::fill_fragment(acc[i][j], 0.0f);
                }
#pragma unroll
            for (int kk = 0; kk < K; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LayoutA> a[BM];
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LayoutB> b[BN];
#pragma unroll
                for (int i = 0; i < BM; i++) {
                    const int tm = tm0 + i;
                    wmma::load_matrix_sync(a[i], kTransA ? A + kk * lda + tm * 16 : A + tm * 16 * lda + kk,
                                           unsigned(lda));
                }
#pragma unroll
                for (int j = 0; j < BN; j++) {
                    const int tn = tn0 + j;
                    wmma::load_matrix_sync(b[j], kTransB ? B + tn * 16 * ldb + kk : B + kk * ldb + tn * 16,
                                           unsigned(ldb));
                }
#pragma unroll
                for (int i = 0; i < BM; i++)
#pragma unroll
                    for (int j = 0; j < BN; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
            }
#pragma unroll
            for (int i = 0; i < BM; i++)
#pragma unroll
                for (int j = 0; j < BN; j++)
                    wmma::store_matrix_sync(C + (tm0 + i) * 16 * ldc + (tn0 + j) * 16, acc[i][j], unsigned(ldc),
                                            wmma::mem_row_major);
        }
    } else {
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
}

// Accumulator tiles that stay in registers across a loop (bf16 / wmma path only):
//   C (M x N) += A (M x K) . B (K x N)   (A, B in shared memory, operands as in tile_gemm)
// called once per loop iteration; each warp owns the same blocks of output tiles every time, so no
// accumulator goes through shared memory until store(). Used where nothing rescales the
// accumulator (dK, dV, dQ). The fp32 path accumulates in shared memory with tile_gemm instead.
template <int M, int N, int K, bool kTransA, bool kTransB, int NT>
struct RegisterAccumulator {
    static constexpr int TM = M / 16, TN = N / 16, NW = NT / 32;
    static constexpr int BM = register_block_rows(TM, TN, NW), BN = register_block_cols(TM, TN, NW);
    static constexpr int GN = TN / BN, kBlocks = (TM / BM) * GN, kPerWarp = (kBlocks + NW - 1) / NW;
    static_assert(M % 16 == 0 && N % 16 == 0 && K % 16 == 0, "wmma tiles");
    nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc[kPerWarp][BM][BN];

    __device__ __forceinline__ void zero() {
#pragma unroll
        for (int q = 0; q < kPerWarp; q++)
#pragma unroll
            for (int i = 0; i < BM; i++)
#pragma unroll
                for (int j = 0; j < BN; j++) nvcuda::wmma::fill_fragment(acc[q][i][j], 0.0f);
    }

    __device__ __forceinline__ void add_product(const bf16* A, int lda, const bf16* B, int ldb) {
        namespace wmma = nvcuda::wmma;
        using LayoutA = std::conditional_t<kTransA, wmma::col_major, wmma::row_major>;
        using LayoutB = std::conditional_t<kTransB, wmma::col_major, wmma::row_major>;
        const int warp = int(threadIdx.x) / 32;
#pragma unroll
        for (int q = 0; q < kPerWarp; q++) {
            const int blk = warp + q * NW;
            if (blk >= kBlocks) break;  // uniform across the warp
            const int tm0 = (blk / GN) * BM, tn0 = (blk % GN) * BN;
#pragma unroll
            for (int kk = 0; kk < K; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LayoutA> a[BM];
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LayoutB> b[BN];
#pragma unroll
                for (int i = 0; i < BM; i++) {
                    const int tm = tm0 + i;
                    wmma::load_matrix_sync(a[i], kTransA ? A + kk * lda + tm * 16 : A + tm * 16 * lda + kk,
                                           unsigned(lda));
                }
#pragma unroll
                for (int j = 0; j < BN; j++) {
                    const int tn = tn0 + j;
                    wmma::load_matrix_sync(b[j], kTransB ? B + tn * 16 * ldb + kk : B + kk * ldb + tn * 16,
                                           unsigned(ldb));
                }
#pragma unroll
                for (int i = 0; i < BM; i++)
#pragma unroll
                    for (int j = 0; j < BN; j++) wmma::mma_sync(acc[q][i][j], a[i], b[j], acc[q][i][j]);
            }
        }
    }

    // C (M x N, fp32, row stride ldc) = the accumulated tiles.
    __device__ __forceinline__ void store(float* C, int ldc) {
        const int warp = int(threadIdx.x) / 32;
#pragma unroll
        for (int q = 0; q < kPerWarp; q++) {
            const int blk = warp + q * NW;
            if (blk >= kBlocks) break;
            const int tm0 = (blk / GN) * BM, tn0 = (blk % GN) * BN;
#pragma unroll
            for (int i = 0; i < BM; i++)
#pragma unroll
                for (int j = 0; j < BN; j++)
                    nvcuda::wmma::store_matrix_sync(C + (tm0 + i) * 16 * ldc + (tn0 + j) * 16, acc[q][i][j],
                                                    unsigned(ldc), nvcuda::wmma::mem_row_major);
        }
    }
};
struct NoAccumulator {};

// Rows [row0, row0 + R) of a (T, D) slice with row stride `stride` into a (R x Dp) shared tile,
// zero-filled beyond T and beyond D. 16-byte loads when the slice allows them (D and the stride
// multiples of 4 floats, a 16-byte aligned start), else one float per thread per step.
template <typename Tin, int R, int Dp, int NT>
__device__ __forceinline__ void load_tile(Tin* tile, int ld, const float* src, size_t stride, int row0, int T,
                                          int D) {
    const bool vec = D % 4 == 0 && stride % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0;
    if (vec) {  // uniform across the block
        constexpr int V = Dp / 4;
        for (int e = int(threadIdx.x); e < R * V; e += NT) {
            const int r = e / V, d = (e % V) * 4;
            float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (row0 + r < T && d < D) x = *reinterpret_cast<const float4*>(src + size_t(row0 + r) * stride + d);
            Tin* t = tile + r * ld + d;
            t[0] = to_in<Tin>(x.x);
            t[1] = to_in<Tin>(x.y);
            t[2] = to_in<Tin>(x.z);
            t[3] = to_in<Tin>(x.w);
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
// Forward. grid (ceil(T / Br), B H), block NT. kIsSoftmax must equal (a.score == kSoftmax).
// The softmax rescales O row by row, so O lives in shared memory; the other variants never
// rescale, and on the tensor-core path keep O in registers (RegisterAccumulator).
template <typename Tin, int Dp, bool kIsSoftmax>
__global__ void __launch_bounds__(Cfg<Tin, Dp>::NT) attention_forward_kernel(AttnArgs a) {
    using K = Cfg<Tin, Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT, TPR = K::TPR;
    SINKLAB_DYNAMIC_SMEM(smem);
    Tin* Qs = reinterpret_cast<Tin*>(smem);
    Tin* Ks = reinterpret_cast<Tin*>(smem + K::kIn);
    Tin* Vs = reinterpret_cast<Tin*>(smem + 2 * K::kIn);
    float* S = reinterpret_cast<float*>(smem + 3 * K::kIn);
    Tin* P = reinterpret_cast<Tin*>(smem + 3 * K::kIn + K::kS);
    float* O = reinterpret_cast<float*>(smem + 3 * K::kIn + K::kS + K::kP);
    float* rowinv = reinterpret_cast<float*>(smem + 3 * K::kIn + K::kS + K::kP + K::kO);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * Br;  // the longest rows first
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* k_src = q_src + C;
    const float* v_src = q_src + 2 * size_t(C);

    load_tile<Tin, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
    constexpr bool kRegisterO = K::kTensor && !kIsSoftmax;
    using Acc = std::conditional_t<kRegisterO, RegisterAccumulator<Br, Dp, Bc, false, false, NT>, NoAccumulator>;
    Acc acc_o;
    if constexpr (kRegisterO)
        acc_o.zero();
    else
        zero_acc<Dp, NT>(O, K::ldO, Br);

    const int row = int(threadIdx.x) / TPR, part = int(threadIdx.x) % TPR;
    const int qi = q0 + row;
    float m = -INFINITY, l = 0.0f;  // running maximum (softmax only) and running sum, per row
    const int k_end = min(q0 + Br, T);
    for (int k0 = 0; k0 < k_end; k0 += Bc) {
        __syncthreads();  // the previous tile's K, V and P are no longer read
        load_tile<Tin, Bc, Dp, NT>(Ks, K::ldIn, k_src, C3, k0, T, D);
        load_tile<Tin, Bc, Dp, NT>(Vs, K::ldIn, v_src, C3, k0, T, D);
        __syncthreads();
        tile_gemm<Tin, Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);  // S = Q K^T
        __syncthreads();
        float* srow = S + row * K::ldS;
        Tin* prow = P + row * K::ldP;
        float sum = 0.0f;
        if constexpr (kIsSoftmax) {
            float tile_max = -INFINITY;
            for (int j = part; j < Bc; j += TPR) {
                const bool valid = qi < T && k0 + j <= qi;
                const float s = valid ? srow[j] * a.scale : -INFINITY;
                srow[j] = s;
                tile_max = fmaxf(tile_max, s);
            }
            const float m_new = fmaxf(m, group_max<TPR>(tile_max));
            for (int j = part; j < Bc; j += TPR) {
                const float s = srow[j];
                const float p = s == -INFINITY ? 0.0f : expf(s - m_new);
                prow[j] = to_in<Tin>(p);
                sum += p;
            }
            sum = group_sum<TPR>(sum);
            const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
            l = l * alpha + sum;
            m = m_new;
            if (alpha != 1.0f)
                for (int d = part; d < Dp; d += TPR) O[row * K::ldO + d] *= alpha;
        } else {
            for (int j = part; j < Bc; j += TPR) {
                const bool valid = qi < T && k0 + j <= qi;
                const float g = valid ? sim(a.score, srow[j] * a.scale + a.bias) : 0.0f;
                prow[j] = to_in<Tin>(g);
                sum += g;
            }
            l += group_sum<TPR>(sum);
        }
        __syncthreads();
        if constexpr (kRegisterO)
            acc_o.add_product(P, K::ldP, Vs, K::ldIn);  // O += P V
        else
            tile_gemm<Tin, Br, Dp, Bc, false, false, true, NT>(O, K::ldO, P, K::ldP, Vs, K::ldIn);  // O += P V
    }
    if constexpr (kRegisterO) acc_o.store(O, K::ldO);
    // Statistics for the backward, and 1 / Z for the output.
    if (part == 0) {
        float inv = 1.0f;
        if (qi < T) {
            const size_t r = size_t(bh) * T + qi;
            if constexpr (kIsSoftmax) {
                a.lse[r] = m + logf(l);
                a.z[r] = 1.0f;
                inv = l > 0.0f ? 1.0f / l : 0.0f;
            } else if (a.normalize) {
                const float zi = l + kNormEps;
                a.lse[r] = 0.0f;
                a.z[r] = zi;
                inv = 1.0f / zi;
            } else {
                a.lse[r] = 0.0f;
                a.z[r] = 1.0f;
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
// stat: LSE_i (softmax) or Z_i (normalised); delta: Delta_i.
template <typename Tin, int Dp, bool kWriteW>
__device__ __forceinline__ void scores_to_grads(const AttnArgs& a, const float* S, const float* dP, Tin* W, Tin* dS,
                                                const float* stat, const float* delta, int q0, int k0) {
    using K = Cfg<Tin, Dp>;
    for (int e = int(threadIdx.x); e < K::Br * K::Bc; e += K::NT) {
        const int i = e / K::Bc, j = e % K::Bc;
        const int qi = q0 + i, kj = k0 + j;
        float w = 0.0f, ds = 0.0f;
        if (qi < a.T && kj <= qi) {
            const float s = S[i * K::ldS + j] * a.scale + a.bias;
            const float dp = dP[i * K::ldS + j];
            if (a.score == kSoftmax) {
                w = expf(s - stat[i]);
                ds = w * (dp - delta[i]);
            } else {
                const float g = sim(a.score, s);
                if (a.normalize) {
                    w = g / stat[i];
                    ds = (dp - delta[i]) / stat[i] * sim_grad(a.score, g);
                } else {
                    w = g;
                    ds = dp * sim_grad(a.score, g);
                }
            }
        }
        if constexpr (kWriteW) W[i * K::ldP + j] = to_in<Tin>(w);
        dS[i * K::ldP + j] = to_in<Tin>(ds * a.scale);
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
            st = a.score == kSoftmax ? a.lse[idx] : a.z[idx];
            if (a.delta) dl = a.delta[idx];
        }
        stat[r] = st;
        delta[r] = dl;
    }
}

// dK and dV. grid (ceil(T / Bc), B H), block NT.
template <typename Tin, int Dp>
__global__ void __launch_bounds__(Cfg<Tin, Dp>::NT, Cfg<Tin, Dp>::kKVMinBlocks)
    attention_backward_kv_kernel(AttnArgs a) {
    using K = Cfg<Tin, Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT;
    SINKLAB_DYNAMIC_SMEM(smem);
    unsigned char* p = smem;
    Tin* Qs = reinterpret_cast<Tin*>(p);  p += K::kIn;
    Tin* dOs = reinterpret_cast<Tin*>(p); p += K::kIn;
    Tin* Ks = reinterpret_cast<Tin*>(p);  p += K::kIn;
    Tin* Vs = reinterpret_cast<Tin*>(p);  p += K::kIn;
    float* S = reinterpret_cast<float*>(p);  p += K::kS;
    float* dP = reinterpret_cast<float*>(p); p += K::kS;
    Tin* W = reinterpret_cast<Tin*>(p);   p += K::kP;
    Tin* dS = reinterpret_cast<Tin*>(p);  p += K::kP;
    float* dK = K::kTensor ? S : reinterpret_cast<float*>(p);  // S, dP adjacent; see Cfg
    if constexpr (!K::kTensor) p += K::kO;
    float* dV = K::kTensor ? reinterpret_cast<float*>(Qs) : reinterpret_cast<float*>(p);  // Q, dO adjacent
    if constexpr (!K::kTensor) p += K::kO;
    float* stat = reinterpret_cast<float*>(p); p += K::kRow;
    float* delta = reinterpret_cast<float*>(p);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int k0 = int(blockIdx.x) * Bc;
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;

    load_tile<Tin, Bc, Dp, NT>(Ks, K::ldIn, q_src + C, C3, k0, T, D);
    load_tile<Tin, Bc, Dp, NT>(Vs, K::ldIn, q_src + 2 * size_t(C), C3, k0, T, D);
    // dK, dV: in registers (bf16) or in shared memory (fp32).
    using Acc = std::conditional_t<K::kTensor, RegisterAccumulator<Bc, Dp, Br, true, false, NT>, NoAccumulator>;
    Acc acc_dk, acc_dv;
    if constexpr (K::kTensor) {
        acc_dk.zero();
        acc_dv.zero();
    } else {
        zero_acc<Dp, NT>(dK, K::ldO, Bc);
        zero_acc<Dp, NT>(dV, K::ldO, Bc);
    }
    for (int q0 = k0; q0 < T; q0 += Br) {  // Br == Bc: the first query tile that sees key k0
        __syncthreads();
        load_tile<Tin, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
        load_tile<Tin, Br, Dp, NT>(dOs, K::ldIn, do_src, size_t(C), q0, T, D);
        load_row_stats<Br, NT>(a, stat, delta, bh, q0);
        __syncthreads();
        tile_gemm<Tin, Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);    // S = Q K^T
        tile_gemm<Tin, Br, Bc, Dp, false, true, false, NT>(dP, K::ldS, dOs, K::ldIn, Vs, K::ldIn);  // dP = dO V^T
        __syncthreads();
        scores_to_grads<Tin, Dp, true>(a, S, dP, W, dS, stat, delta, q0, k0);
        __syncthreads();
        if constexpr (K::kTensor) {
            acc_dv.add_product(W, K::ldP, dOs, K::ldIn);  // dV += W^T dO
            acc_dk.add_product(dS, K::ldP, Qs, K::ldIn);  // dK += dS^T Q
        } else {
            tile_gemm<Tin, Bc, Dp, Br, true, false, true, NT>(dV, K::ldO, W, K::ldP, dOs, K::ldIn);
            tile_gemm<Tin, Bc, Dp, Br, true, false, true, NT>(dK, K::ldO, dS, K::ldP, Qs, K::ldIn);
        }
    }
    if constexpr (K::kTensor) {
        __syncthreads();  // every warp is done reading Q and dO before they are overwritten
        acc_dv.store(dV, K::ldO);
        acc_dk.store(dK, K::ldO);
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
template <typename Tin, int Dp>
__global__ void __launch_bounds__(Cfg<Tin, Dp>::NT) attention_backward_q_kernel(AttnArgs a) {
    using K = Cfg<Tin, Dp>;
    constexpr int Br = K::Br, Bc = K::Bc, NT = K::NT;
    SINKLAB_DYNAMIC_SMEM(smem);
    unsigned char* p = smem;
    Tin* Qs = reinterpret_cast<Tin*>(p);  p += K::kIn;
    Tin* dOs = reinterpret_cast<Tin*>(p); p += K::kIn;
    Tin* Ks = reinterpret_cast<Tin*>(p);  p += K::kIn;
    Tin* Vs = reinterpret_cast<Tin*>(p);  p += K::kIn;
    float* S = reinterpret_cast<float*>(p);  p += K::kS;
    float* dP = reinterpret_cast<float*>(p); p += K::kS;
    Tin* dS = reinterpret_cast<Tin*>(p);  p += K::kP;
    float* dQ = K::kTensor ? S : reinterpret_cast<float*>(p);  // S, dP: adjacent, see Cfg
    if constexpr (!K::kTensor) p += K::kO;
    float* stat = reinterpret_cast<float*>(p); p += K::kRow;
    float* delta = reinterpret_cast<float*>(p);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * Br;
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;

    load_tile<Tin, Br, Dp, NT>(Qs, K::ldIn, q_src, C3, q0, T, D);
    load_tile<Tin, Br, Dp, NT>(dOs, K::ldIn, do_src, size_t(C), q0, T, D);
    load_row_stats<Br, NT>(a, stat, delta, bh, q0);
    // dQ: in registers (bf16) or in shared memory (fp32).
    using Acc = std::conditional_t<K::kTensor, RegisterAccumulator<Br, Dp, Bc, false, false, NT>, NoAccumulator>;
    Acc acc_dq;
    if constexpr (K::kTensor)
        acc_dq.zero();
    else
        zero_acc<Dp, NT>(dQ, K::ldO, Br);
    const int k_end = min(q0 + Br, T);
    for (int k0 = 0; k0 < k_end; k0 += Bc) {
        __syncthreads();
        load_tile<Tin, Bc, Dp, NT>(Ks, K::ldIn, q_src + C, C3, k0, T, D);
        load_tile<Tin, Bc, Dp, NT>(Vs, K::ldIn, q_src + 2 * size_t(C), C3, k0, T, D);
        __syncthreads();
        tile_gemm<Tin, Br, Bc, Dp, false, true, false, NT>(S, K::ldS, Qs, K::ldIn, Ks, K::ldIn);    // S = Q K^T
        tile_gemm<Tin, Br, Bc, Dp, false, true, false, NT>(dP, K::ldS, dOs, K::ldIn, Vs, K::ldIn);  // dP = dO V^T
        __syncthreads();
        scores_to_grads<Tin, Dp, false>(a, S, dP, nullptr, dS, stat, delta, q0, k0);
        __syncthreads();
        if constexpr (K::kTensor)
            acc_dq.add_product(dS, K::ldP, Ks, K::ldIn);  // dQ += dS K
        else
            tile_gemm<Tin, Br, Dp, Bc, false, false, true, NT>(dQ, K::ldO, dS, K::ldP, Ks, K::ldIn);
    }
    if constexpr (K::kTensor) acc_dq.store(dQ, K::ldO);
    __syncthreads();
    for (int e = int(threadIdx.x); e < Br * Dp; e += NT) {
        const int r = e / Dp, d = e % Dp;
        if (q0 + r < T && d < D) a.dqkv[(size_t(b) * T + q0 + r) * C3 + size_t(h) * D + d] += dQ[r * K::ldO + d];
    }
}

// Delta_i = dO_i . O_i per (b, h, i): one warp per row.
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, int B, int T, int C, int H,
                                       int D) {
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
    if (lane == 0) delta[(b * H + h) * T + t] = s;
}

// The materialising path for the sink analysis: one block per (row i, b h).
__global__ void attention_weights_kernel(float* att, float* att_z, const float* qkv, int T, int C, int H, int D,
                                         float scale, float bias, int score, bool normalize) {
    __shared__ float red[32];
    const int i = int(blockIdx.x), bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    float* w = att + (size_t(bh) * T + i) * T;
    const float* q = qkv + (size_t(b) * T + i) * C3 + size_t(h) * D;
    float mx = -INFINITY;
    for (int j = int(threadIdx.x); j < T; j += int(blockDim.x)) {
        if (j <= i) {
            const float* k = qkv + (size_t(b) * T + j) * C3 + C + size_t(h) * D;
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += q[d] * k[d];
            const float s = dot * scale + bias;
            w[j] = s;
            mx = fmaxf(mx, s);
        } else {
            w[j] = 0.0f;
        }
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = int(threadIdx.x); j <= i; j += int(blockDim.x)) {
        const float g = score == kSoftmax ? expf(w[j] - mx) : sim(score, w[j]);
        w[j] = g;
        sum += g;
    }
    sum = block_sum(sum, red);
    const float z = score == kSoftmax ? sum : (normalize ? sum + kNormEps : 1.0f);
    if (score == kSoftmax || normalize)
        for (int j = int(threadIdx.x); j <= i; j += int(blockDim.x)) w[j] /= z;
    if (threadIdx.x == 0) att_z[size_t(bh) * T + i] = score == kSoftmax ? 1.0f : z;
}

}  // namespace sinklab::cuda::attn
