// Multi-head causal attention for every variant of AttentionSpec (src/model/attention_variant.h).
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "model/attention_variant.h"
#include "ops/common.h"
#include "ops/exp.h"
#include "ops/matmul.h"

namespace sinklab {

// Attention. The variant's math (score bias, score function, normaliser, mask, and the gradient
// through them) is in attention_variant.h; the functions here are the loops around it.

// The exp and reciprocal that attention_variant.h's functions use on the CPU.
struct HostMath {
    template <typename T>
    static T exp(T x) { return exp_of(x); }
    template <typename T>
    static T rcp(T x) { return T(1) / x; }
};

// Applies the score function in place to w[0, n) and returns the sum of the results. The score
// function is a compile-time constant inside the loop, so that the loop is vectorized (`omp simd`;
// the sum is then taken lane-wise, in an order fixed by the build).
template <typename T>
inline T attention_sim_row(ScoreFunction f, T* w, size_t n) {
    return with_score_function(f, [&](auto F) {
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t j = 0; j < n; j++) {
            w[j] = sim<decltype(F)::value, HostMath>(w[j]);
            sum += w[j];
        }
        return sum;
    });
}

// Multi-head attention, forward, for every variant of AttentionSpec.
//   qkv: (B, T, 3C) after RoPE  ->  out: (B, T, C),
//   att: (B, H, T, T) the weights w[i, j] actually used (exactly 0 for the keys i does not see),
//   att_z: (B, H, T) the normaliser Z_i (1 for softmax, whose w alone is enough for backward).
//   s_ij = scale q_i.k_j + bias(h, i, j);  w_ij = sim(s_ij) / Z_i  for the keys j that i sees;
//   out_i = sum_j w_ij v_j.
//   softmax: w = exp(s - max) / sum exp(s - max).
// The two products over d and j run as matrix products (gemm, the blocked kernel for float) on
// blocks of kAttentionQueryBlock queries: a block of queries [i0, i0 + rows) only computes the
// scores of the keys [kb, ke) from keys_seen(first row).begin to keys_seen(last row).end, so the
// blocks skip most of the masked half (and, with a window, all keys before it).
// One thread owns one (b, h).
constexpr size_t kAttentionQueryBlock = 64;

template <typename T>
void attention_forward(T* out, T* att, T* att_z, const T* qkv, size_t B, size_t Tn, size_t C, size_t H,
                       const AttentionSpec& spec_ref) {
    const AttentionSpec spec = for_length(spec_ref, int(Tn));  // a local copy: loop-invariant for the vectorizer
    const size_t D = C / H, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(D));
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            // Row t of q, k, v for this (b, h) is q + t * C3 (and k, v); w_bh is the (T, T) map.
            const T* q = qkv + b * Tn * C3 + h * D;
            const T* k = q + C;
            const T* v = q + 2 * C;
            T* w_bh = att + (b * H + h) * Tn * Tn;
            T* o = out + b * Tn * C + h * D;
            for (size_t i0 = 0; i0 < Tn; i0 += kAttentionQueryBlock) {
                const size_t rows = std::min(kAttentionQueryBlock, Tn - i0);
                const size_t kb = size_t(keys_seen(spec, int(i0)).begin);
                const size_t ke = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                // dots q_i.k_j for the block's queries and keys kb <= j < ke:  w (rows, ke - kb) = Q_blk . K^T
                gemm<T>(rows, ke - kb, D, q + i0 * C3, C3, 1, k + kb * C3, 1, C3, w_bh + i0 * Tn + kb, Tn, false);
                for (size_t i = i0; i < i0 + rows; i++) {
                    T* w = w_bh + i * Tn;
                    const IndexRange seen = keys_seen(spec, int(i));
                    const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
                    // scores s_ij for the keys i sees
                    T max_s = -INFINITY;
#pragma omp simd reduction(max : max_s)
                    for (size_t j = j0; j < j1; j++) {
                        w[j] = w[j] * scale + score_bias<T>(spec, int(h), int(i), int(j));
                        max_s = std::max(max_s, w[j]);
                    }
                    // score function and normaliser
                    T z = 1;
                    if (spec.is_softmax()) {
#pragma omp simd
                        for (size_t j = j0; j < j1; j++) w[j] -= max_s;
                        const T inv_sum = T(1) / row_normaliser(spec, attention_sim_row(spec.score, w + j0, j1 - j0));
#pragma omp simd
                        for (size_t j = j0; j < j1; j++) w[j] *= inv_sum;
                    } else {
                        z = row_normaliser(spec, attention_sim_row(spec.score, w + j0, j1 - j0));
                        if (spec.is_normalised()) {
                            const T divisor = normaliser_divisor(z);
#pragma omp simd
                            for (size_t j = j0; j < j1; j++) w[j] /= divisor;
                        }
                    }
                    // the mask: exactly zero outside [j0, j1)
                    for (size_t j = 0; j < j0; j++) w[j] = 0;
                    for (size_t j = j1; j < Tn; j++) w[j] = 0;
                    att_z[(b * H + h) * Tn + i] = z;
                }
                // weighted sum of values (the masked weights are zero):  out_blk (rows, D) = w . V
                gemm<T>(rows, D, ke - kb, w_bh + i0 * Tn + kb, Tn, 1, v + kb * C3, C3, 1, o + i0 * C, C, false);
            }
        }
}

// Multi-head attention, backward. dqkv (B, T, 3C) +=, from dout (B, T, C).
//   dw_ij = dout_i . v_j,   dv_j += w_ij dout_i
//   ds_ij = score_grad(...) (attention_variant.h: through the normaliser and the score function)
//   dq_i += scale sum_j ds_ij k_j,   dk_j += scale ds_ij q_i
// Blocked over queries as in the forward pass; each sum is a matrix product (gemm) over the block.
// One thread owns one (b, h), and the blocks are visited in order, so the sums over i into dk_j and
// dv_j are in a fixed order.
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* att, const T* att_z, size_t B, size_t Tn,
                        size_t C, size_t H, const AttentionSpec& spec_ref) {
    const AttentionSpec spec = for_length(spec_ref, int(Tn));
    const size_t D = C / H, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(D));
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            const T* q = qkv + b * Tn * C3 + h * D;
            const T* k = q + C;
            const T* v = q + 2 * C;
            T* dq = dqkv + b * Tn * C3 + h * D;
            T* dk = dq + C;
            T* dv = dq + 2 * C;
            const T* w_bh = att + (b * H + h) * Tn * Tn;
            const T* dout_bh = dout + b * Tn * C + h * D;
            std::vector<T> ds(kAttentionQueryBlock * Tn);  // (rows, keys) of the block, row stride Tn
            for (size_t i0 = 0; i0 < Tn; i0 += kAttentionQueryBlock) {
                const size_t rows = std::min(kAttentionQueryBlock, Tn - i0);
                const size_t kb = size_t(keys_seen(spec, int(i0)).begin);
                const size_t ke = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                const T* w_blk = w_bh + i0 * Tn;
                const T* dout_blk = dout_bh + i0 * C;
                // dw_ij = dout_i . v_j:  ds (rows, ke - kb) = dOut_blk . V^T
                gemm<T>(rows, ke - kb, D, dout_blk, C, 1, v + kb * C3, 1, C3, ds.data() + kb, Tn, false);
                // dv_j += sum_i w_ij dout_i:  dV (ke - kb, D) += w_blk^T . dOut_blk
                gemm<T>(ke - kb, D, rows, w_blk + kb, 1, Tn, dout_blk, C, 1, dv + kb * C3, C3, true);
                // through the normaliser and the score function, row by row
                for (size_t r = 0; r < rows; r++) {
                    const size_t i = i0 + r;
                    const T* w = w_blk + r * Tn;
                    T* dsi = ds.data() + r * Tn;
                    const IndexRange seen = keys_seen(spec, int(i));
                    const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
                    T dot = 0;  // sum_j w_ij dw_ij, for Delta_i (not needed without a normaliser)
                    if (spec.is_normalised()) {
#pragma omp simd reduction(+ : dot)
                        for (size_t j = j0; j < j1; j++) dot += w[j] * dsi[j];
                    }
                    const T z = att_z[(b * H + h) * Tn + i];
                    const T delta = row_delta(spec, dot, z);
                    const T divisor = normaliser_divisor(z), inv_z = T(1) / divisor;
#pragma omp simd
                    for (size_t j = j0; j < j1; j++)
                        dsi[j] = score_grad(spec, scale, dsi[j], w[j], w[j] * divisor, inv_z, delta);
                    // the keys i does not see: no gradient
                    for (size_t j = kb; j < j0; j++) dsi[j] = 0;
                    for (size_t j = j1; j < ke; j++) dsi[j] = 0;
                }
                // dq_i += scale sum_j ds_ij k_j:  dQ_blk (rows, D) += ds . K
                gemm<T>(rows, D, ke - kb, ds.data() + kb, Tn, 1, k + kb * C3, C3, 1, dq + i0 * C3, C3, true);
                // dk_j += scale sum_i ds_ij q_i:  dK (keys, D) += ds^T . Q_blk
                gemm<T>(ke - kb, D, rows, ds.data() + kb, 1, Tn, q + i0 * C3, C3, 1, dk + kb * C3, C3, true);
            }
        }
}

}  // namespace sinklab
