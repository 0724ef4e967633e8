// The matrix multiplies of a linear layer through cuBLAS, the twins of src/matmul.h:
//   forward:   out (N, OC)    = inp (N, IC) . weight (OC, IC)^T
//   backward:  dinp (N, IC)  += dout (N, OC) . weight (OC, IC)
//              dweight (OC, IC) += dout (N, OC)^T . inp (N, IC)
// The mapping onto column-major cuBLAS calls is in matmul_calls.h.
// Precision (cuda_api.h): fp32 = CUBLAS_COMPUTE_32F (plain fp32, no TF32); bf16 =
// CUBLAS_COMPUTE_32F_FAST_16BF: cuBLAS rounds the fp32 operands to bf16 for the tensor cores and
// accumulates in fp32; inputs and outputs stay fp32 in memory.
// Determinism: one handle, one stream, a fixed workspace, atomics not allowed (the default), so a
// given GPU and shape always take the same algorithm and give bitwise the same result.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>

#include "common.cuh"
#include "cuda_api.h"
#include "matmul_calls.h"
#include "ops_cuda.h"

namespace sinklab::cuda {

namespace {

const char* cublas_status_text(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
        case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
        case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
        case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
        default: return "unknown status";
    }
}

#define CUBLAS_CHECK(call)                                                                             \
    do {                                                                                               \
        const cublasStatus_t st_ = (call);                                                             \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                              \
            ::sinklab::cuda::throw_cuda_error(#call, cublas_status_text(st_), __FILE__, __LINE__);    \
    } while (0)

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

cublasHandle_t handle() {
    static cublasHandle_t h = nullptr;
    if (!h) {
        CUBLAS_CHECK(cublasCreate(&h));
        CUBLAS_CHECK(cublasSetStream(h, 0));
        CUBLAS_CHECK(cublasSetAtomicsMode(h, CUBLAS_ATOMICS_NOT_ALLOWED));
        CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));  // no TF32 unless asked
        void* workspace = nullptr;
        CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
        count_device_bytes(kWorkspaceBytes);
        CUBLAS_CHECK(cublasSetWorkspace(h, workspace, kWorkspaceBytes));
    }
    return h;
}

int as_int(size_t x, const char* what) {
    if (x > size_t(INT_MAX)) throw Error(fmt::format("matmul: {} = {} is too large for cuBLAS", what, x));
    return int(x);
}

// Column-major C (m, n) = op(A) op(B) + beta C, all fp32 in memory.
void gemm(const GemmCall& g) {
    const bool trans_a = g.trans_a, trans_b = g.trans_b;
    const size_t m = g.m, n = g.n, k = g.k, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
    const float *A = g.A, *B = g.B;
    float* C = g.C;
    const float beta = g.beta;
    if (m == 0 || n == 0) return;
    const float alpha = 1.0f;
    const cublasComputeType_t compute =
        precision() == Precision::bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasGemmEx(handle(), trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              as_int(m, "m"), as_int(n, "n"), as_int(k, "k"), &alpha, A, CUDA_R_32F,
                              as_int(lda, "lda"), B, CUDA_R_32F, as_int(ldb, "ldb"), &beta, C, CUDA_R_32F,
                              as_int(ldc, "ldc"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, size_t N, size_t IC, size_t OC) {
    gemm(matmul_forward_call(out, inp, weight, N, IC, OC));
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     size_t N, size_t IC, size_t OC) {
    if (dinp) gemm(matmul_backward_dinp_call(dinp, dout, weight, N, IC, OC));
    gemm(matmul_backward_dweight_call(dweight, dout, inp, N, IC, OC));
}

}  // namespace sinklab::cuda
