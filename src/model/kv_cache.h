// The model run token by token over a rolling key/value cache: StreamingLLM's test (Xiao et al.
// 2023, arXiv 2309.17453), used by `sinklab stream` (src/cli/cmd_stream.cpp).
//
// A true KV cache: each token's q, k and v in every layer are computed once, when the token is
// processed, from what the cache held at that moment, and the keys and values are kept and reused
// until evicted. The cache holds at most `window` tokens (W); when a new token arrives at a full
// cache, the oldest token after the first `keep_first` (K) is evicted, so that the cache holds the
// first K tokens of the document and the last W - K. window = 0 never evicts (the full context).
//
// Positions are those inside the cache, as StreamingLLM assigns them:
//   rope:        keys are stored BEFORE the rotary embedding; at each step the key in cache slot s
//                gets position s and the new query (in the last slot, n - 1 with n the tokens cached
//                including it) gets n - 1. The model never sees a position beyond W - 1.
//   alibi, t5:   the score bias of the cache-slot distance: b(h, i = n - 1, j = s).
//   learned, sinusoidal: the absolute embedding is added at the input, once, with the index of the
//                slot the token is inserted into (its position in the cache at that moment; it
//                keeps the K and V computed then when later evictions move it down).
//   nope:        nothing.
// A window mask (`--mask window`) applies over the slots too: the new query sees the last `window`
// slots of the cache.
// With no eviction (window 0, or window >= the document) every slot is the document index, and
// the per-position losses equal those of the batched forward (Model::forward) of the document.
//
// The layers are composed exactly as in Model (src/model/model.h: attention_block_forward,
// ffn_block_forward, the final norm and LM head), one row at a time, through the same operations
// (src/ops/*.h) with N = 1; one attention row is attention_row_weights (src/ops/attention.h), the
// per-row math attention_forward runs too. Refused (kv_cache_unsupported): the feature maps of the
// kernel variants (elu-kernel, mlp-kernel) and a prefix mask longer than one token (its prefix is
// bidirectional: a token would need keys that have not been computed yet).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "ops/ops.h"
#include "util/error.h"
#include "util/memory.h"

namespace sinklab {

// Which tokens the cache keeps: at most `window` (0: all, never evicting), the first `keep_first`
// of the document among them for good.
struct CachePolicy {
    size_t window = 0;
    size_t keep_first = 0;
};

// Why the KV cache cannot run this model ("" when it can): names the variant.
inline std::string kv_cache_unsupported(const ModelConfig& c) {
    const AttentionSpec& spec = c.attention;
    if (spec.feature_map != FeatureMap::none)
        return fmt::format("the {} attention (a feature map on q and k) is not supported by the KV cache", spec.name());
    if (spec.mask == MaskKind::prefix && spec.prefix > 1)
        return fmt::format("the prefix-LM mask (prefix {}) is not supported by the KV cache: its prefix is "
                           "bidirectional, so a token would need keys not computed yet",
                           spec.prefix);
    return "";
}

template <typename T>
class KvCacheModel {
public:
    // params: the model's parameters laid out by make_param_table(config) (copied).
    // max_tokens: the longest document to be streamed (sizes the cache when window = 0).
    KvCacheModel(const ModelConfig& config, const T* params, CachePolicy policy, size_t max_tokens)
        : c_(config), policy_(policy) {
        c_.validate();
        if (const std::string why = kv_cache_unsupported(c_); !why.empty()) fail("{}", why);
        if (policy_.window > 0 && policy_.keep_first >= policy_.window)
            fail("the cache keeps the first {} tokens of a window of {}: keep_first must be below the window",
                 policy_.keep_first, policy_.window);
        capacity_ = policy_.window > 0 ? policy_.window : max_tokens;
        if (capacity_ == 0) fail("the KV cache needs room for at least one token");
        if (c_.position == PositionKind::learned && capacity_ > c_.context)
            fail("learned positions: the cache's {} slots exceed the model's {} position embeddings", capacity_,
                 c_.context);
        const size_t L = c_.n_layers, C = c_.d_model, H = c_.n_heads, D = c_.head_dim(), F = c_.d_ffn;
        require_memory(double(L) * double(capacity_) * 6.0 * double(C) * sizeof(T),
                       fmt::format("the KV cache ({} layers x {} tokens)", L, capacity_),
                       "reduce --tokens or --window");
        params_.assign(params, params + make_param_table(c_).total());
        p_ = carve_params(params_.data(), c_);
        for (size_t l = 0; l < L; l++) p_layers_.push_back(layer_view(p_, c_, l));
        spec_ = for_shape(c_.attention_spec(), int(capacity_), int(H));
        // RoPE tables (capacity, D/2): position s for cache slot s.
        if (c_.has_rope()) {
            rope_cos_.resize(capacity_ * (D / 2));
            rope_sin_.resize(capacity_ * (D / 2));
            rope_table(rope_cos_.data(), rope_sin_.data(), capacity_, D, c_.rope_base);
        }
        if (c_.position == PositionKind::sinusoidal) {
            position_table_.resize(capacity_ * C);
            sinusoidal_table(position_table_.data(), capacity_, C);
        }
        qkv_raw_.assign(L, std::vector<T>(capacity_ * 3 * C));
        qkv_positioned_.assign(L, std::vector<T>(c_.has_rope() ? capacity_ * 3 * C : 0));
        rotated_rows_.assign(L, 0);
        scores_.resize(H * capacity_);
        x_.resize(C);
        x_mid_.resize(C);
        x_next_.resize(C);
        norm_.resize(C);
        pre_norm_.resize(C);
        attn_y_.resize(C);
        attn_sum_.resize(D);
        attn_head_normed_.resize(C);
        head_rstd_.resize(H);
        gate_z_.resize(c_.gate_count());
        attn_gated_.resize(C);
        ffn_fc_.resize((ffn_is_gated(c_.ffn) ? 2 : 1) * F);
        ffn_act_.resize(F);
        logits_.resize(c_.vocab_size);
    }

    const ModelConfig& config() const { return c_; }
    const CachePolicy& policy() const { return policy_; }
    size_t capacity() const { return capacity_; }
    // The document indices of the tokens in the cache, in slot order.
    const std::vector<size_t>& cached_indices() const { return cached_; }
    size_t tokens_processed() const { return processed_; }

    // Empties the cache for a new document.
    void reset() {
        cached_.clear();
        processed_ = 0;
        std::fill(rotated_rows_.begin(), rotated_rows_.end(), size_t(0));
    }

    // Processes the next token of the document: evicts one token if the cache is full, computes the
    // token's q, k, v in every layer (its k and v kept in the cache) and returns the logits (V) of
    // the token after it.
    const T* step(int32_t token) {
        const size_t C = c_.d_model, L = c_.n_layers;
        if (token < 0 || size_t(token) >= c_.vocab_size)
            fail("token id {} at position {} is outside the vocabulary (size {})", token, processed_, c_.vocab_size);
        if (cached_.size() == capacity_) {
            if (policy_.window == 0) fail("the full-context cache holds only {} tokens", capacity_);
            evict(policy_.keep_first);
        }
        const size_t slot = cached_.size();  // the slot this token is inserted into
        cached_.push_back(processed_);

        // x (C) = embed[token] (+ the absolute position of its slot)
        embedding_forward(x_.data(), &token, p_.embed, 1, C);
        if (const T* positions = absolute_positions()) bias_add_forward(x_.data(), positions + slot * C, 1, C);
        for (size_t l = 0; l < L; l++) {
            attention_block(l);
            ffn_block(l);
        }
        // the final norm (pre-norm only) and the LM head:  logits (V) = W_head (V, C) . x (C)
        const T* head_in = x_.data();
        if (!c_.post_norm) {
            T rstd;
            rmsnorm_forward(norm_.data(), &rstd, x_.data(), p_.final_norm, 1, C, T(c_.norm_eps));
            head_in = norm_.data();
        }
        matmul_forward(logits_.data(), head_in, p_.lm_head, 1, C, c_.vocab_size);
        processed_++;
        return logits_.data();
    }

private:
    // Removes cache slot `slot` in every layer: the later slots move down by one (their stored,
    // un-rotated q, k, v unchanged; RoPE is redone from `slot` on at the next step).
    void evict(size_t slot) {
        const size_t row = 3 * c_.d_model, n = cached_.size();
        for (size_t l = 0; l < c_.n_layers; l++) {
            T* raw = qkv_raw_[l].data();
            std::memmove(raw + slot * row, raw + (slot + 1) * row, (n - slot - 1) * row * sizeof(T));
            rotated_rows_[l] = std::min(rotated_rows_[l], slot);
        }
        cached_.erase(cached_.begin() + std::ptrdiff_t(slot));
    }

    // Attention sub-block of layer l on the current token, as Model::attention_block_forward:
    //   x (C) -> [RMSNorm] -> qkv (3C) into the cache's last slot -> RoPE of the slots not yet
    //   rotated at their current positions -> attention of the new query over the cache -> attn_y
    //   (C) -> [head norm] -> [gate] -> [head sum] -> Wo -> + x -> [post: RMSNorm] -> x_mid (C)
    void attention_block(size_t l) {
        const ParamTensors<T>& pl = p_layers_[l];
        const size_t C = c_.d_model, H = c_.n_heads, D = c_.head_dim(), C3 = 3 * C, n = cached_.size();
        const bool post = c_.post_norm;
        const T eps = T(c_.norm_eps);
        T rstd;
        if (!post) rmsnorm_forward(norm_.data(), &rstd, x_.data(), pl.attn_norm, 1, C, eps);
        const T* attn_in = post ? x_.data() : norm_.data();  // what Wqkv (and the gate) read
        // qkv (3C) = Wqkv (3C, C) . attn_in (C), stored un-rotated in slot n - 1
        T* raw = qkv_raw_[l].data();
        matmul_forward(raw + (n - 1) * C3, attn_in, pl.attn_qkv, 1, C, C3);
        // RoPE: slot s at position s, for the slots [rotated, n): positioned (n, 3C)
        const T* positioned = raw;
        if (c_.has_rope()) {
            T* rotated = qkv_positioned_[l].data();
            const size_t first = rotated_rows_[l], half = D / 2;
            rope_forward(rotated + first * C3, raw + first * C3, rope_cos_.data() + first * half,
                         rope_sin_.data() + first * half, 1, n - first, C, H);
            rotated_rows_[l] = n;
            positioned = rotated;
        }
        attend_last_query(pl, positioned, n);
        if (spec_.slot == SlotKind::value) {  // the V bias: attn_y (H, D) += v*
            const size_t S = size_t(spec_.slot_heads(int(H)));
            bias_add_forward(attn_y_.data(), pl.attn_slot_v, H / S, S * D);
        }
        const T* heads = attn_y_.data();  // what Wo reads, after the optional steps below
        if (c_.head_norm) {  // attn_head_normed (H, D): each head's D values RMSNorm'ed, its own gains
            rmsnorm_groups_forward(attn_head_normed_.data(), head_rstd_.data(), heads, pl.attn_head_norm, 1, C, H, eps);
            heads = attn_head_normed_.data();
        }
        const size_t G = c_.gate_count();
        if (G > 0) {  // attn_gated (C) = heads * sig(W_g (G, C) . attn_in)
            matmul_forward(gate_z_.data(), attn_in, pl.attn_gate, 1, C, G);
            gate_forward(attn_gated_.data(), heads, gate_z_.data(), 1, C, G);
            heads = attn_gated_.data();
        }
        T* sum = post ? pre_norm_.data() : x_mid_.data();  // x + Wo . attention
        if (c_.sum_heads) {  // attn_sum (D) = sum_h heads (H, D), then Wo (C, D)
            head_sum_forward(attn_sum_.data(), heads, 1, H, D);
            matmul_forward(sum, attn_sum_.data(), pl.attn_out, 1, D, C);
        } else {
            matmul_forward(sum, heads, pl.attn_out, 1, C, C);
        }
        residual_add(sum, x_.data(), C);
        if (post) rmsnorm_forward(x_mid_.data(), &rstd, sum, pl.attn_norm, 1, C, eps);
    }

    // The attention of the query in slot i = n - 1 over the cache, per head h (positioned: (n, 3C)
    // rows of [q | k | v] at their slot positions):
    //   w (keys) = q_i . K^T over the keys i sees -> attention_row_weights -> attn_y_h (D) = w . V
    //   (+ w_i* v* with a key slot that has a value).
    void attend_last_query(const ParamTensors<T>& pl, const T* positioned, size_t n) {
        const size_t C = c_.d_model, H = c_.n_heads, D = c_.head_dim(), C3 = 3 * C, i = n - 1;
        const T scale = T(1) / std::sqrt(T(D));
        const T* slot_v = spec_.has_key_slot() ? pl.attn_slot_v : nullptr;
        const IndexRange seen = keys_seen(spec_, int(i));
        const size_t j0 = size_t(seen.begin), j1 = size_t(seen.end);
#pragma omp parallel for schedule(static)
        for (size_t h = 0; h < H; h++) {
            const HeadRows<T> rows_h(positioned, pl.attn_slot_k, slot_v, 0, h, n, C, H, spec_);
            T* w = scores_.data() + h * capacity_;  // (capacity) this head's row, keys j0 .. j1 - 1 used
            T* out = attn_y_.data() + h * D;
            // dots:  w[j0, j1) (1, keys) = q_i (1, D) . K[j0, j1)^T
            gemm<T>(1, j1 - j0, D, rows_h.q + i * C3, C3, 1, rows_h.k + j0 * C3, 1, C3, w + j0, capacity_, false);
            const AttentionRow<T> row =
                attention_row_weights(spec_, scale, int(h), int(i), w, j0, j1, rows_h.q + i * C3, rows_h.slot_k, D);
            // out (D) = sum_j w_j v_j over the keys j0 .. j1 - 1, key by key (each value row read once,
            // in memory order: the cache of a long full context does not fit the processor's caches)
            for (size_t d = 0; d < D; d++) out[d] = 0;
            for (size_t j = j0; j < j1; j++) {
                const T w_j = w[j];
                const T* v_j = rows_h.v + j * C3;
#pragma omp simd
                for (size_t d = 0; d < D; d++) out[d] += w_j * v_j[d];
            }
            if (rows_h.slot_v)
                for (size_t d = 0; d < D; d++) out[d] += row.slot_w * rows_h.slot_v[d];
        }
    }

    // Feed-forward sub-block of layer l, as Model::ffn_block_forward:
    //   x_mid (C) -> [RMSNorm] -> ffn_fc (FI) -> glu or f -> ffn_act (F) -> W_out -> + x_mid
    //   -> [post: RMSNorm] -> x (C), the next layer's input
    void ffn_block(size_t l) {
        const ParamTensors<T>& pl = p_layers_[l];
        const size_t C = c_.d_model, F = c_.d_ffn, FI = ffn_fc_.size();
        const Activation f = ffn_activation(c_.ffn);
        const bool post = c_.post_norm;
        T rstd;
        if (!post) rmsnorm_forward(norm_.data(), &rstd, x_mid_.data(), pl.ffn_norm, 1, C, T(c_.norm_eps));
        matmul_forward(ffn_fc_.data(), post ? x_mid_.data() : norm_.data(), pl.ffn_in, 1, C, FI);
        if (ffn_is_gated(c_.ffn))
            glu_forward(ffn_act_.data(), ffn_fc_.data(), 1, F, f);
        else
            activation_forward(ffn_act_.data(), ffn_fc_.data(), F, f);
        T* sum = post ? pre_norm_.data() : x_next_.data();  // x_mid + FFN
        matmul_forward(sum, ffn_act_.data(), pl.ffn_out, 1, F, C);
        residual_add(sum, x_mid_.data(), C);
        if (post) rmsnorm_forward(x_next_.data(), &rstd, sum, pl.ffn_norm, 1, C, T(c_.norm_eps));
        std::swap(x_, x_next_);
    }

    // The absolute position table (rows = slots), or null (as Model::absolute_positions).
    const T* absolute_positions() const {
        if (c_.position == PositionKind::sinusoidal) return position_table_.data();
        if (c_.position == PositionKind::learned) return p_.pos_embed;
        return nullptr;
    }

    ModelConfig c_;
    CachePolicy policy_;
    size_t capacity_ = 0;
    AttentionSpec spec_;  // with the position bias, for_shape'd (ALiBi's slopes)
    std::vector<T> params_;
    ParamTensors<T> p_{};
    std::vector<ParamTensors<T>> p_layers_;
    std::vector<T> rope_cos_, rope_sin_;  // (capacity, D/2)
    std::vector<T> position_table_;       // (capacity, C) sinusoidal only
    // The cache, per layer l: qkv_raw_[l] (capacity, 3C) the rows [q | k | v] before RoPE in slot
    // order (q is only read for the newest slot); qkv_positioned_[l] (capacity, 3C) the same rows
    // after RoPE at their slot positions, valid for the slots below rotated_rows_[l].
    std::vector<std::vector<T>> qkv_raw_, qkv_positioned_;
    std::vector<size_t> rotated_rows_;
    std::vector<size_t> cached_;  // (tokens in the cache) the document index of each slot
    size_t processed_ = 0;        // tokens of the document processed so far
    // One token's activations.
    std::vector<T> scores_;       // (H, capacity) one attention row per head
    std::vector<T> x_, x_mid_, x_next_, norm_, pre_norm_;  // (C) residual stream, norm output, post-norm sum
    std::vector<T> attn_y_, attn_sum_, gate_z_, attn_gated_;  // (C), (D), (G), (C)
    std::vector<T> attn_head_normed_, head_rstd_;          // (C), (H): `--head-norm rms`
    std::vector<T> ffn_fc_, ffn_act_;  // (FI), (F)
    std::vector<T> logits_;            // (V)
};

// -log p(target) of one row of logits (V), as the training loss computes it (crossentropy_forward).
template <typename T>
double token_nll(const T* logits, size_t V, int32_t target) {
    T loss;
    crossentropy_forward(&loss, logits, &target, 1, V);
    return double(loss);
}

// The per-position losses of a document read through the cache: nll[t] = -log p(tokens[t + 1] |
// what the cache holds after tokens[t]), t = 0 .. tokens.size() - 2. on_token(t) after each token.
template <typename T, class OnToken>
std::vector<double> stream_document(KvCacheModel<T>& model, const std::vector<int32_t>& tokens, OnToken&& on_token) {
    model.reset();
    std::vector<double> nll;
    if (tokens.size() < 2) return nll;
    nll.reserve(tokens.size() - 1);
    for (size_t t = 0; t + 1 < tokens.size(); t++) {
        const T* logits = model.step(tokens[t]);
        nll.push_back(token_nll(logits, model.config().vocab_size, tokens[t + 1]));
        on_token(t);
    }
    return nll;
}

}  // namespace sinklab
