// The matrix multiplies of a linear layer through cuBLAS, the twins of src/ops/matmul.h:
//   forward:   out (N, OC)    = inp (N, IC) . weight (OC, IC)^T
//   backward:  dinp (N, IC)  += dout (N, OC) . weight (OC, IC)
//              dweight (OC, IC) += dout (N, OC)^T . inp (N, IC)
// The mapping onto column-major cuBLAS calls is in matmul_calls.h.
// Precision (cuda_api.h): fp32 = CUBLAS_COMPUTE_32F (plain fp32, no TF32); bf16 = the operands
// rounded to bf16 copies in scratch memory (round to nearest even; one pass over each operand per
// call, the backward's dout rounded once for both of its products), then a bf16 x bf16 product on
// the tensor cores with fp32 accumulation and an fp32 output. Weights, activations and gradients
// stay fp32 in memory. (Letting cuBLAS round the fp32 operands itself, CUBLAS_COMPUTE_32F_FAST_16BF,
// ran at 230-380 TFLOP/s on an H200 at the 60M model's shapes: see cuda/NOTES.md.)
// Determinism: one handle, one stream, a fixed workspace, atomics not allowed (the default), so a
// given GPU and shape always take the same algorithm and give bitwise the same result.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

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

// Column-major C (m, n) = op(A) op(B) + beta C, with the shapes of `g` and the operands A, B: fp32
// (g.A, g.B) in fp32 mode, their bf16 copies in bf16 mode. C is fp32.
void gemm(const GemmCall& g, const void* A, const void* B) {
    if (g.m == 0 || g.n == 0) return;
    const float alpha = 1.0f;
    const bool bf16 = precision() == Precision::bf16;
    const cudaDataType ab_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(handle(), g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              as_int(g.m, "m"), as_int(g.n, "n"), as_int(g.k, "k"), &alpha, A, ab_type,
                              as_int(g.lda, "lda"), B, ab_type, as_int(g.ldb, "ldb"), &g.beta, g.C, CUDA_R_32F,
                              as_int(g.ldc, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// dst[i] = bf16(src[i]), round to nearest even; four at a time when both are 16 / 8-byte aligned.
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, size_t n) {
    const size_t stride = size_t(gridDim.x) * blockDim.x;
    const bool vec = reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 8 == 0;
    const size_t n4 = vec ? n / 4 : 0;
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
        const float4 x = reinterpret_cast<const float4*>(src)[i];
        __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y), hi = __floats2bfloat162_rn(x.z, x.w);
        reinterpret_cast<__nv_bfloat162*>(dst)[2 * i] = lo;
        reinterpret_cast<__nv_bfloat162*>(dst)[2 * i + 1] = hi;
    }
    for (size_t i = 4 * n4 + size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = __float2bfloat16_rn(src[i]);
}

// A bf16 copy of the n floats at src, in the scratch buffer of `slot` (valid until that slot's next use).
const __nv_bfloat16* bf16_copy(ScratchSlot slot, const float* src, size_t n) {
    auto* dst = static_cast<__nv_bfloat16*>(scratch(slot, n * sizeof(__nv_bfloat16)));
    const unsigned threads = 256;
    const unsigned blocks = unsigned(std::min<size_t>((n / 4 + threads - 1) / threads + 1, size_t(132) * 16));
    to_bf16_kernel<<<blocks, threads>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
    return dst;
}

bool bf16_mode() { return precision() == Precision::bf16; }

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, size_t N, size_t IC, size_t OC) {
    const GemmCall g = matmul_forward_call(out, inp, weight, N, IC, OC);  // A = weight, B = inp
    if (bf16_mode())
        gemm(g, bf16_copy(kScratchGemmWeight, weight, OC * IC), bf16_copy(kScratchGemmInput, inp, N * IC));
    else
        gemm(g, g.A, g.B);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     size_t N, size_t IC, size_t OC) {
    const GemmCall g_dinp = matmul_backward_dinp_call(dinp, dout, weight, N, IC, OC);      // A = weight, B = dout
    const GemmCall g_dweight = matmul_backward_dweight_call(dweight, dout, inp, N, IC, OC);  // A = inp, B = dout
    if (bf16_mode()) {
        const __nv_bfloat16* dout16 = bf16_copy(kScratchGemmDout, dout, N * OC);
        if (dinp) gemm(g_dinp, bf16_copy(kScratchGemmWeight, weight, OC * IC), dout16);
        gemm(g_dweight, bf16_copy(kScratchGemmInput, inp, N * IC), dout16);
    } else {
        if (dinp) gemm(g_dinp, g_dinp.A, g_dinp.B);
        gemm(g_dweight, g_dweight.A, g_dweight.B);
    }
}

}  // namespace sinklab::cuda
