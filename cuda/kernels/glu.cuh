// GLU kernels (SwiGLU, GeGLU, ReGLU). Device code only, kept apart from the launches in cuda/glu.cu
// so that tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The
// math is in the comment above the CPU twin in src/ops/glu.h; f and f' are src/ops/activation.h's.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/device_utils.cuh"
#include "ops/activation.h"

namespace sinklab::cuda::kernels {

// ---- GLU: fc rows (N, 2F) = [a | up]; out (N, F) = f(a) * up ----
// Four neighbouring columns per thread (16-byte loads, one 64-bit division per four elements)
// when F is a multiple of 4 and the buffers are 16-byte aligned, else one column per thread.
__device__ __forceinline__ bool glu_vectorizable(size_t F, const void* p, const void* q, const void* r) {
    return F % 4 == 0 && (reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(q) |
                          reinterpret_cast<uintptr_t>(r)) % 16 == 0;
}

template <Activation F>
__device__ __forceinline__ float glu_value(float a, float up) {
    return activation_value<F, DeviceMath>(a) * up;
}
// d a and d up of one element, added to da and dup.
template <Activation F>
__device__ __forceinline__ void glu_grad(float dy, float a, float up, float& da, float& dup) {
    da += activation_derivative_times<F, DeviceMath>(a, dy * up);
    dup += activation_value_times<F, DeviceMath>(a, dy);
}

template <Activation F>
__global__ void glu_forward_kernel(float* out, const float* fc, size_t N, size_t Fn) {
    if (glu_vectorizable(Fn, out, fc, fc)) {
        const size_t F4 = Fn / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * Fn + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * Fn + Fn + f);
            *reinterpret_cast<float4*>(out + n * Fn + f) = make_float4(
                glu_value<F>(a.x, up.x), glu_value<F>(a.y, up.y), glu_value<F>(a.z, up.z), glu_value<F>(a.w, up.w));
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * Fn) {
        const size_t n = idx / Fn, f = idx % Fn;
        out[idx] = glu_value<F>(fc[n * 2 * Fn + f], fc[n * 2 * Fn + Fn + f]);
    }
}

template <Activation F>
__global__ void glu_backward_kernel(float* dfc, const float* dout, const float* fc, size_t N, size_t Fn) {
    if (glu_vectorizable(Fn, dfc, dout, fc)) {
        const size_t F4 = Fn / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * Fn + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * Fn + Fn + f);
            const float4 dy = *reinterpret_cast<const float4*>(dout + n * Fn + f);
            float4* da = reinterpret_cast<float4*>(dfc + n * 2 * Fn + f);
            float4* dup = reinterpret_cast<float4*>(dfc + n * 2 * Fn + Fn + f);
            float4 ga = *da, gu = *dup;
            glu_grad<F>(dy.x, a.x, up.x, ga.x, gu.x);
            glu_grad<F>(dy.y, a.y, up.y, ga.y, gu.y);
            glu_grad<F>(dy.z, a.z, up.z, ga.z, gu.z);
            glu_grad<F>(dy.w, a.w, up.w, ga.w, gu.w);
            *da = ga;
            *dup = gu;
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * Fn) {
        const size_t n = idx / Fn, f = idx % Fn;
        float da = dfc[n * 2 * Fn + f], dup = dfc[n * 2 * Fn + Fn + f];
        glu_grad<F>(dout[idx], fc[n * 2 * Fn + f], fc[n * 2 * Fn + Fn + f], da, dup);
        dfc[n * 2 * Fn + f] = da;
        dfc[n * 2 * Fn + Fn + f] = dup;
    }
}

}  // namespace sinklab::cuda::kernels
