// The GLU activation on the GPU: the launches of the kernels in cuda/kernels/glu.cuh, the CUDA twin
// of src/ops/glu.h (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include "common.cuh"
#include "cuda_api.h"
#include "kernels/glu.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void glu_forward(float* out, const float* fc, size_t N, size_t F, Activation f) {
    with_activation(f, [&](auto A) {
        glu_forward_kernel<decltype(A)::value><<<grid_for(N * F), kThreads>>>(out, fc, N, F);
    });
    CUDA_CHECK_LAUNCH();
}

void glu_backward(float* dfc, const float* dout, const float* fc, size_t N, size_t F, Activation f) {
    with_activation(f, [&](auto A) {
        glu_backward_kernel<decltype(A)::value><<<grid_for(N * F), kThreads>>>(dfc, dout, fc, N, F);
    });
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
