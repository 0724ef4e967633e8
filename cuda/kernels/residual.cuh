// The residual add kernel. Device code only, kept apart from the launches in cuda/residual.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/residual.h.
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

__global__ void residual_add_kernel(float* x, const float* y, size_t n) {
    GRID_STRIDE_LOOP(i, n) x[i] += y[i];
}

}  // namespace sinklab::cuda::kernels
