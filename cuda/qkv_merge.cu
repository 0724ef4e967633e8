// The qkv merge on the GPU: the launches of the kernels in cuda/kernels/qkv_merge.cuh, the CUDA
// twin of src/ops/qkv_merge.h (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include "common.cuh"
#include "cuda_api.h"
#include "kernels/qkv_merge.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void qkv_merge_forward(float* out, const float* qk_src, const float* v_src, size_t N, size_t C) {
    qkv_merge_forward_kernel<<<grid_for(N * 3 * C), kThreads>>>(out, qk_src, v_src, N, C);
    CUDA_CHECK_LAUNCH();
}

void qkv_merge_backward(float* dqk_src, float* dv_src, const float* dout, size_t N, size_t C) {
    qkv_merge_backward_kernel<<<grid_for(N * 3 * C), kThreads>>>(dqk_src, dv_src, dout, N, C);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
