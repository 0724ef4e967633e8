// The CPU backend: every operation of the model as a forward/backward pair of plain loops.
//
// This is the reference implementation. Each function states its shapes and its math above it;
// the CUDA twin in cuda/ops_cuda.h has the same name and the same comment. Templated on the scalar
// type so that gradient checks run in double; the trainer runs in float.
//
// Conventions
//   B batch, T sequence length, C model width, H heads, D = C / H head dim, F FFN hidden, V vocab.
//   N = B * T rows of tokens. Row-major everywhere; size_t indices.
//   qkv (B, T, 3C): q = [.., 0:C], k = [.., C:2C], v = [.., 2C:3C]; head h is the slice [h D, (h+1) D).
//   Backward functions accumulate (+=) into every gradient they write, unless stated otherwise.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention_variant.h"
#include "config.h"
#include "exp.h"
#include "matmul.h"

namespace sinklab {

// ----------------------------------------------------------------------------------------------
// Embedding.  tokens: (N) ids, wte: (V, C)  ->  out: (N, C),  out[n, :] = wte[tokens[n], :]
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* row = wte + size_t(tokens[n]) * C;
        for (size_t c = 0; c < C; c++) out[n * C + c] = row[c];
    }
}

// Backward passes that sum over rows into a per-column gradient split the columns into blocks of
// kColumnBlock (one 64-byte cache line of floats): one thread owns a block [c0, c1) and sums its
// columns in row order, which is deterministic for any thread count and reads whole lines.
constexpr size_t kColumnBlock = 16;

template <typename Body>
void parallel_over_column_blocks(size_t C, Body body) {
    const size_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) body(blk * kColumnBlock, std::min(C, (blk + 1) * kColumnBlock));
}

// Embedding, backward.  dwte[tokens[n], :] += dout[n, :], each element summed in token order.
template <typename T>
void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
    parallel_over_column_blocks(C, [&](size_t c0, size_t c1) {
        for (size_t n = 0; n < N; n++) {
            T* row = dwte + size_t(tokens[n]) * C;
            for (size_t c = c0; c < c1; c++) row[c] += dout[n * C + c];
        }
    });
}

// ----------------------------------------------------------------------------------------------
// RMSNorm, forward.  x: (N, C) rows, weight: (C)  ->  out: (N, C), rstd: (N) kept for backward.
//   out[n, c] = x[n, c] * rstd[n] * weight[c],   rstd[n] = 1 / sqrt(mean_c x[n, c]^2 + eps)
template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* weight, size_t N, size_t C, T eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* xn = x + n * C;
        T sum_sq = 0;
#pragma omp simd reduction(+ : sum_sq)
        for (size_t c = 0; c < C; c++) sum_sq += xn[c] * xn[c];
        const T r = T(1) / std::sqrt(sum_sq / T(C) + eps);
        rstd[n] = r;
        for (size_t c = 0; c < C; c++) out[n * C + c] = xn[c] * r * weight[c];
    }
}

// RMSNorm, backward. Accumulates into dx and dweight (+=), reads the rstd saved above.
//   y = x r w  with  r = (mean x^2 + eps)^-1/2,  dr/dx_c = -r^3 x_c / C
//   dx[c] += r w[c] dy[c] - r^3 x[c] / C * sum_c' dy[c'] w[c'] x[c']
//   dweight[c] += sum_n dy[n, c] x[n, c] r[n]
template <typename T>
void rmsnorm_backward(T* dx, T* dweight, const T* dout, const T* x, const T* weight, const T* rstd, size_t N,
                      size_t C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* xn = x + n * C;
        const T* dy = dout + n * C;
        const T r = rstd[n];
        T dot = 0;  // sum_c dy w x
#pragma omp simd reduction(+ : dot)
        for (size_t c = 0; c < C; c++) dot += dy[c] * weight[c] * xn[c];
        const T coef = r * r * r * dot / T(C);
#pragma omp simd
        for (size_t c = 0; c < C; c++) dx[n * C + c] += r * weight[c] * dy[c] - coef * xn[c];
    }
    // dweight: each column summed over n in row order (deterministic)
    parallel_over_column_blocks(C, [&](size_t c0, size_t c1) {
        T sum[kColumnBlock] = {};
        for (size_t n = 0; n < N; n++)
            for (size_t c = c0; c < c1; c++) sum[c - c0] += dout[n * C + c] * x[n * C + c] * rstd[n];
        for (size_t c = c0; c < c1; c++) dweight[c] += sum[c - c0];
    });
}

// ----------------------------------------------------------------------------------------------
// RoPE tables.  cos, sin: (T, D/2),  angle[t, i] = t * base^(-2i / D)   (computed in double)
template <typename T>
void rope_table(T* cos_table, T* sin_table, size_t T_max, size_t D, double base) {
    const size_t half = D / 2;
    for (size_t t = 0; t < T_max; t++)
        for (size_t i = 0; i < half; i++) {
            const double angle = double(t) * std::pow(base, -2.0 * double(i) / double(D));
            cos_table[t * half + i] = T(std::cos(angle));
            sin_table[t * half + i] = T(std::sin(angle));
        }
}

// RoPE, forward, rotate-half (GPT-NeoX) layout on the whole head dimension.
//   qkv: (B, T, 3C) -> out: (B, T, 3C). q and k are rotated per head, v is copied.
//   For each head slice x (D values), i < D/2, position t:
//     out[i]       = x[i] cos[t, i] - x[i + D/2] sin[t, i]
//     out[i + D/2] = x[i + D/2] cos[t, i] + x[i] sin[t, i]
template <typename T>
void rope_forward(T* out, const T* qkv, const T* cos_table, const T* sin_table, size_t B, size_t Tn, size_t C,
                  size_t H) {
    const size_t D = C / H, half = D / 2;
#pragma omp parallel for schedule(static)
    for (size_t bt = 0; bt < B * Tn; bt++) {
        const size_t t = bt % Tn;
        const T* cs = cos_table + t * half;
        const T* sn = sin_table + t * half;
        const T* in_row = qkv + bt * 3 * C;
        T* out_row = out + bt * 3 * C;
        for (size_t h = 0; h < 2 * H; h++) {  // the H query heads, then the H key heads
            const T* x = in_row + h * D;
            T* y = out_row + h * D;
            for (size_t i = 0; i < half; i++) {
                y[i] = x[i] * cs[i] - x[i + half] * sn[i];
                y[i + half] = x[i + half] * cs[i] + x[i] * sn[i];
            }
        }
        for (size_t c = 2 * C; c < 3 * C; c++) out_row[c] = in_row[c];
    }
}

// RoPE, backward (the transpose of the rotation).  dqkv (B, T, 3C) += R^T dout.
//   dx[i] += dy[i] cos + dy[i + D/2] sin,   dx[i + D/2] += dy[i + D/2] cos - dy[i] sin
template <typename T>
void rope_backward(T* dqkv, const T* dout, const T* cos_table, const T* sin_table, size_t B, size_t Tn, size_t C,
                   size_t H) {
    const size_t D = C / H, half = D / 2;
#pragma omp parallel for schedule(static)
    for (size_t bt = 0; bt < B * Tn; bt++) {
        const size_t t = bt % Tn;
        const T* cs = cos_table + t * half;
        const T* sn = sin_table + t * half;
        const T* dy_row = dout + bt * 3 * C;
        T* dx_row = dqkv + bt * 3 * C;
        for (size_t h = 0; h < 2 * H; h++) {
            const T* dy = dy_row + h * D;
            T* dx = dx_row + h * D;
            for (size_t i = 0; i < half; i++) {
                dx[i] += dy[i] * cs[i] + dy[i + half] * sn[i];
                dx[i + half] += dy[i + half] * cs[i] - dy[i] * sn[i];
            }
        }
        for (size_t c = 2 * C; c < 3 * C; c++) dx_row[c] += dy_row[c];
    }
}

// ----------------------------------------------------------------------------------------------
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
// scores of the keys below keys_seen(last row).end, so the blocks skip most of the masked half.
// One thread owns one (b, h).
constexpr size_t kAttentionQueryBlock = 64;

template <typename T>
void attention_forward(T* out, T* att, T* att_z, const T* qkv, size_t B, size_t Tn, size_t C, size_t H,
                       const AttentionSpec& spec_ref) {
    const AttentionSpec spec = spec_ref;  // a local copy: loop-invariant for the vectorizer
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
                const size_t keys = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                // dots q_i.k_j for the block's queries and keys j < keys:  w (rows, keys) = Q_blk . K^T
                gemm<T>(rows, keys, D, q + i0 * C3, C3, 1, k, 1, C3, w_bh + i0 * Tn, Tn, false);
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
                        const T inv_sum = T(1) / attention_sim_row(spec.score, w + j0, j1 - j0);
#pragma omp simd
                        for (size_t j = j0; j < j1; j++) w[j] *= inv_sum;
                    } else {
                        z = row_normaliser(spec, attention_sim_row(spec.score, w + j0, j1 - j0));
                        if (spec.is_normalised()) {
#pragma omp simd
                            for (size_t j = j0; j < j1; j++) w[j] /= z;
                        }
                    }
                    // the mask: exactly zero outside [j0, j1)
                    for (size_t j = 0; j < j0; j++) w[j] = 0;
                    for (size_t j = j1; j < Tn; j++) w[j] = 0;
                    att_z[(b * H + h) * Tn + i] = z;
                }
                // weighted sum of values (the masked weights are zero):  out_blk (rows, D) = w . V
                gemm<T>(rows, D, keys, w_bh + i0 * Tn, Tn, 1, v, C3, 1, o + i0 * C, C, false);
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
    const AttentionSpec spec = spec_ref;
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
                const size_t keys = size_t(keys_seen(spec, int(i0 + rows - 1)).end);
                const T* w_blk = w_bh + i0 * Tn;
                const T* dout_blk = dout_bh + i0 * C;
                // dw_ij = dout_i . v_j:  ds (rows, keys) = dOut_blk . V^T
                gemm<T>(rows, keys, D, dout_blk, C, 1, v, 1, C3, ds.data(), Tn, false);
                // dv_j += sum_i w_ij dout_i:  dV (keys, D) += w_blk^T . dOut_blk
                gemm<T>(keys, D, rows, w_blk, 1, Tn, dout_blk, C, 1, dv, C3, true);
                // through the normaliser and the score function, row by row
                for (size_t r = 0; r < rows; r++) {
                    const size_t i = i0 + r;
                    const T* w = w_blk + r * Tn;
                    T* dsi = ds.data() + r * Tn;
                    const IndexRange seen = keys_seen(spec, int(i));
                    const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
                    T delta = 0;  // Delta_i = sum_j w_ij dw_ij (0 where the variant has no normaliser)
                    if (spec.is_normalised()) {
#pragma omp simd reduction(+ : delta)
                        for (size_t j = j0; j < j1; j++) delta += w[j] * dsi[j];
                    }
                    const T z = att_z[(b * H + h) * Tn + i], inv_z = T(1) / z;
#pragma omp simd
                    for (size_t j = j0; j < j1; j++) dsi[j] = score_grad(spec, scale, dsi[j], w[j], w[j] * z, inv_z, delta);
                    // the keys i does not see: no gradient
                    for (size_t j = 0; j < j0; j++) dsi[j] = 0;
                    for (size_t j = j1; j < keys; j++) dsi[j] = 0;
                }
                // dq_i += scale sum_j ds_ij k_j:  dQ_blk (rows, D) += ds . K
                gemm<T>(rows, D, keys, ds.data(), Tn, 1, k, C3, 1, dq + i0 * C3, C3, true);
                // dk_j += scale sum_i ds_ij q_i:  dK (keys, D) += ds^T . Q_blk
                gemm<T>(keys, D, rows, ds.data(), 1, Tn, q + i0 * C3, C3, 1, dk, C3, true);
            }
        }
}

// ----------------------------------------------------------------------------------------------
// SwiGLU, forward.  fc: (N, 2F) = [x W1^T | x W2^T]  ->  out: (N, F) = silu(gate) * up
//   silu(a) = a sigmoid(a)
template <typename T>
void swiglu_forward(T* out, const T* fc, size_t N, size_t F) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* gate = fc + n * 2 * F;
        const T* up = gate + F;
#pragma omp simd
        for (size_t f = 0; f < F; f++) {
            const T sig = T(1) / (T(1) + exp_of(-gate[f]));
            out[n * F + f] = gate[f] * sig * up[f];
        }
    }
}

// SwiGLU, backward.  dfc (N, 2F) +=.
//   dgate += dout * up * sig (1 + a (1 - sig)),   dup += dout * silu(a)
template <typename T>
void swiglu_backward(T* dfc, const T* dout, const T* fc, size_t N, size_t F) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* gate = fc + n * 2 * F;
        const T* up = gate + F;
        T* dgate = dfc + n * 2 * F;
        T* dup = dgate + F;
#pragma omp simd
        for (size_t f = 0; f < F; f++) {
            const T a = gate[f];
            const T sig = T(1) / (T(1) + exp_of(-a));
            const T dy = dout[n * F + f];
            dgate[f] += dy * up[f] * sig * (T(1) + a * (T(1) - sig));
            dup[f] += dy * a * sig;
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Residual add.  x (n) += y (n). (Its backward is the identity: the gradient flows to both.)
template <typename T>
void residual_add(T* x, const T* y, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

// ----------------------------------------------------------------------------------------------
// The largest of n > 0 values (vectorized).
template <typename T>
inline T row_max(const T* x, size_t n) {
    T m = x[0];
#pragma omp simd reduction(max : m)
    for (size_t i = 1; i < n; i++) m = std::max(m, x[i]);
    return m;
}

// Cross entropy, forward.  logits: (N, V), targets: (N)  ->  losses: (N)
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]];  a negative target is ignored (loss 0).
template <typename T>
void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, size_t N, size_t V) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        if (targets[n] < 0) {
            losses[n] = 0;
            continue;
        }
        const T* row = logits + n * V;
        const T max_l = row_max(row, V);
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t v = 0; v < V; v++) sum += exp_of(row[v] - max_l);
        losses[n] = std::log(sum) + max_l - row[size_t(targets[n])];
    }
}

// Cross entropy fused with the softmax over the vocabulary, backward. Writes (=, not +=):
//   dlogits[n, v] = dloss * (softmax(logits[n])[v] - [v == targets[n]])   (0 for ignored rows)
// dlogits may be the same buffer as logits (each row is read fully before it is written).
template <typename T>
void crossentropy_backward(T* dlogits, const T* logits, const int32_t* targets, T dloss, size_t N, size_t V) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* row = logits + n * V;
        T* drow = dlogits + n * V;
        if (targets[n] < 0) {
            for (size_t v = 0; v < V; v++) drow[v] = 0;
            continue;
        }
        const T max_l = row_max(row, V);
        // drow = exp(logits - max) first (in place is fine: element v is read, then written) ...
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t v = 0; v < V; v++) {
            drow[v] = exp_of(row[v] - max_l);
            sum += drow[v];
        }
        // ... then scaled by dloss / sum, minus dloss at the target
        const T factor = dloss / sum;
#pragma omp simd
        for (size_t v = 0; v < V; v++) drow[v] *= factor;
        drow[size_t(targets[n])] -= dloss;
    }
}

// ----------------------------------------------------------------------------------------------
// Sum of squares of n values, in double, in fixed-size chunks reduced in chunk order: the result is
// bitwise the same for any thread count.
template <typename T>
double sum_squares(const T* x, size_t n) {
    constexpr size_t kChunk = 1 << 14;
    const size_t chunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        double s = 0;
        const size_t end = std::min(n, (c + 1) * kChunk);
        for (size_t i = c * kChunk; i < end; i++) s += double(x[i]) * double(x[i]);
        partial[c] = s;
    }
    double total = 0;
    for (double p : partial) total += p;
    return total;
}

// AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's torch.optim.AdamW):
//   g = grad * grad_scale   (grad_scale carries the clipping factor)
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p -= lr * ( (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + wd * p )      t = step, 1-based
struct AdamWHyper {
    double lr = 4e-4, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, const AdamWHyper& hp, size_t step,
                  T grad_scale) {
    const T b1 = T(hp.beta1), b2 = T(hp.beta2);
    const T bias1 = T(1.0 - std::pow(hp.beta1, double(step)));
    const T bias2 = T(1.0 - std::pow(hp.beta2, double(step)));
    const T lr = T(hp.lr), eps = T(hp.eps), wd = T(hp.weight_decay);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const T g = grads[i] * grad_scale;
        m[i] = b1 * m[i] + (T(1) - b1) * g;
        v[i] = b2 * v[i] + (T(1) - b2) * g * g;
        const T m_hat = m[i] / bias1;
        const T v_hat = v[i] / bias2;
        params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * params[i]);
    }
}

}  // namespace sinklab
