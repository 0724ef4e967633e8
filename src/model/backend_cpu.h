// The CPU backend as the model sees it: memory management plus the operations of ops.h under the
// same names (the interface is the ModelBackend concept of backend.h). The CUDA backend
// (cuda/backend_cuda.h) has the same static members, so the model in model.h is written once for both.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "model/backend.h"
#include "ops/ops.h"

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

    // What the attention forward keeps for its backward besides att_z and att_slot: one value per
    // row (B, H, T), the log-normaliser (src/ops/attention.h); the backward recomputes the weights.
    static size_t attention_saved_size(size_t B, size_t H, size_t Tn) { return B * H * Tn; }

    // ---- operations (ops.h, matmul.h) ----
    // Each forwards to the function of the same name; the signatures (and the math) are written
    // there once, and the ModelBackend concept (backend.h) checks the calls.
    template <class... A> static auto embedding_forward(A... a) { return sinklab::embedding_forward(a...); }
    template <class... A> static auto embedding_backward(A... a) { return sinklab::embedding_backward(a...); }
    template <class... A> static auto rmsnorm_forward(A... a) { return sinklab::rmsnorm_forward(a...); }
    template <class... A> static auto rmsnorm_backward(A... a) { return sinklab::rmsnorm_backward(a...); }
    template <class... A> static auto rmsnorm_groups_forward(A... a) { return sinklab::rmsnorm_groups_forward(a...); }
    template <class... A> static auto rmsnorm_groups_backward(A... a) { return sinklab::rmsnorm_groups_backward(a...); }
    template <class... A> static auto matmul_forward(A... a) { return sinklab::matmul_forward(a...); }
    template <class... A> static auto matmul_backward(A... a) { return sinklab::matmul_backward(a...); }
    template <class... A> static auto rope_forward(A... a) { return sinklab::rope_forward(a...); }
    template <class... A> static auto rope_backward(A... a) { return sinklab::rope_backward(a...); }
    template <class... A> static auto attention_forward(A... a) { return sinklab::attention_forward(a...); }
    template <class... A> static auto activation_forward(A... a) { return sinklab::activation_forward(a...); }
    template <class... A> static auto activation_backward(A... a) { return sinklab::activation_backward(a...); }
    template <class... A> static auto qkv_merge_forward(A... a) { return sinklab::qkv_merge_forward(a...); }
    template <class... A> static auto qkv_merge_backward(A... a) { return sinklab::qkv_merge_backward(a...); }
    template <class... A> static auto glu_forward(A... a) { return sinklab::glu_forward(a...); }
    template <class... A> static auto glu_backward(A... a) { return sinklab::glu_backward(a...); }
    template <class... A> static auto residual_add(A... a) { return sinklab::residual_add(a...); }
    template <class... A> static auto bias_add_forward(A... a) { return sinklab::bias_add_forward(a...); }
    template <class... A> static auto head_sum_forward(A... a) { return sinklab::head_sum_forward(a...); }
    template <class... A> static auto head_sum_backward(A... a) { return sinklab::head_sum_backward(a...); }
    template <class... A> static auto gate_forward(A... a) { return sinklab::gate_forward(a...); }
    template <class... A> static auto gate_backward(A... a) { return sinklab::gate_backward(a...); }
    template <class... A> static auto bias_add_backward(A... a) { return sinklab::bias_add_backward(a...); }
    template <class... A> static auto crossentropy_forward(A... a) { return sinklab::crossentropy_forward(a...); }
    template <class... A> static auto crossentropy_backward(A... a) { return sinklab::crossentropy_backward(a...); }
    template <class... A> static auto sum_squares(A... a) { return sinklab::sum_squares(a...); }
    template <class... A> static auto adamw_update(A... a) { return sinklab::adamw_update(a...); }
    // `out` (the forward's output) is what the fused kernels take Delta_i from; the CPU sums
    // w_ij dw_ij over its recomputed weights instead.
    static void attention_backward(T* dqkv, T* d_slot_k, T* d_slot_v, const T* dout, const T* /*out*/, const T* qkv,
                                   const T* slot_k, const T* slot_v, const T* saved, const T* att_z, const T* att_slot,
                                   size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
        sinklab::attention_backward(dqkv, d_slot_k, d_slot_v, dout, qkv, slot_k, slot_v, saved, att_z, att_slot, B, Tn,
                                    C, H, spec);
    }
    // The keep-maps mode of the sink analysis (Model::keep_attention_maps; not part of ModelBackend):
    // attention_forward that also writes the weights into maps (B, H, T, T).
    static void attention_forward_keeping_maps(T* maps, T* out, T* saved, T* att_z, T* att_slot, const T* qkv,
                                               const T* slot_k, const T* slot_v, size_t B, size_t Tn, size_t C,
                                               size_t H, const AttentionSpec& spec) {
        sinklab::attention_forward(out, saved, att_z, att_slot, qkv, slot_k, slot_v, B, Tn, C, H, spec, maps);
    }
};

static_assert(ModelBackend<CpuBackend<float>> && ModelBackend<CpuBackend<double>>);
static_assert(BackendKeepsAttentionMaps<CpuBackend<float>> && BackendKeepsAttentionMaps<CpuBackend<double>>);

}  // namespace sinklab
