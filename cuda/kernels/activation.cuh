// Element-wise activation kernels. Device code only, kept apart from the launches in
// cuda/activation.cu so that tests/test_cuda_emulated.cpp can run it on the CPU emulation of
// tests/cuda_emu.h. The math is in the comment above the CPU twin in src/ops/activation.h,
// whose activation_value and activation_derivative the kernels call with DeviceMath.
#pragma once
#include <cmath>
#include <cstddef>

#include "kernels/device_utils.cuh"
#include "ops/activation.h"

namespace sinklab::cuda::kernels {

template <Activation F>
__global__ void activation_forward_kernel(float* out, const float* x, size_t n) {
    GRID_STRIDE_LOOP(i, n) out[i] = activation_value<F, DeviceMath>(x[i]);
}

template <Activation F>
__global__ void activation_backward_kernel(float* dx, const float* dout, const float* x, size_t n) {
    GRID_STRIDE_LOOP(i, n) dx[i] += activation_derivative_times<F, DeviceMath>(x[i], dout[i]);
}

}  // namespace sinklab::cuda::kernels
