// The sigmoid gate of the gated attention output on the GPU: the launches of the kernels in
// cuda/kernels/gate.cuh, the CUDA twin of src/ops/gate.h (same names, same shapes, same math;
// declared in cuda/ops_cuda.h).
#include "common.cuh"
#include "cuda_api.h"
#include "kernels/gate.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

void gate_forward(float* out, const float* y, const float* z, size_t N, size_t C, size_t G) {
    if (N * C == 0) return;
    gate_forward_kernel<<<grid_for(N * C), kThreads>>>(out, y, z, N, C, G);
    CUDA_CHECK_LAUNCH();
}

void gate_backward(float* dy, float* dz, const float* dout, const float* y, const float* z, size_t N, size_t C,
                   size_t G) {
    if (N * G == 0) return;
    gate_backward_kernel<<<grid_for(N * G), kThreads>>>(dy, dz, dout, y, z, N, C, G);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
