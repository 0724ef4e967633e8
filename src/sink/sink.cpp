#include "sink/sink.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "data/shard.h"
#include "util/error.h"
#include "util/rng.h"

namespace sinklab {

// ---------------------------------------------------------------------------------------------
// Probes

Probe read_probe_file(const std::string& path, size_t count, size_t length) {
    ShardInfo info;
    const std::vector<int32_t> tokens = read_shard(path, &info);
    size_t file_length = info.sequence_length;
    if (file_length == 0) {
        if (length == 0)
            fail("{}: not a probe file (header[3], the sequence length, is 0); give the probe length (--length)", path);
        file_length = length;
    }
    if (length == 0) length = file_length;
    if (length > file_length)
        fail("{}: probe sequences have {} tokens, fewer than the {} asked for (--length)", path, file_length, length);
    const size_t available = tokens.size() / file_length;
    if (info.sequence_length != 0 && tokens.size() % file_length != 0)
        fail("{}: {} tokens is not a whole number of sequences of length {}", path, tokens.size(), file_length);
    if (available == 0) fail("{}: holds no complete sequence of {} tokens", path, file_length);
    if (count == 0) count = available;
    if (count > available)
        fail("{}: holds {} probe sequences, fewer than the {} asked for (--count)", path, available, count);
    Probe probe;
    probe.info = {"natural", count, length};
    probe.tokens.resize(count * length);
    for (size_t s = 0; s < count; s++)
        for (size_t t = 0; t < length; t++) probe.tokens[s * length + t] = tokens[s * file_length + t];
    return probe;
}

Probe make_random_probe(size_t count, size_t length, size_t vocab_size, uint64_t seed) {
    if (vocab_size == 0) fail("random probe: the vocabulary is empty");
    Rng rng(seed);
    Probe probe;
    probe.info = {"random", count, length};
    probe.tokens.resize(count * length);
    for (int32_t& id : probe.tokens) id = int32_t(rng.below(vocab_size));
    return probe;
}

Probe make_repeated_probe(size_t count, size_t length, size_t vocab_size, uint64_t seed, int64_t token) {
    if (token >= 0 && size_t(token) >= vocab_size)
        fail("repeated probe: token {} is outside the vocabulary (size {})", token, vocab_size);
    if (token < 0 && vocab_size == 0) fail("repeated probe: the vocabulary is empty");
    Rng rng(seed);
    Probe probe;
    probe.info = {"repeated", count, length};
    probe.tokens.resize(count * length);
    for (size_t s = 0; s < count; s++) {
        const int32_t id = token >= 0 ? int32_t(token) : int32_t(rng.below(vocab_size));
        for (size_t t = 0; t < length; t++) probe.tokens[s * length + t] = id;
    }
    return probe;
}

void prepend_first_token(Probe& probe, int32_t first_token) {
    const size_t T = probe.info.length;
    for (size_t s = 0; s < probe.info.count; s++) {
        int32_t* seq = probe.tokens.data() + s * T;
        for (size_t t = T; t-- > 1;) seq[t] = seq[t - 1];
        if (T > 0) seq[0] = first_token;
    }
}

void edit_probe(Probe& probe, const SequenceEdits& edits, size_t vocab_size) {
    if (!edits.any()) return;
    const size_t T = probe.info.length;
    for (size_t s = 0; s < probe.info.count; s++) edits.apply(probe.tokens.data() + s * T, T, s, vocab_size);
}

// ---------------------------------------------------------------------------------------------
// The measurement

// Proxy denominators of one map: row_sum[i] = sum_{j<=i} |map[i, j]| + 1e-8.   map: (Tm, Tm)
static void proxy_row_sums(std::vector<double>& row_sum, const float* map, size_t Tm) {
    row_sum.assign(Tm, 0.0);
    for (size_t i = 0; i < Tm; i++) {
        double sum = 0.0;
        for (size_t j = 0; j <= i; j++) sum += std::fabs(double(map[i * Tm + j]));
        row_sum[i] = sum + kSinkProxyEps;
    }
}

// alpha of key slot `key`: mean over queries i = max(key, first_query) .. Tm-1 of the (proxy) score.
// row_sum: the proxy denominators, or null for the weights themselves.
static double key_alpha_rows(const float* map, size_t Tm, size_t key, const double* row_sum, size_t first_query) {
    const size_t first = std::max(key, first_query);
    if (first >= Tm) return 0.0;
    double sum = 0.0;
    for (size_t i = first; i < Tm; i++) {
        const double w = double(map[i * Tm + key]);
        sum += row_sum ? std::fabs(w) / row_sum[i] : w;
    }
    return sum / double(Tm - first);
}

double key_alpha(const float* map, size_t Tm, size_t key, bool proxy, size_t first_query) {
    std::vector<double> row_sum;
    if (proxy) proxy_row_sums(row_sum, map, Tm);
    return key_alpha_rows(map, Tm, key, proxy ? row_sum.data() : nullptr, first_query);
}

SinkAccumulator::SinkAccumulator(size_t n_layers, size_t n_heads, size_t seq_len, size_t d_model,
                                 const SinkOptions& options)
    : L_(n_layers), H_(n_heads), T_(seq_len), C_(d_model), opt_(options) {
    if (L_ == 0 || H_ == 0) fail("sink measurement: the model has no layers or no heads");
    if (T_ == 0) fail("sink measurement: probe sequences are empty");
    if (C_ % H_ != 0) fail("sink measurement: n_heads ({}) must divide d_model ({})", H_, C_);
    if (!(opt_.eps >= 0.0)) fail("sink measurement: eps must be >= 0 (got {})", opt_.eps);
    K_ = std::min(opt_.max_k, T_);
    if (K_ == 0) fail("sink measurement: max_k must be at least 1");
    Tm_ = T_ + (opt_.extra_slot ? 1 : 0);
    sink_count_.assign(L_ * K_, 0.0);
    alpha_sum_.assign(L_ * H_ * K_, 0.0);
    star_count_.assign(L_, 0.0);
    star_alpha_sum_.assign(L_ * H_, 0.0);
    if (opt_.keep_maps) map_sum_.assign(L_ * H_ * Tm_ * Tm_, 0.0);
    resid_sum_.assign((L_ + 1) * T_, 0.0);
    massive_sum_.assign(L_ + 1, 0.0);
    key_sum_.assign(L_ * T_, 0.0);
    value_sum_.assign(L_ * T_, 0.0);
    q_sum_.assign(L_ * T_, 0.0);
    k1_sum_.assign(L_, 0.0);
    cos_sum_.assign(L_ * T_, 0.0);
}

// att: (L, S, H, Tm, Tm). For every map: alpha_k for k = 1..K (and alpha* with the slot), each head
// thresholded on its own sequence's alpha, then counted.
void SinkAccumulator::add_attention(const float* att, size_t S) {
    const size_t o = opt_.extra_slot ? 1 : 0;  // slot index of real token 1
    std::vector<double> row_sum;
    for (size_t l = 0; l < L_; l++)
        for (size_t s = 0; s < S; s++)
            for (size_t h = 0; h < H_; h++) {
                const float* map = att + (((l * S + s) * H_ + h) * Tm_) * Tm_;
                if (opt_.proxy) proxy_row_sums(row_sum, map, Tm_);
                const double* rows = opt_.proxy ? row_sum.data() : nullptr;
                for (size_t k = 0; k < K_; k++) {
                    const double alpha = key_alpha_rows(map, Tm_, k + o, rows, o);
                    alpha_sum_[(l * H_ + h) * K_ + k] += alpha;
                    if (alpha > opt_.eps) sink_count_[l * K_ + k] += 1.0;
                }
                if (opt_.extra_slot) {
                    const double alpha = key_alpha_rows(map, Tm_, 0, rows, 1);
                    star_alpha_sum_[l * H_ + h] += alpha;
                    if (alpha > opt_.eps) star_count_[l] += 1.0;
                }
                if (opt_.keep_maps) {
                    double* sum = map_sum_.data() + (l * H_ + h) * Tm_ * Tm_;
                    for (size_t i = 0; i < Tm_; i++)
                        for (size_t j = 0; j <= i; j++) {
                            const double w = double(map[i * Tm_ + j]);
                            sum[i * Tm_ + j] += rows ? std::fabs(w) / rows[i] : w;
                        }
                }
            }
    seqs_att_ += S;
}

static double l2_norm(const float* x, size_t n) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += double(x[i]) * double(x[i]);
    return std::sqrt(sum);
}

// resid: (L+1, S, T, C), qkv: (L, S, T, 3C). Either may be null.
void SinkAccumulator::add_activations(const float* resid, const float* qkv, size_t S) {
    const size_t T = T_, C = C_, H = H_, D = C_ / H_;
    if (resid) {
        std::vector<double> norms(T);
        for (size_t l = 0; l <= L_; l++)
            for (size_t s = 0; s < S; s++) {
                for (size_t t = 0; t < T; t++) {
                    norms[t] = l2_norm(resid + ((l * S + s) * T + t) * C, C);
                    resid_sum_[l * T + t] += norms[t];
                }
                double rest = 0.0;
                for (size_t t = 1; t < T; t++) rest += norms[t];
                rest = T > 1 ? rest / double(T - 1) : 0.0;
                massive_sum_[l] += rest > 0.0 ? norms[0] / rest : 0.0;
            }
    }
    if (qkv) {
        for (size_t l = 0; l < L_; l++)
            for (size_t s = 0; s < S; s++)
                for (size_t h = 0; h < H; h++) {
                    const float* k1 = qkv + ((l * S + s) * T + 0) * 3 * C + C + h * D;
                    const double k1_norm = l2_norm(k1, D);
                    k1_sum_[l] += k1_norm / double(H);
                    for (size_t t = 0; t < T; t++) {
                        const float* row = qkv + ((l * S + s) * T + t) * 3 * C;
                        const float* q = row + h * D;
                        const float* k = row + C + h * D;
                        const float* v = row + 2 * C + h * D;
                        const double q_norm = l2_norm(q, D);
                        double dot = 0.0;
                        for (size_t d = 0; d < D; d++) dot += double(q[d]) * double(k1[d]);
                        q_sum_[l * T + t] += q_norm / double(H);
                        key_sum_[l * T + t] += l2_norm(k, D) / double(H);
                        value_sum_[l * T + t] += l2_norm(v, D) / double(H);
                        const double denom = q_norm * k1_norm;
                        cos_sum_[l * T + t] += (denom > 0.0 ? dot / denom : 0.0) / double(H);
                    }
                }
    }
    if (resid || qkv) seqs_act_ += S;
}

// (rows, cols) view of a flat array, each entry divided by `divisor`.
static std::vector<std::vector<double>> rows_of(const std::vector<double>& flat, size_t rows, size_t cols,
                                                double divisor) {
    std::vector<std::vector<double>> out(rows, std::vector<double>(cols));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) out[r][c] = flat[r * cols + c] / divisor;
    return out;
}

SinkReport SinkAccumulator::finish(const ProbeInfo& probe) const {
    if (seqs_att_ == 0) fail("sink measurement: no probe sequence was measured");
    SinkReport r;
    r.options = opt_;
    r.probe = probe;
    r.n_layers = L_;
    r.n_heads = H_;
    r.n_k = K_;
    const double S = double(seqs_att_), LH = double(L_ * H_);
    r.sink_k.assign(K_, 0.0);
    r.alpha_k.assign(K_, 0.0);
    r.per_layer.assign(L_, std::vector<double>(K_, 0.0));
    r.alpha_per_layer.assign(L_, std::vector<double>(K_, 0.0));
    r.alpha_per_head.assign(L_, std::vector<std::vector<double>>(H_, std::vector<double>(K_, 0.0)));
    for (size_t l = 0; l < L_; l++)
        for (size_t k = 0; k < K_; k++) {
            // every sequence has the same denominator, so the mean of per-sequence fractions is the
            // pooled count over (sequences x heads)
            r.sink_k[k] += 100.0 * sink_count_[l * K_ + k] / (S * LH);
            r.per_layer[l][k] = 100.0 * sink_count_[l * K_ + k] / (S * double(H_));
            for (size_t h = 0; h < H_; h++) {
                const double alpha = alpha_sum_[(l * H_ + h) * K_ + k] / S;
                r.alpha_per_head[l][h][k] = alpha;
                r.alpha_per_layer[l][k] += alpha / double(H_);
                r.alpha_k[k] += alpha / LH;
            }
        }
    if (opt_.extra_slot) {
        r.sink_star_per_layer.assign(L_, 0.0);
        r.alpha_star_per_head.assign(L_, std::vector<double>(H_, 0.0));
        for (size_t l = 0; l < L_; l++) {
            r.sink_star += 100.0 * star_count_[l] / (S * LH);
            r.sink_star_per_layer[l] = 100.0 * star_count_[l] / (S * double(H_));
            for (size_t h = 0; h < H_; h++) {
                r.alpha_star_per_head[l][h] = star_alpha_sum_[l * H_ + h] / S;
                r.alpha_star += r.alpha_star_per_head[l][h] / LH;
            }
        }
    }
    if (opt_.keep_maps) {
        r.map_size = Tm_;
        r.mean_maps.resize(map_sum_.size());
        for (size_t i = 0; i < map_sum_.size(); i++) r.mean_maps[i] = map_sum_[i] / S;
    }
    if (seqs_act_ > 0) {
        const double A = double(seqs_act_);
        r.has_norms = true;
        r.norms.resid = rows_of(resid_sum_, L_ + 1, T_, A);
        r.norms.massive_ratio.resize(L_ + 1);
        for (size_t l = 0; l <= L_; l++) r.norms.massive_ratio[l] = massive_sum_[l] / A;
        r.norms.key = rows_of(key_sum_, L_, T_, A);
        r.norms.value = rows_of(value_sum_, L_, T_, A);
        r.norms.q_norm = rows_of(q_sum_, L_, T_, A);
        r.norms.cos_q_k1 = rows_of(cos_sum_, L_, T_, A);
        r.norms.k1_norm.resize(L_);
        for (size_t l = 0; l < L_; l++) r.norms.k1_norm[l] = k1_sum_[l] / A;
    }
    return r;
}

SinkReport measure_sinks(const float* att, const float* resid, const float* qkv, size_t n_layers, size_t n_heads,
                         size_t seq_len, size_t d_model, const ProbeInfo& probe, const SinkOptions& options) {
    SinkAccumulator acc(n_layers, n_heads, seq_len, d_model, options);
    acc.add_attention(att, probe.count);
    acc.add_activations(resid, qkv, probe.count);
    return acc.finish(probe);
}

// ---------------------------------------------------------------------------------------------
// JSON

Json sink_report_json(const SinkReport& r, bool include_maps) {
    Json j = Json::object();
    j["eps"] = r.options.eps;
    j["proxy"] = r.options.proxy;
    j["extra_slot"] = r.options.extra_slot;
    j["n_layers"] = r.n_layers;
    j["n_heads"] = r.n_heads;
    Json ks = Json::array();
    for (size_t k = 1; k <= r.n_k; k++) ks.push_back(k);
    j["k"] = ks;
    j["sink_k"] = r.sink_k;
    j["per_layer"] = r.per_layer;
    j["alpha_k"] = r.alpha_k;
    j["alpha_per_layer"] = r.alpha_per_layer;
    j["alpha_per_head"] = r.alpha_per_head;
    Json probe = Json::object();
    probe["kind"] = r.probe.kind;
    probe["count"] = r.probe.count;
    probe["length"] = r.probe.length;
    j["probe"] = probe;
    if (r.options.extra_slot) {
        j["sink_star"] = r.sink_star;
        j["sink_star_per_layer"] = r.sink_star_per_layer;
        j["alpha_star"] = r.alpha_star;
        j["alpha_star_per_head"] = r.alpha_star_per_head;
    }
    if (r.has_norms) {
        Json n = Json::object();
        n["resid"] = r.norms.resid;
        n["massive_ratio"] = r.norms.massive_ratio;
        n["key"] = r.norms.key;
        n["value"] = r.norms.value;
        n["q_norm"] = r.norms.q_norm;
        n["k1_norm"] = r.norms.k1_norm;
        n["cos_q_k1"] = r.norms.cos_q_k1;
        j["norms"] = n;
    }
    if (include_maps && !r.mean_maps.empty()) {
        const size_t Tm = r.map_size;
        Json maps = Json::array();
        for (size_t l = 0; l < r.n_layers; l++) {
            Json layer = Json::array();
            for (size_t h = 0; h < r.n_heads; h++) {
                Json map = Json::array();
                for (size_t i = 0; i < Tm; i++) {
                    std::vector<double> row(Tm);
                    for (size_t c = 0; c < Tm; c++) row[c] = r.map_at(l, h, i, c);
                    map.push_back(Json(row));
                }
                layer.push_back(map);
            }
            maps.push_back(layer);
        }
        j["mean_attention"] = maps;
    }
    return j;
}

void add_sink_metrics(Json& line, const SinkReport& r) {
    line["sink_k"] = r.sink_k;
    line["alpha_k"] = r.alpha_k;
    line["sink_eps"] = r.options.eps;
    line["sink_proxy"] = r.options.proxy;
    if (r.options.extra_slot) line["sink_star"] = r.sink_star;
}

static void report_json_text_to(std::string& out, const Json& j, size_t depth) {
    const std::string pad(2 * (depth + 1), ' '), close_pad(2 * depth, ' ');
    if (j.is_object() && j.size() > 0) {
        out += "{\n";
        size_t i = 0;
        for (const auto& [key, value] : j.as_object()) {
            out += pad + Json(key).dump() + ": ";
            report_json_text_to(out, value, depth + 1);
            out += ++i < j.size() ? ",\n" : "\n";
        }
        out += close_pad + "}";
        return;
    }
    if (j.is_array() && j.size() > 0) {
        bool flat = true;
        for (const Json& v : j.as_array()) flat = flat && !v.is_array() && !v.is_object();
        if (flat) {
            out += j.dump();
            return;
        }
        out += "[\n";
        for (size_t i = 0; i < j.size(); i++) {
            out += pad;
            report_json_text_to(out, j.as_array()[i], depth + 1);
            out += i + 1 < j.size() ? ",\n" : "\n";
        }
        out += close_pad + "]";
        return;
    }
    out += j.dump();
}

std::string report_json_text(const Json& json) {
    std::string out;
    report_json_text_to(out, json, 0);
    return out + "\n";
}

namespace {

std::vector<double> numbers_of(const Json& j) {
    std::vector<double> out;
    for (const Json& v : j.as_array()) out.push_back(v.is_null() ? NAN : v.as_number());
    return out;
}
std::vector<std::vector<double>> matrix_of(const Json& j) {
    std::vector<std::vector<double>> out;
    for (const Json& row : j.as_array()) out.push_back(numbers_of(row));
    return out;
}

}  // namespace

double largest_massive_ratio(const Json& report) {
    if (!report.is_object() || !report.contains("norms") || !report.at("norms").contains("massive_ratio")) return NAN;
    const Json::Array& ratios = report.at("norms").at("massive_ratio").as_array();
    double best = NAN;
    for (size_t l = 1; l < ratios.size(); l++)
        if (ratios[l].is_number() && !(ratios[l].as_number() <= best)) best = ratios[l].as_number();
    return best;
}

SinkReport sink_report_from_json(const Json& j, const std::string& what) {
    try {
        SinkReport r;
        r.options.eps = j.at("eps").as_number();
        r.options.proxy = j.at("proxy").as_bool();
        r.options.extra_slot = j.contains("extra_slot") && j.at("extra_slot").as_bool();
        r.n_layers = size_t(j.at("n_layers").as_int());
        r.n_heads = size_t(j.at("n_heads").as_int());
        r.sink_k = numbers_of(j.at("sink_k"));
        r.n_k = r.sink_k.size();
        r.options.max_k = r.n_k;
        r.per_layer = matrix_of(j.at("per_layer"));
        r.alpha_k = numbers_of(j.at("alpha_k"));
        if (j.contains("alpha_per_layer")) r.alpha_per_layer = matrix_of(j.at("alpha_per_layer"));
        if (j.contains("alpha_per_head"))
            for (const Json& layer : j.at("alpha_per_head").as_array()) r.alpha_per_head.push_back(matrix_of(layer));
        const Json& probe = j.at("probe");
        r.probe = {probe.at("kind").as_string(), size_t(probe.at("count").as_int()),
                   size_t(probe.at("length").as_int())};
        if (r.per_layer.size() != r.n_layers) fail("per_layer has {} rows for {} layers", r.per_layer.size(), r.n_layers);
        if (r.options.extra_slot) {
            r.sink_star = j.at("sink_star").as_number();
            r.sink_star_per_layer = numbers_of(j.at("sink_star_per_layer"));
            r.alpha_star = j.at("alpha_star").as_number();
            if (j.contains("alpha_star_per_head")) r.alpha_star_per_head = matrix_of(j.at("alpha_star_per_head"));
        }
        if (j.contains("norms")) {
            const Json& n = j.at("norms");
            r.has_norms = true;
            r.norms.resid = matrix_of(n.at("resid"));
            r.norms.massive_ratio = numbers_of(n.at("massive_ratio"));
            r.norms.key = matrix_of(n.at("key"));
            r.norms.value = matrix_of(n.at("value"));
            r.norms.q_norm = matrix_of(n.at("q_norm"));
            r.norms.k1_norm = numbers_of(n.at("k1_norm"));
            r.norms.cos_q_k1 = matrix_of(n.at("cos_q_k1"));
        }
        if (j.contains("mean_attention")) {
            const Json& maps = j.at("mean_attention");
            r.map_size = r.probe.length + (r.options.extra_slot ? 1 : 0);
            const size_t Tm = r.map_size;
            r.mean_maps.assign(r.n_layers * r.n_heads * Tm * Tm, 0.0);
            if (maps.size() != r.n_layers) fail("mean_attention has {} layers, expected {}", maps.size(), r.n_layers);
            for (size_t l = 0; l < r.n_layers; l++) {
                const Json& layer = maps.as_array()[l];
                if (layer.size() != r.n_heads) fail("mean_attention layer {} has {} heads", l, layer.size());
                for (size_t h = 0; h < r.n_heads; h++) {
                    const auto rows = matrix_of(layer.as_array()[h]);
                    if (rows.size() != Tm) fail("mean_attention map ({}, {}) has {} rows, expected {}", l, h, rows.size(), Tm);
                    for (size_t i = 0; i < Tm; i++) {
                        if (rows[i].size() != Tm) fail("mean_attention map ({}, {}) row {} has {} entries", l, h, i, rows[i].size());
                        for (size_t c = 0; c < Tm; c++) r.mean_maps[((l * r.n_heads + h) * Tm + i) * Tm + c] = rows[i][c];
                    }
                }
            }
        }
        return r;
    } catch (const Error& e) {
        fail("{}: not a sink report: {}", what, e.what());
    }
}

// ---------------------------------------------------------------------------------------------
// Text

std::string format_sink_report(const SinkReport& r) {
    std::string out;
    out += fmt::format("Sink_k (eps {}, strict >): {} {} probe sequences x {} tokens, {} layers x {} heads, {}\n",
                       r.options.eps, r.probe.count, r.probe.kind, r.probe.length, r.n_layers, r.n_heads,
                       r.options.proxy ? "proxy scores |w| / sum |w|" : "attention weights");
    out += fmt::format("{:<11}", "");
    for (size_t k = 1; k <= r.n_k; k++) out += fmt::format("{:>8}", fmt::format("k={}", k));
    out += '\n';
    out += fmt::format("{:<11}", "Sink_k %");
    for (double v : r.sink_k) out += fmt::format("{:>8.2f}", v);
    out += '\n';
    out += fmt::format("{:<11}", "mean alpha");
    for (double v : r.alpha_k) out += fmt::format("{:>8.4f}", v);
    out += '\n';
    for (size_t l = 0; l < r.n_layers; l++) {
        out += fmt::format("{:<11}", fmt::format("layer {}", l));
        for (double v : r.per_layer[l]) out += fmt::format("{:>8.2f}", v);
        out += '\n';
    }
    if (r.options.extra_slot) {
        out += fmt::format("Sink* (extra key slot) {:.2f}%, mean alpha* {:.4f}; per layer:", r.sink_star, r.alpha_star);
        for (double v : r.sink_star_per_layer) out += fmt::format(" {:.1f}", v);
        out += '\n';
    }
    if (r.has_norms) {
        out += "massive-activation ratio ||h_1|| / mean_{t>1} ||h_t|| (layer 0 = embeddings):\n ";
        for (size_t l = 0; l < r.norms.massive_ratio.size(); l++)
            out += fmt::format(" {}:{:.2f}", l, r.norms.massive_ratio[l]);
        out += '\n';
        out += "first key per layer: ||k_1||, mean ||q_t|| and mean cos(q_t, k_1) over t > 1:\n";
        for (size_t l = 0; l < r.n_layers; l++) {
            const auto& q = r.norms.q_norm[l];
            const auto& cs = r.norms.cos_q_k1[l];
            double q_mean = 0.0, cos_mean = 0.0;
            const size_t T = q.size();
            for (size_t t = 1; t < T; t++) {
                q_mean += q[t];
                cos_mean += cs[t];
            }
            if (T > 1) {
                q_mean /= double(T - 1);
                cos_mean /= double(T - 1);
            }
            out += fmt::format("  layer {:<3} ||k_1|| {:8.3f}   ||q_t|| {:8.3f}   cos {:+.3f}\n", l, r.norms.k1_norm[l],
                               q_mean, cos_mean);
        }
    }
    return out;
}

}  // namespace sinklab
