// The element-wise and row-wise operations of the model on the GPU: the twins of src/ops.h (same
// names, same math; see the comment above each CPU function for the formulas). fp32 throughout.
// Every reduction is in a fixed order, so results are bitwise reproducible run to run.
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "common.cuh"
#include "cuda_api.h"
#include "ops_kernels.cuh"
#include "ops.h"
#include "ops_cuda.h"

namespace sinklab::cuda {

namespace {

using namespace kernels;

// Grid for a grid-stride loop over n elements.
unsigned grid_for(size_t n) {
    const size_t blocks = (n + kThreads - 1) / kThreads;
    return unsigned(blocks < (size_t(1) << 30) ? (blocks ? blocks : 1) : (size_t(1) << 30));
}

}  // namespace

// ------------------------------------------------------------------------------------------------
void embedding_forward(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C) {
    embedding_forward_kernel<<<grid_for(N * C), kThreads>>>(out, tokens, wte, N, C);
    CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, size_t N, size_t C) {
    if (N == 0) return;
    // Group the positions by token id on the host (a stable counting sort: positions stay in order).
    std::vector<int32_t> tok(N), order, starts, ids;
    copy_to_host(tok.data(), tokens, N * sizeof(int32_t));
    group_positions_by_token(tok, order, starts, ids);
    if (ids.empty()) return;
    const size_t U = ids.size();
    int32_t* dev = static_cast<int32_t*>(scratch(kScratchEmbedding, (N + 2 * U + 1) * sizeof(int32_t)));
    int32_t* d_order = dev;
    int32_t* d_starts = dev + N;
    int32_t* d_ids = d_starts + U + 1;
    copy_to_device(d_order, order.data(), N * sizeof(int32_t));
    copy_to_device(d_starts, starts.data(), (U + 1) * sizeof(int32_t));
    copy_to_device(d_ids, ids.data(), U * sizeof(int32_t));
    const dim3 grid(unsigned(U), blocks_for(C, kThreads));
    embedding_backward_kernel<<<grid, kThreads>>>(dwte, dout, d_order, d_starts, d_ids, C);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, float eps) {
    rmsnorm_forward_kernel<<<blocks_for(N, kRowsPerBlock), kThreads>>>(out, rstd, x, w, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      size_t N, size_t C) {
    if (N == 0) return;
    rmsnorm_backward_dx_kernel<<<blocks_for(N, kRowsPerBlock), kThreads>>>(dx, dout, x, w, rstd, N, C);
    CUDA_CHECK_LAUNCH();
    const size_t chunks = (N + kRowChunk - 1) / kRowChunk;
    float* partial = static_cast<float*>(scratch(kScratchReduce, chunks * C * sizeof(float)));
    rmsnorm_backward_dw_partial_kernel<<<dim3(blocks_for(C, kThreads), unsigned(chunks)), kThreads>>>(
        partial, dout, x, rstd, N, C);
    CUDA_CHECK_LAUNCH();
    column_sum_kernel<<<blocks_for(C, kThreads), kThreads>>>(dw, partial, chunks, C);
    CUDA_CHECK_LAUNCH();
}

void rope_forward(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                  size_t C, size_t H) {
    rope_forward_kernel<<<grid_for(B * Tn * 3 * C / 2), kThreads>>>(out, qkv, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

void rope_backward(float* dqkv, const float* dout, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                   size_t C, size_t H) {
    rope_backward_kernel<<<grid_for(B * Tn * 3 * C / 2), kThreads>>>(dqkv, dout, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

void swiglu_forward(float* out, const float* fc, size_t N, size_t F) {
    swiglu_forward_kernel<<<grid_for((N * F + 3) / 4), kThreads>>>(out, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

void swiglu_backward(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    swiglu_backward_kernel<<<grid_for((N * F + 3) / 4), kThreads>>>(dfc, dout, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

void residual_add(float* x, const float* y, size_t n) {
    residual_add_kernel<<<grid_for(n), kThreads>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
}

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
