// RoPE kernels. Device code only, kept apart from the launches in cuda/rope.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/rope.h.
#pragma once
#include <cstddef>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// ---- RoPE: over the (B, T, 3C) rows, one thread per rotated pair (i, i + D/2) of a q or k head
// (C pairs per row), then one per two v values copied (C/2 per row): both outputs of a pair from
// one read of its inputs, and one 64-bit division per item.
__global__ void rope_forward_kernel(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t BT,
                                    size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, per_row = C3 / 2, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * per_row) {
        const size_t bt = idx / per_row, j = idx - bt * per_row;
        const size_t row = bt * C3;
        if (j < C) {
            const size_t slot = j / half, i = j - slot * half, t = bt % Tn;  // slot: q heads, then k heads
            const float* x = qkv + row + slot * D;
            float* y = out + row + slot * D;
            const float c = cos_t[t * half + i], s = sin_t[t * half + i], x1 = x[i], x2 = x[i + half];
            y[i] = x1 * c - x2 * s;
            y[i + half] = x2 * c + x1 * s;
        } else {
            const size_t k = row + 2 * C + 2 * (j - C);
            out[k] = qkv[k];
            out[k + 1] = qkv[k + 1];
        }
    }
}

__global__ void rope_backward_kernel(float* dqkv, const float* dout, const float* cos_t, const float* sin_t,
                                     size_t BT, size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, per_row = C3 / 2, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * per_row) {
        const size_t bt = idx / per_row, j = idx - bt * per_row;
        const size_t row = bt * C3;
        if (j < C) {
            const size_t slot = j / half, i = j - slot * half, t = bt % Tn;
            const float* dy = dout + row + slot * D;
            float* dx = dqkv + row + slot * D;
            const float c = cos_t[t * half + i], s = sin_t[t * half + i], dy1 = dy[i], dy2 = dy[i + half];
            dx[i] += dy1 * c + dy2 * s;
            dx[i + half] += dy2 * c - dy1 * s;
        } else {
            const size_t k = row + 2 * C + 2 * (j - C);
            dqkv[k] += dout[k];
            dqkv[k + 1] += dout[k + 1];
        }
    }
}

}  // namespace sinklab::cuda::kernels
