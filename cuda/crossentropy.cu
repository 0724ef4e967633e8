// Cross entropy on the GPU: the launches of the kernels in cuda/kernels/crossentropy.cuh, the CUDA twin of src/ops/crossentropy.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include <cstdint>

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/crossentropy.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void crossentropy_forward(float* losses, const float* logits, const int32_t* targets, size_t N, size_t V) {
    if (N == 0) return;
    crossentropy_forward_kernel<<<unsigned(N), kCeThreads>>>(losses, logits, targets, V);
    CUDA_CHECK_LAUNCH();
}

void crossentropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, size_t N,
                           size_t V) {
    if (N == 0) return;
    crossentropy_backward_kernel<<<unsigned(N), kCeThreads>>>(dlogits, logits, targets, dloss, V);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
