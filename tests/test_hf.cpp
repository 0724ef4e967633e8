// Hugging Face interoperability (docs/hf.md), without network: small LLaMA-format checkpoints and
// tokenizer.json files are written here from the published format descriptions.
//   - safetensors: F16/BF16 conversions, headers, refusals
//   - import: the model computes what Hugging Face's LLaMA computes (a direct double-precision
//     forward with rotate_half RoPE and repeat_kv, written here), for one layer with grouped-query
//     attention and tied embeddings, and for two layers in sharded files
//   - import -> export -> import bit for bit; export writes GQA back; every refusal names its key
//   - tokenizer.json: hand-worked merges, added tokens, ignore_merges, add_prefix_space, LLaMA-3's
//     pre-tokenizer cuts, exact round trips of arbitrary bytes, refusals; prepare/sample/sink use it
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/hf_tokenizer.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"
#include "model/backend_cpu.h"
#include "model/model.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/rng.h"

using namespace sinklab;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------- writing safetensors by hand

uint16_t f32_to_bf16_bits(float f) {  // f must be exactly a bfloat16
    uint32_t u;
    std::memcpy(&u, &f, 4);
    REQUIRE((u & 0xFFFF) == 0);
    return uint16_t(u >> 16);
}

uint16_t f32_to_f16_bits(float f) {  // f must be exactly a normal float16 (or zero)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 31) << 15;
    if ((u & 0x7FFFFFFF) == 0) return uint16_t(sign);
    const int exponent = int((u >> 23) & 0xFF) - 127 + 15;
    REQUIRE(exponent > 0);
    REQUIRE(exponent < 31);
    REQUIRE((u & 0x1FFF) == 0);
    return uint16_t(sign | uint32_t(exponent) << 10 | ((u >> 13) & 0x3FF));
}

struct RawTensor {
    std::string name, dtype;  // "F32", "F16", "BF16" (or anything, raw)
    std::vector<size_t> shape;
    std::vector<float> values;
};

void write_raw_safetensors(const std::string& path, const std::vector<RawTensor>& tensors) {
    Json header = Json::object();
    std::string data;
    for (const RawTensor& t : tensors) {
        const size_t begin = data.size();
        for (const float v : t.values) {
            if (t.dtype == "F16" || t.dtype == "BF16") {
                const uint16_t bits = t.dtype == "F16" ? f32_to_f16_bits(v) : f32_to_bf16_bits(v);
                data += char(bits & 0xFF);
                data += char(bits >> 8);
            } else {
                data.append(reinterpret_cast<const char*>(&v), 4);
            }
        }
        Json e = Json::object();
        e["dtype"] = t.dtype;
        e["shape"] = Json(t.shape);
        e["data_offsets"] = Json(std::vector<size_t>{begin, data.size()});
        header[t.name] = e;
    }
    Json meta = Json::object();
    meta["format"] = "pt";
    header["__metadata__"] = meta;
    const std::string text = header.dump();
    std::string bytes;
    for (int i = 0; i < 8; i++) bytes += char((uint64_t(text.size()) >> (8 * i)) & 0xFF);
    write_file_atomic(path, bytes + text + data);
}

// ---------------------------------------------------------------- a small Hugging Face LLaMA

struct HfSpec {
    size_t L = 1, H = 4, KV = 2, C = 16, F = 24, V = 40, context = 32;
    bool tied = true;
    double theta = 500.0, eps = 1e-5;
    std::string dtype = "BF16";  // of the projections (norms F32, embeddings F16)
    size_t shards = 1;
};

using Weights = std::map<std::string, RawTensor>;

std::string lname(size_t i, const char* name) { return "model.layers." + std::to_string(i) + "." + name; }

// Random weights exactly representable in their dtype: k / 256 with |k| <= 128 (F16, BF16 and F32 alike).
Weights make_weights(const HfSpec& s, uint64_t seed) {
    Rng rng(seed);
    Weights w;
    const size_t D = s.C / s.H;
    auto add = [&](const std::string& name, const std::string& dtype, std::vector<size_t> shape, double center) {
        size_t n = 1;
        for (size_t d : shape) n *= d;
        RawTensor t{name, dtype, shape, std::vector<float>(n)};
        for (float& v : t.values) v = float(center + double(int(rng.below(257)) - 128) / 256.0);
        w[name] = t;
    };
    add("model.embed_tokens.weight", "F16", {s.V, s.C}, 0.0);
    for (size_t i = 0; i < s.L; i++) {
        add(lname(i, "input_layernorm.weight"), "F32", {s.C}, 1.0);
        add(lname(i, "self_attn.q_proj.weight"), s.dtype, {s.H * D, s.C}, 0.0);
        add(lname(i, "self_attn.k_proj.weight"), s.dtype, {s.KV * D, s.C}, 0.0);
        add(lname(i, "self_attn.v_proj.weight"), s.dtype, {s.KV * D, s.C}, 0.0);
        add(lname(i, "self_attn.o_proj.weight"), s.dtype, {s.C, s.H * D}, 0.0);
        add(lname(i, "post_attention_layernorm.weight"), "F32", {s.C}, 1.0);
        add(lname(i, "mlp.gate_proj.weight"), s.dtype, {s.F, s.C}, 0.0);
        add(lname(i, "mlp.up_proj.weight"), s.dtype, {s.F, s.C}, 0.0);
        add(lname(i, "mlp.down_proj.weight"), s.dtype, {s.C, s.F}, 0.0);
    }
    add("model.norm.weight", "F32", {s.C}, 1.0);
    if (!s.tied) add("lm_head.weight", s.dtype, {s.V, s.C}, 0.0);
    return w;
}

Json hf_config(const HfSpec& s) {
    Json j = Json::object();
    j["architectures"] = Json(std::vector<std::string>{"LlamaForCausalLM"});
    j["model_type"] = "llama";
    j["hidden_size"] = s.C;
    j["intermediate_size"] = s.F;
    j["num_hidden_layers"] = s.L;
    j["num_attention_heads"] = s.H;
    j["num_key_value_heads"] = s.KV;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = s.context;
    j["rms_norm_eps"] = s.eps;
    j["rope_theta"] = s.theta;
    j["rope_scaling"] = Json();
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["tie_word_embeddings"] = s.tied;
    j["vocab_size"] = s.V;
    j["bos_token_id"] = 1;
    j["eos_token_id"] = 2;
    j["torch_dtype"] = "bfloat16";
    return j;
}

// Writes config.json and the weights (one file, or `shards` files with an index).
void write_hf_checkpoint(const std::string& dir, const HfSpec& s, const Weights& w, const Json& config) {
    fs::create_directories(dir);
    write_file_atomic(dir + "/config.json", config.dump(2));
    std::vector<std::vector<RawTensor>> files(s.shards);
    Json weight_map = Json::object();
    size_t k = 0;
    for (const auto& [name, t] : w) {
        const size_t f = k++ % s.shards;
        files[f].push_back(t);
        weight_map[name] = "model-0000" + std::to_string(f + 1) + "-of-0000" + std::to_string(s.shards) + ".safetensors";
    }
    if (s.shards == 1) {
        write_raw_safetensors(dir + "/model.safetensors", files[0]);
        return;
    }
    for (size_t f = 0; f < s.shards; f++)
        write_raw_safetensors(dir + "/model-0000" + std::to_string(f + 1) + "-of-0000" + std::to_string(s.shards) +
                                  ".safetensors",
                              files[f]);
    Json index = Json::object();
    index["metadata"] = Json::object();
    index["weight_map"] = weight_map;
    write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2));
}

// ---------------------------------------------------------------- Hugging Face's LLaMA, directly

// The logits (T, V) of LlamaForCausalLM in double, written from its definition: RMSNorm
// x / sqrt(mean x^2 + eps) * w; q, k, v projections; RoPE with inv_freq_i = theta^(-2i/D) applied by
// rotate_half, y = x cos + rotate_half(x) sin with rotate_half(x) = [-x2, x1] and cos/sin repeated
// over both halves; repeat_kv (query head h reads key/value head h / (H / KV)); causal softmax of
// q.k / sqrt(D); o_proj; SwiGLU down(silu(gate) * up); final norm; lm_head (the embedding when tied).
// interleaved: rotate the pairs (2i, 2i+1) instead (Meta's layout), a control that must differ.
std::vector<double> hf_reference_logits(const HfSpec& s, const Weights& w, const std::vector<int32_t>& tokens,
                                        bool interleaved = false) {
    const size_t T = tokens.size(), C = s.C, H = s.H, KV = s.KV, D = C / H, F = s.F, V = s.V, half = D / 2;
    auto W = [&](const std::string& name) -> const std::vector<float>& { return w.at(name).values; };
    auto matvec = [](const std::vector<float>& m, const std::vector<double>& x, size_t out, size_t in) {
        std::vector<double> y(out, 0.0);
        for (size_t o = 0; o < out; o++)
            for (size_t i = 0; i < in; i++) y[o] += double(m[o * in + i]) * x[i];
        return y;
    };
    auto rmsnorm = [&](const std::vector<double>& x, const std::vector<float>& g) {
        double ms = 0;
        for (double v : x) ms += v * v;
        const double r = 1.0 / std::sqrt(ms / double(x.size()) + s.eps);
        std::vector<double> y(x.size());
        for (size_t c = 0; c < x.size(); c++) y[c] = x[c] * r * double(g[c]);
        return y;
    };
    auto rope = [&](std::vector<double>& v, size_t heads, size_t t) {
        for (size_t h = 0; h < heads; h++) {
            double* x = v.data() + h * D;
            std::vector<double> y(D);
            for (size_t i = 0; i < half; i++) {
                const double angle = double(t) * std::pow(s.theta, -2.0 * double(i) / double(D));
                const size_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
                y[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
                y[b] = x[b] * std::cos(angle) + x[a] * std::sin(angle);
            }
            std::copy(y.begin(), y.end(), x);
        }
    };
    std::vector<std::vector<double>> x(T, std::vector<double>(C));
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < C; c++) x[t][c] = double(W("model.embed_tokens.weight")[size_t(tokens[t]) * C + c]);
    for (size_t l = 0; l < s.L; l++) {
        std::vector<std::vector<double>> q(T), k(T), v(T);
        for (size_t t = 0; t < T; t++) {
            const std::vector<double> n = rmsnorm(x[t], W(lname(l, "input_layernorm.weight")));
            q[t] = matvec(W(lname(l, "self_attn.q_proj.weight")), n, H * D, C);
            k[t] = matvec(W(lname(l, "self_attn.k_proj.weight")), n, KV * D, C);
            v[t] = matvec(W(lname(l, "self_attn.v_proj.weight")), n, KV * D, C);
            rope(q[t], H, t);
            rope(k[t], KV, t);
        }
        for (size_t t = 0; t < T; t++) {
            std::vector<double> y(H * D, 0.0);
            for (size_t h = 0; h < H; h++) {
                const size_t g = h / (H / KV);
                std::vector<double> score(t + 1);
                double top = -1e300, sum = 0;
                for (size_t j = 0; j <= t; j++) {
                    double dot = 0;
                    for (size_t d = 0; d < D; d++) dot += q[t][h * D + d] * k[j][g * D + d];
                    score[j] = dot / std::sqrt(double(D));
                    top = std::max(top, score[j]);
                }
                for (double& sc : score) sum += (sc = std::exp(sc - top));
                for (size_t j = 0; j <= t; j++)
                    for (size_t d = 0; d < D; d++) y[h * D + d] += score[j] / sum * v[j][g * D + d];
            }
            const std::vector<double> o = matvec(W(lname(l, "self_attn.o_proj.weight")), y, C, H * D);
            for (size_t c = 0; c < C; c++) x[t][c] += o[c];
            const std::vector<double> n = rmsnorm(x[t], W(lname(l, "post_attention_layernorm.weight")));
            const std::vector<double> gate = matvec(W(lname(l, "mlp.gate_proj.weight")), n, F, C);
            const std::vector<double> up = matvec(W(lname(l, "mlp.up_proj.weight")), n, F, C);
            std::vector<double> act(F);
            for (size_t f = 0; f < F; f++) act[f] = gate[f] / (1.0 + std::exp(-gate[f])) * up[f];
            const std::vector<double> down = matvec(W(lname(l, "mlp.down_proj.weight")), act, C, F);
            for (size_t c = 0; c < C; c++) x[t][c] += down[c];
        }
    }
    const std::vector<float>& head = s.tied ? W("model.embed_tokens.weight") : W("lm_head.weight");
    std::vector<double> logits(T * V);
    for (size_t t = 0; t < T; t++) {
        const std::vector<double> y = matvec(head, rmsnorm(x[t], W("model.norm.weight")), V, C);
        std::copy(y.begin(), y.end(), logits.begin() + long(t * V));
    }
    return logits;
}

// sinklab's logits (T, V) of the imported model.
std::vector<float> sinklab_logits(const std::string& weights_path, const std::vector<int32_t>& tokens) {
    const LoadedWeights lw = load_safetensors(weights_path);
    Model<CpuBackend<float>> model(lw.config, ModelUse::inference);
    std::memcpy(model.params(), lw.params.data(), lw.params.size() * sizeof(float));
    model.forward(tokens.data(), nullptr, 1, tokens.size());
    return std::vector<float>(model.acts().logits, model.acts().logits + tokens.size() * lw.config.vocab_size);
}

double max_abs_difference(const std::vector<double>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - double(b[i])));
    return m;
}

double max_abs(const std::vector<double>& a) {
    double m = 0;
    for (double v : a) m = std::max(m, std::fabs(v));
    return m;
}

// Runs the binary; returns (exit code, output).
std::pair<int, std::string> run_bin(const std::string& args, const std::string& log) {
    const int rc = testing::run(testing::sinklab_bin() + " " + args, log);
    return {rc, testing::slurp(log)};
}

}  // namespace

// ================================================================ safetensors

TEST_CASE("safetensors: float16 and bfloat16 convert exactly; headers are checked") {
    CHECK(f16_to_f32(0x3C00) == 1.0f);
    CHECK(f16_to_f32(0xC000) == -2.0f);
    CHECK(f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
    CHECK(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));
    CHECK(std::isinf(f16_to_f32(0x7C00)));
    CHECK(std::isnan(f16_to_f32(0x7E00)));
    CHECK(std::signbit(f16_to_f32(0x8000)));
    CHECK(bf16_to_f32(0x3F80) == 1.0f);
    CHECK(bf16_to_f32(0xC0490FDB >> 16) == -3.140625f);
    // every float16 value round-trips through our float32 -> f16 encoder for the normal range
    for (uint32_t bits = 0x0400; bits < 0x7C00; bits += 37) CHECK(f32_to_f16_bits(f16_to_f32(uint16_t(bits))) == bits);

    testing::TempDir dir("hf_st");
    write_raw_safetensors(dir / "mixed.safetensors", {{"a", "F32", {2, 2}, {1.5f, -2.0f, 0.25f, 3.0f}},
                                                      {"b", "F16", {3}, {0.5f, -1.0f, 2.0f}},
                                                      {"c", "BF16", {2}, {-0.75f, 8.0f}}});
    const SafetensorsFile f(dir / "mixed.safetensors");
    CHECK(f.entry("a").shape == std::vector<size_t>{2, 2});
    std::vector<float> a(4), b(3), c(2);
    f.read_f32("a", a.data());
    f.read_f32("b", b.data());
    f.read_f32("c", c.data());
    CHECK(a == std::vector<float>{1.5f, -2.0f, 0.25f, 3.0f});
    CHECK(b == std::vector<float>{0.5f, -1.0f, 2.0f});
    CHECK(c == std::vector<float>{-0.75f, 8.0f});
    CHECK_THROWS_WITH_AS(f.entry("zz"), doctest::Contains("tensor 'zz' is missing"), Error);

    // our writer's bytes read back
    const std::vector<float> values = {1, 2, 3, 4, 5, 6};
    Json meta = Json::object();
    meta["k"] = "v";
    write_safetensors_f32(dir / "w.safetensors", {{"x", {2, 3}, values.data()}, {"y", {1}, values.data() + 5}}, meta);
    const SafetensorsFile w(dir / "w.safetensors");
    std::vector<float> x(6);
    w.read_f32("x", x.data());
    CHECK(x == values);
    CHECK(w.metadata().at("k").as_string() == "v");
    CHECK(!fs::exists(dir / "w.safetensors.tmp"));

    // refusals name the file and the tensor
    write_raw_safetensors(dir / "i8.safetensors", {{"q", "I8", {4}, {}}});
    CHECK_THROWS_WITH_AS(SafetensorsFile(dir / "i8.safetensors"), doctest::Contains("dtype I8"), Error);
    write_raw_safetensors(dir / "short.safetensors", {{"q", "F32", {4}, {1, 2, 3}}});
    CHECK_THROWS_WITH_AS(SafetensorsFile(dir / "short.safetensors"), doctest::Contains("tensor 'q': data_offsets"), Error);
    write_file_atomic(dir / "cut.safetensors", std::string("\xff\xff\xff\x00\x00\x00\x00\x00{}", 10));
    CHECK_THROWS_WITH_AS(SafetensorsFile(dir / "cut.safetensors"), doctest::Contains("header length"), Error);
}

// ================================================================ import: what the model computes

TEST_CASE("import: the imported model computes Hugging Face's LLaMA (rotate_half RoPE, GQA, tied embeddings)") {
    testing::TempDir dir("hf_layer");
    const std::vector<int32_t> tokens = {3, 17, 0, 39, 5, 5, 22, 11, 8, 30, 1, 2};
    SUBCASE("one layer, 4 heads reading 2 key/value heads, tied embeddings, BF16 projections") {
        HfSpec s;
        const Weights w = make_weights(s, 11);
        write_hf_checkpoint(dir / "hf", s, w, hf_config(s));
        import_hf_checkpoint(dir / "hf", dir / "ours", false, false);
        const std::vector<double> expected = hf_reference_logits(s, w, tokens);
        const std::vector<float> got = sinklab_logits(dir / "ours/model.safetensors", tokens);
        INFO("max |logit| " << max_abs(expected));
        CHECK(max_abs(expected) > 1.0);
        CHECK(max_abs_difference(expected, got) < 1e-4);
        // the control: Meta's interleaved pairing gives other logits, so the test sees the layout
        CHECK(max_abs_difference(hf_reference_logits(s, w, tokens, true), got) > 1e-2);
        // the key/value heads were copied to their query heads: head h reads kv head h / 2
        const LoadedWeights lw = load_safetensors(dir / "ours/model.safetensors");
        CHECK(lw.config.n_heads == 4);
        const size_t C = 16, D = 4;
        const float* k_rows = lw.params.data() + make_param_table(lw.config).find("blocks.attn_qkv.weight").offset + C * C;
        const std::vector<float>& k_hf = w.at(lname(0, "self_attn.k_proj.weight")).values;
        for (size_t h = 0; h < 4; h++)
            CHECK(std::memcmp(k_rows + h * D * C, k_hf.data() + (h / 2) * D * C, D * C * 4) == 0);
        const Json record = Json::parse(testing::slurp(dir / "ours/hf_import.json"));
        CHECK(record.at("num_key_value_heads").as_int() == 2);
        CHECK(record.at("bos_token_id").as_int() == 1);
    }
    SUBCASE("two layers, multi-head, untied, F32, two shards with an index") {
        HfSpec s;
        s.L = 2;
        s.KV = 4;
        s.tied = false;
        s.dtype = "F32";
        s.shards = 2;
        s.theta = 10000.0;
        const Weights w = make_weights(s, 12);
        write_hf_checkpoint(dir / "hf2", s, w, hf_config(s));
        import_hf_checkpoint(dir / "hf2", dir / "ours2", false, false);
        const std::vector<float> got = sinklab_logits(dir / "ours2/model.safetensors", tokens);
        CHECK(max_abs_difference(hf_reference_logits(s, w, tokens), got) < 1e-4);
    }
}

TEST_CASE("import -> export -> import is bit for bit; export writes grouped-query attention back") {
    testing::TempDir dir("hf_roundtrip");
    HfSpec s;
    s.L = 2;
    s.dtype = "F32";
    const Weights w = make_weights(s, 21);
    write_hf_checkpoint(dir / "hf", s, w, hf_config(s));
    const std::string log = dir / "log.txt";
    auto [rc, out] = run_bin("import --hf " + (dir / "hf") + " --out " + (dir / "a"), log);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("2 key/value heads, expanded") != std::string::npos);
    std::tie(rc, out) = run_bin("export --checkpoint " + (dir / "a") + " --hf " + (dir / "exported"), log);
    REQUIRE(rc == 0);
    std::tie(rc, out) = run_bin("import --hf " + (dir / "exported") + " --out " + (dir / "b"), log);
    REQUIRE(rc == 0);
    CHECK(testing::slurp(dir / "a/model.safetensors") == testing::slurp(dir / "b/model.safetensors"));
    // the exported config and tensors are the original ones (F32 source; tied -> untied lm_head)
    const Json config = Json::parse(testing::slurp(dir / "exported/config.json"));
    CHECK(config.at("num_key_value_heads").as_int() == 2);
    CHECK(config.at("tie_word_embeddings").as_bool() == false);
    CHECK(config.at("rope_theta").as_number() == 500.0);
    CHECK(config.at("rms_norm_eps").as_number() == 1e-5);
    CHECK(config.at("bos_token_id").as_int() == 1);
    const SafetensorsFile exported(dir / "exported/model.safetensors");
    for (const auto& [name, t] : w) {
        std::vector<float> back(t.values.size());
        exported.read_f32(name, back.data());
        CHECK_MESSAGE(back == t.values, name);
        CHECK(exported.entry(name).shape == t.shape);
    }
    std::vector<float> head(s.V * s.C);
    exported.read_f32("lm_head.weight", head.data());
    CHECK(head == w.at("model.embed_tokens.weight").values);
    // a sinklab-trained-like model (all heads different) exports as multi-head
    ModelConfig c = preset("tiny");
    c.vocab_size = 40;
    Model<CpuBackend<float>> m(c, ModelUse::inference);
    m.init_weights(5);
    CHECK(shared_kv_heads(c, m.params()) == c.n_heads);
    export_hf_checkpoint(c, m.params(), dir / "tiny", Json(), false, false);
    import_hf_checkpoint(dir / "tiny", dir / "tiny_back", false, false);
    const LoadedWeights back = load_safetensors(dir / "tiny_back/model.safetensors");
    CHECK(std::memcmp(back.params.data(), m.params(), m.n_params() * 4) == 0);
    CHECK(model_config_to_json(back.config).dump() == model_config_to_json(c).dump());
}

TEST_CASE("import and export refuse what the model cannot represent, naming the key; nothing is written") {
    testing::TempDir dir("hf_refuse");
    const std::string log = dir / "log.txt";
    HfSpec s;
    const Weights w = make_weights(s, 31);
    auto refused_config = [&](const std::string& key, const Json& value, const std::string& message) {
        Json config = hf_config(s);
        config[key] = value;
        const std::string hf = dir / ("hf_" + key);
        write_hf_checkpoint(hf, s, w, config);
        const auto [rc, out] = run_bin("import --hf " + hf + " --out " + (dir / "out"), log);
        INFO(key << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
        CHECK(out.find("config.json") != std::string::npos);
        CHECK(!fs::exists(dir / "out"));
    };
    refused_config("attention_bias", true, "\"attention_bias\" is true");
    refused_config("mlp_bias", true, "\"mlp_bias\" is true");
    Json scaling = Json::object();
    scaling["rope_type"] = "llama3";
    scaling["factor"] = 8.0;
    refused_config("rope_scaling", scaling, "\"rope_scaling\" is set");
    refused_config("sliding_window", 4096, "\"sliding_window\" is 4096");
    refused_config("hidden_act", "gelu", "\"hidden_act\" is 'gelu'");
    refused_config("head_dim", 8, "\"head_dim\" is 8");
    refused_config("num_key_value_heads", 3, "\"num_key_value_heads\" (3) does not divide");
    refused_config("architectures", Json(std::vector<std::string>{"Qwen2ForCausalLM"}), "Qwen2ForCausalLM is not a LLaMA");
    refused_config("partial_rotary_factor", 0.5, "\"partial_rotary_factor\"");

    auto refused_dir = [&](const std::string& name, const std::string& message) {
        const auto [rc, out] = run_bin("import --hf " + (dir / name) + " --out " + (dir / "out"), log);
        INFO(name << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
        CHECK(!fs::exists(dir / "out"));
    };
    {  // a bias tensor
        Weights biased = w;
        biased["model.layers.0.self_attn.q_proj.bias"] = {"model.layers.0.self_attn.q_proj.bias", "F32", {16}, std::vector<float>(16)};
        write_hf_checkpoint(dir / "bias", s, biased, hf_config(s));
        refused_dir("bias", "tensor 'model.layers.0.self_attn.q_proj.bias' is a bias");
    }
    {  // a missing tensor, a wrong shape
        Weights missing = w;
        missing.erase(lname(0, "mlp.up_proj.weight"));
        write_hf_checkpoint(dir / "missing", s, missing, hf_config(s));
        refused_dir("missing", "tensor 'model.layers.0.mlp.up_proj.weight' is missing");
        Weights wrong = w;
        wrong[lname(0, "mlp.up_proj.weight")].shape = {12, 32};
        write_hf_checkpoint(dir / "wrong", s, wrong, hf_config(s));
        refused_dir("wrong", "has shape (12, 32), but config.json implies (24, 16)");
    }
    {  // pickles only; two files without an index; no config.json
        fs::create_directories(dir / "pickle");
        write_file_atomic(dir / "pickle/config.json", hf_config(s).dump());
        write_file_atomic(dir / "pickle/pytorch_model.bin", "x");
        refused_dir("pickle", "only PyTorch pickle weights (pytorch_model.bin)");
        write_hf_checkpoint(dir / "two", s, w, hf_config(s));
        fs::copy_file(dir / "two/model.safetensors", dir / "two/extra.safetensors");
        refused_dir("two", "no model.safetensors.index.json");
        fs::create_directories(dir / "empty");
        refused_dir("empty", "config.json: missing");
    }
    {  // --out already holds a model
        write_hf_checkpoint(dir / "ok", s, w, hf_config(s));
        fs::create_directories(dir / "taken");
        write_file_atomic(dir / "taken/model.safetensors", "old");
        const auto [rc, out] = run_bin("import --hf " + (dir / "ok") + " --out " + (dir / "taken"), log);
        CHECK(rc == 1);
        CHECK(out.find("exists (--overwrite replaces it)") != std::string::npos);
        CHECK(testing::slurp(dir / "taken/model.safetensors") == "old");
        CHECK(run_bin("import --hf " + (dir / "ok") + " --out " + (dir / "taken") + " --overwrite", log).first == 0);
        CHECK(run_bin("import --help", log).first == 0);
        CHECK(run_bin("export --help", log).first == 0);
        CHECK(run_bin("import --out x", log).second.find("--hf: required") != std::string::npos);
    }
    // export refuses variants a LLaMA config cannot describe, naming sinklab's config key
    auto refused_export = [&](const std::string& tag, ModelConfig c, const std::string& message) {
        Model<CpuBackend<float>> m(c, ModelUse::inference);
        m.init_weights(1);
        save_safetensors(dir / (tag + ".safetensors"), c, m.param_table(), m.params());
        const auto [rc, out] = run_bin("export --checkpoint " + (dir / (tag + ".safetensors")) + " --hf " + (dir / "exp"), log);
        INFO(tag << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
        CHECK(!fs::exists(dir / "exp"));
    };
    ModelConfig c = preset("tiny");
    ModelConfig sigmoid = c;
    sigmoid.attention = parse_attention("sigmoid");
    refused_export("sigmoid", sigmoid, "attention = \"sigmoid\"");
    ModelConfig nope = c;
    nope.position = PositionKind::nope;
    refused_export("nope", nope, "position = \"nope\"");
    ModelConfig post = c;
    post.post_norm = true;
    refused_export("post", post, "norm = \"post\"");
    ModelConfig gelu = c;
    gelu.ffn = FfnKind::gelu;
    refused_export("gelu", gelu, "ffn = \"gelu\"");
}

// ================================================================ tokenizer.json

namespace {

// A byte-level BPE tokenizer.json by hand. Byte b has id (b * 7 + 3) % 256 (the ids need not follow
// the bytes); merges, in rank order:
//   0: "Ġ t" -> "Ġt" (256)   1: "h e" -> "he" (257)   2: "Ġt he" -> "Ġthe" (258)
//   3: "a a" -> "aa" (259)   4: "aa a" -> "aaa" (260)
// then "abc" (261) is in the vocabulary without a merge that makes it (ignore_merges reaches it),
// and the added tokens <|endoftext|> (262, special) and "  " (263, two spaces, not special).
Json hand_tokenizer(const Json& pre_tokenizer, bool ignore_merges) {
    Json vocab = Json::object();
    for (int b = 0; b < 256; b++) vocab[bytes_to_byte_level(std::string(1, char(b)))] = (b * 7 + 3) % 256;
    const std::string G = bytes_to_byte_level(" ");
    vocab[G + "t"] = 256;
    vocab["he"] = 257;
    vocab[G + "the"] = 258;
    vocab["aa"] = 259;
    vocab["aaa"] = 260;
    vocab["abc"] = 261;
    Json model = Json::object();
    model["type"] = "BPE";
    model["dropout"] = Json();
    model["unk_token"] = Json();
    model["fuse_unk"] = false;
    model["byte_fallback"] = false;
    model["ignore_merges"] = ignore_merges;
    model["vocab"] = vocab;
    Json merges = Json::array();
    merges.push_back(G + " t");
    merges.push_back("h e");
    merges.push_back(Json(std::vector<std::string>{G + "t", "he"}));  // the newer list form
    merges.push_back("a a");
    merges.push_back("aa a");
    model["merges"] = merges;
    Json added = Json::array();
    auto add = [&](int id, const std::string& content, bool special) {
        Json a = Json::object();
        a["id"] = id;
        a["content"] = content;
        a["special"] = special;
        a["single_word"] = false;
        a["lstrip"] = false;
        a["rstrip"] = false;
        a["normalized"] = !special;
        added.push_back(a);
    };
    add(262, "<|endoftext|>", true);
    add(263, "  ", false);
    Json j = Json::object();
    j["version"] = "1.0";
    j["added_tokens"] = added;
    j["normalizer"] = Json();
    j["pre_tokenizer"] = pre_tokenizer;
    j["post_processor"] = Json();
    Json decoder = Json::object();
    decoder["type"] = "ByteLevel";
    j["decoder"] = decoder;
    j["model"] = model;
    return j;
}

Json byte_level_pre(bool add_prefix_space, bool use_regex = true) {
    Json b = Json::object();
    b["type"] = "ByteLevel";
    b["add_prefix_space"] = add_prefix_space;
    b["trim_offsets"] = true;
    b["use_regex"] = use_regex;
    return b;
}

Json llama3_pre() {
    Json split = Json::object();
    split["type"] = "Split";
    Json pattern = Json::object();
    pattern["Regex"] = kLlama3SplitPattern;
    split["pattern"] = pattern;
    split["behavior"] = "Isolated";
    split["invert"] = false;
    Json list = Json::array();
    list.push_back(split);
    list.push_back(byte_level_pre(false, false));
    Json seq = Json::object();
    seq["type"] = "Sequence";
    seq["pretokenizers"] = list;
    return seq;
}

int32_t byte_id(char b) { return int32_t((static_cast<unsigned char>(b) * 7 + 3) % 256); }

std::vector<std::string> llama3_pieces(std::string_view text) {
    std::vector<std::string> out;
    for (size_t pos = 0; pos < text.size();) {
        const size_t end = llama3_piece_end(text, pos);
        REQUIRE(end > pos);
        out.emplace_back(text.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

}  // namespace

TEST_CASE("tokenizer.json: the ByteLevel map, hand-worked merges, added tokens, ignore_merges, prefix space") {
    CHECK(byte_level_char(' ') == 0x120);   // 'Ġ'
    CHECK(byte_level_char('\n') == 0x10A);  // 'Ċ'
    CHECK(byte_level_char('a') == 'a');
    CHECK(byte_level_char(0xAD) == 0x143);  // the last of the 68 remapped bytes
    CHECK(byte_level_char(0xAE) == 0xAE);
    std::string all;
    for (int b = 0; b < 256; b++) all += char(b);
    std::string back;
    REQUIRE(byte_level_to_bytes(bytes_to_byte_level(all), back));
    CHECK(back == all);
    CHECK(!byte_level_to_bytes(" ", back));  // a raw space is not ByteLevel text

    testing::TempDir dir("hf_tok");
    write_file_atomic(dir / "tokenizer.json", hand_tokenizer(byte_level_pre(false), false).dump(2));
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    CHECK(tok.format() == "hf");
    CHECK(tok.vocab_size() == 264);
    CHECK(tok.eot_id() == 262);
    CHECK(tok.can_encode());
    // " the": Ġ t h e -> (Ġ,t) rank 0 -> Ġt h e -> (h,e) rank 1 -> Ġt he -> rank 2 -> Ġthe
    CHECK(tok.encode(" the") == std::vector<int32_t>{258});
    // "aaaaa": (a,a) merges left to right -> aa aa a; then (aa,a) -> aa aaa
    CHECK(tok.encode("aaaaa") == std::vector<int32_t>{259, 260});
    // "the" has no Ġ: t h e -> t he
    CHECK(tok.encode("the") == std::vector<int32_t>{byte_id('t'), 257});
    // "abc" is a token but no merge makes it
    CHECK(tok.encode("abc") == std::vector<int32_t>{byte_id('a'), byte_id('b'), byte_id('c')});
    // pieces: "x" "  " is the added token, whatever the pre-tokenizer would do, then "y"
    CHECK(tok.encode("x  y") == std::vector<int32_t>{byte_id('x'), 263, byte_id('y')});
    // the special token: ordinary text unless allowed
    const std::vector<int32_t> plain = tok.encode("a<|endoftext|>b");
    CHECK(std::find(plain.begin(), plain.end(), 262) == plain.end());
    CHECK(tok.decode(plain) == "a<|endoftext|>b");
    CHECK(tok.encode("a<|endoftext|>b", true) == std::vector<int32_t>{byte_id('a'), 262, byte_id('b')});
    CHECK(tok.decode({258, 263, 262}) == " the  <|endoftext|>");

    write_file_atomic(dir / "ignore.json", hand_tokenizer(byte_level_pre(false), true).dump());
    CHECK(Tokenizer::load(dir / "ignore.json").encode("abc") == std::vector<int32_t>{261});
    write_file_atomic(dir / "prefix.json", hand_tokenizer(byte_level_pre(true), false).dump());
    const Tokenizer prefixed = Tokenizer::load(dir / "prefix.json");
    CHECK(prefixed.encode("the") == std::vector<int32_t>{258});
    CHECK(prefixed.encode(" the") == std::vector<int32_t>{258});
    // no regex: the whole text is one piece, so merges cross spaces' boundaries
    write_file_atomic(dir / "noregex.json", hand_tokenizer(byte_level_pre(false, false), false).dump());
    CHECK(Tokenizer::load(dir / "noregex.json").encode("aa aa") ==
          std::vector<int32_t>{259, byte_id(' '), 259});
    CHECK(Tokenizer::load(dir / "noregex.json").split() == Tokenizer::Split::none);
}

TEST_CASE("tokenizer.json: LLaMA-3's pre-tokenizer cuts; exact round trips of arbitrary bytes") {
    CHECK(llama3_pieces("Hello world's 12345 \n\n  x!!\n") ==
          std::vector<std::string>{"Hello", " world", "'s", " ", "123", "45", " \n\n", " ", " x", "!!\n"});
    CHECK(llama3_pieces("I'LL\tgo") == std::vector<std::string>{"I", "'LL", "\tgo"});
    CHECK(llama3_pieces("a  ") == std::vector<std::string>{"a", "  "});
    CHECK(llama3_pieces("(x)") == std::vector<std::string>{"(x", ")"});
    CHECK(llama3_pieces("\xC3\xA9t\xC3\xA9 2024") == std::vector<std::string>{"\xC3\xA9t\xC3\xA9", " ", "202", "4"});

    testing::TempDir dir("hf_tok_rt");
    write_file_atomic(dir / "gpt2.json", hand_tokenizer(byte_level_pre(false), false).dump());
    write_file_atomic(dir / "llama3.json", hand_tokenizer(llama3_pre(), true).dump());
    write_file_atomic(dir / "prefix.json", hand_tokenizer(byte_level_pre(true), false).dump());
    const Tokenizer gpt2 = Tokenizer::load(dir / "gpt2.json"), llama3 = Tokenizer::load(dir / "llama3.json");
    CHECK(gpt2.split() == Tokenizer::Split::gpt2);
    CHECK(llama3.split() == Tokenizer::Split::llama3);
    Rng rng(7);
    for (int trial = 0; trial < 200; trial++) {
        std::string text(rng.below(300), '\0');
        for (char& c : text) c = char(rng.below(4) == 0 ? "a t\n"[rng.below(4)] : rng.below(256));
        CHECK(gpt2.decode(gpt2.encode(text)) == text);
        CHECK(llama3.decode(llama3.encode(text)) == text);
        CHECK(gpt2.decode(gpt2.encode(text, true)) == text);
    }
    // a long run is one piece (no cap at 256 bytes, as Hugging Face)
    const std::string long_run(1000, 'a');
    const std::vector<int32_t> ids = gpt2.encode(long_run);
    CHECK(ids == std::vector<int32_t>(500, 259));  // (a a) merges left to right; no (aa aa) merge
    CHECK(gpt2.decode(ids) == long_run);
    // the prefix space is added, so decoding gives it back too
    const Tokenizer prefixed = Tokenizer::load(dir / "prefix.json");
    CHECK(prefixed.decode(prefixed.encode("the")) == " the");
}

TEST_CASE("tokenizer.json: what the reader does not support is refused by name") {
    testing::TempDir dir("hf_tok_refuse");
    auto refused = [&](Json j, const std::string& message) {
        write_file_atomic(dir / "t.json", j.dump());
        INFO(message);
        CHECK_THROWS_WITH_AS(Tokenizer::load(dir / "t.json"), doctest::Contains(message.c_str()), Error);
    };
    const Json base = hand_tokenizer(byte_level_pre(false), false);
    Json j = base;
    j["model"]["type"] = "Unigram";
    refused(j, "\"model.type\" is Unigram");
    j = base;
    j["model"]["byte_fallback"] = true;
    refused(j, "\"model.byte_fallback\" is true");
    j = base;
    Json lower = Json::object();
    lower["type"] = "Lowercase";
    j["normalizer"] = lower;
    refused(j, "\"normalizer\" of type Lowercase");
    j = base;
    Json meta = Json::object();
    meta["type"] = "Metaspace";
    j["pre_tokenizer"] = meta;
    refused(j, "\"pre_tokenizer\" of type Metaspace");
    j = base;
    Json wp = Json::object();
    wp["type"] = "WordPiece";
    j["decoder"] = wp;
    refused(j, "\"decoder\" of type WordPiece");
    j = hand_tokenizer(llama3_pre(), false);
    j["pre_tokenizer"]["pretokenizers"].as_array()[0]["pattern"]["Regex"] = "\\w+";
    refused(j, "the regex '\\w+' is not one this reader knows");
    j = base;
    j["model"]["vocab"]["a b"] = 264;
    refused(j, "token 'a b' (id 264) is not ByteLevel text");
    j = base;
    j["model"]["merges"].push_back("he he");
    refused(j, "'he' + 'he' -> 'hehe'");
    j = base;
    j["model"]["vocab"]["xyz"] = 270;
    refused(j, "id 264 is neither");
    j = base;
    j["added_tokens"].as_array()[1]["lstrip"] = true;
    refused(j, "\"lstrip\" true");
    j = base;
    j["added_tokens"].as_array()[0]["special"] = false;
    j["added_tokens"].as_array()[1]["special"] = false;
    refused(j, "no special token");
    refused(Json::parse("{\"version\": \"1.0\"}"), "no \"model\" object");
}

// ================================================================ the commands end to end

TEST_CASE("prepare, tokenizer encode, sample and sink with a tokenizer.json and an imported model") {
    testing::TempDir dir("hf_e2e");
    const std::string log = dir / "log.txt";
    write_file_atomic(dir / "tokenizer.json", hand_tokenizer(byte_level_pre(false), false).dump());
    // a corpus of small documents
    fs::create_directories(dir / "corpus");
    Rng rng(3);
    for (int d = 0; d < 40; d++) {
        std::string text;
        for (int w = 0; w < 60; w++) text += std::string(" the aaa abc") + char('a' + rng.below(26));
        write_file_atomic(dir / ("corpus/doc" + std::to_string(d) + ".txt"), text + "\n");
    }
    auto [rc, out] = run_bin("prepare --input " + (dir / "corpus") + " --out " + (dir / "data") + " --tokenizer " +
                                 (dir / "tokenizer.json") + " --val-docs 8 --probe-docs 4 --probe-length 16 --quiet",
                             log);
    INFO(out);
    REQUIRE(rc == 0);
    const Json summary = Json::parse(testing::slurp(dir / "data/prepare.json"));
    CHECK(summary.at("vocab_size").as_int() == 264);
    std::tie(rc, out) = run_bin("tokenizer encode --tokenizer " + (dir / "tokenizer.json") + " < " + (dir / "corpus/doc0.txt"), log);
    CHECK(rc == 0);
    CHECK(out.rfind("258\n", 0) == 0);  // " the" first

    // an imported model of that vocabulary: sample (its tokenizer.json found beside it) and sink
    HfSpec s;
    s.V = 264;
    const Weights w = make_weights(s, 41);
    write_hf_checkpoint(dir / "hf", s, w, hf_config(s));
    fs::copy_file(dir / "tokenizer.json", dir / "hf/tokenizer.json");
    std::tie(rc, out) = run_bin("import --hf " + (dir / "hf") + " --out " + (dir / "model"), log);
    REQUIRE(rc == 0);
    CHECK(out.find("tokenizer.json: 264 ids") != std::string::npos);
    CHECK(fs::exists(dir / "model/tokenizer.json"));
    std::tie(rc, out) = run_bin("sample --checkpoint " + (dir / "model") + " --prompt ' the' --tokens 5 --threads 1", log);
    CHECK(rc == 0);
    CHECK(out.find(" the") != std::string::npos);
    std::tie(rc, out) = run_bin("sink --checkpoint " + (dir / "model") + " --probe-kind random --count 4 --length 16 --bos", log);
    CHECK(rc == 0);
    CHECK(out.find("fixed first token 1") != std::string::npos);
    CHECK(out.find("Sink_k %") != std::string::npos);
    std::tie(rc, out) = run_bin("sink --checkpoint " + (dir / "model") + " --probe " + (dir / "data/probe.bin") +
                                    " --json " + (dir / "sink.json"),
                                log);
    CHECK(rc == 0);
    CHECK(fs::exists(dir / "sink.json"));
    std::tie(rc, out) = run_bin("sink --checkpoint " + (dir / "model") + " --probe-kind random --bos --first-token 3", log);
    CHECK(rc == 1);
    CHECK(out.find("--bos: give either") != std::string::npos);
    // --bos without a BOS: named
    Json no_bos = hf_config(s);
    no_bos["bos_token_id"] = Json();
    write_hf_checkpoint(dir / "hf_nobos", s, w, no_bos);
    REQUIRE(run_bin("import --hf " + (dir / "hf_nobos") + " --out " + (dir / "nobos"), log).first == 0);
    std::tie(rc, out) = run_bin("sink --checkpoint " + (dir / "nobos") + " --probe-kind random --bos", log);
    CHECK(rc == 1);
    CHECK(out.find("gives no bos_token_id") != std::string::npos);
}

TEST_CASE("an inference model holds the parameters only") {
    ModelConfig c = preset("tiny");
    Model<CpuBackend<float>> m(c, ModelUse::inference);
    CHECK(m.grads() == nullptr);
    CHECK(m.adam_m() == nullptr);
    m.init_weights(1);
    const std::vector<int32_t> ids(8, 1);
    m.forward(ids.data(), ids.data(), 1, 8);
    CHECK_THROWS_WITH_AS(m.backward(), doctest::Contains("built for inference"), Error);
}
