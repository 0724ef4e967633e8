// A vector added to every row: the V bias of the attention (docs/attention.md, "Extra key/value
// slots"). Its backward, the sum over the rows, also gathers the per-(b, h) gradients of the slot's
// k* and v* that the attention backward writes.
#pragma once
#include <cstddef>

#include "ops/common.h"

namespace sinklab {

// Bias add, forward.  x (rows, n) += bias (n) on every row.
template <typename T>
void bias_add_forward(T* x, const T* bias, size_t rows, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < n; c++) x[r * n + c] += bias[c];
}

// Bias add, backward.  dbias (n) += sum_r dx (rows, n)[r], the rows summed in order.
template <typename T>
void bias_add_backward(T* dbias, const T* dx, size_t rows, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < n; c++) {
        T sum = 0;
        for (size_t r = 0; r < rows; r++) sum += dx[r * n + c];
        dbias[c] += sum;
    }
}

}  // namespace sinklab
