// The gated feed-forward activation (GLU family, Shazeer 2020): f(gate) * up. f = silu is SwiGLU
// (the default model), gelu GeGLU, relu ReGLU (src/ops/activation.h has each f and f').
#pragma once
#include <cstddef>

#include "ops/activation.h"
#include "ops/common.h"

namespace sinklab {

// GLU, forward.  fc: (N, 2F) = [x W1^T | x W2^T] = [gate | up]  ->  out: (N, F) = f(gate) * up
template <typename T>
void glu_forward(T* out, const T* fc, size_t N, size_t F, Activation f) {
    with_activation(f, [&](auto A) {
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++) {
            const T* gate = fc + n * 2 * F;
            const T* up = gate + F;
#pragma omp simd
            for (size_t j = 0; j < F; j++) out[n * F + j] = activation_value<decltype(A)::value, HostMath>(gate[j]) * up[j];
        }
    });
}

// GLU, backward.  dfc (N, 2F) +=.
//   dgate += dout * up * f'(gate),   dup += dout * f(gate)
template <typename T>
void glu_backward(T* dfc, const T* dout, const T* fc, size_t N, size_t F, Activation f) {
    with_activation(f, [&](auto A) {
        constexpr Activation kF = decltype(A)::value;
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++) {
            const T* gate = fc + n * 2 * F;
            const T* up = gate + F;
            T* dgate = dfc + n * 2 * F;
            T* dup = dgate + F;
#pragma omp simd
            for (size_t j = 0; j < F; j++) {
                const T dy = dout[n * F + j];
                dgate[j] += activation_derivative_times<kF, HostMath>(gate[j], dy * up[j]);
                dup[j] += activation_value_times<kF, HostMath>(gate[j], dy);
            }
        }
    });
}

}  // namespace sinklab
