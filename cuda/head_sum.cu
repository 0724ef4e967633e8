// The head sum on the GPU: the launches of the kernels in cuda/kernels/head_sum.cuh, the CUDA twin of
// src/ops/head_sum.h (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include "common.cuh"
#include "cuda_api.h"
#include "kernels/head_sum.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void head_sum_forward(float* out, const float* y, size_t N, size_t H, size_t D) {
    if (N * D == 0) return;
    head_sum_forward_kernel<<<grid_for(N * D), kThreads>>>(out, y, N, H, D);
    CUDA_CHECK_LAUNCH();
}

void head_sum_backward(float* dy, const float* dout, size_t N, size_t H, size_t D) {
    if (N * H * D == 0) return;
    head_sum_backward_kernel<<<grid_for(N * H * D), kThreads>>>(dy, dout, N, H, D);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
