// The heads summed instead of concatenated (`--head-output sum`; the paper's "heads summed" run):
// the attention's H head outputs added up before one D x C output projection shared by all heads.
#pragma once
#include <cstddef>

#include "ops/common.h"

namespace sinklab {

// Head sum, forward.  y: (N, H, D) the heads' outputs  ->  out: (N, D),  out[n, d] = sum_h y[n, h, d]
// (the heads added in order).
template <typename T>
void head_sum_forward(T* out, const T* y, size_t N, size_t H, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (size_t d = 0; d < D; d++) {
            T sum = 0;
            for (size_t h = 0; h < H; h++) sum += y[(n * H + h) * D + d];
            out[n * D + d] = sum;
        }
}

// Head sum, backward.  dy (N, H, D) += dout[n, d] for every head h.
template <typename T>
void head_sum_backward(T* dy, const T* dout, size_t N, size_t H, size_t D) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < H; h++)
            for (size_t d = 0; d < D; d++) dy[(n * H + h) * D + d] += dout[n * D + d];
}

}  // namespace sinklab
