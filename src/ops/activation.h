// Element-wise activation functions, forward and backward: the feature maps of the kernel
// attention variants (elu(x) + 1 for the elu kernel, relu inside the mlp kernel).
#pragma once
#include <cstddef>

#include "ops/common.h"
#include "ops/exp.h"

namespace sinklab {

// relu:          f(x) = max(x, 0)                 f'(x) = 1 (x > 0), 0 (x <= 0)
// elu_plus_one:  f(x) = x + 1 (x > 0), exp(x)     f'(x) = 1 (x > 0), exp(x) (x <= 0)
enum class Activation : int { relu, elu_plus_one };

template <typename T>
inline T activation_value(Activation f, T x) {
    if (f == Activation::relu) return x > T(0) ? x : T(0);
    return x > T(0) ? x + T(1) : exp_of(x);
}
template <typename T>
inline T activation_derivative(Activation f, T x) {
    if (f == Activation::relu) return x > T(0) ? T(1) : T(0);
    return x > T(0) ? T(1) : exp_of(x);
}

// Activation, forward.  x: (n) -> out: (n),  out[i] = f(x[i]).
template <typename T>
void activation_forward(T* out, const T* x, size_t n, Activation f) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = activation_value(f, x[i]);
}

// Activation, backward.  dx (n) += dout[i] f'(x[i]).
template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, size_t n, Activation f) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * activation_derivative(f, x[i]);
}

}  // namespace sinklab
