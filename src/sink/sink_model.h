// The bridge between the model and the sink measurement: runs the model forward over the probe
// sequences, batch by batch, and feeds what the forward pass keeps (attention weights, residual
// stream, q/k/v after RoPE) to a SinkAccumulator. Used by `sinklab sink`; the trainer can call it
// for the sink evaluations during training.
#pragma once
#include <algorithm>
#include <vector>

#include "model/model.h"
#include "ops/exp.h"  // HostMath
#include "sink/sink.h"
#include "util/error.h"

namespace sinklab {

// Downloads n backend values into a host float array.
template <class Backend>
void download_as_float(std::vector<float>& out, const typename Backend::Scalar* src, size_t n) {
    using T = typename Backend::Scalar;
    out.resize(n);
    if constexpr (std::is_same_v<T, float>) {
        Backend::download(out.data(), src, n);
    } else {
        std::vector<T> host(n);
        Backend::download(host.data(), src, n);
        for (size_t i = 0; i < n; i++) out[i] = float(host[i]);
    }
}

// Default options for a model: proxy scores when its attention weights are not a distribution.
inline SinkOptions sink_options_for(const ModelConfig& config, double eps = 0.3) {
    SinkOptions options;
    options.eps = eps;
    options.proxy = config.attention.needs_proxy();
    options.extra_slot = config.attention.has_key_slot();
    return options;
}

// The (T+1)-key maps of a model with a key slot, from what its forward keeps:
//   att (L, B, H, T, T) the weights of the real keys, att_slot (L, B, H, T) the slot's weights
//   -> maps (L, B, H, T+1, T+1): key 0 is the slot, key j+1 real token j; query 0 is the slot's own
//   row (q_0 = 0, which sees the slot alone: slot_own_weight), query i+1 real token i.
inline void maps_with_slot(std::vector<float>& maps, const std::vector<float>& att, const std::vector<float>& att_slot,
                           size_t n_maps, size_t T, float own_weight) {
    const size_t Tm = T + 1;
    maps.assign(n_maps * Tm * Tm, 0.0f);
    for (size_t m = 0; m < n_maps; m++) {
        float* map = maps.data() + m * Tm * Tm;
        map[0] = own_weight;
        for (size_t i = 0; i < T; i++) {
            map[(i + 1) * Tm] = att_slot[m * T + i];
            for (size_t j = 0; j < T; j++) map[(i + 1) * Tm + j + 1] = att[(m * T + i) * T + j];
        }
    }
}

// Measures Sink_k and the norm statistics of `model` on `probe`, `batch` sequences per forward pass.
//   per batch of B sequences: att (L, B, H, T, T), resid (L+1, B, T, C), qkv_rope (L, B, T, 3C)
// The maps come from the model's keep-maps mode (Model::keep_attention_maps), switched on for the
// measurement and back off after it: (L, B, H, T, T) floats per batch, which is why the probes
// are short (64 tokens).
template <class Backend>
SinkReport measure_model_sinks(Model<Backend>& model, const Probe& probe, const SinkOptions& options, size_t batch = 16) {
    const ModelConfig& c = model.config();
    const size_t L = c.n_layers, H = c.n_heads, C = c.d_model, T = probe.info.length, S = probe.info.count;
    if (S == 0 || T == 0) fail("sink measurement: the probe is empty ({} sequences of {} tokens)", S, T);
    if (T > c.context) fail("sink measurement: probe length {} exceeds the model's context {}", T, c.context);
    const bool slot = c.attention.has_key_slot();
    if (options.extra_slot != slot)
        fail("sink measurement: the options say {} extra key slot, the model has {}", options.extra_slot ? "an" : "no",
             slot ? "one" : "none");
    batch = std::max<size_t>(1, std::min(batch, S));
    SinkAccumulator acc(L, H, T, C, options);
    std::vector<float> att, att_slot, maps, resid, qkv;
    struct MapsModeRestored {  // the mode as the caller had it, also when a forward throws
        Model<Backend>& model;
        const bool kept = model.keeps_attention_maps();
        ~MapsModeRestored() { model.keep_attention_maps(kept); }
    } restored{model};
    model.keep_attention_maps(true);
    for (size_t first = 0; first < S; first += batch) {
        const size_t B = std::min(batch, S - first);
        model.forward(probe.sequence(first), nullptr, B, T);
        Backend::synchronize();
        const Activations<typename Backend::Scalar>& a = model.acts();
        download_as_float<Backend>(att, a.att_maps, L * B * H * T * T);
        // The residual stream per layer: x_0 .. x_L; with post-norm the sums before each block's
        // last norm (x_mid + FFN), where the massive activations live (x_l itself is normalised).
        if (c.post_norm) {
            std::vector<float> sums;
            download_as_float<Backend>(resid, a.resid, B * T * C);
            download_as_float<Backend>(sums, a.ffn_pre_norm, L * B * T * C);
            resid.insert(resid.end(), sums.begin(), sums.end());
        } else {
            download_as_float<Backend>(resid, a.resid, (L + 1) * B * T * C);
        }
        // q, k after RoPE (without RoPE, the projection's q, k: what the attention reads)
        download_as_float<Backend>(qkv, a.qkv_rope ? a.qkv_rope : a.qkv, L * B * T * 3 * C);
        if (slot) {
            download_as_float<Backend>(att_slot, a.att_slot, L * B * H * T);
            const float own_weight = float(slot_own_weight<HostMath, double>(c.attention));
            maps_with_slot(maps, att, att_slot, L * B * H, T, own_weight);
            acc.add_attention(maps.data(), B);
        } else {
            acc.add_attention(att.data(), B);
        }
        acc.add_activations(resid.data(), qkv.data(), B);
    }
    return acc.finish(probe.info);
}

}  // namespace sinklab
