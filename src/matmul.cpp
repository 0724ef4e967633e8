#include "matmul.h"

namespace sinklab {

// Placeholder float path: the reference loops. The blocked SIMD kernel replaces this.
void gemm_f32(size_t M, size_t N, size_t K, const float* A, size_t a_row, size_t a_col, const float* B,
              size_t b_row, size_t b_col, float* C, size_t ldc, bool accumulate) {
    gemm_reference<float>(M, N, K, A, a_row, a_col, B, b_row, b_col, C, ldc, accumulate);
}

}  // namespace sinklab
