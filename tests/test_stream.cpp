// The rolling KV cache (src/model/kv_cache.h) and `sinklab stream`: the incremental path against
// the batched forward, the eviction bookkeeping, positions inside the cache, and the command's
// errors and outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "data/tokenizer.h"
#include "model/backend_cpu.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "test_helpers.h"
#include "data/shard.h"
#include "train/checkpoint.h"
#include "train/run_reader.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/rng.h"

using namespace sinklab;

namespace {

using DoubleModel = Model<CpuBackend<double>>;

ModelConfig tiny_config(const std::string& attention = "softmax") { return testing::gradcheck_config(attention, 13, 24); }

// A random model whose every parameter is moved off its initialisation (so that the slots, the
// gates and the norm gains all matter).
void randomize(DoubleModel& model, uint64_t seed) {
    model.init_weights(seed);
    Rng rng(seed + 99);
    double* p = model.params();
    for (size_t i = 0; i < model.n_params(); i++) p[i] += 0.3 * rng.normal();
}

std::vector<int32_t> random_tokens(size_t n, size_t vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

// The batched forward's per-position losses of a document: loss[t] = -log p(tokens[t + 1] | tokens[0..t]).
std::vector<double> batched_losses(DoubleModel& model, const std::vector<int32_t>& tokens) {
    const size_t T = tokens.size() - 1;
    model.forward(tokens.data(), tokens.data() + 1, 1, T);
    return std::vector<double>(model.acts().losses, model.acts().losses + T);
}

std::vector<double> streamed(const ModelConfig& c, const double* params, CachePolicy policy,
                             const std::vector<int32_t>& tokens) {
    KvCacheModel<double> kv(c, params, policy, tokens.size());
    return stream_document(kv, tokens, [](size_t) {});
}

}  // namespace

TEST_CASE("stream: without eviction the three modes are bitwise equal and match the batched forward") {
    std::vector<std::pair<std::string, ModelConfig>> configs;
    auto add = [&](const std::string& name, ModelConfig c) { configs.push_back({name, c}); };
    add("softmax", tiny_config("softmax"));
    add("sigmoid", tiny_config("sigmoid"));
    {
        ModelConfig c = tiny_config("sigmoid");
        c.attention.score_bias = -1.5;
        add("sigmoid with a bias", c);
    }
    add("sigmoid-norm", tiny_config("sigmoid-norm"));
    add("elu", tiny_config("elu"));
    add("linear-kernel-norm", tiny_config("linear-kernel-norm"));
    const std::pair<const char*, SlotKind> slots[] = {{"k-bias", SlotKind::key},          {"kv-bias", SlotKind::key_value},
                                                      {"sink-token", SlotKind::sink_token}, {"v-bias", SlotKind::value},
                                                      {"sink-logit", SlotKind::logit},     {"off-by-one", SlotKind::zero_logit}};
    for (const auto& [name, slot] : slots) {
        ModelConfig c = tiny_config("softmax");
        c.attention.slot = slot;
        add(std::string("softmax, slot ") + name, c);
    }
    {
        ModelConfig c = tiny_config("sigmoid");
        c.attention.slot = SlotKind::key_value;
        c.attention.slot_shared = true;
        add("sigmoid, shared kv-bias", c);
    }
    {
        ModelConfig c = tiny_config("softmax");
        c.attention.softmax_alpha = 0.5;
        add("softmax alpha 0.5", c);
    }
    {
        ModelConfig c = tiny_config("softmax");
        c.attention.mask = MaskKind::window;
        c.attention.window = 5;
        add("softmax, window mask 5", c);
    }
    for (const AttentionGate gate : {AttentionGate::headwise, AttentionGate::elementwise}) {
        ModelConfig c = tiny_config("softmax");
        c.attention_gate = gate;
        add("gate " + attention_gate_name(gate), c);
    }
    {
        ModelConfig c = tiny_config("softmax");
        c.post_norm = true;
        add("post-norm", c);
    }
    {
        ModelConfig c = tiny_config("softmax");  // the head-wise RMSNorm, before a gate
        c.head_norm = true;
        add("head norm", c);
        c.attention_gate = AttentionGate::headwise;
        add("head norm and gate", c);
    }
    add("softpick", tiny_config("softpick"));
    {
        ModelConfig c = tiny_config("softmax");
        c.sum_heads = true;
        add("heads summed", c);
    }
    for (const FfnKind ffn : {FfnKind::geglu, FfnKind::reglu, FfnKind::relu, FfnKind::gelu, FfnKind::swish}) {
        ModelConfig c = tiny_config("softmax");
        c.ffn = ffn;
        add("ffn " + ffn_name(ffn), c);
    }
    for (const PositionKind position :
         {PositionKind::nope, PositionKind::sinusoidal, PositionKind::learned, PositionKind::alibi, PositionKind::t5}) {
        ModelConfig c = tiny_config("softmax");
        c.position = position;
        add("position " + position_name(position), c);
    }

    const std::vector<int32_t> tokens = random_tokens(21, 13, 7);
    const size_t N = tokens.size();
    for (size_t k = 0; k < configs.size(); k++) {
        const auto& [name, config] = configs[k];
        CAPTURE(name);
        DoubleModel model(config);
        randomize(model, 11 + k);
        const std::vector<double> batched = batched_losses(model, tokens);
        const std::vector<double> full = streamed(config, model.params(), CachePolicy{0, 0}, tokens);
        const std::vector<double> window = streamed(config, model.params(), CachePolicy{N, 0}, tokens);
        const std::vector<double> sinks = streamed(config, model.params(), CachePolicy{N, 4}, tokens);
        REQUIRE(full.size() == N - 1);
        CHECK(window == full);  // bitwise: the same computation
        CHECK(sinks == full);
        double worst = 0;
        for (size_t t = 0; t < full.size(); t++)
            worst = std::max(worst, std::fabs(full[t] - batched[t]) / std::max(1.0, std::fabs(batched[t])));
        CAPTURE(worst);
        CHECK(worst < 1e-6);
    }
}

TEST_CASE("stream: eviction keeps the first K and the last W - K document indices") {
    const ModelConfig config = tiny_config("softmax");
    DoubleModel model(config);
    randomize(model, 3);
    const std::vector<int32_t> tokens = random_tokens(20, 13, 5);
    for (const size_t keep : {size_t(0), size_t(2), size_t(4)}) {
        CAPTURE(keep);
        const size_t W = 7;
        KvCacheModel<double> kv(config, model.params(), CachePolicy{W, keep}, tokens.size());
        for (size_t t = 0; t < tokens.size(); t++) {
            kv.step(tokens[t]);
            // expected: all of 0..t while they fit; then 0..K-1 and the last W - K up to t
            std::vector<size_t> expected;
            if (t + 1 <= W) {
                for (size_t i = 0; i <= t; i++) expected.push_back(i);
            } else {
                for (size_t i = 0; i < keep; i++) expected.push_back(i);
                for (size_t i = t + 1 - (W - keep); i <= t; i++) expected.push_back(i);
            }
            CAPTURE(t);
            CHECK(kv.cached_indices() == expected);
            CHECK(kv.cached_indices().size() <= W);
            for (size_t i = 0; i < std::min(keep, t + 1); i++) CHECK(kv.cached_indices()[i] == i);  // never evicted
        }
    }
    // The full context never evicts.
    KvCacheModel<double> full(config, model.params(), CachePolicy{0, 0}, tokens.size());
    for (size_t t = 0; t < tokens.size(); t++) full.step(tokens[t]);
    CHECK(full.cached_indices().size() == tokens.size());
    CHECK_THROWS_AS(full.step(tokens[0]), Error);  // no room beyond the document it was sized for
}

TEST_CASE("stream: positions inside the cache, and keys computed once") {
    // One layer: a token's stored k and v depend on the token alone (RoPE is applied at use, by
    // slot), so the NLL after each step equals the batched forward over exactly the cached tokens
    // (their positions = their slots). Under RoPE, ALiBi and NoPE.
    const std::vector<int32_t> tokens = random_tokens(24, 13, 9);
    for (const PositionKind position : {PositionKind::rope, PositionKind::alibi, PositionKind::nope}) {
        CAPTURE(position_name(position));
        ModelConfig config = tiny_config("softmax");
        config.n_layers = 1;
        config.position = position;
        DoubleModel model(config);
        randomize(model, 21);
        KvCacheModel<double> kv(config, model.params(), CachePolicy{6, 2}, tokens.size());
        for (size_t t = 0; t + 1 < tokens.size(); t++) {
            const double nll = token_nll(kv.step(tokens[t]), config.vocab_size, tokens[t + 1]);
            std::vector<int32_t> cached;
            for (size_t i : kv.cached_indices()) cached.push_back(tokens[i]);
            cached.push_back(tokens[t + 1]);
            const std::vector<double> fresh = batched_losses(model, cached);
            CAPTURE(t);
            CHECK(nll == doctest::Approx(fresh.back()).epsilon(1e-9));
        }
    }
    // Two layers: the layer-1 keys of the kept tokens were computed when they were read, from what
    // the cache held then, so after evictions the stream differs from recomputing the window.
    ModelConfig config = tiny_config("softmax");
    DoubleModel model(config);
    randomize(model, 22);
    KvCacheModel<double> kv(config, model.params(), CachePolicy{6, 0}, tokens.size());
    size_t differing = 0;
    for (size_t t = 0; t + 1 < tokens.size(); t++) {
        const double nll = token_nll(kv.step(tokens[t]), config.vocab_size, tokens[t + 1]);
        std::vector<int32_t> cached;
        for (size_t i : kv.cached_indices()) cached.push_back(tokens[i]);
        cached.push_back(tokens[t + 1]);
        const double fresh = batched_losses(model, cached).back();
        if (t < 6) CHECK(nll == doctest::Approx(fresh).epsilon(1e-9));  // nothing evicted yet
        if (std::fabs(nll - fresh) > 1e-6) differing++;
    }
    CHECK(differing > 10);
}

TEST_CASE("stream: unsupported variants are refused by name") {
    for (const char* name : {"elu-kernel", "mlp-kernel-norm"}) {
        const ModelConfig config = tiny_config(name);
        CHECK(kv_cache_unsupported(config).find(name) != std::string::npos);
    }
    ModelConfig prefix = tiny_config("softmax");
    prefix.attention.mask = MaskKind::prefix;
    prefix.attention.prefix = 4;
    CHECK(kv_cache_unsupported(prefix).find("prefix") != std::string::npos);
    DoubleModel model(tiny_config("softmax"));
    CHECK_THROWS_AS(KvCacheModel<double>(prefix, model.params(), CachePolicy{8, 2}, 10), Error);
    CHECK_THROWS_AS(KvCacheModel<double>(tiny_config("softmax"), model.params(), CachePolicy{8, 8}, 10), Error);
    ModelConfig learned = tiny_config("softmax");
    learned.position = PositionKind::learned;
    DoubleModel learned_model(learned);
    CHECK_THROWS_AS(KvCacheModel<double>(learned, learned_model.params(), CachePolicy{0, 0}, 25), Error);
}

TEST_CASE("stream command: outputs, and bad input named with exit 1") {
    testing::TempDir dir("stream");
    // A tokenizer and a random model over its vocabulary.
    const std::string text =
        "The scheduler picks the next task to run. The scheduler keeps a run queue per CPU, and the "
        "load balancer moves tasks between the queues when one CPU is idle and another is busy. ";
    WordCounts words;
    words.add_text(text);
    const Tokenizer tok = Tokenizer::train(words, 270);
    tok.save(dir / "tokenizer.bin");
    ModelConfig config = tiny_config("softmax");
    config.vocab_size = tok.vocab_size();
    config.context = 64;
    Model<CpuBackend<float>> model(config);
    model.init_weights(4);
    save_safetensors(dir / "model.safetensors", config, model.param_table(), model.params());
    std::string doc;
    for (int i = 0; i < 3; i++) doc += text;
    {
        std::FILE* f = std::fopen((dir / "doc.txt").c_str(), "wb");
        std::fwrite(doc.data(), 1, doc.size(), f);
        std::fclose(f);
        f = std::fopen((dir / "empty.txt").c_str(), "wb");
        std::fclose(f);
    }

    const std::string bin = testing::sinklab_bin();
    const std::string log = dir / "log.txt";
    auto run = [&](const std::string& arguments) {
        return testing::run(bin + " stream " + arguments, log);
    };
    const std::string base = fmt::format("--checkpoint {} --tokenizer {}", dir / "model.safetensors", dir / "tokenizer.bin");

    // a good run: the table, and three files with the per-position NLLs
    REQUIRE(run(fmt::format("{} --text {} --window 8 --keep-first 2 --tokens 40 --bin 8 --out {}", base,
                            dir / "doc.txt", dir / "out")) == 0);
    const std::string printed = testing::slurp(log);
    for (const char* row : {"full context", "window 8 (K = 0)", "streaming 2 + 6", "perplexity"})
        CHECK_MESSAGE(printed.find(row) != std::string::npos, printed);
    const Json report = Json::parse(read_file(dir / "out/stream.json"));
    REQUIRE(report.at("modes").size() == 3);
    CHECK(report.at("tokens").as_int() == 40);
    for (const Json& m : report.at("modes").as_array()) {
        CHECK(m.at("nll").size() == 39);
        CHECK(std::isfinite(m.at("perplexity").as_number()));
    }
    const std::string csv = read_file(dir / "out/stream.csv");
    CHECK(csv.rfind("position,token,full,window,streaming\n", 0) == 0);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 40);
    const std::string svg = read_file(dir / "out/stream.svg");
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK(svg.find("</svg>") != std::string::npos);

    // bad input: a named error, exit 1, nothing written
    struct Bad {
        std::string arguments, names;
    };
    const std::vector<Bad> bad = {
        {fmt::format("--checkpoint {} --text {} --window 8", dir / "missing", dir / "doc.txt"), "--checkpoint"},
        {fmt::format("{} --text {} --window 0", base, dir / "doc.txt"), "--window"},
        {fmt::format("{} --text {} --window 8 --keep-first 8", base, dir / "doc.txt"), "--keep-first"},
        {fmt::format("{} --text {} --window 8 --keep-first 9", base, dir / "doc.txt"), "--keep-first"},
        {fmt::format("{} --text {} --window 8", base, dir / "empty.txt"), "empty"},
        {fmt::format("{} --text {} --window 8", base, dir / "nothing.txt"), "--text"},
        {fmt::format("{} --window 8", base), "--text"},
        {fmt::format("{} --text {}", base, dir / "doc.txt"), "--window"},
        {fmt::format("{} --text {} --window 8 --first-token x", base, dir / "doc.txt"), "--first-token"},
    };
    for (const Bad& b : bad) {
        const std::string out = dir / "bad_out";
        CAPTURE(b.arguments);
        CHECK(run(b.arguments + " --out " + out) == 1);
        const std::string message = testing::slurp(log);
        CHECK_MESSAGE(message.find(b.names) != std::string::npos, message);
        CHECK(!file_exists(out));
    }
    CHECK(run("--help") == 0);
}

TEST_CASE("stream: the run's tokenizer and first token, for a run trained from another directory") {
    testing::TempDir dir("stream_run");
    // base/data/shards/{train_000.bin, tokenizer.bin} and base/runs/r/config.json naming the shards
    // relative to base (where it was trained), read from a working directory elsewhere
    std::filesystem::create_directories(dir / "data/shards");
    std::filesystem::create_directories(dir / "runs/r/checkpoints/step_0000010");
    write_shard(dir / "data/shards/train_000.bin", {1, 2, 3});
    write_file_atomic(dir / "data/shards/tokenizer.bin", "not read here");
    write_file_atomic(dir / "runs/r/config.json",
                      R"({"model": {}, "train": {"data": "data/shards/train_*.bin", "first_token": 7}})");
    const std::string weights = dir / "runs/r/checkpoints/step_0000010/model.safetensors";
    CHECK(std::filesystem::equivalent(find_run_tokenizer(weights), dir / "data/shards/tokenizer.bin"));
    const Json train = checkpoint_train_config(dir / "runs/r", weights);
    CHECK(resolve_first_token("auto", train) == 7);
    CHECK(resolve_first_token("none", train) == -1);
    CHECK(resolve_first_token("3", train) == 3);
    CHECK_THROWS_AS(resolve_first_token("x", train), Error);
    CHECK(resolve_first_token("auto", Json()) == -1);
    std::filesystem::remove_all(dir / "data/shards/tokenizer.bin");
    try {
        find_run_tokenizer(weights);
        FAIL("no tokenizer should have been found");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("--tokenizer") != std::string::npos);
    }
}
