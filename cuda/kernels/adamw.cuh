// AdamW and the global sum of squares. Device code only, kept apart from the launches in cuda/adamw.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/adamw.h.
#pragma once
#include <cmath>
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// ---- global sum of squares ----
constexpr size_t kSumChunk = size_t(1) << 16;
__global__ void sum_squares_kernel(double* partial, const float* x, size_t n) {
    __shared__ double shared[kThreads];
    const size_t begin = size_t(blockIdx.x) * kSumChunk;
    const size_t end = min(n, begin + kSumChunk);
    double s = 0.0;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += double(x[i]) * double(x[i]);
    shared[threadIdx.x] = s;
    __syncthreads();
    for (unsigned stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

// ---- AdamW ----
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float b1, float b2,
                             float bias1, float bias2, float lr, float eps, float wd, float grad_scale) {
    GRID_STRIDE_LOOP(i, n) {
        const float g = grads[i] * grad_scale;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias1;
        const float v_hat = vi / bias2;
        params[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + wd * params[i]);
    }
}

}  // namespace sinklab::cuda::kernels
