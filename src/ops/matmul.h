// The matrix multiplies of a linear layer, in PyTorch's weight layout (out_features, in_features).
//
//   forward:   out (N, OC)    = inp (N, IC) . weight (OC, IC)^T
//   backward:  dinp (N, IC)  += dout (N, OC) . weight (OC, IC)
//              dweight (OC, IC) += dout (N, OC)^T . inp (N, IC)
//
// Backward accumulates (+=) so that gradient accumulation over micro-batches and over the
// branches of the residual stream needs no extra buffers. dinp may be nullptr (no input gradient,
// e.g. when the input is a constant).
//
// The generic template is the readable reference (and what double-precision gradient checks run);
// float goes to the blocked SIMD kernel in matmul.cpp. Both are deterministic: every output element
// is reduced in a fixed order whatever the thread count.
#pragma once
#include <cstddef>
#include <type_traits>

namespace sinklab {

// C (M, N) (+)= A (M, K) . B (K, N), with A and B read through (row, column) strides so that a
// transposed operand needs no copy: A[m, k] = A[m * a_row + k * a_col].
// accumulate=false overwrites C. C is row-major with leading dimension ldc.
void gemm_f32(size_t M, size_t N, size_t K, const float* A, size_t a_row, size_t a_col, const float* B,
              size_t b_row, size_t b_col, float* C, size_t ldc, bool accumulate);

template <typename T>
void gemm_reference(size_t M, size_t N, size_t K, const T* A, size_t a_row, size_t a_col, const T* B,
                    size_t b_row, size_t b_col, T* C, size_t ldc, bool accumulate) {
#pragma omp parallel for schedule(static)
    for (size_t m = 0; m < M; m++) {
        for (size_t n = 0; n < N; n++) {
            T sum = 0;
            for (size_t k = 0; k < K; k++) sum += A[m * a_row + k * a_col] * B[k * b_row + n * b_col];
            C[m * ldc + n] = accumulate ? C[m * ldc + n] + sum : sum;
        }
    }
}

template <typename T>
void gemm(size_t M, size_t N, size_t K, const T* A, size_t a_row, size_t a_col, const T* B, size_t b_row,
          size_t b_col, T* C, size_t ldc, bool accumulate) {
    if constexpr (std::is_same_v<T, float>)
        gemm_f32(M, N, K, A, a_row, a_col, B, b_row, b_col, C, ldc, accumulate);
    else
        gemm_reference(M, N, K, A, a_row, a_col, B, b_row, b_col, C, ldc, accumulate);
}

// out (N, OC) = inp (N, IC) . weight (OC, IC)^T
template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, size_t N, size_t IC, size_t OC) {
    // A = inp (N x IC, row-major), B[k, n] = weight[n, k] (weight transposed).
    gemm<T>(N, OC, IC, inp, IC, 1, weight, 1, IC, out, OC, false);
}

// dinp (N, IC) += dout (N, OC) . weight (OC, IC);   dweight (OC, IC) += dout^T . inp
template <typename T>
void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, size_t N, size_t IC,
                     size_t OC) {
    if (dinp) gemm<T>(N, IC, OC, dout, OC, 1, weight, IC, 1, dinp, IC, true);
    // A[m = oc, k = n] = dout[n, oc] (dout transposed), B[k = n, i] = inp[n, i].
    gemm<T>(OC, IC, N, dout, 1, OC, inp, IC, 1, dweight, IC, true);
}

}  // namespace sinklab
