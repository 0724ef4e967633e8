// The bias add kernels. Device code only, kept apart from the launches in cuda/bias.cu so that
// tests/test_cuda_emulated.cpp can run them on the CPU emulation of tests/cuda_emu.h. The math is
// in the comments above the CPU twins in src/ops/bias.h. (rmsnorm.cu's weight gradient also ends
// with bias_add_backward: the column sums of its per-chunk partial sums.)
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// x (rows, n) += bias (n): one thread per element.
__global__ void bias_add_forward_kernel(float* x, const float* bias, size_t rows, size_t n) {
    GRID_STRIDE_LOOP(e, rows * n) x[e] += bias[e % n];
}

// Column sums in two passes, so that many rows spread over many blocks: partial[chunk, c] = the sum
// of rows [chunk kRowChunk (device_utils.cuh), (chunk + 1) kRowChunk) of column c (grid (ceil(n / threads), chunks));
// then out[c] += the partial sums in chunk order (column_sum_kernel). Deterministic.
__global__ void column_sum_partial_kernel(float* partial, const float* x, size_t rows, size_t n) {
    const size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const size_t chunk = blockIdx.y;
    if (c >= n) return;
    const size_t end = min(rows, (chunk + 1) * kRowChunk);
    float sum = 0.0f;
    for (size_t r = chunk * kRowChunk; r < end; r++) sum += x[r * n + c];
    partial[chunk * n + c] = sum;
}
// out (n) += sum_r x (rows, n)[r], the rows in order: one thread per column.
__global__ void column_sum_kernel(float* out, const float* x, size_t rows, size_t n) {
    const size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= n) return;
    float sum = 0.0f;
    for (size_t r = 0; r < rows; r++) sum += x[r * n + c];
    out[c] += sum;
}

}  // namespace sinklab::cuda::kernels
