// AdamW on the GPU: the launches of the kernels in cuda/kernels/adamw.cuh, the CUDA twin of src/ops/adamw.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include <cmath>
#include <vector>

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/adamw.cuh"
#include "ops/adamw.h"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

double sum_squares(const float* x, size_t n) {
    if (n == 0) return 0.0;
    const size_t chunks = (n + kSumChunk - 1) / kSumChunk;
    double* partial = static_cast<double*>(scratch(kScratchReduce, chunks * sizeof(double)));
    sum_squares_kernel<<<unsigned(chunks), kThreads>>>(partial, x, n);
    CUDA_CHECK_LAUNCH();
    std::vector<double> host(chunks);
    copy_to_host(host.data(), partial, chunks * sizeof(double));
    double total = 0.0;
    for (double p : host) total += p;
    return total;
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, const AdamWHyper& hp,
                  size_t step, float grad_scale) {
    const float bias1 = float(1.0 - std::pow(hp.beta1, double(step)));
    const float bias2 = float(1.0 - std::pow(hp.beta2, double(step)));
    adamw_kernel<<<grid_for(n), kThreads>>>(params, grads, m, v, n, float(hp.beta1), float(hp.beta2), bias1, bias2,
                                            float(hp.lr), float(hp.eps), float(hp.weight_decay), grad_scale);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
