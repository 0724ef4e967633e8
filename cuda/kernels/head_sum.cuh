// The head sum kernels. Device code only, kept apart from the launches in cuda/head_sum.cu so that
// tests/test_cuda_emulated.cpp can run them on the CPU emulation of tests/cuda_emu.h. The math is
// in the comments above the CPU twins in src/ops/head_sum.h.
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// One thread per output element (n, d); the heads added in order.
__global__ void head_sum_forward_kernel(float* out, const float* y, size_t N, size_t H, size_t D) {
    GRID_STRIDE_LOOP(i, N * D) {
        const size_t n = i / D, d = i % D;
        float sum = 0.0f;
        for (size_t h = 0; h < H; h++) sum += y[(n * H + h) * D + d];
        out[i] = sum;
    }
}

// One thread per element (n, h, d) of dy.
__global__ void head_sum_backward_kernel(float* dy, const float* dout, size_t N, size_t H, size_t D) {
    GRID_STRIDE_LOOP(i, N * H * D) {
        const size_t n = i / (H * D), d = i % D;
        dy[i] += dout[n * D + d];
    }
}

}  // namespace sinklab::cuda::kernels
