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
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

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

// The largest of n > 0 values. A vector of running maxima, then the largest lane: the same value as
// one running maximum for inputs without NaN (a maximum does not depend on the order). Written with
// intrinsics because GCC 12 keeps a float max reduction scalar, `omp simd` or not (without
// -ffinite-math-only): a third of the cross entropy's time on AVX2 went into that scalar loop.
template <typename T>
inline T row_max(const T* x, size_t n) {
    T m = x[0];
    for (size_t i = 1; i < n; i++) m = std::max(m, x[i]);
    return m;
}
template <>
inline float row_max(const float* x, size_t n) {
    float m = x[0];
    size_t i = 0;
#if defined(__AVX512F__)
    if (n >= 16) {
        __m512 lanes = _mm512_loadu_ps(x);
        // (the zero-masked max with every lane kept: GCC 12 warns inside _mm512_max_ps, whose
        // pass-through operand starts as _mm512_undefined_ps(); see matmul.cpp)
        for (i = 16; i + 16 <= n; i += 16)
            lanes = _mm512_maskz_max_ps(__mmask16(0xFFFF), lanes, _mm512_loadu_ps(x + i));
        alignas(64) float lane[16];
        _mm512_store_ps(lane, lanes);
        for (float v : lane) m = std::max(m, v);
    }
#elif defined(__AVX2__)
    if (n >= 8) {
        __m256 lanes = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) lanes = _mm256_max_ps(lanes, _mm256_loadu_ps(x + i));
        alignas(32) float lane[8];
        _mm256_store_ps(lane, lanes);
        for (float v : lane) m = std::max(m, v);
    }
#elif defined(__ARM_NEON) && defined(__aarch64__)  // (vmaxvq_f32 is AArch64 only)
    if (n >= 4) {
        float32x4_t lanes = vld1q_f32(x);
        for (i = 4; i + 4 <= n; i += 4) lanes = vmaxq_f32(lanes, vld1q_f32(x + i));
        m = vmaxvq_f32(lanes);
    }
#endif
    for (; i < n; i++) m = std::max(m, x[i]);
    return m;
}

}  // namespace sinklab
