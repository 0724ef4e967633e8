// RMSNorm (Zhang & Sennrich, 2019): each row divided by its root mean square, times a learned gain.
#pragma once
#include <cmath>
#include <cstddef>

#include "ops/common.h"

namespace sinklab {

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

}  // namespace sinklab
