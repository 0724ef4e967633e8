// The bridge between the model and the sink measurement: runs the model forward over the probe
// sequences, batch by batch, and feeds what the forward pass keeps (attention weights, residual
// stream, q/k/v after RoPE) to a SinkAccumulator. Used by `sinklab sink`; the trainer can call it
// for the sink evaluations during training.
#pragma once
#include <algorithm>
#include <vector>

#include "model/model.h"
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
    return options;
}

// Measures Sink_k and the norm statistics of `model` on `probe`, `batch` sequences per forward pass.
//   per batch of B sequences: att (L, B, H, T, T), resid (L+1, B, T, C), qkv_rope (L, B, T, 3C)
template <class Backend>
SinkReport measure_model_sinks(Model<Backend>& model, const Probe& probe, const SinkOptions& options, size_t batch = 16) {
    const ModelConfig& c = model.config();
    const size_t L = c.n_layers, H = c.n_heads, C = c.d_model, T = probe.info.length, S = probe.info.count;
    if (S == 0 || T == 0) fail("sink measurement: the probe is empty ({} sequences of {} tokens)", S, T);
    if (T > c.context) fail("sink measurement: probe length {} exceeds the model's context {}", T, c.context);
    if (options.extra_slot) fail("sink measurement: this model has no extra key slot");
    batch = std::max<size_t>(1, std::min(batch, S));
    SinkAccumulator acc(L, H, T, C, options);
    std::vector<float> att, resid, qkv;
    for (size_t first = 0; first < S; first += batch) {
        const size_t B = std::min(batch, S - first);
        model.forward(probe.sequence(first), nullptr, B, T);
        if (Backend::attention_saved_size(B, H, T) != B * H * T * T)
            fail("sink measurement: this backend does not keep the full attention maps");
        Backend::synchronize();
        const Activations<typename Backend::Scalar>& a = model.acts();
        download_as_float<Backend>(att, a.att, L * B * H * T * T);
        download_as_float<Backend>(resid, a.resid, (L + 1) * B * T * C);
        download_as_float<Backend>(qkv, a.qkv_rope, L * B * T * 3 * C);
        acc.add_attention(att.data(), B);
        acc.add_activations(resid.data(), qkv.data(), B);
    }
    return acc.finish(probe.info);
}

}  // namespace sinklab
