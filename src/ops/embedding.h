// Token embedding: a row lookup, and its backward (a scatter-add, summed in token order).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/common.h"

namespace sinklab {

// Embedding.  tokens: (N) ids, wte: (V, C)  ->  out: (N, C),  out[n, :] = wte[tokens[n], :]
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* row = wte + size_t(tokens[n]) * C;
        for (size_t c = 0; c < C; c++) out[n * C + c] = row[c];
    }
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

}  // namespace sinklab
