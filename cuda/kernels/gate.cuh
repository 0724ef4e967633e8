// The sigmoid gate kernels of the gated attention output. Device code only, kept apart from the
// launches in cuda/gate.cu so that tests/test_cuda_emulated.cpp can run them on the CPU emulation of
// tests/cuda_emu.h. The math is in the comments above the CPU twins in src/ops/gate.h.
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"
#include "ops/gate.h"

namespace sinklab::cuda::kernels {

// One thread per element (n, c).
__global__ void gate_forward_kernel(float* out, const float* y, const float* z, size_t N, size_t C, size_t G) {
    const size_t width = C / G;
    GRID_STRIDE_LOOP(i, N * C) {
        const size_t n = i / C, j = i % C / width;
        out[i] = y[i] * gate_value<DeviceMath>(z[n * G + j]);
    }
}

// One thread per gate (n, j): its channels' dy, and dz from their sum (in channel order).
__global__ void gate_backward_kernel(float* dy, float* dz, const float* dout, const float* y, const float* z, size_t N,
                                     size_t C, size_t G) {
    const size_t width = C / G;
    GRID_STRIDE_LOOP(i, N * G) {
        const size_t n = i / G, j = i % G;
        const float g = gate_value<DeviceMath>(z[i]);
        float dot = 0.0f;
        for (size_t c = n * C + j * width; c < n * C + (j + 1) * width; c++) {
            dy[c] += dout[c] * g;
            dot += dout[c] * y[c];
        }
        dz[i] += dot * g * (1.0f - g);
    }
}

}  // namespace sinklab::cuda::kernels
