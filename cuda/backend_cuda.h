// The CUDA backend as the model sees it: the same static members as CpuBackend<float>
// (src/backend_cpu.h), so Model<CudaBackend> (src/model.h) runs unchanged on the GPU.
// Plain C++: the operations are declared in ops_cuda.h and implemented in the .cu files of cuda/.
// Every pointer the model hands over is device memory from alloc(); host arrays go through
// upload/download. The precision of the matrix work is the runtime setting cuda::set_precision.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend.h"
#include "config.h"
#include "cuda_api.h"
#include "ops.h"  // AdamWHyper
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

    // ---- operations (ops_cuda.h; the math is in the comments of src/ops.h) ----
    static void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
        cuda::embedding_forward(out, tokens, wte, N, C);
    }
    static void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
        cuda::embedding_backward(dwte, dout, tokens, N, C);
    }
    static void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, size_t N, size_t C, T eps) {
        cuda::rmsnorm_forward(out, rstd, x, w, N, C, eps);
    }
    static void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, size_t N,
                                 size_t C) {
        cuda::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    }
    static void matmul_forward(T* out, const T* inp, const T* weight, size_t N, size_t IC, size_t OC) {
        cuda::matmul_forward(out, inp, weight, N, IC, OC);
    }
    static void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, size_t N,
                                size_t IC, size_t OC) {
        cuda::matmul_backward(dinp, dweight, dout, inp, weight, N, IC, OC);
    }
    static void rope_forward(T* out, const T* qkv, const T* cos_t, const T* sin_t, size_t B, size_t Tn, size_t C,
                             size_t H) {
        cuda::rope_forward(out, qkv, cos_t, sin_t, B, Tn, C, H);
    }
    static void rope_backward(T* dqkv, const T* dout, const T* cos_t, const T* sin_t, size_t B, size_t Tn,
                              size_t C, size_t H) {
        cuda::rope_backward(dqkv, dout, cos_t, sin_t, B, Tn, C, H);
    }
    static void attention_forward(T* out, T* saved, T* att_z, const T* qkv, size_t B, size_t Tn, size_t C,
                                  size_t H, const AttentionSpec& spec) {
        cuda::attention_forward(out, saved, att_z, qkv, B, Tn, C, H, spec);
    }
    static void attention_backward(T* dqkv, const T* dout, const T* out, const T* qkv, const T* saved,
                                   const T* att_z, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
        cuda::attention_backward(dqkv, dout, out, qkv, saved, att_z, B, Tn, C, H, spec);
    }
    static void swiglu_forward(T* out, const T* fc, size_t N, size_t F) { cuda::swiglu_forward(out, fc, N, F); }
    static void swiglu_backward(T* dfc, const T* dout, const T* fc, size_t N, size_t F) {
        cuda::swiglu_backward(dfc, dout, fc, N, F);
    }
    static void residual_add(T* x, const T* y, size_t n) { cuda::residual_add(x, y, n); }
    static void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, size_t N, size_t V) {
        cuda::crossentropy_forward(losses, logits, targets, N, V);
    }
    static void crossentropy_backward(T* dlogits, const T* logits, const int32_t* targets, T dloss, size_t N,
                                      size_t V) {
        cuda::crossentropy_backward(dlogits, logits, targets, dloss, N, V);
    }
    static double sum_squares(const T* x, size_t n) { return cuda::sum_squares(x, n); }
    static void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, const AdamWHyper& hp, size_t step,
                             T grad_scale) {
        cuda::adamw_update(params, grads, m, v, n, hp, step, grad_scale);
    }
};

static_assert(ModelBackend<CudaBackend>);

}  // namespace sinklab
