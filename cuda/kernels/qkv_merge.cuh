// The qkv merge kernels. Device code only, kept apart from the launches in cuda/qkv_merge.cu so
// that tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math
// is in the comment above the CPU twin in src/ops/qkv_merge.h.
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// One thread per element of the (N, 3C) output; columns [0, 2C) from qk_src, [2C, 3C) from v_src.
__global__ void qkv_merge_forward_kernel(float* out, const float* qk_src, const float* v_src, size_t N, size_t C) {
    GRID_STRIDE_LOOP(i, N * 3 * C) out[i] = i % (3 * C) < 2 * C ? qk_src[i] : v_src[i];
}

__global__ void qkv_merge_backward_kernel(float* dqk_src, float* dv_src, const float* dout, size_t N, size_t C) {
    GRID_STRIDE_LOOP(i, N * 3 * C) {
        if (i % (3 * C) < 2 * C)
            dqk_src[i] += dout[i];
        else
            dv_src[i] += dout[i];
    }
}

}  // namespace sinklab::cuda::kernels
