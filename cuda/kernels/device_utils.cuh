// What every kernel file shares (device code only; also compiled by the CPU emulation in tests/):
// the block size of the element-wise kernels, the grid-stride loop, DeviceMath, warp and block
// reductions.
#pragma once
#ifndef SINKLAB_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstddef>

namespace sinklab::cuda {

namespace kernels {

// Threads per block of the element-wise and row-wise kernels.
constexpr unsigned kThreads = 256;

// Rows per chunk of the two-pass column sums (bias.cuh, rmsnorm.cuh).
constexpr size_t kRowChunk = 256;

// for (i = this thread's first index; i < n; i += the grid's thread count)
#define GRID_STRIDE_LOOP(i, n) \
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

}  // namespace kernels

// exp and the reciprocal for the math written once for host and device (attention_variant.h,
// src/ops/activation.h), on the GPU; the CPU's are HostMath (src/ops/exp.h).
struct DeviceMath {
    static __device__ __forceinline__ float exp(float x) { return expf(x); }
    static __device__ __forceinline__ float rcp(float x) { return 1.0f / x; }
    static __device__ __forceinline__ float erf(float x) { return erff(x); }
};

// Sum over a warp, fixed butterfly order (deterministic).
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum / max for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// Fixed order: warp butterflies, then warp 0 over the warp results. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_sum(v);
    __syncthreads();  // `shared` may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float total = lane < warps ? shared[lane] : 0.0f;
    total = warp_sum(total);
    return total;
}
__device__ __forceinline__ float block_max(float v, float* shared) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float total = lane < warps ? shared[lane] : -INFINITY;
    total = warp_max(total);
    return total;
}

}  // namespace sinklab::cuda
