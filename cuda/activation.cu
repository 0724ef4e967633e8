// Element-wise activations on the GPU: the launches of the kernels in cuda/kernels/activation.cuh,
// the CUDA twin of src/ops/activation.h (same names, same shapes, same math; declared in
// cuda/ops_cuda.h).
#include "common.cuh"
#include "cuda_api.h"
#include "kernels/activation.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void activation_forward(float* out, const float* x, size_t n, Activation f) {
    with_activation(f, [&](auto A) { activation_forward_kernel<decltype(A)::value><<<grid_for(n), kThreads>>>(out, x, n); });
    CUDA_CHECK_LAUNCH();
}

void activation_backward(float* dx, const float* dout, const float* x, size_t n, Activation f) {
    with_activation(f, [&](auto A) {
        activation_backward_kernel<decltype(A)::value><<<grid_for(n), kThreads>>>(dx, dout, x, n);
    });
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
