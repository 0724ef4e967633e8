// SwiGLU on the GPU: the launches of the kernels in cuda/kernels/swiglu.cuh, the CUDA twin of src/ops/swiglu.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/swiglu.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void swiglu_forward(float* out, const float* fc, size_t N, size_t F) {
    swiglu_forward_kernel<<<grid_for((N * F + 3) / 4), kThreads>>>(out, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

void swiglu_backward(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    swiglu_backward_kernel<<<grid_for((N * F + 3) / 4), kThreads>>>(dfc, dout, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
