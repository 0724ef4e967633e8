// The gated attention output (`--attention-gate`, Qiu et al. 2025, arXiv 2505.06708): the attention
// output scaled, before the output projection, by sigmoid gates computed from the sub-block's
// normalised input (z = x W_g, by the caller's matmul):
//   headwise:     G = H gates per token, gate j scales head j's D channels
//   elementwise:  G = C gates per token, one per channel
#pragma once
#include <cstddef>

#include "ops/common.h"
#include "ops/exp.h"
#include "util/host_device.h"

namespace sinklab {

// The gate sig(z) = 1 / (1 + exp(-z)), for the CPU (Math = HostMath) and the GPU (DeviceMath).
template <class Math, typename T>
SINKLAB_HD T gate_value(T z) {
    return Math::rcp(T(1) + Math::exp(-z));
}

// Sigmoid gate, forward.  y: (N, C), z: (N, G) the gates' logits, G dividing C  ->  out: (N, C),
//   out[n, c] = y[n, c] sig(z[n, j]),  j = c / (C / G),  sig(z) = 1 / (1 + exp(-z)).
template <typename T>
void gate_forward(T* out, const T* y, const T* z, size_t N, size_t C, size_t G) {
    const size_t width = C / G;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (size_t j = 0; j < G; j++) {
            const T g = gate_value<HostMath>(z[n * G + j]);
            for (size_t c = j * width; c < (j + 1) * width; c++) out[n * C + c] = y[n * C + c] * g;
        }
}

// Sigmoid gate, backward.  dy (N, C) +=, dz (N, G) +=:
//   dy[n, c] += dout[n, c] sig(z[n, j]),   dz[n, j] += sig'(z[n, j]) sum_{c of gate j} dout[n, c] y[n, c],
//   sig' = sig (1 - sig).
template <typename T>
void gate_backward(T* dy, T* dz, const T* dout, const T* y, const T* z, size_t N, size_t C, size_t G) {
    const size_t width = C / G;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (size_t j = 0; j < G; j++) {
            const T g = gate_value<HostMath>(z[n * G + j]);
            T dot = 0;
            for (size_t c = j * width; c < (j + 1) * width; c++) {
                dy[n * C + c] += dout[n * C + c] * g;
                dot += dout[n * C + c] * y[n * C + c];
            }
            dz[n * G + j] += dot * g * (T(1) - g);
        }
}

}  // namespace sinklab
