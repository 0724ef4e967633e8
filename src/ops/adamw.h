// The optimizer: AdamW, and the global sum of squares that gradient clipping needs.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "ops/common.h"

namespace sinklab {

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
