// RoPE on the GPU: the launches of the kernels in cuda/kernels/rope.cuh, the CUDA twin of src/ops/rope.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/rope.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void rope_forward(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                  size_t C, size_t H) {
    rope_forward_kernel<<<grid_for(B * Tn * 3 * C / 2), kThreads>>>(out, qkv, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

void rope_backward(float* dqkv, const float* dout, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                   size_t C, size_t H) {
    rope_backward_kernel<<<grid_for(B * Tn * 3 * C / 2), kThreads>>>(dqkv, dout, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
