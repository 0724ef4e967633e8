// Token embedding on the GPU: the launches of the kernels in cuda/kernels/embedding.cuh, the CUDA twin of src/ops/embedding.h
// (same names, same shapes, same math; declared in cuda/ops_cuda.h).
#include <cstdint>
#include <vector>

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/embedding.cuh"
#include "ops_cuda.h"

namespace sinklab::cuda {

using namespace kernels;

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

}  // namespace sinklab::cuda
