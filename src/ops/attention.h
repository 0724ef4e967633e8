// Multi-head causal attention for every variant of AttentionSpec (src/model/attention_variant.h).
#pragma once
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "model/attention_variant.h"
#include "ops/common.h"
#include "ops/exp.h"
#include "ops/matmul.h"

namespace sinklab {

// Attention. The variant's math (score bias, score function, normaliser, mask, and the gradient
// through them) is in attention_variant.h; the functions here are the loops around it.

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
//   saved: (B, H, T) what the backward needs besides att_z to recompute a row's weights:
//          softmax: LSE_i = max_j s_ij + log(sum_j exp(s_ij - max) / alpha) (w_ij = exp(s_ij - LSE_i),
//          the CUDA kernels' `saved` too); softpick: its stabiliser m_i = max(max_j s_ij, 0), so
//          that the backward recomputes exp(s - m) - exp(-m) exactly as the forward did (from
//          log Z_i alone the difference of two terms near 1/Z_i would lose the float weights);
//          0 for the other variants,
//   att_z: (B, H, T) the normaliser Z_i (1 for softmax; log Z_i for softpick),
//   maps: (B, H, T, T) or null: when given, the weights w[b, h, i, j] the forward used, exactly 0
//         for the keys i does not see (the keep-maps mode of the sink analysis; training passes
//         null and no (T, T) matrix of a whole (b, h) exists).
//   s_ij = scale q_i.k_j + bias(h, i, j);  w_ij = sim(s_ij) / Z_i  for the keys j that i sees;
//   out_i = sum_j w_ij v_j.
//   softmax: w = exp(s - max) / sum exp(s - max).
//   softpick: w = relu(exp(s - m) - exp(-m)) / Z',  m = max(max_j s, 0)  (attention_variant.h).
// With a key slot (spec.has_key_slot(); otherwise the three slot pointers are null):
//   slot_k, slot_v: (spec.slot_heads(H), D) k* and v* (slot_v null: v* = 0, the K bias),
//   att_slot: (B, H, T) the slot's weight w_i* in each row.
//   s_i* = scale q_i.k* + b  joins row i's scores, and Z_i;  out_i += w_i* v*.
// The sink logits (spec.slot_is_logit()): s_i* = s_h, slot_k (spec.slot_heads(H), 1) the learned
// logits (null for the off-by-one softmax: s_h = 0), no value.
// The two products over d and j run as matrix products (gemm, the blocked kernel for float) on
// blocks of kAttentionQueryBlock queries: a block of queries [i0, i0 + rows) only computes the
// scores of the keys [kb, ke) from keys_seen(first row).begin to keys_seen(last row).end, so the
// blocks skip most of the masked half (and, with a window, all keys before it). The block's
// scores and weights live in a scratch of (kAttentionQueryBlock, T) per thread: memory O(B H T)
// besides the output, whatever T.
// One thread owns one (b, h).
constexpr size_t kAttentionQueryBlock = 64;

// The key slot's pointers, null without one: not used to deduce T, so that a caller may pass nullptr.
template <typename T>
using SlotPtr = std::type_identity_t<T>*;

// The rows of one (b, h) in the (B, T, 3C) qkv layout: row t of q is q + t * 3C, likewise k and v;
// and the slot's k* and v* of head h (null without them).
template <typename T>
struct HeadRows {
    const T *q, *k, *v, *slot_k, *slot_v;
    HeadRows(const T* qkv, const T* slot_k_all, const T* slot_v_all, size_t b, size_t h, size_t Tn, size_t C,
             size_t H, const AttentionSpec& spec) {
        const size_t D = C / H, slot_head = spec.slot_shared ? 0 : h;
        q = qkv + b * Tn * 3 * C + h * D;
        k = q + C;
        v = q + 2 * C;
        slot_k = slot_k_all ? slot_k_all + slot_head * size_t(spec.slot_score_width(int(D))) : nullptr;
        slot_v = slot_v_all ? slot_v_all + slot_head * D : nullptr;
    }
};

template <typename T>
inline T dot_product(const T* a, const T* b, size_t n) {
    T sum = 0;
    for (size_t d = 0; d < n; d++) sum += a[d] * b[d];
    return sum;
}

// One row of the attention weights, the variant's per-row math around attention_variant.h: query i
// of head h (positions i and j as the score bias sees them), the keys j in [j0, j1) it sees.
//   w[j0, j1): the dots q_i.k_j on entry, the weights w_ij on exit (the rest of w untouched);
//   q_i: (D) the query (read for a key slot's q_i.k*), slot_k: head h's k* (D) or sink logit (1),
//   null without a key slot.
//   s_ij = scale q_i.k_j + bias(h, i, j);  s_i* = the slot's score;  g = sim(s);  w = g / Z_i.
//   softmax: w = exp(s - max) / sum exp(s - max), the max taken over the slot's score too.
//   softpick: w = relu(exp(s - m) - exp(-m)) / Z'_i, m = max(max_j s_ij, 0) (attention_variant.h).
// Returns Z_i (1 for softmax, log Z_i for softpick), the row statistic that the backward
// recomputes the weights from (attention_forward's `saved`: LSE_i for softmax, m_i for softpick,
// 0 otherwise) and the slot's weight w_i* (0 without a slot). attention_forward calls it for every
// row; the rolling KV cache (src/model/kv_cache.h) for its one new query.
template <typename T>
struct AttentionRow {
    T z, saved, slot_w;
};

template <typename T>
inline AttentionRow<T> attention_row_weights(const AttentionSpec& spec, T scale, int h, int i, T* w, size_t j0,
                                             size_t j1, const T* q_i, SlotPtr<const T> slot_k, size_t D) {
    // scores s_ij for the keys i sees, and the slot's s_i*
    with_position_bias(spec.position_bias, [&](auto P) {
        const RowScoreBias<decltype(P)::value, T> bias(spec, h, i);
#pragma omp simd
        for (size_t j = j0; j < j1; j++) w[j] = w[j] * scale + bias(int(j));
    });
    T max_s = j1 > j0 ? row_max(w + j0, j1 - j0) : T(-INFINITY);
    const bool slot = spec.has_key_slot();
    const T q_dot_k = slot && !spec.slot_is_logit() ? dot_product(q_i, slot_k, D) : T(0);
    const T slot_s = slot ? slot_score(spec, scale, q_dot_k, slot_k) : T(0);
    if (slot) max_s = std::max(max_s, slot_s);
    // score function and normaliser (the slot's g_i* joins the sum)
    T z = 1, saved = 0, slot_w = 0;
    if (spec.is_softmax()) {
#pragma omp simd
        for (size_t j = j0; j < j1; j++) w[j] -= max_s;
        const T slot_g = slot ? HostMath::exp(slot_s - max_s) : T(0);
        const T sum_over_alpha = row_normaliser(spec, attention_sim_row(spec.score, w + j0, j1 - j0) + slot_g);
        const T inv_sum = T(1) / sum_over_alpha;
#pragma omp simd
        for (size_t j = j0; j < j1; j++) w[j] *= inv_sum;
        slot_w = slot_g * inv_sum;
        saved = max_s + std::log(sum_over_alpha);  // LSE_i: w_ij = exp(s_ij - LSE_i)
    } else if (spec.is_softpick()) {  // no slot (the configuration refuses one); z = log Z_i
        const T m = std::max(max_s, T(0)), shift = HostMath::exp(-m);
        T abs_sum = 0;
#pragma omp simd reduction(+ : abs_sum)
        for (size_t j = j0; j < j1; j++) {
            const T d = softpick_term<HostMath>(w[j], m, shift);
            abs_sum += std::abs(d);
            w[j] = std::max(d, T(0));
        }
        const T zp = softpick_normaliser(abs_sum, shift);
#pragma omp simd
        for (size_t j = j0; j < j1; j++) w[j] /= zp;
        z = m + std::log(zp);
        saved = m;
    } else {
        const T slot_g = slot ? sim<HostMath>(spec.score, slot_s) : T(0);
        z = row_normaliser(spec, attention_sim_row(spec.score, w + j0, j1 - j0) + slot_g);
        slot_w = slot_g;
        if (spec.is_normalised()) {
            const T divisor = normaliser_divisor(z);
#pragma omp simd
            for (size_t j = j0; j < j1; j++) w[j] /= divisor;
            slot_w /= divisor;
        }
    }
    return {z, saved, slot_w};
}

template <typename T>
void attention_forward(T* out, T* saved, T* att_z, SlotPtr<T> att_slot, const T* qkv, SlotPtr<const T> slot_k,
                       SlotPtr<const T> slot_v, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec_ref,
                       SlotPtr<T> maps = nullptr) {
    const AttentionSpec spec = for_shape(spec_ref, int(Tn), int(H));  // a local copy: loop-invariant for the vectorizer
    const size_t D = C / H, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(D));
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            const size_t bh = b * H + h;  // row i of (b, h) in saved, att_z and att_slot: bh * T + i
            const HeadRows<T> rows_bh(qkv, slot_k, slot_v, b, h, Tn, C, H, spec);
            const T *q = rows_bh.q, *k = rows_bh.k, *v = rows_bh.v;
            T* o = out + b * Tn * C + h * D;
            // The block's scores, then weights: w_blk[r * T + j] for query i0 + r and key kb <= j < ke.
            std::vector<T> w_blk(kAttentionQueryBlock * Tn);
            for (size_t i0 = 0; i0 < Tn; i0 += kAttentionQueryBlock) {
                const size_t rows = std::min(kAttentionQueryBlock, Tn - i0);
                const size_t kb = size_t(keys_seen(spec, int(i0)).begin);
                const size_t ke = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                // dots q_i.k_j for the block's queries and keys kb <= j < ke:  w_blk (rows, ke - kb) = Q_blk . K^T
                gemm<T>(rows, ke - kb, D, q + i0 * C3, C3, 1, k + kb * C3, 1, C3, w_blk.data() + kb, Tn, false);
                for (size_t r = 0; r < rows; r++) {
                    const size_t i = i0 + r;
                    T* w = w_blk.data() + r * Tn;
                    const IndexRange seen = keys_seen(spec, int(i));
                    const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
                    const AttentionRow<T> row =
                        attention_row_weights(spec, scale, int(h), int(i), w, j0, j1, q + i * C3, rows_bh.slot_k, D);
                    // the block's keys that i does not see: exactly zero (the product below reads [kb, ke))
                    for (size_t j = kb; j < j0; j++) w[j] = 0;
                    for (size_t j = j1; j < ke; j++) w[j] = 0;
                    saved[bh * Tn + i] = row.saved;
                    att_z[bh * Tn + i] = row.z;
                    if (spec.has_key_slot()) att_slot[bh * Tn + i] = row.slot_w;
                    if (maps) {  // the keep-maps mode: row i of the (T, T) map, zeros outside [kb, ke)
                        T* map_row = maps + (bh * Tn + i) * Tn;
                        std::fill(map_row, map_row + kb, T(0));
                        std::copy(w + kb, w + ke, map_row + kb);
                        std::fill(map_row + ke, map_row + Tn, T(0));
                    }
                }
                // weighted sum of values (the masked weights are zero):  out_blk (rows, D) = w_blk . V
                gemm<T>(rows, D, ke - kb, w_blk.data() + kb, Tn, 1, v + kb * C3, C3, 1, o + i0 * C, C, false);
                // the slot's value:  out_i += w_i* v*
                if (rows_bh.slot_v)
                    for (size_t i = i0; i < i0 + rows; i++) {
                        const T slot_w = att_slot[bh * Tn + i];
                        for (size_t d = 0; d < D; d++) o[i * C + d] += slot_w * rows_bh.slot_v[d];
                    }
            }
        }
}

// One row of the weights again in the backward, from the dots and the forward's per-row statistics
// (no (T, T) matrix is kept): query i of head h, the keys [j0, j1) it sees.
//   w[j0, j1): the dots q_i.k_j on entry, the weights w_ij on exit;
//   saved: the forward's `saved` for row i (LSE_i for softmax, m_i for softpick);
//   z: its att_z (Z_i; log Z_i for softpick);
//   scores[j0, j1): softpick only (else unused, may be null): the scores s_ij, which its gradient needs.
//   s_ij = scale q_i.k_j + bias(h, i, j), then
//   softmax:   w = exp(s - LSE_i)
//   softpick:  w = relu(exp(s - m_i) - exp(-m_i)) / Z'_i,  Z'_i = exp(log Z_i - m_i)  (the forward's
//              terms, so that their cancellation near s = 0 is the forward's too)
//   others:    w = sim(s) / |Z_i|  (sim(s) without a normaliser: Z_i = 1)
template <typename T>
inline void attention_row_recompute(const AttentionSpec& spec, T scale, int h, int i, T* w, T* scores, size_t j0,
                                    size_t j1, T saved, T z) {
    // the position bias as a compile-time constant, so that the loops vectorize (attention_variant.h)
    with_position_bias(spec.position_bias, [&](auto P) {
        const RowScoreBias<decltype(P)::value, T> bias(spec, h, i);
        auto score = [&](size_t j) { return w[j] * scale + bias(int(j)); };
        if (spec.is_softmax()) {
#pragma omp simd
            for (size_t j = j0; j < j1; j++) w[j] = HostMath::exp(score(j) - saved);
        } else if (spec.is_softpick()) {
            const T m = saved, shift = HostMath::exp(-m), inv_zp = HostMath::exp(m - z);
#pragma omp simd
            for (size_t j = j0; j < j1; j++) {
                const T s = score(j);
                scores[j] = s;
                w[j] = std::max(softpick_term<HostMath>(s, m, shift), T(0)) * inv_zp;
            }
        } else {
            const T divisor = spec.is_normalised() ? normaliser_divisor(z) : T(1);
            with_score_function(spec.score, [&](auto F) {
#pragma omp simd
                for (size_t j = j0; j < j1; j++) w[j] = sim<decltype(F)::value, HostMath>(score(j)) / divisor;
            });
        }
    });
}

// Multi-head attention, backward. dqkv (B, T, 3C) +=, from dout (B, T, C), qkv (B, T, 3C) and what
// the forward kept: saved, att_z, att_slot (B, H, T) each (attention_forward). The weights are
// recomputed block by block (attention_row_recompute), as the CUDA kernels do:
//   w_ij from the scores q_i.k_j (one more matrix product per block) and the row's statistics
//   dw_ij = dout_i . v_j,   dv_j += w_ij dout_i
//   ds_ij = score_grad(...) (attention_variant.h: through the normaliser and the score function)
//   softpick: ds_ij = softpick_score_grad(..., s_ij, exp(s_ij - log Z_i), ...)
//   dq_i += scale sum_j ds_ij k_j,   dk_j += scale ds_ij q_i
// The key slot, as one more key of every row: dw_i* = dout_i . v*, ds_i* from score_grad (its
// weight w_i* read from att_slot), then
//   dq_i += ds_i* k*,  and per (b, h), written (not accumulated):
//   d_slot_k: (B, H, D) sum_i ds_i* q_i;   d_slot_v: (B, H, D) sum_i w_i* dout_i (with v* only).
//   The learned sink logit: d_slot_k (B, H, 1) sum_i dL/ds_i* (s_h enters unscaled); off-by-one: none.
// The caller sums them over b (and h when k* is shared) into the gradients of k* and v*.
// Blocked over queries (kAttentionQueryBlock) and their keys [kb, ke) as in the forward pass; each
// sum is a matrix product (gemm) over the block; per thread a scratch of two (kAttentionQueryBlock, T)
// blocks, the weights and their gradients (softpick: a third, the scores).
// One thread owns one (b, h), and the blocks are visited in order, so the sums over i into dk_j and
// dv_j are in a fixed order.
template <typename T>
void attention_backward(T* dqkv, SlotPtr<T> d_slot_k, SlotPtr<T> d_slot_v, const T* dout, const T* qkv,
                        SlotPtr<const T> slot_k, SlotPtr<const T> slot_v, const T* saved, const T* att_z,
                        SlotPtr<const T> att_slot, size_t B, size_t Tn, size_t C, size_t H,
                        const AttentionSpec& spec_ref) {
    const AttentionSpec spec = for_shape(spec_ref, int(Tn), int(H));
    const size_t D = C / H, C3 = 3 * C;
    const T scale = T(1) / std::sqrt(T(D));
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            const size_t bh = b * H + h;  // row i of (b, h) in saved, att_z and att_slot: bh * T + i
            const HeadRows<T> rows_bh(qkv, slot_k, slot_v, b, h, Tn, C, H, spec);
            const T *q = rows_bh.q, *k = rows_bh.k, *v = rows_bh.v;
            const bool slot = spec.has_key_slot();
            const size_t W = size_t(spec.slot_score_width(int(D)));
            T* dk_slot = spec.has_slot_score_param() ? d_slot_k + bh * W : nullptr;
            T* dv_slot = rows_bh.slot_v ? d_slot_v + bh * D : nullptr;
            if (dk_slot) std::fill(dk_slot, dk_slot + W, T(0));
            if (dv_slot) std::fill(dv_slot, dv_slot + D, T(0));
            T* dq = dqkv + b * Tn * C3 + h * D;
            T* dk = dq + C;
            T* dv = dq + 2 * C;
            const T* dout_bh = dout + b * Tn * C + h * D;
            // The block's scratch, (rows, keys) with row stride T, key j at column j (kb <= j < ke):
            std::vector<T> w_blk(kAttentionQueryBlock * Tn);   // the dots, then the weights w_ij
            std::vector<T> ds_blk(kAttentionQueryBlock * Tn);  // dw_ij = dout_i . v_j, then ds_ij
            std::vector<T> s_blk(spec.is_softpick() ? kAttentionQueryBlock * Tn : 0);  // softpick: the scores s_ij
            for (size_t i0 = 0; i0 < Tn; i0 += kAttentionQueryBlock) {
                const size_t rows = std::min(kAttentionQueryBlock, Tn - i0);
                const size_t kb = size_t(keys_seen(spec, int(i0)).begin);
                const size_t ke = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                const T* dout_blk = dout_bh + i0 * C;
                // the forward's dots again:  w_blk (rows, ke - kb) = Q_blk . K^T
                gemm<T>(rows, ke - kb, D, q + i0 * C3, C3, 1, k + kb * C3, 1, C3, w_blk.data() + kb, Tn, false);
                // dw_ij = dout_i . v_j:  ds_blk (rows, ke - kb) = dOut_blk . V^T
                gemm<T>(rows, ke - kb, D, dout_blk, C, 1, v + kb * C3, 1, C3, ds_blk.data() + kb, Tn, false);
                // the weights, then through the normaliser and the score function, row by row
                for (size_t r = 0; r < rows; r++) {
                    const size_t i = i0 + r;
                    T* w = w_blk.data() + r * Tn;
                    T* dsi = ds_blk.data() + r * Tn;
                    T* si = spec.is_softpick() ? s_blk.data() + r * Tn : nullptr;
                    const IndexRange seen = keys_seen(spec, int(i));
                    const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
                    const T z = att_z[bh * Tn + i];
                    attention_row_recompute(spec, scale, int(h), int(i), w, si, j0, j1, saved[bh * Tn + i], z);
                    const T* dout_i = dout_blk + r * C;
                    const T slot_w = slot ? att_slot[bh * Tn + i] : T(0);
                    const T slot_dw = rows_bh.slot_v ? dot_product(dout_i, rows_bh.slot_v, D) : T(0);
                    T dot = slot_w * slot_dw;  // sum_j w_ij dw_ij, for Delta_i (not needed without a normaliser)
                    if (spec.is_normalised()) {
#pragma omp simd reduction(+ : dot)
                        for (size_t j = j0; j < j1; j++) dot += w[j] * dsi[j];
                    }
                    const T delta = row_delta(spec, dot, z);
                    const T divisor = normaliser_divisor(z), inv_z = T(1) / divisor;
                    if (spec.is_softpick()) {  // z = log Z_i
#pragma omp simd
                        for (size_t j = j0; j < j1; j++)
                            dsi[j] = softpick_score_grad(scale, dsi[j], si[j], HostMath::exp(si[j] - z), delta);
                    } else {  // the normaliser and score function as constants, so that the loop vectorizes
                        with_normalizer(spec.normalizer, [&](auto N) {
                            with_score_function(spec.score, [&](auto F) {
#pragma omp simd
                                for (size_t j = j0; j < j1; j++) {
                                    const T g_prime = sim_grad<decltype(F)::value>(w[j] * divisor);
                                    dsi[j] = score_grad<decltype(N)::value>(scale, dsi[j], w[j], g_prime, inv_z, delta);
                                }
                            });
                        });
                    }
                    if (spec.slot_is_logit() && dk_slot) {  // the learned logit: ds_h += dL/ds_i* (score s_h, unscaled)
                        dk_slot[0] += score_grad(spec, T(1), slot_dw, slot_w, slot_w * divisor, inv_z, delta);
                    } else if (slot && !spec.slot_is_logit()) {  // the slot's key: dq_i += ds_i* k*,  dk* += ds_i* q_i,  dv* += w_i* dout_i
                        const T slot_ds = score_grad(spec, scale, slot_dw, slot_w, slot_w * divisor, inv_z, delta);
                        const T* q_i = q + i * C3;
                        T* dq_i = dq + i * C3;
                        for (size_t d = 0; d < D; d++) {
                            dq_i[d] += slot_ds * rows_bh.slot_k[d];
                            dk_slot[d] += slot_ds * q_i[d];
                        }
                        if (dv_slot)
                            for (size_t d = 0; d < D; d++) dv_slot[d] += slot_w * dout_i[d];
                    }
                    // the block's keys that i does not see: no weight, no gradient
                    for (size_t j = kb; j < j0; j++) w[j] = dsi[j] = 0;
                    for (size_t j = j1; j < ke; j++) w[j] = dsi[j] = 0;
                }
                // dv_j += sum_i w_ij dout_i:  dV (ke - kb, D) += w_blk^T . dOut_blk
                gemm<T>(ke - kb, D, rows, w_blk.data() + kb, 1, Tn, dout_blk, C, 1, dv + kb * C3, C3, true);
                // dq_i += scale sum_j ds_ij k_j:  dQ_blk (rows, D) += ds_blk . K
                gemm<T>(rows, D, ke - kb, ds_blk.data() + kb, Tn, 1, k + kb * C3, C3, 1, dq + i0 * C3, C3, true);
                // dk_j += scale sum_i ds_ij q_i:  dK (keys, D) += ds_blk^T . Q_blk
                gemm<T>(ke - kb, D, rows, ds_blk.data() + kb, 1, Tn, q + i0 * C3, C3, 1, dk + kb * C3, C3, true);
            }
        }
}

}  // namespace sinklab
