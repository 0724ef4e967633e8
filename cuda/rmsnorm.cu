// RMSNorm on the GPU: the launches of the kernels in cuda/kernels/rmsnorm.cuh, the CUDA twin of src/ops/rmsnorm.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/rmsnorm.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void rmsnorm_groups_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, size_t G,
                            float eps) {
    if (N == 0) return;
    rmsnorm_forward_kernel<<<blocks_for(N * G, kRowsPerBlock), kThreads>>>(out, rstd, x, w, N, C, G, eps);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, float eps) {
    rmsnorm_groups_forward(out, rstd, x, w, N, C, 1, eps);
}

void rmsnorm_groups_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                             const float* rstd, size_t N, size_t C, size_t G) {
    if (N == 0) return;
    rmsnorm_backward_dx_kernel<<<blocks_for(N * G, kRowsPerBlock), kThreads>>>(dx, dout, x, w, rstd, N, C, G);
    CUDA_CHECK_LAUNCH();
    const size_t chunks = (N + kRowChunk - 1) / kRowChunk;
    float* partial = static_cast<float*>(scratch(kScratchReduce, chunks * C * sizeof(float)));
    rmsnorm_backward_dw_partial_kernel<<<dim3(blocks_for(C, kThreads), unsigned(chunks)), kThreads>>>(
        partial, dout, x, rstd, N, C, G);
    CUDA_CHECK_LAUNCH();
    bias_add_backward(dw, partial, chunks, C);  // dw += the chunks' sums (bias.cu)
}

void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      size_t N, size_t C) {
    rmsnorm_groups_backward(dx, dw, dout, x, w, rstd, N, C, 1);
}

}  // namespace sinklab::cuda
