// The CUDA backend as the model sees it: the same static members as CpuBackend<float>
// (src/model/backend_cpu.h), so Model<CudaBackend> (src/model/model.h) runs unchanged on the GPU.
// Plain C++: the operations are declared in ops_cuda.h and implemented in the .cu files of cuda/.
// Every pointer the model hands over is device memory from alloc(); host arrays go through
// upload/download. The precision of the matrix work is the runtime setting cuda::set_precision.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cuda_api.h"
#include "model/backend.h"
#include "model/config.h"
#include "ops/adamw.h"  // AdamWHyper
#include "ops_cuda.h"

namespace sinklab {

struct CudaBackend {
    using Scalar = float;
    using T = float;

    // ---- memory: device allocations (zeroed), copies to and from the host ----
    template <typename U>
    static U* alloc(size_t n) {
        return static_cast<U*>(cuda::device_alloc(n * sizeof(U)));
    }
    template <typename U>
    static void release(U* p) { cuda::device_free(static_cast<void*>(p)); }
    template <typename U>
    static void zero(U* p, size_t n) { cuda::device_zero(static_cast<void*>(p), n * sizeof(U)); }
    template <typename U>
    static void upload(U* dst, const U* host, size_t n) { cuda::copy_to_device(dst, host, n * sizeof(U)); }
    template <typename U>
    static void download(U* host, const U* src, size_t n) { cuda::copy_to_host(host, src, n * sizeof(U)); }
    static void synchronize() { cuda::device_synchronize(); }

    // What the fused attention keeps for its backward: one value per row (the softmax
    // log-sum-exp), never the T x T weights. (cuda::attention_weights materialises them.)
    static size_t attention_saved_size(size_t B, size_t H, size_t Tn) { return B * H * Tn; }

    // ---- operations (ops_cuda.h; the math is in the comments of src/ops/<op>.h) ----
    // Each forwards to the function of the same name; the signatures (and the math) are written
    // there once, and the ModelBackend concept (backend.h) checks the calls.
    template <class... A> static auto embedding_forward(A... a) { return cuda::embedding_forward(a...); }
    template <class... A> static auto embedding_backward(A... a) { return cuda::embedding_backward(a...); }
    template <class... A> static auto rmsnorm_forward(A... a) { return cuda::rmsnorm_forward(a...); }
    template <class... A> static auto rmsnorm_backward(A... a) { return cuda::rmsnorm_backward(a...); }
    template <class... A> static auto rmsnorm_groups_forward(A... a) { return cuda::rmsnorm_groups_forward(a...); }
    template <class... A> static auto rmsnorm_groups_backward(A... a) { return cuda::rmsnorm_groups_backward(a...); }
    template <class... A> static auto matmul_forward(A... a) { return cuda::matmul_forward(a...); }
    template <class... A> static auto matmul_backward(A... a) { return cuda::matmul_backward(a...); }
    template <class... A> static auto rope_forward(A... a) { return cuda::rope_forward(a...); }
    template <class... A> static auto rope_backward(A... a) { return cuda::rope_backward(a...); }
    template <class... A> static auto attention_forward(A... a) { return cuda::attention_forward(a...); }
    template <class... A> static auto activation_forward(A... a) { return cuda::activation_forward(a...); }
    template <class... A> static auto activation_backward(A... a) { return cuda::activation_backward(a...); }
    template <class... A> static auto qkv_merge_forward(A... a) { return cuda::qkv_merge_forward(a...); }
    template <class... A> static auto qkv_merge_backward(A... a) { return cuda::qkv_merge_backward(a...); }
    template <class... A> static auto glu_forward(A... a) { return cuda::glu_forward(a...); }
    template <class... A> static auto glu_backward(A... a) { return cuda::glu_backward(a...); }
    template <class... A> static auto residual_add(A... a) { return cuda::residual_add(a...); }
    template <class... A> static auto bias_add_forward(A... a) { return cuda::bias_add_forward(a...); }
    template <class... A> static auto head_sum_forward(A... a) { return cuda::head_sum_forward(a...); }
    template <class... A> static auto head_sum_backward(A... a) { return cuda::head_sum_backward(a...); }
    template <class... A> static auto gate_forward(A... a) { return cuda::gate_forward(a...); }
    template <class... A> static auto gate_backward(A... a) { return cuda::gate_backward(a...); }
    template <class... A> static auto bias_add_backward(A... a) { return cuda::bias_add_backward(a...); }
    template <class... A> static auto crossentropy_forward(A... a) { return cuda::crossentropy_forward(a...); }
    template <class... A> static auto crossentropy_backward(A... a) { return cuda::crossentropy_backward(a...); }
    template <class... A> static auto sum_squares(A... a) { return cuda::sum_squares(a...); }
    template <class... A> static auto adamw_update(A... a) { return cuda::adamw_update(a...); }
    template <class... A> static auto attention_backward(A... a) { return cuda::attention_backward(a...); }
};

static_assert(ModelBackend<CudaBackend>);

}  // namespace sinklab
