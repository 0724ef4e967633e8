// Cross-entropy kernels: one block per row. Device code only, kept apart from the launches in cuda/crossentropy.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/crossentropy.h.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// ---- cross entropy: one block per row ----
constexpr unsigned kCeThreads = 512;

// The maximum of a row and sum_v exp(row[v] - max) in one pass over the row (each thread keeps a
// running maximum and rescales its running sum when the maximum grows), then combined over the
// block in a fixed order. Every thread gets both.
__device__ __forceinline__ void row_max_and_sum(const float* row, size_t V, float* shared, float& mx, float& sum) {
    float m = -INFINITY, s = 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
        const float x = row[v];
        if (x > m) {
            s = s * expf(m - x) + 1.0f;  // expf(-inf) = 0 on the first element
            m = x;
        } else if (m != -INFINITY) {  // (x = m = -inf contributes 0, not expf(nan))
            s += expf(x - m);
        }
    }
    mx = block_max(m, shared);
    sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx), shared);
}

__global__ void crossentropy_forward_kernel(float* losses, const float* logits, const int32_t* targets, size_t V) {
    __shared__ float shared[32];
    const size_t n = blockIdx.x;
    const int32_t target = targets[n];
    if (target < 0) {  // uniform across the block: every thread returns
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const float* row = logits + n * V;
    float mx, sum;
    row_max_and_sum(row, V, shared, mx, sum);
    if (threadIdx.x == 0) losses[n] = logf(sum) + mx - row[size_t(target)];
}

__global__ void crossentropy_backward_kernel(float* dlogits, const float* logits, const int32_t* targets,
                                             float dloss, size_t V) {
    __shared__ float shared[32];
    const size_t n = blockIdx.x;
    const int32_t target = targets[n];
    const float* row = logits + n * V;
    float* drow = dlogits + n * V;
    if (target < 0) {
        for (size_t v = threadIdx.x; v < V; v += blockDim.x) drow[v] = 0.0f;
        return;
    }
    float mx, sum;
    row_max_and_sum(row, V, shared, mx, sum);
    const float inv_sum = 1.0f / sum;
    // Each element is read and then written by the same thread, so dlogits may alias logits.
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
        float d = dloss * expf(row[v] - mx) * inv_sum;
        if (v == size_t(target)) d -= dloss;
        drow[v] = d;
    }
}

}  // namespace sinklab::cuda::kernels
