// The bias add on the GPU: the launches of the kernels in cuda/kernels/bias.cuh, the CUDA twin of
// src/ops/bias.h (same names, same shapes, same math; declared in cuda/ops_cuda.h).

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/bias.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void bias_add_forward(float* x, const float* bias, size_t rows, size_t n) {
    if (rows == 0 || n == 0) return;
    bias_add_forward_kernel<<<grid_for(rows * n), kThreads>>>(x, bias, rows, n);
    CUDA_CHECK_LAUNCH();
}

// A few rows (the slot's per-(b, h) gradients): one pass. Many (the V bias over all tokens): the
// rows in chunks first, then the chunks' sums.
void bias_add_backward(float* dbias, const float* dx, size_t rows, size_t n) {
    if (rows == 0 || n == 0) return;
    if (rows <= kRowChunk) {
        column_sum_kernel<<<blocks_for(n, kThreads), kThreads>>>(dbias, dx, rows, n);
        CUDA_CHECK_LAUNCH();
        return;
    }
    const size_t chunks = (rows + kRowChunk - 1) / kRowChunk;
    float* partial = static_cast<float*>(scratch(kScratchColumnSum, chunks * n * sizeof(float)));
    column_sum_partial_kernel<<<dim3(blocks_for(n, kThreads), unsigned(chunks)), kThreads>>>(partial, dx, rows, n);
    CUDA_CHECK_LAUNCH();
    column_sum_kernel<<<blocks_for(n, kThreads), kThreads>>>(dbias, partial, chunks, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
