// Shared by the .cu files: error checking that throws sinklab::Error, launch helpers, reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "error.h"

namespace sinklab::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* message, const char* file, int line);

// Every CUDA runtime call goes through CUDA_CHECK; every launch is followed by CUDA_CHECK_LAUNCH().
#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        const cudaError_t err_ = (call);                                                    \
        if (err_ != cudaSuccess)                                                            \
            ::sinklab::cuda::throw_cuda_error(#call, cudaGetErrorString(err_), __FILE__, __LINE__); \
    } while (0)
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

inline unsigned blocks_for(size_t n, unsigned threads) { return unsigned((n + threads - 1) / threads); }

// A growable device scratch buffer per slot, owned by the backend (never freed during a run).
// Growing synchronises the device (cudaFree), so a buffer in use by queued work is never freed early.
enum ScratchSlot { kScratchReduce = 0, kScratchAttention = 1, kScratchEmbedding = 2, kScratchCount = 3 };
void* scratch(ScratchSlot slot, size_t bytes);

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
