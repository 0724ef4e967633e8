// The attention-sink measurement of docs/sinks.md, as pure functions over the arrays a forward
// pass leaves behind; nothing here knows the model class.
//
// Inputs, for S probe sequences of T tokens through L layers of H heads, width C, head dim D = C/H
// (exactly the model's activation layout):
//   att   (L, S, H, Tm, Tm)  attention weights, att[l][s][h][i][j] = weight of key j for query i,
//                            0 for j > i. Tm = T, or T + 1 with an extra key slot at index 0.
//   resid (L+1, S, T, C)     residual stream entering each block; resid[L] = last block's output.
//   qkv   (L, S, T, 3C)      after RoPE: q at [0, C), k at [C, 2C), v at [2C, 3C); head h is the
//                            slice [hD, (h+1)D) of each.
//
// Definitions (k is 1-based, a real token position):
//   alpha_k(l, h)  = 1/(T-k+1) * sum_{i=k..T} A[i, k]     mean attention key k gets from the queries
//                                                          that can see it
//   sink head      : alpha_k(l, h) > eps (strict)
//   Sink_k(seq)    = (number of sink heads over all layers and heads) / (L H)
//   Sink_k         = 100 * mean over the probe sequences of Sink_k(seq)
// Per layer: the same with the layer's H heads as the denominator.
// Proxy scores (for weights that are not a distribution): A~[i, j] = |w[i, j]| / (sum_{j'<=i} |w[i, j']| + 1e-8).
// Extra slot: slot 0 is a learnable key every real query sees; query row 0 is ignored. Sink* is the
// slot's score, alpha* = mean over all T real queries of A[i, 0]; Sink_k is measured on the real
// tokens (slot index k) as above, the slot staying in the proxy denominators.
#pragma once
#include "data/sequence_edits.h"
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/json.h"

namespace sinklab {

constexpr double kSinkProxyEps = 1e-8;

struct SinkOptions {
    double eps = 0.3;        // a head is a sink head when alpha > eps
    size_t max_k = 10;       // report Sink_1 .. Sink_max_k (clipped to T)
    bool proxy = false;      // measure on proxy scores A~ instead of the weights themselves
    bool extra_slot = false; // maps are (T+1) x (T+1) with the extra key at index 0
    bool keep_maps = true;   // accumulate the mean attention map of every layer and head
};

// What the probe sequences were (the paper's Table 1 input types).
struct ProbeInfo {
    std::string kind = "natural";  // natural | random | repeated
    size_t count = 0;              // S
    size_t length = 0;             // T
};

// Probe sequences: count sequences of length tokens, back to back (count, length).
struct Probe {
    ProbeInfo info;
    std::vector<int32_t> tokens;
    const int32_t* sequence(size_t s) const { return tokens.data() + s * info.length; }
};

// Reads a probe file (a shard whose header[3] is the sequence length; sinklab prepare writes the
// first T tokens of held-out documents, docs/data.md). length = 0 keeps the file's length, a
// smaller one keeps the first `length` tokens of every sequence; count = 0 keeps every sequence,
// else the first `count`. A shard without a sequence length (header[3] = 0) is cut into
// consecutive pieces of `length` tokens (then required).
// Throws Error naming the file for anything that does not fit.
Probe read_probe_file(const std::string& path, size_t count = 0, size_t length = 0);

// count sequences of `length` token ids drawn uniformly from [0, vocab_size) (seeded, reproducible).
Probe make_random_probe(size_t count, size_t length, size_t vocab_size, uint64_t seed);

// count sequences, each one token repeated `length` times: `token` when >= 0, else a token drawn
// uniformly from [0, vocab_size) per sequence (seeded).
Probe make_repeated_probe(size_t count, size_t length, size_t vocab_size, uint64_t seed, int64_t token = -1);

// Puts a fixed first token in front of every sequence, as a run trained with --first-token sees
// its data: [F, x_0 .. x_{T-2}] (the length stays T; the last token drops off).
void prepend_first_token(Probe& probe, int32_t first_token);
// Applies a run's data levers (a fixed token at a position, random ids at positions) to every
// probe sequence, as the run's training rows have them; probe sequence s is row key s.
void edit_probe(Probe& probe, const SequenceEdits& edits, size_t vocab_size);

// alpha of key slot `key` in one (Tm, Tm) map: the mean of the (proxy) score of that key over the
// queries i = max(key, first_query) .. Tm-1 (0-based slots). first_query = 1 skips the row of an
// extra slot. Returns 0 when no query sees the key.
double key_alpha(const float* map, size_t Tm, size_t key, bool proxy, size_t first_query = 0);

// Per layer and position statistics of the residual stream, queries, keys and values, averaged over
// the probe sequences (and over heads for the per-head vectors). Norms are L2.
struct NormStats {
    std::vector<std::vector<double>> resid;   // (L+1, T)  ||h_t^l||
    std::vector<double> massive_ratio;        // (L+1)     ||h_1^l|| / mean_{t>1} ||h_t^l||, per sequence then averaged
    std::vector<std::vector<double>> key;     // (L, T)    ||k_t|| per head, averaged over heads
    std::vector<std::vector<double>> value;   // (L, T)    ||v_t||
    std::vector<std::vector<double>> q_norm;  // (L, T)    ||q_t||
    std::vector<double> k1_norm;              // (L)       ||k_1||
    std::vector<std::vector<double>> cos_q_k1;  // (L, T)  cos(q_t, k_1), 0 when either vector is 0
};

// The outcome of a sink measurement.
struct SinkReport {
    SinkOptions options;
    ProbeInfo probe;
    size_t n_layers = 0, n_heads = 0;
    size_t n_k = 0;                                  // K = min(max_k, T)
    std::vector<double> sink_k;                      // (K) percent
    std::vector<std::vector<double>> per_layer;      // (L, K) percent of the layer's heads
    std::vector<double> alpha_k;                     // (K) mean alpha over sequences, layers, heads
    std::vector<std::vector<double>> alpha_per_layer;               // (L, K)
    std::vector<std::vector<std::vector<double>>> alpha_per_head;   // (L, H, K) mean over sequences
    // extra slot only
    double sink_star = 0.0;                          // percent
    std::vector<double> sink_star_per_layer;         // (L) percent
    double alpha_star = 0.0;
    std::vector<std::vector<double>> alpha_star_per_head;  // (L, H)
    // mean (proxy) attention map per layer and head, (L, H, Tm, Tm) flattened; empty unless keep_maps
    std::vector<double> mean_maps;
    size_t map_size = 0;                             // Tm
    bool has_norms = false;
    NormStats norms;

    double map_at(size_t l, size_t h, size_t i, size_t j) const {
        return mean_maps[((l * n_heads + h) * map_size + i) * map_size + j];
    }
};

// Accumulates the measurement over batches of probe sequences, so that a probe set larger than one
// forward pass can be measured chunk by chunk. Every add_* takes the arrays of the same batch
// layout as above with S = the batch's sequence count.
class SinkAccumulator {
public:
    SinkAccumulator(size_t n_layers, size_t n_heads, size_t seq_len, size_t d_model, const SinkOptions& options);

    // att: (L, S, H, Tm, Tm)
    void add_attention(const float* att, size_t S);
    // resid: (L+1, S, T, C), qkv: (L, S, T, 3C)
    void add_activations(const float* resid, const float* qkv, size_t S);

    size_t sequences_attention() const { return seqs_att_; }
    SinkReport finish(const ProbeInfo& probe) const;

private:
    size_t L_, H_, T_, C_, K_, Tm_;
    SinkOptions opt_;
    size_t seqs_att_ = 0, seqs_act_ = 0;
    std::vector<double> sink_count_;      // (L, K) sink heads summed over sequences
    std::vector<double> alpha_sum_;       // (L, H, K)
    std::vector<double> star_count_;      // (L)
    std::vector<double> star_alpha_sum_;  // (L, H)
    std::vector<double> map_sum_;         // (L, H, Tm, Tm)
    std::vector<double> resid_sum_, massive_sum_, key_sum_, value_sum_, q_sum_, k1_sum_, cos_sum_;
};

// One-shot convenience: the whole probe in one batch. resid and qkv may be null (no norms).
SinkReport measure_sinks(const float* att, const float* resid, const float* qkv, size_t n_layers, size_t n_heads,
                         size_t seq_len, size_t d_model, const ProbeInfo& probe, const SinkOptions& options);

// The report as JSON: sink_k, per_layer, alpha_k, alpha_per_layer, alpha_per_head, eps, proxy,
// extra_slot, k, n_layers, n_heads, probe {kind, count, length}, norms {resid, massive_ratio, key,
// value, q_norm, k1_norm, cos_q_k1} (when measured), sink_star / sink_star_per_layer / alpha_star
// (extra slot only), and mean_attention (L, H, Tm, Tm) when include_maps.
Json sink_report_json(const SinkReport& report, bool include_maps = false);

// The fields a sink evaluation adds to a metrics.jsonl line (what compare and the plots read):
// "sink_k" (K percentages), "alpha_k" (K mean alphas), "sink_eps", and "sink_star" with an extra slot.
void add_sink_metrics(Json& metrics_line, const SinkReport& report);

// JSON text for files people read: objects indented, arrays of numbers on one line each.
std::string report_json_text(const Json& json);

// The first token's massive-activation ratio, largest over the blocks' outputs (layers 1..L; layer
// 0, the embedding, left out), from a sink.json object; NaN when it has no norms.
double largest_massive_ratio(const Json& report);

// Reads back what sink_report_json wrote (maps included when present); throws Error naming `what`.
SinkReport sink_report_from_json(const Json& json, const std::string& what);

// A readable text table: Sink_k overall and per layer, mean alpha, the massive-activation ratio.
std::string format_sink_report(const SinkReport& report);

}  // namespace sinklab
