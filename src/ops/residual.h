// The residual connection: x += y.
#pragma once
#include <cstddef>

#include "ops/common.h"

namespace sinklab {

// Residual add.  x (n) += y (n). (Its backward is the identity: the gradient flows to both.)
template <typename T>
void residual_add(T* x, const T* y, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

}  // namespace sinklab
