// Merging two qkv buffers: q and k from one, v from the other (the kernel attention variants keep
// phi(q), phi(k) and the original v; src/model/model.h).
#pragma once
#include <cstddef>

namespace sinklab {

// q and k from one qkv buffer, v from another:  qk_src, v_src: (N, 3C) -> out: (N, 3C),
//   out[n, 0:2C] = qk_src[n, 0:2C],   out[n, 2C:3C] = v_src[n, 2C:3C].
// (A feature map phi is computed over whole qkv rows; this keeps phi(q), phi(k) and the original v.)
template <typename T>
void qkv_merge_forward(T* out, const T* qk_src, const T* v_src, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const size_t row = n * 3 * C;
        for (size_t c = 0; c < 2 * C; c++) out[row + c] = qk_src[row + c];
        for (size_t c = 2 * C; c < 3 * C; c++) out[row + c] = v_src[row + c];
    }
}

// qkv merge, backward.  dqk_src[:, 0:2C] += dout[:, 0:2C],  dv_src[:, 2C:3C] += dout[:, 2C:3C].
template <typename T>
void qkv_merge_backward(T* dqk_src, T* dv_src, const T* dout, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const size_t row = n * 3 * C;
        for (size_t c = 0; c < 2 * C; c++) dqk_src[row + c] += dout[row + c];
        for (size_t c = 2 * C; c < 3 * C; c++) dv_src[row + c] += dout[row + c];
    }
}

}  // namespace sinklab
