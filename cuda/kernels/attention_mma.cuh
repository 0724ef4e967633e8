// The bf16 tensor-core attention kernels (device code only, included by attention.cu and by
// tests/test_cuda_emulated.cpp): FlashAttention-2's register-resident scheme on mma.sync m16n8k16
// (cuda/kernels/mma.cuh explains the fragment layouts).
//
// Every block has 4 warps, and every warp owns 16 rows of the block's tile from start to end:
//   forward:  a block per 64 query rows; each warp keeps its scores S (16 x 64 keys), its weights
//             P and its output O (16 x Dp) in registers, and reads K and V tiles from shared memory.
//             P never touches shared memory: the fp32 accumulator of S, rounded to bf16, is the
//             A operand of P V (mma.cuh).
//   dK, dV:   a block per 64 keys; each warp owns 16 keys and computes the transposed tiles
//             S^T = K Q^T and dP^T = V dO^T (16 keys x 64 queries), turns them into W^T and dS^T,
//             and accumulates dV += W^T dO and dK += dS^T Q in registers.
//   dQ:       a block per 64 query rows; each warp owns 16 rows: S = Q K^T, dP = dO V^T, dS, then
//             dQ += dS K in registers.
// The math per element is that of attention.cu's header; no atomics: every output element is owned
// by one thread and summed in a fixed order (bitwise deterministic). Inputs are fp32 in device
// memory, rounded to bf16 when a tile is copied into shared memory (rows of Dp + 8 elements: 16-byte
// aligned and free of ldmatrix bank conflicts for every Dp).
#pragma once
#include "kernels/attention.cuh"
#include "kernels/mma.cuh"

namespace sinklab::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

template <int Dp_>
struct MmaCfg {
    static constexpr int Dp = Dp_;
    static constexpr int NW = 4, NT = 32 * NW;  // warps, threads per block
    static constexpr int Br = 16 * NW;          // rows (queries, or keys for dK/dV) per block
    static constexpr int Bc = 64;               // columns (keys, or queries for dK/dV) per inner tile
    static constexpr int ld = Dp + 8;           // shared-memory row stride, bf16 elements
    static constexpr int KD = Dp / 16;          // k-steps of 16 over the head dimension
    static constexpr int ND = Dp / 8;           // 8-wide output tiles over the head dimension
    static constexpr int NC = Bc / 8;           // 8-wide score tiles over the inner tile
    static constexpr size_t kTile = align128(size_t(Br > Bc ? Br : Bc) * ld * sizeof(bf16));
    static constexpr size_t kForwardBytes = 3 * kTile;                                // Q K V
    static constexpr size_t kBackwardBytes = 4 * kTile + 2 * align128(Bc * sizeof(float));  // Q dO K V | stat delta
    static_assert(Dp % 16 == 0 && ND % 2 == 0 && NC % 2 == 0, "tile shape");
};

// exp and the reciprocal for attention_variant.h in the tensor-core kernels: the fast exp2-based
// approximations (ex2.approx, rcp.approx).
struct FastMath {
    static __device__ __forceinline__ float exp(float x) { return mma::fast_exp2(x * kLog2e); }
    static __device__ __forceinline__ float rcp(float x) { return mma::fast_rcp(x); }
};

// Sum / max over the 4 lanes of a row group (lanes 4g .. 4g+3 hold the same rows).
__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

// acc (16 x 8 NC tiles) = A (16 rows at a_rows, Dp wide) . B^T, where B holds 8 NC rows at b_rows
// (Dp wide): the score tile of 16 rows against 8 NC columns, both operands row-major in shared memory.
template <int Dp>
__device__ __forceinline__ void scores_tile(float (&acc)[MmaCfg<Dp>::NC][4], const bf16* a_rows, const bf16* b_rows,
                                            int lane) {
    using K = MmaCfg<Dp>;
#pragma unroll
    for (int j = 0; j < K::NC; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
#pragma unroll
    for (int kd = 0; kd < K::KD; kd++) {
        uint32_t a[4];
        mma::ldmatrix_x4(a, a_rows + (lane % 16) * K::ld + kd * 16 + (lane / 16) * 8);
#pragma unroll
        for (int j = 0; j < K::NC; j += 2) {
            uint32_t b[4];  // columns 8j .. 8j+15: b[0], b[1] for tile j, b[2], b[3] for tile j+1
            mma::ldmatrix_x4(b, b_rows + (j * 8 + lane % 8 + (lane / 16) * 8) * K::ld + kd * 16 + ((lane / 8) % 2) * 8);
            mma::mma_bf16(acc[j], a, b[0], b[1]);
            mma::mma_bf16(acc[j + 1], a, b[2], b[3]);
        }
    }
}

// out (16 x Dp, ND tiles of 16 x 8) += P (16 x Bc, in registers as score tiles) . V, where V holds
// the Bc rows of the inner tile (Dp wide) row-major in shared memory.
template <int Dp>
__device__ __forceinline__ void accumulate_pv(float (&out)[MmaCfg<Dp>::ND][4], const float (&p)[MmaCfg<Dp>::NC][4],
                                              const bf16* v_rows, int lane) {
    using K = MmaCfg<Dp>;
#pragma unroll
    for (int kc = 0; kc < K::NC / 2; kc++) {  // 16 inner columns at a time: score tiles 2kc and 2kc+1
        const uint32_t a[4] = {mma::pack_bf16(p[2 * kc][0], p[2 * kc][1]), mma::pack_bf16(p[2 * kc][2], p[2 * kc][3]),
                               mma::pack_bf16(p[2 * kc + 1][0], p[2 * kc + 1][1]),
                               mma::pack_bf16(p[2 * kc + 1][2], p[2 * kc + 1][3])};
#pragma unroll
        for (int nd = 0; nd < K::ND; nd += 2) {
            uint32_t b[4];  // rows 16kc .. 16kc+15, columns 8nd .. 8nd+15, transposed
            mma::ldmatrix_x4_trans(b, v_rows + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * K::ld + nd * 8 + (lane / 16) * 8);
            mma::mma_bf16(out[nd], a, b[0], b[1]);
            mma::mma_bf16(out[nd + 1], a, b[2], b[3]);
        }
    }
}

// dst(row) += this thread's part of a warp's 16 x Dp register tile, for its two rows (first_row + g,
// first_row + g + 8) below T and its columns below D; dst(row) points at the row's first column.
template <int Dp, class RowPointer>
__device__ __forceinline__ void add_tile_to_rows(const float (&acc)[MmaCfg<Dp>::ND][4], int first_row, int T, int D,
                                                 int lane, RowPointer dst) {
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = first_row + g + 8 * r;
        if (row >= T) continue;
        float* out = dst(row);
#pragma unroll
        for (int nd = 0; nd < MmaCfg<Dp>::ND; nd++) {
            const int d = 8 * nd + 2 * t;  // D is even: d < D means d + 1 < D too
            if (d < D) {
                out[d] += acc[nd][2 * r];
                out[d + 1] += acc[nd][2 * r + 1];
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Forward. grid (ceil(T / 64), B H), block 128. kRunningMax must equal a.spec.keeps_log_normaliser().
template <int Dp, bool kRunningMax>
__global__ void __launch_bounds__(MmaCfg<Dp>::NT) attention_forward_mma_kernel(AttnArgs a) {
    using K = MmaCfg<Dp>;
    SINKLAB_DYNAMIC_SMEM(smem);
    bf16* Qs = reinterpret_cast<bf16*>(smem);
    bf16* Ks = reinterpret_cast<bf16*>(smem + K::kTile);
    bf16* Vs = reinterpret_cast<bf16*>(smem + 2 * K::kTile);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * K::Br;  // the longest rows first
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* k_src = q_src + C;
    const float* v_src = q_src + 2 * size_t(C);
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    const int w0 = q0 + 16 * warp;         // this warp's first query row
    const int rows[2] = {w0 + g, w0 + g + 8};  // the two rows this thread holds

    load_tile<bf16, K::Br, Dp, K::NT>(Qs, K::ld, q_src, C3, q0, T, D);
    float o[K::ND][4];
#pragma unroll
    for (int nd = 0; nd < K::ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    // Per row: running maximum (softmax and softpick, in log2 units) and this thread's part of the
    // running sum. (With a key slot, the row starts from its score: slot_row_start, l held by the
    // quad's thread 0. Softpick has no slot, and its m = max(max_j s_ij, 0) starts at 0.)
    float m[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        slot_row_start(rows[r] < T ? a.slot_s : nullptr, a.spec, size_t(bh) * T + rows[r], kLog2e, m[r], l[r]);
        if (t != 0) l[r] = 0.0f;
        if (a.spec.is_softpick()) m[r] = 0.0f;
    }
    const float scale_log2 = a.scale * kLog2e;
    // The key tiles that some row of this block sees (attention_variant.h: the ranges are monotone).
    const int k_begin = keys_seen(a.spec, q0).begin / K::Bc * K::Bc;
    const int k_end = min(keys_seen(a.spec, min(q0 + K::Br, T) - 1).end, T);
    for (int k0 = k_begin; k0 < k_end; k0 += K::Bc) {
        __syncthreads();  // the previous K and V tiles are no longer read
        load_tile<bf16, K::Bc, Dp, K::NT>(Ks, K::ld, k_src, C3, k0, T, D);
        load_tile<bf16, K::Bc, Dp, K::NT>(Vs, K::ld, v_src, C3, k0, T, D);
        __syncthreads();
        float s[K::NC][4];
        scores_tile<Dp>(s, Qs + 16 * warp * K::ld, Ks, lane);  // S = Q K^T
        // Masked when some (row, key) of the warp's 16 x Bc tile is not seen, or a row lies beyond T.
        const bool masked = !block_fully_visible(a.spec, w0, w0 + 15, k0, k0 + K::Bc - 1) || w0 + 15 >= T;
        if constexpr (kRunningMax) {
            float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < K::NC; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = e / 2, key = k0 + 8 * j + 2 * t + e % 2;
                    float x = fmaf(s[j][e], scale_log2, score_bias<float>(a.spec, h, rows[r], key) * kLog2e);
                    if (masked && (rows[r] >= T || !key_visible(a.spec, rows[r], key))) x = -INFINITY;
                    s[j][e] = x;
                    tile_max[r] = fmaxf(tile_max[r], x);
                }
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const float m_new = fmaxf(m[r], quad_max(tile_max[r]));
                // alpha rescales what was summed before; a row with no valid key yet keeps m = -inf.
                const float alpha = m_new == -INFINITY ? 1.0f : mma::fast_exp2(m[r] - m_new);
                m[r] = m_new;
                l[r] *= alpha;
#pragma unroll
                for (int nd = 0; nd < K::ND; nd++) {
                    o[nd][2 * r] *= alpha;
                    o[nd][2 * r + 1] *= alpha;
                }
            }
            if (a.spec.is_softpick()) {  // p = relu(d), l += |d|, d = 2^(x - m) - 2^(-m) (log2 units)
                const float shift[2] = {mma::fast_exp2(-m[0]), mma::fast_exp2(-m[1])};
#pragma unroll
                for (int j = 0; j < K::NC; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int r = e / 2;
                        const float d = s[j][e] == -INFINITY ? 0.0f : mma::fast_exp2(s[j][e] - m[r]) - shift[r];
                        s[j][e] = fmaxf(d, 0.0f);
                        l[r] += fabsf(d);
                    }
            } else {
#pragma unroll
                for (int j = 0; j < K::NC; j++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int r = e / 2;
                        const float p = m[r] == -INFINITY ? 0.0f : mma::fast_exp2(s[j][e] - m[r]);
                        s[j][e] = p;
                        l[r] += p;
                    }
            }
        } else {
#pragma unroll
            for (int j = 0; j < K::NC; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = e / 2, key = k0 + 8 * j + 2 * t + e % 2;
                    float gv = sim<FastMath>(a.spec.score, s[j][e] * a.scale + score_bias<float>(a.spec, h, rows[r], key));
                    if (masked && (rows[r] >= T || !key_visible(a.spec, rows[r], key))) gv = 0.0f;
                    s[j][e] = gv;
                    l[r] += gv;
                }
        }
        accumulate_pv<Dp>(o, s, Vs, lane);  // O += P V
    }
    // Statistics for the backward, and the output divided by the row's normaliser.
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const float sum = quad_sum(l[r]);
        float inv = 1.0f, lse = 0.0f, z = 1.0f;
        if (a.spec.is_softpick()) {  // Z' = sum |d| + eps 2^(-m); saved: log Z = m ln 2 + log Z'
            const float zp = softpick_normaliser(sum, mma::fast_exp2(-m[r]));
            inv = 1.0f / zp;
            lse = m[r] * kLn2 + logf(zp);
            z = lse;
        } else if constexpr (kRunningMax) {
            const float zl = row_normaliser(a.spec, sum);
            inv = sum > 0.0f ? 1.0f / zl : 0.0f;
            lse = m[r] * kLn2 + logf(zl);
        } else {
            z = row_normaliser(a.spec, sum);
            inv = 1.0f / normaliser_divisor(z);
        }
        const int qi = rows[r];
        if (qi >= T) continue;
        if (t == 0) {
            a.lse[size_t(bh) * T + qi] = lse;
            a.z[size_t(bh) * T + qi] = z;
        }
        float* dst = a.out + (size_t(b) * T + qi) * C + size_t(h) * D;
#pragma unroll
        for (int nd = 0; nd < K::ND; nd++) {
            const int d = 8 * nd + 2 * t;  // D is even: d < D means d + 1 < D too
            if (d < D) {
                dst[d] = o[nd][2 * r] * inv;
                dst[d + 1] = o[nd][2 * r + 1] * inv;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Backward, per element: from the unscaled score q.k of query i and key j, dP = dO_i . v_j and the
// row statistics stat (softmax: LSE_i, softpick: log Z_i, both in log2 units; else 1 / Z_i) and delta
// (Delta_i), the weight w and
// the score gradient ds (already multiplied by scale, ready for dQ and dK).
struct ScoreGrad {
    float w, ds;
};
__device__ __forceinline__ ScoreGrad score_and_grad(const AttnArgs& a, float qk, float dp, float stat, float delta,
                                                    int h, int i, int j) {
    const float bias = score_bias<float>(a.spec, h, i, j);
    if (a.spec.is_softpick()) {  // e = exp(s - log Z_i) = 2^(s log2 e - stat), w = relu(e - 2^(-stat))
        const float e = mma::fast_exp2(fmaf(qk, a.scale * kLog2e, bias * kLog2e) - stat);
        return {fmaxf(e - mma::fast_exp2(-stat), 0.0f), softpick_score_grad(a.scale, dp, qk * a.scale + bias, e, delta)};
    }
    // softmax: w = exp(s - LSE_i), computed as 2^(s log2 e - stat); else g = sim(s), w = g (1 / Z_i)
    const float g = a.spec.is_softmax() ? mma::fast_exp2(fmaf(qk, a.scale * kLog2e, bias * kLog2e) - stat)
                                        : sim<FastMath>(a.spec.score, qk * a.scale + bias);
    const float inv_z = a.spec.is_softmax() ? 1.0f : stat;
    const float w = g * inv_z;
    return {w, score_grad(a.spec, a.scale, dp, w, g, inv_z, delta)};
}

// Row statistics for the backward: LSE * log2(e) for softmax (so that w = 2^(x log2 e - stat)), likewise
// log Z * log2(e) for softpick, else 1 / Z.
__device__ __forceinline__ float backward_stat(const AttnArgs& a, size_t idx) {
    return a.spec.keeps_log_normaliser() ? a.lse[idx] * kLog2e : 1.0f / normaliser_divisor(a.z[idx]);
}

// dK and dV. grid (ceil(T / 64), B H), block 128.
template <int Dp>
__global__ void __launch_bounds__(MmaCfg<Dp>::NT) attention_backward_kv_mma_kernel(AttnArgs a) {
    using K = MmaCfg<Dp>;
    SINKLAB_DYNAMIC_SMEM(smem);
    bf16* Qs = reinterpret_cast<bf16*>(smem);
    bf16* dOs = reinterpret_cast<bf16*>(smem + K::kTile);
    bf16* Ks = reinterpret_cast<bf16*>(smem + 2 * K::kTile);
    bf16* Vs = reinterpret_cast<bf16*>(smem + 3 * K::kTile);
    float* stat = reinterpret_cast<float*>(smem + 4 * K::kTile);
    float* delta = stat + align128(K::Bc * sizeof(float)) / sizeof(float);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int k0 = int(blockIdx.x) * K::Br;  // the keys with the most queries first
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    const int w0 = k0 + 16 * warp;               // this warp's first key
    const int keys[2] = {w0 + g, w0 + g + 8};    // the two keys this thread holds

    load_tile<bf16, K::Br, Dp, K::NT>(Ks, K::ld, q_src + C, C3, k0, T, D);
    load_tile<bf16, K::Br, Dp, K::NT>(Vs, K::ld, q_src + 2 * size_t(C), C3, k0, T, D);
    float dk[K::ND][4], dv[K::ND][4];
#pragma unroll
    for (int nd = 0; nd < K::ND; nd++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[nd][e] = dv[nd][e] = 0.0f;
    // The query tiles in which some row sees a key of this block (the ranges are monotone).
    const int q_begin = queries_seeing(a.spec, k0, T).begin / K::Bc * K::Bc;
    const int q_end = min(queries_seeing(a.spec, min(k0 + K::Br, T) - 1, T).end, T);
    for (int q0 = q_begin; q0 < q_end; q0 += K::Bc) {
        __syncthreads();  // the previous Q, dO tiles and statistics are no longer read
        load_tile<bf16, K::Bc, Dp, K::NT>(Qs, K::ld, q_src, C3, q0, T, D);
        load_tile<bf16, K::Bc, Dp, K::NT>(dOs, K::ld, do_src, size_t(C), q0, T, D);
        for (int i = int(threadIdx.x); i < K::Bc; i += K::NT) {
            const int qi = q0 + i;
            const size_t idx = size_t(bh) * T + qi;
            stat[i] = qi < T ? backward_stat(a, idx) : 1.0f;
            delta[i] = qi < T && a.delta ? a.delta[idx] : 0.0f;
        }
        __syncthreads();
        float st[K::NC][4], dpt[K::NC][4];
        scores_tile<Dp>(st, Ks + 16 * warp * K::ld, Qs, lane);    // S^T = K Q^T
        scores_tile<Dp>(dpt, Vs + 16 * warp * K::ld, dOs, lane);  // dP^T = V dO^T
        const bool masked = !block_fully_visible(a.spec, q0, q0 + K::Bc - 1, w0, w0 + 15) || q0 + K::Bc > T;
#pragma unroll
        for (int j = 0; j < K::NC; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int col = 8 * j + 2 * t + e % 2, qi = q0 + col;
                ScoreGrad sg = score_and_grad(a, st[j][e], dpt[j][e], stat[col], delta[col], h, qi, keys[e / 2]);
                if (masked && (qi >= T || !key_visible(a.spec, qi, keys[e / 2]))) sg = {0.0f, 0.0f};
                st[j][e] = sg.w;
                dpt[j][e] = sg.ds;
            }
        accumulate_pv<Dp>(dv, st, dOs, lane);   // dV += W^T dO
        accumulate_pv<Dp>(dk, dpt, Qs, lane);   // dK += dS^T Q
    }
    const auto key_row = [&](int key) { return a.dqkv + (size_t(b) * T + key) * C3 + size_t(h) * D; };
    add_tile_to_rows<Dp>(dk, w0, T, D, lane, [&](int key) { return key_row(key) + C; });
    add_tile_to_rows<Dp>(dv, w0, T, D, lane, [&](int key) { return key_row(key) + 2 * size_t(C); });
}

// dQ. grid (ceil(T / 64), B H), block 128.
template <int Dp>
__global__ void __launch_bounds__(MmaCfg<Dp>::NT) attention_backward_q_mma_kernel(AttnArgs a) {
    using K = MmaCfg<Dp>;
    SINKLAB_DYNAMIC_SMEM(smem);
    bf16* Qs = reinterpret_cast<bf16*>(smem);
    bf16* dOs = reinterpret_cast<bf16*>(smem + K::kTile);
    bf16* Ks = reinterpret_cast<bf16*>(smem + 2 * K::kTile);
    bf16* Vs = reinterpret_cast<bf16*>(smem + 3 * K::kTile);

    const int T = a.T, C = a.C, H = a.H, D = a.D;
    const int q0 = int(gridDim.x - 1 - blockIdx.x) * K::Br;  // the longest rows first
    const int bh = int(blockIdx.y), b = bh / H, h = bh % H;
    const size_t C3 = size_t(3) * C;
    const float* q_src = a.qkv + size_t(b) * T * C3 + size_t(h) * D;
    const float* do_src = a.dout + size_t(b) * T * C + size_t(h) * D;
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
    const int w0 = q0 + 16 * warp;
    const int rows[2] = {w0 + g, w0 + g + 8};

    load_tile<bf16, K::Br, Dp, K::NT>(Qs, K::ld, q_src, C3, q0, T, D);
    load_tile<bf16, K::Br, Dp, K::NT>(dOs, K::ld, do_src, size_t(C), q0, T, D);
    float stat[2], delta[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const size_t idx = size_t(bh) * T + rows[r];
        stat[r] = rows[r] < T ? backward_stat(a, idx) : 1.0f;
        delta[r] = rows[r] < T && a.delta ? a.delta[idx] : 0.0f;
    }
    float dq[K::ND][4];
#pragma unroll
    for (int nd = 0; nd < K::ND; nd++) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;
    const int k_begin = keys_seen(a.spec, q0).begin / K::Bc * K::Bc;
    const int k_end = min(keys_seen(a.spec, min(q0 + K::Br, T) - 1).end, T);
    for (int k0 = k_begin; k0 < k_end; k0 += K::Bc) {
        __syncthreads();
        load_tile<bf16, K::Bc, Dp, K::NT>(Ks, K::ld, q_src + C, C3, k0, T, D);
        load_tile<bf16, K::Bc, Dp, K::NT>(Vs, K::ld, q_src + 2 * size_t(C), C3, k0, T, D);
        __syncthreads();
        float s[K::NC][4], dp[K::NC][4];
        scores_tile<Dp>(s, Qs + 16 * warp * K::ld, Ks, lane);    // S = Q K^T
        scores_tile<Dp>(dp, dOs + 16 * warp * K::ld, Vs, lane);  // dP = dO V^T
        const bool masked = !block_fully_visible(a.spec, w0, w0 + 15, k0, k0 + K::Bc - 1) || w0 + 15 >= T;
#pragma unroll
        for (int j = 0; j < K::NC; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = e / 2, key = k0 + 8 * j + 2 * t + e % 2;
                float ds = score_and_grad(a, s[j][e], dp[j][e], stat[r], delta[r], h, rows[r], key).ds;
                if (masked && (rows[r] >= T || !key_visible(a.spec, rows[r], key))) ds = 0.0f;
                s[j][e] = ds;
            }
        accumulate_pv<Dp>(dq, s, Ks, lane);  // dQ += dS K
    }
    add_tile_to_rows<Dp>(dq, w0, T, D, lane, [&](int row) { return a.dqkv + (size_t(b) * T + row) * C3 + size_t(h) * D; });
}

}  // namespace sinklab::cuda::attn
