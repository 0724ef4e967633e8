// The sink measurement on hand-built attention maps with known answers, the norm statistics against
// a direct computation, the report's JSON schema, the SVG writer's output, probes, and
// `sinklab compare` on hand-written run directories.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/compare.h"
#include "data/shard.h"
#include "sink/sink.h"
#include "sink/sink_plots.h"
#include "train/run_reader.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/svg.h"

using namespace sinklab;

namespace {

// Attention maps (L, S, H, Tm, Tm) filled by a function of (l, s, h, i, j), for j <= i.
template <typename F>
std::vector<float> build_maps(size_t L, size_t S, size_t H, size_t Tm, F weight) {
    std::vector<float> att(L * S * H * Tm * Tm, 0.0f);
    for (size_t l = 0; l < L; l++)
        for (size_t s = 0; s < S; s++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < Tm; i++)
                    for (size_t j = 0; j <= i; j++)
                        att[((((l * S + s) * H + h) * Tm + i) * Tm) + j] = float(weight(l, s, h, i, j));
    return att;
}

SinkReport measure(const std::vector<float>& att, size_t L, size_t S, size_t H, size_t T, SinkOptions options = {}) {
    return measure_sinks(att.data(), nullptr, nullptr, L, H, T, H * 2, ProbeInfo{"natural", S, T}, options);
}

// A fresh, empty directory under the system's temporary directory.
std::filesystem::path temp_dir(const std::string& name) {
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("sinklab_test_sink_{}_{}", ::getpid(), name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// Checks that every tag is closed in order; returns the number of root elements (-1 on a mismatch).
int balanced_roots(const std::string& xml) {
    std::vector<std::string> stack;
    int roots = 0;
    size_t pos = 0;
    while ((pos = xml.find('<', pos)) != std::string::npos) {
        const size_t end = xml.find('>', pos);
        if (end == std::string::npos) return -1;
        const std::string tag = xml.substr(pos + 1, end - pos - 1);
        pos = end + 1;
        if (tag.empty()) return -1;
        if (tag[0] == '/') {
            if (stack.empty() || stack.back() != tag.substr(1)) return -1;
            stack.pop_back();
            continue;
        }
        const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
        if (stack.empty()) roots++;
        if (tag.back() != '/') stack.push_back(name);
    }
    return stack.empty() ? roots : -1;
}

size_t count_of(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) n++;
    return n;
}

}  // namespace

TEST_CASE("sink: all attention on the first key gives Sink_1 = 100% and nothing elsewhere") {
    const size_t L = 2, S = 3, H = 4, T = 12;
    const auto att = build_maps(L, S, H, T,
                                [](size_t, size_t, size_t, size_t, size_t j) { return j == 0 ? 1.0 : 0.0; });
    const SinkReport r = measure(att, L, S, H, T);
    REQUIRE(r.sink_k.size() == 10);
    CHECK(r.sink_k[0] == doctest::Approx(100.0));
    CHECK(r.alpha_k[0] == doctest::Approx(1.0));
    for (size_t k = 1; k < 10; k++) {
        CHECK(r.sink_k[k] == 0.0);
        CHECK(r.alpha_k[k] == 0.0);
    }
    for (size_t l = 0; l < L; l++) CHECK(r.per_layer[l][0] == doctest::Approx(100.0));
}

TEST_CASE("sink: uniform causal attention gives alpha_k = 1/(T-k+1) sum_{i=k..T} 1/i") {
    for (size_t T : {8, 10, 64}) {
        const auto att = build_maps(1, 2, 2, T,
                                    [](size_t, size_t, size_t, size_t i, size_t) { return 1.0 / double(i + 1); });
        const SinkReport r = measure(att, 1, 2, 2, T);
        for (size_t k = 1; k <= std::min<size_t>(10, T); k++) {
            double sum = 0.0;
            for (size_t i = k; i <= T; i++) sum += 1.0 / double(i);
            const double alpha = sum / double(T - k + 1);
            CHECK(r.alpha_k[k - 1] == doctest::Approx(alpha).epsilon(1e-6));
            CHECK(r.sink_k[k - 1] == (alpha > 0.3 ? 100.0 : 0.0));
        }
    }
    // T = 8: alpha_1 = H_8 / 8 = 0.3397 > 0.3 (a sink), alpha_2 = (H_8 - 1) / 7 = 0.2454 (not)
    const auto att8 = build_maps(1, 1, 1, 8,
                                 [](size_t, size_t, size_t, size_t i, size_t) { return 1.0 / double(i + 1); });
    const SinkReport r8 = measure(att8, 1, 1, 1, 8);
    CHECK(r8.alpha_k[0] == doctest::Approx(761.0 / 280.0 / 8.0).epsilon(1e-6));
    CHECK(r8.sink_k[0] == 100.0);
    CHECK(r8.sink_k[1] == 0.0);
    CHECK(r8.sink_k.size() == 8);  // K is clipped to T
}

TEST_CASE("sink: a score of exactly eps is not a sink (strict >)") {
    // T = 2: A[1,1] = 1 (first query), A[2,1] = 0, A[2,2] = 1  ->  alpha_1 = 0.5 exactly
    const auto att = build_maps(1, 1, 1, 2,
                                [](size_t, size_t, size_t, size_t i, size_t j) { return i == j ? 1.0 : 0.0; });
    SinkOptions options;
    options.eps = 0.5;
    CHECK(measure(att, 1, 1, 1, 2, options).sink_k[0] == 0.0);
    options.eps = 0.4999;
    CHECK(measure(att, 1, 1, 1, 2, options).sink_k[0] == 100.0);
}

TEST_CASE("sink: the threshold is applied per sequence, not to the mean alpha") {
    // one head, two sequences, T = 4: sequence 0 puts everything on the first key (alpha_1 = 1),
    // sequence 1 attends to the diagonal (alpha_1 = 1/4). Mean alpha = 0.625.
    const size_t T = 4;
    const auto att = build_maps(1, 2, 1, T, [](size_t, size_t s, size_t, size_t i, size_t j) {
        return s == 0 ? (j == 0 ? 1.0 : 0.0) : (i == j ? 1.0 : 0.0);
    });
    SinkOptions options;
    options.eps = 0.3;
    SinkReport r = measure(att, 1, 2, 1, T, options);
    CHECK(r.alpha_k[0] == doctest::Approx(0.625));
    CHECK(r.sink_k[0] == doctest::Approx(50.0));  // thresholding the mean would say 100
    options.eps = 0.7;
    r = measure(att, 1, 2, 1, T, options);
    CHECK(r.sink_k[0] == doctest::Approx(50.0));  // thresholding the mean would say 0
}

TEST_CASE("sink: proxy scores |w| / (sum |w| + 1e-8) on an unnormalised map") {
    // rows (T = 3): [2], [2, 0.5], [2, -0.5, 0.5]
    const float w[9] = {2.0f, 0, 0, 2.0f, 0.5f, 0, 2.0f, -0.5f, 0.5f};
    const std::vector<float> att(w, w + 9);
    SinkOptions options;
    options.proxy = true;
    const SinkReport r = measure(att, 1, 1, 1, 3, options);
    const double a1 = (2.0 / (2.0 + 1e-8) + 2.0 / (2.5 + 1e-8) + 2.0 / (3.0 + 1e-8)) / 3.0;
    const double a2 = (0.5 / 2.5 + 0.5 / 3.0) / 2.0;
    const double a3 = 0.5 / 3.0;
    CHECK(r.alpha_k[0] == doctest::Approx(a1).epsilon(1e-6));
    CHECK(r.alpha_k[1] == doctest::Approx(a2).epsilon(1e-6));
    CHECK(r.alpha_k[2] == doctest::Approx(a3).epsilon(1e-6));
    CHECK(r.sink_k == std::vector<double>{100.0, 0.0, 0.0});
    CHECK(key_alpha(att.data(), 3, 0, true) == doctest::Approx(a1).epsilon(1e-6));
    CHECK(key_alpha(att.data(), 3, 0, false) == doctest::Approx(2.0));  // raw weights: not a distribution
    CHECK(sink_report_json(r).at("proxy").as_bool());
    CHECK(r.mean_maps[2 * 3 + 1] == doctest::Approx(0.5 / 3.0).epsilon(1e-6));  // maps hold |w| / sum too
}

TEST_CASE("sink: all the mass on the extra slot is Sink* = 100% and Sink_1 = 0") {
    const size_t L = 2, H = 3, T = 5, Tm = T + 1;
    const auto att = build_maps(L, 2, H, Tm,
                                [](size_t, size_t, size_t, size_t, size_t j) { return j == 0 ? 1.0 : 0.0; });
    SinkOptions options;
    options.extra_slot = true;
    const SinkReport r = measure(att, L, 2, H, T, options);
    CHECK(r.sink_star == doctest::Approx(100.0));
    CHECK(r.alpha_star == doctest::Approx(1.0));
    CHECK(r.sink_k[0] == doctest::Approx(0.0));
}

TEST_CASE("sink: extra key slot reports Sink* and Sink_1 separately") {
    // L = 1, H = 2, T = 3 real tokens, maps 4 x 4 with slot 0 the extra key; row 0 is ignored.
    const size_t T = 3, Tm = 4;
    const double head0[4][4] = {{1, 0, 0, 0}, {0.7, 0.3, 0, 0}, {0.7, 0.1, 0.2, 0}, {0.7, 0.1, 0.1, 0.1}};
    const double head1[4][4] = {{0.2, 0, 0, 0}, {0.1, 0.9, 0, 0}, {0.1, 0.5, 0.4, 0}, {0.1, 0.6, 0.2, 0.1}};
    const auto att = build_maps(1, 1, 2, Tm, [&](size_t, size_t, size_t h, size_t i, size_t j) {
        return h == 0 ? head0[i][j] : head1[i][j];
    });
    SinkOptions options;
    options.extra_slot = true;
    const SinkReport r = measure(att, 1, 1, 2, T, options);
    CHECK(r.alpha_star_per_head[0][0] == doctest::Approx(0.7));
    CHECK(r.alpha_star_per_head[0][1] == doctest::Approx(0.1));
    CHECK(r.sink_star == doctest::Approx(50.0));
    CHECK(r.alpha_star == doctest::Approx(0.4));
    // Sink_1 on real token 1 (slot 1): head 0 (0.3 + 0.1 + 0.1)/3, head 1 (0.9 + 0.5 + 0.6)/3
    CHECK(r.alpha_per_head[0][0][0] == doctest::Approx(0.5 / 3.0));
    CHECK(r.alpha_per_head[0][1][0] == doctest::Approx(2.0 / 3.0));
    CHECK(r.sink_k.size() == 3);
    CHECK(r.sink_k[0] == doctest::Approx(50.0));
    CHECK(r.alpha_per_head[0][0][1] == doctest::Approx((0.2 + 0.1) / 2.0));
    CHECK(r.alpha_per_head[0][0][2] == doctest::Approx(0.1));
    const Json j = sink_report_json(r);
    CHECK(j.at("sink_star").as_number() == doctest::Approx(50.0));
    CHECK(j.at("extra_slot").as_bool());
    CHECK(!sink_report_json(measure(att, 1, 1, 2, 4)).contains("sink_star"));
    // the pictures: slot 0's own row is not drawn (4 x 4 map: 10 causal cells - 1), Sink* gets bars
    CHECK(count_of(attention_maps_svg(r, ""), "class=\"c\"") == 2 * 9);
    CHECK(count_of(sink_per_layer_svg(r, ""), "class=\"bar\"") == 1 + 3);
    Json line = Json::object();
    line["step"] = 10;
    add_sink_metrics(line, r);
    CHECK(line.at("sink_k").size() == 3);
    CHECK(line.at("sink_star").as_number() == doctest::Approx(50.0));
}

TEST_CASE("sink: norm statistics match a direct computation") {
    const size_t L = 2, S = 3, T = 5, C = 6, H = 2, D = 3;
    Rng rng(11);
    std::vector<float> resid((L + 1) * S * T * C), qkv(L * S * T * 3 * C);
    for (float& x : resid) x = float(rng.normal());
    for (float& x : qkv) x = float(rng.normal());
    // a hand-built massive activation: in stream 2, token 1 is (30, 40, 0...) and every other token (3, 4, 0...)
    for (size_t s = 0; s < S; s++)
        for (size_t t = 0; t < T; t++) {
            float* h = resid.data() + ((2 * S + s) * T + t) * C;
            for (size_t c = 0; c < C; c++) h[c] = 0.0f;
            h[0] = t == 0 ? 30.0f : 3.0f;
            h[1] = t == 0 ? 40.0f : 4.0f;
        }
    const auto att = build_maps(L, S, H, T,
                                [](size_t, size_t, size_t, size_t i, size_t) { return 1.0 / double(i + 1); });
    const SinkReport r = measure_sinks(att.data(), resid.data(), qkv.data(), L, H, T, C, ProbeInfo{"random", S, T}, {});
    REQUIRE(r.has_norms);
    CHECK(r.norms.massive_ratio[2] == doctest::Approx(10.0));
    CHECK(r.norms.resid[2][0] == doctest::Approx(50.0));
    CHECK(r.norms.resid[2][3] == doctest::Approx(5.0));

    auto norm = [](const float* x, size_t n) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += double(x[i]) * double(x[i]);
        return std::sqrt(s);
    };
    for (size_t l = 0; l <= L; l++) {
        double ratio = 0.0;
        for (size_t s = 0; s < S; s++) {
            double rest = 0.0;
            for (size_t t = 1; t < T; t++) rest += norm(&resid[((l * S + s) * T + t) * C], C);
            ratio += norm(&resid[((l * S + s) * T) * C], C) / (rest / double(T - 1));
        }
        CHECK(r.norms.massive_ratio[l] == doctest::Approx(ratio / double(S)));
        for (size_t t = 0; t < T; t++) {
            double mean = 0.0;
            for (size_t s = 0; s < S; s++) mean += norm(&resid[((l * S + s) * T + t) * C], C) / double(S);
            CHECK(r.norms.resid[l][t] == doctest::Approx(mean));
        }
    }
    for (size_t l = 0; l < L; l++) {
        double k1 = 0.0;
        for (size_t s = 0; s < S; s++)
            for (size_t h = 0; h < H; h++) k1 += norm(&qkv[((l * S + s) * T) * 3 * C + C + h * D], D) / double(S * H);
        CHECK(r.norms.k1_norm[l] == doctest::Approx(k1));
        for (size_t t = 0; t < T; t++) {
            double q = 0.0, k = 0.0, v = 0.0, cosine = 0.0;
            for (size_t s = 0; s < S; s++)
                for (size_t h = 0; h < H; h++) {
                    const float* row = &qkv[((l * S + s) * T + t) * 3 * C];
                    const float* key1 = &qkv[((l * S + s) * T) * 3 * C + C + h * D];
                    double dot = 0.0;
                    for (size_t d = 0; d < D; d++) dot += double(row[h * D + d]) * double(key1[d]);
                    q += norm(row + h * D, D);
                    k += norm(row + C + h * D, D);
                    v += norm(row + 2 * C + h * D, D);
                    cosine += dot / (norm(row + h * D, D) * norm(key1, D));
                }
            const double n = double(S * H);
            CHECK(r.norms.q_norm[l][t] == doctest::Approx(q / n));
            CHECK(r.norms.key[l][t] == doctest::Approx(k / n));
            CHECK(r.norms.value[l][t] == doctest::Approx(v / n));
            CHECK(r.norms.cos_q_k1[l][t] == doctest::Approx(cosine / n));
        }
        CHECK(r.norms.cos_q_k1[l][0] == doctest::Approx(r.norms.cos_q_k1[l][0]));
    }
}

TEST_CASE("sink: measuring in batches equals measuring at once") {
    const size_t L = 2, S = 4, H = 2, T = 6, C = 4;
    Rng rng(5);
    const auto att = build_maps(L, S, H, T, [&](size_t, size_t, size_t, size_t i, size_t) {
        return rng.uniform() / double(i + 1) * 2.0;
    });
    const SinkReport whole = measure(att, L, S, H, T);
    SinkAccumulator acc(L, H, T, C, {});
    // two batches of 2 sequences: the layout of each batch is (L, 2, H, T, T)
    for (size_t b = 0; b < 2; b++) {
        std::vector<float> part;
        for (size_t l = 0; l < L; l++)
            for (size_t s = 2 * b; s < 2 * b + 2; s++) {
                const float* map = att.data() + (l * S + s) * H * T * T;
                part.insert(part.end(), map, map + H * T * T);
            }
        acc.add_attention(part.data(), 2);
    }
    const SinkReport batched = acc.finish(ProbeInfo{"natural", S, T});
    for (size_t k = 0; k < whole.n_k; k++) {
        CHECK(batched.sink_k[k] == doctest::Approx(whole.sink_k[k]));
        CHECK(batched.alpha_k[k] == doctest::Approx(whole.alpha_k[k]));
    }
}

TEST_CASE("sink: the JSON report has the documented keys and lengths, and reads back") {
    const size_t L = 3, S = 2, H = 2, T = 12, C = 8;
    Rng rng(3);
    std::vector<float> resid((L + 1) * S * T * C), qkv(L * S * T * 3 * C);
    for (float& x : resid) x = float(rng.normal());
    for (float& x : qkv) x = float(rng.normal());
    const auto att = build_maps(L, S, H, T,
                                [](size_t, size_t, size_t, size_t i, size_t) { return 1.0 / double(i + 1); });
    const SinkReport r = measure_sinks(att.data(), resid.data(), qkv.data(), L, H, T, C, ProbeInfo{"repeated", S, T},
                                       {});
    const Json j = Json::parse(sink_report_json(r, true).dump(2), "report");
    CHECK(j.at("sink_k").size() == 10);
    CHECK(j.at("alpha_k").size() == 10);
    CHECK(j.at("per_layer").size() == L);
    for (const Json& layer : j.at("per_layer").as_array()) CHECK(layer.size() == 10);
    CHECK(j.at("eps").as_number() == doctest::Approx(0.3));
    CHECK(j.at("proxy").as_bool() == false);
    CHECK(j.at("probe").at("kind").as_string() == "repeated");
    CHECK(j.at("probe").at("count").as_int() == int64_t(S));
    CHECK(j.at("probe").at("length").as_int() == int64_t(T));
    const Json& n = j.at("norms");
    CHECK(n.at("resid").size() == L + 1);
    CHECK(n.at("resid").as_array()[0].size() == T);
    CHECK(n.at("massive_ratio").size() == L + 1);
    for (const char* key : {"key", "value", "q_norm", "cos_q_k1"}) {
        CHECK(n.at(key).size() == L);
        CHECK(n.at(key).as_array()[0].size() == T);
    }
    CHECK(n.at("k1_norm").size() == L);
    CHECK(j.at("mean_attention").size() == L);
    CHECK(!j.contains("sink_star"));
    CHECK(!sink_report_json(r).contains("mean_attention"));

    const SinkReport back = sink_report_from_json(j, "report");
    CHECK(back.sink_k == r.sink_k);
    CHECK(back.per_layer == r.per_layer);
    CHECK(back.norms.resid == r.norms.resid);
    CHECK(back.mean_maps == r.mean_maps);
    CHECK(back.probe.kind == "repeated");
    CHECK_THROWS_AS(sink_report_from_json(Json::parse("{\"eps\": 0.3}"), "x.json"), Error);
    CHECK(format_sink_report(r).find("Sink_k") != std::string::npos);
}

TEST_CASE("svg: charts and heat maps are well-formed, heat maps draw one cell per visible value") {
    LineChart chart;
    chart.title = "loss <&>";
    chart.x_label = "step";
    chart.y_label = "loss";
    chart.series.push_back({"train", {0, 10, 20, 30}, {4.0, 3.0, NAN, 2.5}, ""});
    chart.series.push_back({"val", {10, 30}, {3.2, 2.7}, "", true, true});
    const std::string line = line_chart_svg(chart);
    CHECK(line.rfind("<svg", 0) == 0);
    CHECK(balanced_roots(line) == 1);
    CHECK(line.find("loss &lt;&amp;&gt;") != std::string::npos);
    chart.log_y = true;
    CHECK(balanced_roots(line_chart_svg(chart)) == 1);
    CHECK(balanced_roots(line_chart_svg(LineChart{})) == 1);  // empty chart still draws

    BarChart bars;
    bars.categories = {"0", "1", "2"};
    bars.series.push_back({"Sink_1", {}, {10, 50, 0}, ""});
    bars.series.push_back({"Sink_2", {}, {1, 2, 3}, ""});
    const std::string bar = bar_chart_svg(bars);
    CHECK(balanced_roots(bar) == 1);
    CHECK(count_of(bar, "class=\"bar\"") == 6);

    // attention maps of a report: L = 2, H = 3, T = 5 -> 6 maps x 15 causal cells
    const auto att = build_maps(2, 1, 3, 5,
                                [](size_t, size_t, size_t, size_t i, size_t) { return 1.0 / double(i + 1); });
    const SinkReport r = measure(att, 2, 1, 3, 5);
    const std::string maps = attention_maps_svg(r, "test");
    CHECK(maps.rfind("<svg", 0) == 0);
    CHECK(balanced_roots(maps) == 1);
    CHECK(count_of(maps, "class=\"c\"") == 6 * 15);
    CHECK(count_of(attention_maps_svg(r, "crop", 3), "class=\"c\"") == 6 * 6);
    CHECK(balanced_roots(sink_per_layer_svg(r, "")) == 1);

    HeatMapGrid grid;
    grid.maps.push_back({"a", 2, 2, {0.0, NAN, 0.5, 1.0}});
    CHECK(count_of(heatmap_grid_svg(grid), "class=\"c\"") == 3);

    CHECK(nice_ticks(0, 1, 6) == std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1.0});
    CHECK(format_tick(0.25, 0.25) == "0.25");
    CHECK(format_tick(2000, 500) == "2000");
    CHECK(viridis_color(0.0) == "#440154");
}

TEST_CASE("probes: random, repeated and from a probe file") {
    const Probe random = make_random_probe(3, 8, 50, 1);
    CHECK(random.tokens.size() == 24);
    CHECK(random.info.kind == "random");
    for (int32_t id : random.tokens) CHECK((id >= 0 && id < 50));
    CHECK(make_random_probe(3, 8, 50, 1).tokens == random.tokens);
    CHECK(make_random_probe(3, 8, 50, 2).tokens != random.tokens);
    const Probe repeated = make_repeated_probe(4, 6, 50, 1);
    for (size_t s = 0; s < 4; s++)
        for (size_t t = 0; t < 6; t++) CHECK(repeated.sequence(s)[t] == repeated.sequence(s)[0]);
    CHECK(make_repeated_probe(2, 3, 50, 1, 7).tokens == std::vector<int32_t>(6, 7));
    CHECK_THROWS_AS(make_repeated_probe(2, 3, 50, 1, 50), Error);

    const auto dir = temp_dir("probe");
    std::vector<int32_t> tokens;
    for (int32_t i = 0; i < 30; i++) tokens.push_back(i);
    write_shard((dir / "probe.bin").string(), tokens, false, 10);  // 3 sequences of 10
    const Probe p = read_probe_file((dir / "probe.bin").string(), 2, 4);
    CHECK(p.info.count == 2);
    CHECK(p.info.length == 4);
    CHECK(p.tokens == std::vector<int32_t>{0, 1, 2, 3, 10, 11, 12, 13});
    CHECK(read_probe_file((dir / "probe.bin").string()).info.count == 3);
    CHECK_THROWS_AS(read_probe_file((dir / "probe.bin").string(), 4), Error);
    CHECK_THROWS_AS(read_probe_file((dir / "probe.bin").string(), 0, 11), Error);
    write_shard((dir / "plain.bin").string(), tokens);  // no sequence length: needs --length
    CHECK_THROWS_AS(read_probe_file((dir / "plain.bin").string()), Error);
    CHECK(read_probe_file((dir / "plain.bin").string(), 0, 8).info.count == 3);
    std::filesystem::remove_all(dir);
}

namespace {

void write_run(const std::filesystem::path& dir, const std::string& attention, double lr, const std::string& metrics) {
    std::filesystem::create_directories(dir);
    write_file_atomic((dir / "config.json").string(),
                      fmt::format("{{\"model\": {{\"n_layers\": 2, \"n_heads\": 2, \"d_model\": 16, \"attention\": \"{}\"}}, "
                                  "\"train\": {{\"steps\": 30, \"batch\": 4, \"lr\": {}, \"seed\": 1}}}}",
                                  attention, lr));
    write_file_atomic((dir / "metrics.jsonl").string(), metrics);
}

}  // namespace

TEST_CASE("compare: two hand-written run directories") {
    const auto dir = temp_dir("compare");
    write_run(dir / "softmax", "softmax", 0.001,
              "{\"step\": 10, \"loss\": 3.0, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens_per_s\": 100}\n"
              "{\"step\": 10, \"val_loss\": 3.1, \"sink_k\": [5, 1, 0, 0, 0, 0, 0, 0, 0, 0]}\n"
              "{\"step\": 20, \"loss\": 2.5, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens_per_s\": 300}\n"
              "{\"step\": 20, \"val_loss\": 2.6, \"sink_k\": [9, 2, 1, 0, 0, 0, 0, 0, 0, 0]}\n"
              "{\"step\": 30, \"loss\": 2.4, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens_per_s\": 200}\n"
              "{\"step\": 30, \"val_loss\": 2.7}\n");
    // a run in progress: 20 of 30 steps, its last line half written
    write_run(dir / "sigmoid", "sigmoid", 0.002,
              "{\"step\": 10, \"loss\": 3.2, \"lr\": 0.002, \"grad_norm\": 1.0, \"tokens_per_s\": 50}\n"
              "{\"step\": 10, \"val_loss\": 3.3}\n"
              "{\"step\": 20, \"loss\": 2.9, \"lr\": 0.002, \"grad_n");
    write_file_atomic((dir / "sigmoid" / "sink.json").string(), "{\"sink_k\": [0.5, 0.25, 0, 0, 0, 0, 0, 0, 0, 0]}");

    const Json c = compare_runs({(dir / "softmax").string(), (dir / "sigmoid").string()});
    std::vector<std::string> keys;
    for (const Json& k : c.at("differing_keys").as_array()) keys.push_back(k.as_string());
    CHECK(keys == std::vector<std::string>{"model.attention", "train.lr"});
    const Json& a = c.at("runs").as_array()[0];
    const Json& b = c.at("runs").as_array()[1];
    CHECK(a.at("config").at("model.attention").as_string() == "softmax");
    CHECK(a.at("final_val_loss").as_number() == doctest::Approx(2.7));
    CHECK(a.at("best_val_loss").as_number() == doctest::Approx(2.6));
    CHECK(a.at("best_val_step").as_number() == 20);
    CHECK(a.at("sink_source").as_string() == "metrics.jsonl");
    CHECK(a.at("sink_k").as_array()[0].as_number() == 9);
    CHECK(a.at("tokens_per_s_median").as_number() == 200);
    CHECK(!a.at("in_progress").as_bool());
    CHECK(b.at("in_progress").as_bool());
    CHECK(b.at("torn_last_line").as_bool());
    CHECK(b.at("step").as_number() == 10);
    CHECK(b.at("sink_source").as_string() == "sink.json");
    CHECK(b.at("sink_k").as_array()[1].as_number() == doctest::Approx(0.25));
    const std::string table = format_comparison(c);
    CHECK(table.find("model.attention") != std::string::npos);
    CHECK(table.find("still running") != std::string::npos);

    // missing files are named
    std::filesystem::create_directories(dir / "empty");
    try {
        compare_runs({(dir / "empty").string()});
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("config.json") != std::string::npos);
    }
    write_file_atomic((dir / "empty" / "config.json").string(), "{}");
    CHECK_THROWS_WITH_AS(compare_runs({(dir / "empty").string()}), doctest::Contains("metrics.jsonl"), Error);
    // a bad line that is not the last one is an error naming the line
    write_file_atomic((dir / "empty" / "metrics.jsonl").string(), "{\"step\": 1}\nnot json\n{\"step\": 2}\n");
    CHECK_THROWS_WITH_AS(compare_runs({(dir / "empty").string()}), doctest::Contains("line 2"), Error);

    // the pictures of a run
    const auto written = write_run_plots((dir / "softmax").string(), (dir / "plots").string());
    CHECK(written.size() == 2);
    CHECK(read_file((dir / "plots" / "sink_curve.svg").string()).rfind("<svg", 0) == 0);
    CHECK(balanced_roots(read_file((dir / "plots" / "loss.svg").string())) == 1);

    // the command itself
    if (const char* bin = std::getenv("SINKLAB_BIN")) {
        const std::string command = fmt::format("{} compare {} --json {} {} --svg {} > {} 2>&1", bin,
                                                (dir / "softmax").string(), (dir / "c.json").string(),
                                                (dir / "sigmoid").string(), (dir / "cmp").string(),
                                                (dir / "out.txt").string());
        CHECK(std::system(command.c_str()) == 0);
        CHECK(balanced_roots(read_file((dir / "cmp" / "compare_loss.svg").string())) == 1);
        CHECK(balanced_roots(read_file((dir / "cmp" / "compare_sink.svg").string())) == 1);
        CHECK(Json::parse(read_file((dir / "c.json").string())).at("runs").size() == 2);
        const std::string grouped = fmt::format("{} compare {} {} --group-by model.attention > {} 2>&1", bin,
                                                (dir / "softmax").string(), (dir / "sigmoid").string(),
                                                (dir / "grouped.txt").string());
        CHECK(std::system(grouped.c_str()) == 0);
        CHECK(read_file((dir / "grouped.txt").string()).find("verdict: ") != std::string::npos);
        const std::string bad = fmt::format("{} compare {} > {} 2>&1", bin, (dir / "missing").string(),
                                            (dir / "err.txt").string());
        CHECK(std::system(bad.c_str()) != 0);
        CHECK(read_file((dir / "err.txt").string()).find("missing") != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// The model bridge and the sink command

#include "model/backend_cpu.h"
#include "sink/sink_model.h"
#include "train/checkpoint.h"
#include "test_helpers.h"

namespace {

ModelConfig tiny_model_config(const std::string& attention) { return testing::gradcheck_config(attention, 11, 16); }

}  // namespace

TEST_CASE("compare: runs grouped by a configuration key, with each measure's mean, range and separation") {
    const auto dir = temp_dir("compare_groups");
    // two "seeds" per attention (told apart here by their learning rates)
    auto metrics = [](double val, double sink_1, double alpha_1) {
        return fmt::format("{{\"step\": 10, \"loss\": 3.0, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens_per_s\": 100}}\n"
                           "{{\"step\": 10, \"val_loss\": {}, \"sink_k\": [{}, 0, 0], \"alpha_k\": [{}, 0.1, 0.1]}}\n"
                           "{{\"step\": 20, \"loss\": 2.5, \"lr\": 0.001, \"grad_norm\": 1.0, \"tokens_per_s\": 100}}\n"
                           "{{\"step\": 20, \"val_loss\": {}, \"sink_k\": [1, 0, 0], \"alpha_k\": [{}, 0.1, 0.1]}}\n",
                           val + 0.5, sink_1, alpha_1, val, alpha_1);
    };
    write_run(dir / "a_softmax", "softmax", 0.001, metrics(4.0, 10.0, 0.20));
    write_run(dir / "b_softmax", "softmax", 0.002, metrics(4.2, 20.0, 0.30));
    write_run(dir / "a_sigmoid", "sigmoid", 0.001, metrics(4.1, 0.0, 0.05));
    write_run(dir / "b_sigmoid", "sigmoid", 0.002, metrics(4.3, 2.0, 0.06));
    // the massive ratio comes from sink.json, largest over layers 1..L (layer 0 left out)
    write_file_atomic((dir / "a_softmax" / "sink.json").string(),
                      "{\"sink_k\": [1, 0, 0], \"alpha_k\": [0.2, 0.1, 0.1], \"norms\": {\"massive_ratio\": [9, 2, 3]}}");
    const Json c = compare_runs({(dir / "a_softmax").string(), (dir / "a_sigmoid").string(),
                                 (dir / "b_softmax").string(), (dir / "b_sigmoid").string()});
    const Json& first = c.at("runs").as_array()[0];
    CHECK(first.at("sink_1_peak").as_number() == 10);
    CHECK(first.at("sink_1_peak_step").as_number() == 10);
    CHECK(first.at("massive_ratio_max").as_number() == 3);
    CHECK(c.at("runs").as_array()[1].at("massive_ratio_max").is_null());

    const Json g = group_comparison(c, "model.attention");
    REQUIRE(g.at("groups").size() == 2);
    const Json& softmax = g.at("groups").as_array()[0];  // in order of first appearance
    const Json& sigmoid = g.at("groups").as_array()[1];
    CHECK(softmax.at("value").as_string() == "softmax");
    CHECK(softmax.at("runs").size() == 2);
    const Json& val = softmax.at("metrics").at("val_loss");
    CHECK(val.at("mean").as_number() == doctest::Approx(4.1));
    CHECK(val.at("min").as_number() == doctest::Approx(4.0));
    CHECK(val.at("max").as_number() == doctest::Approx(4.2));
    CHECK(softmax.at("metrics").at("sink_1_peak").at("mean").as_number() == doctest::Approx(15.0));
    CHECK(sigmoid.at("metrics").at("alpha_1").at("max").as_number() == doctest::Approx(0.06));
    CHECK(softmax.at("metrics").at("massive_ratio").at("n").as_number() == 1);
    CHECK(sigmoid.at("metrics").at("massive_ratio").at("mean").is_null());

    const std::string table = format_groups(g);
    // alpha_1 (0.20..0.30 against 0.05..0.06) and the peak Sink_1 (10..20 against 0..2) separate the
    // groups; the validation losses (4.0..4.2 against 4.1..4.3) overlap.
    CHECK(table.find("verdict: softmax and sigmoid differ in every run in 2 measures") != std::string::npos);
    CHECK(table.find("  alpha_1 at the end 0.250 against 0.055\n") != std::string::npos);
    CHECK(table.find("not separated: validation loss") != std::string::npos);
    CHECK(table.find("+0.195") != std::string::npos);  // alpha_1: 0.25 - 0.055

    CHECK_THROWS_WITH_AS(group_comparison(c, "model.width"), doctest::Contains("model.width"), Error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("sink: measure_model_sinks reads the model's own attention maps, independent of the batch size") {
    Model<CpuBackend<float>> model(tiny_model_config("softmax"));
    model.init_weights(3);
    for (size_t i = 0; i < model.n_params(); i++) model.params()[i] *= 4.0f;  // sharper attention
    const Probe probe = make_random_probe(5, 6, 11, 9);
    const SinkOptions options = sink_options_for(model.config());
    CHECK(!options.proxy);
    const SinkReport all = measure_model_sinks(model, probe, options, 5);
    const SinkReport pairs = measure_model_sinks(model, probe, options, 2);
    CHECK(all.sink_k.size() == 6);
    for (size_t k = 0; k < all.n_k; k++) {
        CHECK(pairs.sink_k[k] == doctest::Approx(all.sink_k[k]));
        CHECK(pairs.alpha_k[k] == doctest::Approx(all.alpha_k[k]));
    }
    CHECK(all.has_norms);
    // one sequence by hand: alpha_1 of layer 1, head 0 straight from the forward pass's maps
    Probe one = probe;
    one.info.count = 1;
    one.tokens.resize(6);
    const SinkReport single = measure_model_sinks(model, one, options, 1);
    CHECK(!model.keeps_attention_maps());  // the measurement switches the keep-maps mode back off
    model.keep_attention_maps(true);
    model.forward(one.tokens.data(), nullptr, 1, 6);
    const float* map = model.acts().att_maps + 1 * (2 * 6 * 6) + 0 * 36;  // layer 1, head 0
    CHECK(single.alpha_per_head[1][0][0] == doctest::Approx(key_alpha(map, 6, 0, false)));
    // softmax rows sum to 1, so the per-key alphas of one head over all keys are all within [0, 1]
    for (size_t k = 0; k < 6; k++) CHECK((single.alpha_per_head[1][0][k] >= 0.0 && single.alpha_per_head[1][0][k] <= 1.0));
    CHECK(sink_options_for(tiny_model_config("sigmoid")).proxy);
    CHECK(!sink_options_for(tiny_model_config("sigmoid-norm")).proxy);
}

TEST_CASE("sink command: a checkpoint over random, repeated and natural probes") {
    const auto dir = temp_dir("command");
    const ModelConfig config = tiny_model_config("sigmoid");
    Model<CpuBackend<float>> model(config);
    model.init_weights(5);
    const std::string weights = (dir / "model.safetensors").string();
    save_safetensors(weights, config, model.param_table(), model.params());
    std::vector<int32_t> tokens;
    for (int32_t i = 0; i < 40; i++) tokens.push_back(i % 11);
    write_shard((dir / "probe.bin").string(), tokens, false, 10);

    const char* bin = std::getenv("SINKLAB_BIN");
    if (!bin) return;
    auto run = [&](const std::string& arguments) {
        const std::string command = fmt::format("{} sink --checkpoint {} {} > {} 2>&1", bin, weights, arguments,
                                                (dir / "out.txt").string());
        return std::system(command.c_str());
    };
    CHECK(run(fmt::format("--probe-kind repeated --count 3 --length 8 --json {} --svg {}", (dir / "r.json").string(),
                          (dir / "svg").string())) == 0);
    const Json r = Json::parse(read_file((dir / "r.json").string()));
    CHECK(r.at("probe").at("kind").as_string() == "repeated");
    CHECK(r.at("probe").at("count").as_int() == 3);
    CHECK(r.at("proxy").as_bool());  // sigmoid without normalisation: proxy scores
    CHECK(r.at("sink_k").size() == 8);
    for (const char* name : {"attention_maps.svg", "sink_per_layer.svg", "norms.svg"})
        CHECK(balanced_roots(read_file((dir / "svg" / name).string())) == 1);
    CHECK(run(fmt::format("--probe {} --length 6 --max-k 4 --maps --json {}", (dir / "probe.bin").string(),
                          (dir / "n.json").string())) == 0);
    const Json n = Json::parse(read_file((dir / "n.json").string()));
    CHECK(n.at("probe").at("count").as_int() == 4);
    CHECK(n.at("sink_k").size() == 4);
    CHECK(n.at("mean_attention").size() == 2);
    CHECK(run("--probe-kind random --count 2 --length 8") == 0);
    CHECK(read_file((dir / "out.txt").string()).find("Sink_k") != std::string::npos);
    // errors name the flag
    CHECK(run("") != 0);
    CHECK(read_file((dir / "out.txt").string()).find("--probe") != std::string::npos);
    CHECK(run("--probe-kind random --length 17") != 0);  // beyond the context
    CHECK(read_file((dir / "out.txt").string()).find("context") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("sink: report_json_text keeps number lists on one line and parses back") {
    Json j = Json::object();
    j["a"] = std::vector<double>{1, 2.5};
    j["b"] = std::vector<std::vector<double>>{{1}, {2, 3}};
    j["c"] = Json::object();
    j["d"] = "x";
    const std::string text = report_json_text(j);
    CHECK(text.find("\"a\": [1, 2.5]") != std::string::npos);
    CHECK(Json::parse(text).dump() == j.dump());
}
