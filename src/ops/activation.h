// Element-wise activation functions, forward and backward: the feature maps of the kernel
// attention variants (elu(x) + 1 for the elu kernel, relu inside the mlp kernel).
#pragma once
#include <cstddef>

#include "ops/common.h"
#include "ops/exp.h"
#include "util/host_device.h"

namespace sinklab {

// relu:          f(x) = max(x, 0)                 f'(x) = 1 (x > 0), 0 (x <= 0)
// elu_plus_one:  f(x) = x + 1 (x > 0), exp(x)     f'(x) = 1 (x > 0), exp(x) (x <= 0)
enum class Activation : int { relu, elu_plus_one };

// The function and its derivative, for the CPU (Math = HostMath) and the GPU (DeviceMath).
template <class Math, typename T>
SINKLAB_HD T activation_value(Activation f, T x) {
    if (f == Activation::relu) return x > T(0) ? x : T(0);
    return x > T(0) ? x + T(1) : Math::exp(x);
}
template <class Math, typename T>
SINKLAB_HD T activation_derivative(Activation f, T x) {
    if (f == Activation::relu) return x > T(0) ? T(1) : T(0);
    return x > T(0) ? T(1) : Math::exp(x);
}

// Activation, forward.  x: (n) -> out: (n),  out[i] = f(x[i]).
template <typename T>
void activation_forward(T* out, const T* x, size_t n, Activation f) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = activation_value<HostMath>(f, x[i]);
}

// Activation, backward.  dx (n) += dout[i] f'(x[i]).
template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, size_t n, Activation f) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * activation_derivative<HostMath>(f, x[i]);
}

}  // namespace sinklab
