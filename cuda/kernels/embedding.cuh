// Token embedding kernels, and the host-side grouping of positions by token id. Device code only, kept apart from the launches in cuda/embedding.cu so that
// tests/test_cuda_emulated.cpp can run it on the CPU emulation of tests/cuda_emu.h. The math is in
// the comment above the CPU twin in src/ops/embedding.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/device_utils.cuh"

namespace sinklab::cuda::kernels {

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C) {
    GRID_STRIDE_LOOP(i, N * C) {
        const size_t n = i / C, c = i % C;
        out[i] = wte[size_t(tokens[n]) * C + c];
    }
}

// One block row per distinct token id: dwte[token, c] += dout[n, c] over that token's positions n,
// in increasing n (the CPU's order). order: positions grouped by token; starts: bucket bounds.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* order,
                                          const int32_t* starts, const int32_t* ids, size_t C) {
    const int bucket = blockIdx.x;
    const size_t c = size_t(blockIdx.y) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float* dst = dwte + size_t(ids[bucket]) * C + c;
    float acc = *dst;
    for (int p = starts[bucket]; p < starts[bucket + 1]; p++) acc += dout[size_t(order[p]) * C + c];
    *dst = acc;
}

// Host helper for embedding_backward: the positions grouped by token id, each group in increasing
// position order (a stable counting sort). order: (N) positions; starts: (U + 1) group bounds;
// ids: (U) the token id of each group. Negative ids are skipped.
inline void group_positions_by_token(const std::vector<int32_t>& tokens, std::vector<int32_t>& order,
                                     std::vector<int32_t>& starts, std::vector<int32_t>& ids) {
    int32_t max_id = 0;
    for (int32_t t : tokens) max_id = t > max_id ? t : max_id;
    std::vector<int32_t> count(size_t(max_id) + 2, 0);
    for (int32_t t : tokens)
        if (t >= 0) count[size_t(t) + 1]++;
    for (size_t i = 1; i < count.size(); i++) count[i] += count[i - 1];  // count[t] = start of group t
    order.assign(tokens.size(), 0);
    starts.clear();
    ids.clear();
    std::vector<int32_t> fill(count.begin(), count.end() - 1);
    for (size_t n = 0; n < tokens.size(); n++)
        if (tokens[n] >= 0) order[size_t(fill[size_t(tokens[n])]++)] = int32_t(n);
    for (size_t t = 0; t + 1 < count.size(); t++)
        if (count[t + 1] > count[t]) {
            ids.push_back(int32_t(t));
            starts.push_back(count[t]);
        }
    if (!ids.empty()) starts.push_back(count.back());
}

}  // namespace sinklab::cuda::kernels
