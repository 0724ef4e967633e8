// The CPU backend as the model sees it: memory management plus the operations of ops.h under the
// same names (the interface is the ModelBackend concept of backend.h). The CUDA backend
// (cuda/backend_cuda.h) has the same static members, so the model in model.h is written once for both.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "backend.h"
#include "ops.h"

namespace sinklab {

template <typename T>
struct CpuBackend {
    using Scalar = T;

    // ---- memory: host allocations, 64-byte aligned for the SIMD kernels ----
    template <typename U>
    static U* alloc(size_t n) {
        if (n == 0) n = 1;
        const size_t bytes = (n * sizeof(U) + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, bytes);
        if (!p) throw std::bad_alloc();
        std::memset(p, 0, bytes);
        return static_cast<U*>(p);
    }
    template <typename U>
    static void release(U* p) { std::free(p); }
    template <typename U>
    static void zero(U* p, size_t n) { std::memset(p, 0, n * sizeof(U)); }
    // Host <-> backend copies (plain copies here).
    template <typename U>
    static void upload(U* dst, const U* host, size_t n) { std::memcpy(dst, host, n * sizeof(U)); }
    template <typename U>
    static void download(U* host, const U* src, size_t n) { std::memcpy(host, src, n * sizeof(U)); }
    static void synchronize() {}

    // What the attention forward keeps for its backward: the full (B, H, T, T) weights.
    static size_t attention_saved_size(size_t B, size_t H, size_t Tn) { return B * H * Tn * Tn; }

    // ---- operations (ops.h, matmul.h) ----
    static void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
        sinklab::embedding_forward(out, tokens, wte, N, C);
    }
    static void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
        sinklab::embedding_backward(dwte, dout, tokens, N, C);
    }
    static void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, size_t N, size_t C, T eps) {
        sinklab::rmsnorm_forward(out, rstd, x, w, N, C, eps);
    }
    static void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, size_t N,
                                 size_t C) {
        sinklab::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    }
    static void matmul_forward(T* out, const T* inp, const T* weight, size_t N, size_t IC, size_t OC) {
        sinklab::matmul_forward(out, inp, weight, N, IC, OC);
    }
    static void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, size_t N,
                                size_t IC, size_t OC) {
        sinklab::matmul_backward(dinp, dweight, dout, inp, weight, N, IC, OC);
    }
    static void rope_forward(T* out, const T* qkv, const T* cos_t, const T* sin_t, size_t B, size_t Tn, size_t C,
                             size_t H) {
        sinklab::rope_forward(out, qkv, cos_t, sin_t, B, Tn, C, H);
    }
    static void rope_backward(T* dqkv, const T* dout, const T* cos_t, const T* sin_t, size_t B, size_t Tn,
                              size_t C, size_t H) {
        sinklab::rope_backward(dqkv, dout, cos_t, sin_t, B, Tn, C, H);
    }
    static void attention_forward(T* out, T* saved, T* att_z, const T* qkv, size_t B, size_t Tn, size_t C,
                                  size_t H, const AttentionSpec& spec) {
        sinklab::attention_forward(out, saved, att_z, qkv, B, Tn, C, H, spec);
    }
    // `out` (the forward's output) is what a fused kernel needs; the CPU keeps the weights instead.
    static void attention_backward(T* dqkv, const T* dout, const T* /*out*/, const T* qkv, const T* saved,
                                   const T* att_z, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
        sinklab::attention_backward(dqkv, dout, qkv, saved, att_z, B, Tn, C, H, spec);
    }
    static void swiglu_forward(T* out, const T* fc, size_t N, size_t F) { sinklab::swiglu_forward(out, fc, N, F); }
    static void swiglu_backward(T* dfc, const T* dout, const T* fc, size_t N, size_t F) {
        sinklab::swiglu_backward(dfc, dout, fc, N, F);
    }
    static void residual_add(T* x, const T* y, size_t n) { sinklab::residual_add(x, y, n); }
    static void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, size_t N, size_t V) {
        sinklab::crossentropy_forward(losses, logits, targets, N, V);
    }
    static void crossentropy_backward(T* dlogits, const T* logits, const int32_t* targets, T dloss, size_t N,
                                      size_t V) {
        sinklab::crossentropy_backward(dlogits, logits, targets, dloss, N, V);
    }
    static double sum_squares(const T* x, size_t n) { return sinklab::sum_squares(x, n); }
    static void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, const AdamWHyper& hp, size_t step,
                             T grad_scale) {
        sinklab::adamw_update(params, grads, m, v, n, hp, step, grad_scale);
    }
};

static_assert(ModelBackend<CpuBackend<float>> && ModelBackend<CpuBackend<double>>);

}  // namespace sinklab
