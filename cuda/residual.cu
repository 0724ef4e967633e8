// The residual add on the GPU: the launches of the kernels in cuda/kernels/residual.cuh, the CUDA twin of src/ops/residual.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/residual.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void residual_add(float* x, const float* y, size_t n) {
    residual_add_kernel<<<grid_for(n), kThreads>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
