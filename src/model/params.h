// The model's parameter tensors, declared once (for_each_param): name, shape, how they are
// initialised, and the field of ParamTensors that points at each. Everything else is derived from
// that list: the storage table (offsets in the one parameter allocation, shared by the gradients
// and both AdamW moments), the safetensors names, the parameter counts, the initialisation.
// Per-layer tensors are stacked with a leading layer dimension:
//   embed.weight            (V, C)          pos_embed.weight (context, C)   learned positions only
//   blocks.attn_norm.weight (L, C)          blocks.attn_qkv.weight (L, 3C, C)   [Wq; Wk; Wv]
//   blocks.attn_out.weight  (L, C, C)  ((L, C, D) with the heads summed)    blocks.ffn_norm.weight (L, C)
//   blocks.attn_phi_w1.weight, blocks.attn_phi_w2.weight  (L, D, D)   the mlp feature map (mlp kernels only)
//   blocks.attn_gate.weight  (L, G, C)  W_g of `--attention-gate` (G = H headwise, C elementwise)
//   blocks.attn_head_norm.weight  (L, H, D)  the per-head gains of `--head-norm rms`
//   blocks.attn_slot_k, blocks.attn_slot_v  (L, S, D)   k* and v* of `--slot` (S = H, or 1 when shared)
//   blocks.attn_sink_logit                  (L, S, 1)   the learned sink logit s_h of `--slot sink-logit`
//                                                       (in attn_slot_k: the slot's score parameter)
//   blocks.ffn_in.weight    (L, 2F, C)      [W1 (gate); W2 (up)]   (plain FFN: (L, F, C), W1)
//   blocks.ffn_out.weight   (L, C, F)       W3 (down)               (plain FFN: W2)
//   final_norm.weight       (C), pre-norm only                   lm_head.weight (V, C)
// With post-norm, attn_norm and ffn_norm are the norms after each residual add.
// Adding a tensor (for a model variant) is one line in for_each_param, under the condition on the
// config that makes it exist, and one field in ParamTensors.
#pragma once
#include <cstddef>
#include <vector>

#include "model/config.h"
#include "model/tensor_table.h"

namespace sinklab {

// Pointers into one parameter-shaped allocation (parameters, gradients or a moment).
template <typename T>
struct ParamTensors {
    T *embed, *attn_norm, *attn_qkv, *attn_out, *ffn_norm, *ffn_in, *ffn_out, *final_norm, *lm_head;
    T *attn_phi_w1 = nullptr, *attn_phi_w2 = nullptr;  // the mlp feature map, when the config has one
    T* attn_gate = nullptr;                             // W_g of `--attention-gate`, when the config has one
    T* attn_head_norm = nullptr;                        // the head-wise RMSNorm gains of `--head-norm rms`
    T *attn_slot_k = nullptr, *attn_slot_v = nullptr;  // the slot's k* (or sink logit) and v*, when the config has them
    T* pos_embed = nullptr;                             // learned absolute positions (`--position learned`)
};

// How Model::init_weights fills a tensor (docs/model.md gives the formulas):
//   norm_gain:          1
//   embedding:          paper: N(0, 2 / (5 C)); torch: N(0, 1)
//   projection:         paper: N(0, 2 / (5 C)); torch: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))
//   output_projection:  paper: N(0, (1 / (sqrt(C) L))^2), a gated FFN's output; torch: as projection
//   slot:               N(0, 0.02^2) in both schemes (the slot's k*, v* and sink logit)
enum class InitKind { norm_gain, embedding, projection, output_projection, slot };

// Whether a tensor is one of the two vocabulary-sized matrices (embedding, LM head), which the
// non-embedding parameter count leaves out.
enum class Counted { in_blocks, vocabulary };

// One parameter tensor, as for_each_param declares it. A per-layer tensor is stacked over the
// layers (shape (L, ...)); layer_numel is the size of one layer's slice (0 for the others).
template <typename T>
struct ParamDecl {
    T* ParamTensors<T>::*field;
    const char* name;
    std::vector<size_t> shape;
    InitKind init;
    Counted counted;
    size_t layer_numel;
};

// Calls visit(ParamDecl<T>) for every parameter tensor of the model `c`, in storage order.
template <typename T, class Visit>
void for_each_param(const ModelConfig& c, Visit&& visit) {
    using P = ParamTensors<T>;
    const size_t L = c.n_layers, C = c.d_model, F = c.d_ffn, V = c.vocab_size, D = c.head_dim();
    // A tensor of the whole model, and one stacked over the layers (given one layer's shape).
    auto once = [&](T* P::*field, const char* name, std::vector<size_t> shape, InitKind init, Counted counted) {
        visit(ParamDecl<T>{field, name, std::move(shape), init, counted, 0});
    };
    auto per_layer = [&](T* P::*field, const char* name, std::vector<size_t> layer_shape, InitKind init) {
        size_t layer_numel = 1;
        for (size_t s : layer_shape) layer_numel *= s;
        layer_shape.insert(layer_shape.begin(), L);
        visit(ParamDecl<T>{field, name, std::move(layer_shape), init, Counted::in_blocks, layer_numel});
    };
    once(&P::embed, "embed.weight", {V, C}, InitKind::embedding, Counted::vocabulary);
    if (c.position == PositionKind::learned)  // initialised like the embedding; counted with it
        once(&P::pos_embed, "pos_embed.weight", {c.context, C}, InitKind::embedding, Counted::vocabulary);
    per_layer(&P::attn_norm, "blocks.attn_norm.weight", {C}, InitKind::norm_gain);
    per_layer(&P::attn_qkv, "blocks.attn_qkv.weight", {3 * C, C}, InitKind::projection);
    if (c.attention.feature_map == FeatureMap::mlp) {  // phi(x) = W2 relu(W1 x), shared by q, k and the heads
        per_layer(&P::attn_phi_w1, "blocks.attn_phi_w1.weight", {D, D}, InitKind::projection);
        per_layer(&P::attn_phi_w2, "blocks.attn_phi_w2.weight", {D, D}, InitKind::projection);
    }
    const size_t S = size_t(c.attention.slot_heads(int(c.n_heads)));  // k*, v*: per head, or shared
    if (c.attention.has_slot_score_param())  // k*, or the learned sink logit s_h
        per_layer(&P::attn_slot_k, c.attention.slot_is_logit() ? "blocks.attn_sink_logit" : "blocks.attn_slot_k",
                  {S, size_t(c.attention.slot_score_width(int(D)))}, InitKind::slot);
    if (c.attention.has_slot_value()) per_layer(&P::attn_slot_v, "blocks.attn_slot_v", {S, D}, InitKind::slot);
    if (c.head_norm) per_layer(&P::attn_head_norm, "blocks.attn_head_norm.weight", {c.n_heads, D}, InitKind::norm_gain);
    if (c.gate_count() > 0) per_layer(&P::attn_gate, "blocks.attn_gate.weight", {c.gate_count(), C}, InitKind::projection);
    per_layer(&P::attn_out, "blocks.attn_out.weight", {C, c.sum_heads ? D : C}, InitKind::projection);
    per_layer(&P::ffn_norm, "blocks.ffn_norm.weight", {C}, InitKind::norm_gain);
    // Only a gated FFN's output projection gets the 1 / (sqrt(C) L) scale (docs/model.md).
    const bool gated = ffn_is_gated(c.ffn);
    per_layer(&P::ffn_in, "blocks.ffn_in.weight", {(gated ? 2 : 1) * F, C}, InitKind::projection);
    per_layer(&P::ffn_out, "blocks.ffn_out.weight", {C, F}, gated ? InitKind::output_projection : InitKind::projection);
    if (!c.post_norm) once(&P::final_norm, "final_norm.weight", {C}, InitKind::norm_gain, Counted::in_blocks);
    once(&P::lm_head, "lm_head.weight", {V, C}, InitKind::projection, Counted::vocabulary);
}

// The storage table of the parameters (names, shapes, offsets), in for_each_param's order.
inline TensorTable make_param_table(const ModelConfig& c) {
    TensorTable t;
    for_each_param<float>(c, [&](const ParamDecl<float>& d) { t.add(d.name, d.shape); });
    return t;
}

// The fields of ParamTensors pointed into the allocation at `base` laid out by make_param_table.
template <typename T>
ParamTensors<T> carve_params(T* base, const ModelConfig& c) {
    ParamTensors<T> p{};
    TensorTable t;
    for_each_param<T>(c, [&](const ParamDecl<T>& d) { p.*d.field = base + t.add(d.name, d.shape); });
    return p;
}

// The same pointers with every per-layer tensor moved to layer l's slice: the parameters of
// block l under the names of the whole model (the others unchanged).
template <typename T>
ParamTensors<T> layer_view(const ParamTensors<T>& all, const ModelConfig& c, size_t l) {
    ParamTensors<T> view = all;
    for_each_param<T>(c, [&](const ParamDecl<T>& d) {
        if (d.layer_numel) view.*d.field = all.*d.field + l * d.layer_numel;
    });
    return view;
}

// Parameters in the transformer blocks and the final norm: all but the embedding and the LM head.
inline size_t count_nonembedding_params(const ModelConfig& c) {
    size_t n = 0;
    for_each_param<float>(c, [&](const ParamDecl<float>& d) {
        if (d.counted == Counted::vocabulary) return;
        size_t numel = 1;
        for (size_t s : d.shape) numel *= s;
        n += numel;
    });
    return n;
}

}  // namespace sinklab
