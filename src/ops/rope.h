// Rotary position embedding (Su et al., 2021) applied to the q and k parts of the qkv rows.
#pragma once
#include <cmath>
#include <cstddef>

#include "ops/common.h"

namespace sinklab {

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

}  // namespace sinklab
