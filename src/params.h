// The model's parameter tensors, declared once (for_each_param): name, shape, how they are
// initialised, and the field of ParamTensors that points at each. Everything else is derived from
// that list: the storage table (offsets in the one parameter allocation, shared by the gradients
// and both AdamW moments), the safetensors names, the parameter counts, the initialisation.
// Per-layer tensors are stacked with a leading layer dimension:
//   embed.weight            (V, C)
//   blocks.attn_norm.weight (L, C)          blocks.attn_qkv.weight (L, 3C, C)   [Wq; Wk; Wv]
//   blocks.attn_out.weight  (L, C, C)       blocks.ffn_norm.weight (L, C)
//   blocks.ffn_in.weight    (L, 2F, C)      [W1 (gate); W2 (up)]
//   blocks.ffn_out.weight   (L, C, F)       W3 (down)
//   final_norm.weight       (C)             lm_head.weight (V, C)
// Adding a tensor (for a model variant) is one line in for_each_param, under the condition on the
// config that makes it exist, and one field in ParamTensors.
#pragma once
#include <cstddef>
#include <vector>

#include "config.h"
#include "tensor_table.h"

namespace sinklab {

// Pointers into one parameter-shaped allocation (parameters, gradients or a moment).
template <typename T>
struct ParamTensors {
    T *embed, *attn_norm, *attn_qkv, *attn_out, *ffn_norm, *ffn_in, *ffn_out, *final_norm, *lm_head;
};

// How Model::init_weights fills a tensor (docs/model.md gives the formulas):
//   norm_gain:          1
//   embedding:          paper: N(0, 2 / (5 C)); torch: N(0, 1)
//   projection:         paper: N(0, 2 / (5 C)); torch: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))
//   output_projection:  paper: N(0, (1 / (sqrt(C) L))^2), the FFN's output; torch: as projection
enum class InitKind { norm_gain, embedding, projection, output_projection };

// Whether a tensor is one of the two vocabulary-sized matrices (embedding, LM head), which the
// non-embedding parameter count leaves out.
enum class Counted { in_blocks, vocabulary };

// One parameter tensor, as for_each_param declares it.
template <typename T>
struct ParamDecl {
    T* ParamTensors<T>::*field;
    const char* name;
    std::vector<size_t> shape;
    InitKind init;
    Counted counted;
};

// Calls visit(ParamDecl<T>) for every parameter tensor of the model `c`, in storage order.
template <typename T, class Visit>
void for_each_param(const ModelConfig& c, Visit&& visit) {
    using P = ParamTensors<T>;
    const size_t L = c.n_layers, C = c.d_model, F = c.d_ffn, V = c.vocab_size;
    const Counted blocks = Counted::in_blocks;
    visit(ParamDecl<T>{&P::embed, "embed.weight", {V, C}, InitKind::embedding, Counted::vocabulary});
    visit(ParamDecl<T>{&P::attn_norm, "blocks.attn_norm.weight", {L, C}, InitKind::norm_gain, blocks});
    visit(ParamDecl<T>{&P::attn_qkv, "blocks.attn_qkv.weight", {L, 3 * C, C}, InitKind::projection, blocks});
    visit(ParamDecl<T>{&P::attn_out, "blocks.attn_out.weight", {L, C, C}, InitKind::projection, blocks});
    visit(ParamDecl<T>{&P::ffn_norm, "blocks.ffn_norm.weight", {L, C}, InitKind::norm_gain, blocks});
    visit(ParamDecl<T>{&P::ffn_in, "blocks.ffn_in.weight", {L, 2 * F, C}, InitKind::projection, blocks});
    visit(ParamDecl<T>{&P::ffn_out, "blocks.ffn_out.weight", {L, C, F}, InitKind::output_projection, blocks});
    visit(ParamDecl<T>{&P::final_norm, "final_norm.weight", {C}, InitKind::norm_gain, blocks});
    visit(ParamDecl<T>{&P::lm_head, "lm_head.weight", {V, C}, InitKind::projection, Counted::vocabulary});
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
