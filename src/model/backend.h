// The backend interface, stated once: everything Model<Backend> (model.h) asks of a backend. A
// backend is a struct of static members: memory (allocate, free, zero, copy to and from the host)
// and one function per operation, under the names of the CPU operations in src/ops/ (one header
// each), where the shapes and the math of each are written. CpuBackend (backend_cpu.h) and
// CudaBackend (cuda/backend_cuda.h) each end with a static_assert that they satisfy it; a port to
// other hardware starts from this list.
// Conventions: pointers are the backend's memory (from alloc); backward functions add (+=) into
// their gradients; everything runs in call order.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "model/config.h"
#include "ops/activation.h"  // Activation
#include "ops/adamw.h"       // AdamWHyper

namespace sinklab {

template <class B>
concept ModelBackend = requires(typename B::Scalar* out, const typename B::Scalar* in, int32_t* ids,
                                const int32_t* const_ids, size_t n, typename B::Scalar scalar,
                                const AttentionSpec& spec, const AdamWHyper& hp, Activation act) {
    // ---- memory ----
    { B::template alloc<typename B::Scalar>(n) } -> std::same_as<typename B::Scalar*>;
    { B::template alloc<int32_t>(n) } -> std::same_as<int32_t*>;
    B::release(out);
    B::release(ids);
    B::zero(out, n);
    B::upload(out, in, n);      // host -> backend
    B::upload(ids, const_ids, n);
    B::download(out, in, n);    // backend -> host
    B::synchronize();
    // Elements the attention forward keeps per layer for its backward, besides att_z and att_slot:
    // one per row (B, H, T) on both backends (the backward recomputes the weights).
    { B::attention_saved_size(n, n, n) } -> std::same_as<size_t>;

    // ---- operations (src/ops/<op>.h, all included by src/ops/ops.h) ----
    B::embedding_forward(out, const_ids, in, n, n);             // (out, tokens, wte, N, C)
    B::embedding_backward(out, in, const_ids, n, n);            // (dwte, dout, tokens, N, C)
    B::rmsnorm_forward(out, out, in, in, n, n, scalar);         // (out, rstd, x, w, N, C, eps)
    B::rmsnorm_backward(out, out, in, in, in, in, n, n);        // (dx, dw, dout, x, w, rstd, N, C)
    B::rmsnorm_groups_forward(out, out, in, in, n, n, n, scalar);   // (out, rstd, x, w, N, C, G, eps)
    B::rmsnorm_groups_backward(out, out, in, in, in, in, n, n, n);  // (dx, dw, dout, x, w, rstd, N, C, G)
    B::matmul_forward(out, in, in, n, n, n);                    // (out, inp, weight, N, IC, OC)
    B::matmul_backward(out, out, in, in, in, n, n, n);          // (dinp, dweight, dout, inp, weight, N, IC, OC)
    B::rope_forward(out, in, in, in, n, n, n, n);               // (out, qkv, cos, sin, B, T, C, H)
    B::rope_backward(out, in, in, in, n, n, n, n);              // (dqkv, dout, cos, sin, B, T, C, H)
    // (out, saved, att_z, att_slot, qkv, slot_k, slot_v, B, T, C, H, spec)
    B::attention_forward(out, out, out, out, in, in, in, n, n, n, n, spec);
    // (dqkv, d_slot_k, d_slot_v, dout, out, qkv, slot_k, slot_v, saved, att_z, att_slot, B, T, C, H, spec)
    B::attention_backward(out, out, out, in, in, in, in, in, in, in, in, n, n, n, n, spec);
    // (Optional, not required here: attention_forward_keeping_maps(maps, <attention_forward's
    // arguments>), which also writes the (B, H, T, T) weights; Model::keep_attention_maps needs it.)
    B::bias_add_forward(out, in, n, n);                         // (x, bias, rows, n)
    B::bias_add_backward(out, in, n, n);                        // (dbias, dx, rows, n)
    B::head_sum_forward(out, in, n, n, n);                      // (out, y, N, H, D)
    B::head_sum_backward(out, in, n, n, n);                     // (dy, dout, N, H, D)
    B::gate_forward(out, in, in, n, n, n);                      // (out, y, z, N, C, G)
    B::gate_backward(out, out, in, in, in, n, n, n);            // (dy, dz, dout, y, z, N, C, G)
    B::activation_forward(out, in, n, act);                     // (out, x, n, f)
    B::activation_backward(out, in, in, n, act);                // (dx, dout, x, n, f)
    B::qkv_merge_forward(out, in, in, n, n);                    // (out, qk_src, v_src, N, C)
    B::qkv_merge_backward(out, out, in, n, n);                  // (dqk_src, dv_src, dout, N, C)
    B::glu_forward(out, in, n, n, act);                         // (out, fc, N, F, f)
    B::glu_backward(out, in, in, n, n, act);                    // (dfc, dout, fc, N, F, f)
    B::residual_add(out, in, n);                                // (x, y, n): x += y
    B::crossentropy_forward(out, in, const_ids, n, n);          // (losses, logits, targets, N, V)
    B::crossentropy_backward(out, in, const_ids, scalar, n, n); // (dlogits, logits, targets, dloss, N, V)
    { B::sum_squares(in, n) } -> std::same_as<double>;          // (x, n)
    B::adamw_update(out, in, out, out, n, hp, n, scalar);       // (params, grads, m, v, n, hp, step, grad_scale)
};

// A backend whose attention forward can also write the full weights (B, H, T, T) for the sink
// analysis (Model::keep_attention_maps): the CPU's.
//   (maps, out, saved, att_z, att_slot, qkv, slot_k, slot_v, B, T, C, H, spec)
template <class B>
concept BackendKeepsAttentionMaps = requires(typename B::Scalar* out, const typename B::Scalar* in, size_t n,
                                             const AttentionSpec& spec) {
    B::attention_forward_keeping_maps(out, out, out, out, out, in, in, in, n, n, n, n, spec);
};

}  // namespace sinklab
