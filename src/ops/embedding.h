// Token embedding: a row lookup, and its backward (a scatter-add, summed in token order).
#pragma once
#include <cmath>
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

// The sinusoidal absolute position table (`--position sinusoidal`; Vaswani et al., 2017), the sin
// and cos halves concatenated:  table: (T_max, C),  w_i = 10000^(-2i / C) for i < C/2,
//   table[t, i] = sin(t w_i),   table[t, C/2 + i] = cos(t w_i)        (computed in double)
// The model adds row t to the embedding of every token at position t (bias_add_forward).
template <typename T>
void sinusoidal_table(T* table, size_t T_max, size_t C) {
    const size_t half = C / 2;
    for (size_t t = 0; t < T_max; t++)
        for (size_t i = 0; i < half; i++) {
            const double angle = double(t) * std::pow(10000.0, -2.0 * double(i) / double(C));
            table[t * C + i] = T(std::sin(angle));
            table[t * C + half + i] = T(std::cos(angle));
        }
}

}  // namespace sinklab
