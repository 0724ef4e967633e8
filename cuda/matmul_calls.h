// How each matrix multiply of a linear layer maps onto one column-major BLAS call
//   C (m, n) = op(A) (m, k) . op(B) (k, n) + beta C,   op(X) = X or X^T,
// with the operands read column-major with leading dimensions lda, ldb, ldc. Plain C++, shared by
// matmul.cu (which hands these to cublasGemmEx) and tests/test_cuda_emulated.cpp (which checks
// them against the CPU reference with a column-major reference gemm).
//
// A row-major (R, K) buffer is the column-major (K, R) matrix with leading dimension K, i.e. its
// transpose. So each row-major product is computed transposed:
//   out (N, OC)      = inp (N, IC) . weight (OC, IC)^T  ->  out^T (OC, N)   = op_T(W) . inp^T
//   dinp (N, IC)    += dout (N, OC) . weight (OC, IC)   ->  dinp^T (IC, N) += W^T . dout^T
//   dweight (OC, IC) += dout^T . inp                    ->  dW^T (IC, OC)  += inp^T . op_T(dout^T)
#pragma once
#include <cstddef>

namespace sinklab::cuda {

struct GemmCall {
    bool trans_a, trans_b;
    size_t m, n, k;
    const float* A;
    size_t lda;
    const float* B;
    size_t ldb;
    float* C;
    size_t ldc;
    float beta;
};

inline GemmCall matmul_forward_call(float* out, const float* inp, const float* weight, size_t N, size_t IC,
                                    size_t OC) {
    // weight as column-major (IC, OC), ld IC, transposed; inp^T column-major (IC, N), ld IC.
    return {true, false, OC, N, IC, weight, IC, inp, IC, out, OC, 0.0f};
}

inline GemmCall matmul_backward_dinp_call(float* dinp, const float* dout, const float* weight, size_t N, size_t IC,
                                          size_t OC) {
    // weight^T column-major (IC, OC), ld IC; dout^T column-major (OC, N), ld OC.
    return {false, false, IC, N, OC, weight, IC, dout, OC, dinp, IC, 1.0f};
}

inline GemmCall matmul_backward_dweight_call(float* dweight, const float* dout, const float* inp, size_t N,
                                             size_t IC, size_t OC) {
    // inp^T column-major (IC, N), ld IC; dout^T column-major (OC, N), ld OC, transposed.
    return {false, true, IC, OC, N, inp, IC, dout, OC, dweight, IC, 1.0f};
}

}  // namespace sinklab::cuda
