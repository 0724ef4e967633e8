// Element-wise activation functions, forward and backward: the feature maps of the kernel
// attention variants (elu(x) + 1 for the elu kernel, relu inside the mlp kernel) and the
// feed-forward block's nonlinearity (its gate in the GLU forms: src/ops/glu.h).
#pragma once
#include <cstddef>
#include <type_traits>

#include "ops/common.h"
#include "ops/exp.h"
#include "util/host_device.h"

namespace sinklab {

// relu:          f(x) = max(x, 0)                     f'(x) = 1 (x > 0), 0 (x <= 0)
// elu_plus_one:  f(x) = x + 1 (x > 0), exp(x)         f'(x) = 1 (x > 0), exp(x) (x <= 0)
// gelu:          f(x) = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2   (the exact, erf form)
//                f'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// silu (swish):  f(x) = x sig(x),  sig(x) = 1 / (1 + exp(-x))
//                f'(x) = sig(x) (1 + x (1 - sig(x)))
enum class Activation : int { relu, elu_plus_one, gelu, silu };

// The function and its derivative, with the activation a compile-time constant (for loops that
// vectorize), for the CPU (Math = HostMath) and the GPU (DeviceMath).
template <Activation F, class Math, typename T>
SINKLAB_HD T activation_value(T x) {
    if constexpr (F == Activation::relu) {
        return x > T(0) ? x : T(0);
    } else if constexpr (F == Activation::elu_plus_one) {
        return x > T(0) ? x + T(1) : Math::exp(x);
    } else if constexpr (F == Activation::gelu) {
        return x * (T(0.5) * (T(1) + Math::erf(x * T(0.70710678118654752440))));
    } else {
        return x * Math::rcp(T(1) + Math::exp(-x));
    }
}
template <Activation F, class Math, typename T>
SINKLAB_HD T activation_derivative(T x) {
    if constexpr (F == Activation::relu) {
        return x > T(0) ? T(1) : T(0);
    } else if constexpr (F == Activation::elu_plus_one) {
        return x > T(0) ? T(1) : Math::exp(x);
    } else if constexpr (F == Activation::gelu) {
        const T cdf = T(0.5) * (T(1) + Math::erf(x * T(0.70710678118654752440)));
        return cdf + x * T(0.39894228040143267794) * Math::exp(T(-0.5) * x * x);
    } else {
        const T sig = Math::rcp(T(1) + Math::exp(-x));
        return sig * (T(1) + x * (T(1) - sig));
    }
}

// s f(x) and s f'(x): what the backward passes multiply (s the incoming gradient, times the GLU's
// up branch). Written as their own functions so that silu keeps the order of its multiplications,
// s sig(x) (1 + x (1 - sig(x))) and (s x) sig(x), which SwiGLU has always used: a change there
// would change the last bits of every default run.
template <Activation F, class Math, typename T>
SINKLAB_HD T activation_value_times(T x, T s) {
    if constexpr (F == Activation::silu) return s * x * Math::rcp(T(1) + Math::exp(-x));
    else return s * activation_value<F, Math>(x);
}
template <Activation F, class Math, typename T>
SINKLAB_HD T activation_derivative_times(T x, T s) {
    if constexpr (F == Activation::silu) {
        const T sig = Math::rcp(T(1) + Math::exp(-x));
        return s * sig * (T(1) + x * (T(1) - sig));
    } else {
        return s * activation_derivative<F, Math>(x);
    }
}

// Calls body(tag) with the activation as a compile-time constant tag.value:
//   with_activation(f, [&](auto F) { ... activation_value<F.value, Math>(x) ... });
template <Activation F>
using ActivationTag = std::integral_constant<Activation, F>;
template <class Body>
SINKLAB_HD auto with_activation(Activation f, Body&& body) {
    switch (f) {
        case Activation::elu_plus_one: return body(ActivationTag<Activation::elu_plus_one>{});
        case Activation::gelu: return body(ActivationTag<Activation::gelu>{});
        case Activation::silu: return body(ActivationTag<Activation::silu>{});
        case Activation::relu: break;
    }
    return body(ActivationTag<Activation::relu>{});
}

// Activation, forward.  x: (n) -> out: (n),  out[i] = f(x[i]).
template <typename T>
void activation_forward(T* out, const T* x, size_t n, Activation f) {
    with_activation(f, [&](auto F) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = activation_value<decltype(F)::value, HostMath>(x[i]);
    });
}

// Activation, backward.  dx (n) += dout[i] f'(x[i]).
template <typename T>
void activation_backward(T* dx, const T* dout, const T* x, size_t n, Activation f) {
    with_activation(f, [&](auto F) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dx[i] += activation_derivative_times<decltype(F)::value, HostMath>(x[i], dout[i]);
    });
}

}  // namespace sinklab
