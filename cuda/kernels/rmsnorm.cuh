// RMSNorm kernels: one warp per row; the weight gradient by row chunks. Device code only, kept apart from the launches in cuda/rmsnorm.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/rmsnorm.h.
#pragma once
#include <cmath>
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// ---- RMSNorm over G groups of W = C / G channels per row (G = 1: the plain RMSNorm): one warp per
// group row, row = n G + g, its channels [row W, row W + W), its gain w + g W ----
constexpr unsigned kRowsPerBlock = kThreads / 32;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C,
                                       size_t G, float eps) {
    const size_t row = size_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    const size_t W = C / G;
    if (row >= N * G) return;
    const float* xr = x + row * W;
    const float* wr = w + row % G * W;
    float sum_sq = 0.0f;
    for (size_t c = lane; c < W; c += 32) sum_sq += xr[c] * xr[c];
    sum_sq = warp_sum(sum_sq);
    const float r = 1.0f / sqrtf(sum_sq / float(W) + eps);
    if (lane == 0) rstd[row] = r;
    for (size_t c = lane; c < W; c += 32) out[row * W + c] = xr[c] * r * wr[c];
}

__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dout, const float* x, const float* w,
                                           const float* rstd, size_t N, size_t C, size_t G) {
    const size_t row = size_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    const size_t W = C / G;
    if (row >= N * G) return;
    const float* xr = x + row * W;
    const float* dy = dout + row * W;
    const float* wr = w + row % G * W;
    const float r = rstd[row];
    float dot = 0.0f;
    for (size_t c = lane; c < W; c += 32) dot += dy[c] * wr[c] * xr[c];
    dot = warp_sum(dot);
    const float coef = r * r * r * dot / float(W);
    for (size_t c = lane; c < W; c += 32) dx[row * W + c] += r * wr[c] * dy[c] - coef * xr[c];
}

// Column sums over row chunks of kRowChunk rows (device_utils.cuh), which rmsnorm.cu then adds up
// with bias_add_backward:  partial[chunk, c] = sum_{n in chunk} dout[n, c] x[n, c] rstd[n, c / W].
__global__ void rmsnorm_backward_dw_partial_kernel(float* partial, const float* dout, const float* x,
                                                   const float* rstd, size_t N, size_t C, size_t G) {
    const size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const size_t chunk = blockIdx.y;
    if (c >= C) return;
    const size_t group = c / (C / G);
    const size_t end = min(N, (chunk + 1) * kRowChunk);
    float sum = 0.0f;
    for (size_t n = chunk * kRowChunk; n < end; n++) sum += dout[n * C + c] * x[n * C + c] * rstd[n * G + group];
    partial[chunk * C + c] = sum;
}

}  // namespace sinklab::cuda::kernels
