// SwiGLU kernels. Device code only, kept apart from the launches in cuda/swiglu.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/swiglu.h.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

// ---- SwiGLU: fc rows (N, 2F) = [a | up]; out (N, F) = silu(a) * up ----
// Four neighbouring columns per thread (16-byte loads, one 64-bit division per four elements)
// when F is a multiple of 4 and the buffers are 16-byte aligned, else one column per thread.
__device__ __forceinline__ bool swiglu_vectorizable(size_t F, const void* p, const void* q, const void* r) {
    return F % 4 == 0 && (reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(q) |
                          reinterpret_cast<uintptr_t>(r)) % 16 == 0;
}
__device__ __forceinline__ float swiglu_value(float a, float up) {
    const float sig = 1.0f / (1.0f + expf(-a));
    return a * sig * up;
}
// d a and d up of one element, added to da and dup.
__device__ __forceinline__ void swiglu_grad(float dy, float a, float up, float& da, float& dup) {
    const float sig = 1.0f / (1.0f + expf(-a));
    da += dy * up * sig * (1.0f + a * (1.0f - sig));
    dup += dy * a * sig;
}

__global__ void swiglu_forward_kernel(float* out, const float* fc, size_t N, size_t F) {
    if (swiglu_vectorizable(F, out, fc, fc)) {
        const size_t F4 = F / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * F + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * F + F + f);
            *reinterpret_cast<float4*>(out + n * F + f) = make_float4(
                swiglu_value(a.x, up.x), swiglu_value(a.y, up.y), swiglu_value(a.z, up.z), swiglu_value(a.w, up.w));
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        out[idx] = swiglu_value(fc[n * 2 * F + f], fc[n * 2 * F + F + f]);
    }
}

__global__ void swiglu_backward_kernel(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    if (swiglu_vectorizable(F, dfc, dout, fc)) {
        const size_t F4 = F / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * F + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * F + F + f);
            const float4 dy = *reinterpret_cast<const float4*>(dout + n * F + f);
            float4* da = reinterpret_cast<float4*>(dfc + n * 2 * F + f);
            float4* dup = reinterpret_cast<float4*>(dfc + n * 2 * F + F + f);
            float4 ga = *da, gu = *dup;
            swiglu_grad(dy.x, a.x, up.x, ga.x, gu.x);
            swiglu_grad(dy.y, a.y, up.y, ga.y, gu.y);
            swiglu_grad(dy.z, a.z, up.z, ga.z, gu.z);
            swiglu_grad(dy.w, a.w, up.w, ga.w, gu.w);
            *da = ga;
            *dup = gu;
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        swiglu_grad(dout[idx], fc[n * 2 * F + f], fc[n * 2 * F + F + f], dfc[n * 2 * F + f], dfc[n * 2 * F + F + f]);
    }
}

}  // namespace sinklab::cuda::kernels
