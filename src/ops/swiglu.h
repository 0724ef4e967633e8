// The SwiGLU activation of the feed-forward block (Shazeer, 2020): silu(gate) * up.
#pragma once
#include <cstddef>

#include "ops/common.h"
#include "ops/exp.h"

namespace sinklab {

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

}  // namespace sinklab
