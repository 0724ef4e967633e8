// Shared by the .cu files: error checking that throws sinklab::Error, launch helpers, reductions.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/device_utils.cuh"
#include "util/error.h"

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

// Grid for a grid-stride loop over n elements with kernels::kThreads per block (at most 2^30 blocks).
inline unsigned grid_for(size_t n) {
    const size_t blocks = (n + kernels::kThreads - 1) / kernels::kThreads;
    return unsigned(blocks < (size_t(1) << 30) ? (blocks ? blocks : 1) : (size_t(1) << 30));
}

// A growable device scratch buffer per slot, owned by the backend (never freed during a run).
// Growing synchronises the device (cudaFree), so a buffer in use by queued work is never freed early.
enum ScratchSlot {
    kScratchReduce,
    kScratchAttention,
    kScratchColumnSum,   // the chunks' sums of bias_add_backward (bias.cu)
    kScratchEmbedding,
    kScratchGemmInput,   // bf16 copies of a matmul's operands (matmul.cu, bf16 mode)
    kScratchGemmWeight,
    kScratchGemmDout,
    kScratchCount
};
void* scratch(ScratchSlot slot, size_t bytes);

}  // namespace sinklab::cuda
