// What every CPU operation (src/ops/*.h) shares: the conventions of their comments, and two loop
// helpers. The CUDA twins (cuda/<op>.cu, declared in cuda/ops_cuda.h) follow the same conventions.
//
// Conventions
//   B batch, T sequence length, C model width, H heads, D = C / H head dim, F FFN hidden, V vocab.
//   N = B * T rows of tokens. Row-major everywhere; size_t indices.
//   qkv (B, T, 3C): q = [.., 0:C], k = [.., C:2C], v = [.., 2C:3C]; head h is the slice [h D, (h+1) D).
//   Backward functions accumulate (+=) into every gradient they write, unless stated otherwise.
#pragma once
#include <algorithm>
#include <cstddef>

namespace sinklab {

// Backward passes that sum over rows into a per-column gradient split the columns into blocks of
// kColumnBlock (one 64-byte cache line of floats): one thread owns a block [c0, c1) and sums its
// columns in row order, which is deterministic for any thread count and reads whole lines.
constexpr size_t kColumnBlock = 16;

template <typename Body>
void parallel_over_column_blocks(size_t C, Body body) {
    const size_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) body(blk * kColumnBlock, std::min(C, (blk + 1) * kColumnBlock));
}

// The largest of n > 0 values (vectorized).
template <typename T>
inline T row_max(const T* x, size_t n) {
    T m = x[0];
#pragma omp simd reduction(max : m)
    for (size_t i = 1; i < n; i++) m = std::max(m, x[i]);
    return m;
}

}  // namespace sinklab
