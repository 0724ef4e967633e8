// Whole-model tests: finite-difference gradient check of the full model (double precision) under
// every attention variant, and the basic contracts of forward/backward.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <utility>
#include <vector>

#include "model/backend_cpu.h"
#include "model/model.h"
#include "sink/sink_model.h"
#include "test_helpers.h"

using namespace sinklab;

namespace {

ModelConfig tiny_config(const std::string& attention) { return testing::gradcheck_config(attention, 11, 8); }

std::vector<int32_t> random_tokens(size_t n, size_t vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

// Every named variant, the sigmoid bias, the softmax alpha, the two masks, the slots, the FFN
// types, the positions, the summed heads, the gates, the head-wise norm and post-norm: the
// configurations the whole-model tests run.
std::vector<ModelConfig> every_variant_config() {
    std::vector<AttentionSpec> specs;
    for (const std::string& name : attention_names()) specs.push_back(parse_attention(name));
    specs.push_back(parse_attention("sigmoid"));
    specs.back().score_bias = -1.0;
    specs.push_back(parse_attention("softmax"));
    specs.back().softmax_alpha = 0.5;
    for (const std::string name : {"softmax", "mlp-kernel-norm", "softpick"}) {
        specs.push_back(parse_attention(name));
        specs.back().mask = MaskKind::window;
        specs.back().window = 3;
        specs.push_back(parse_attention(name));
        specs.back().mask = MaskKind::prefix;
        specs.back().prefix = 4;
    }
    // The slots: each kind, per head and shared, with normalised and unnormalised variants and a mask.
    auto slotted = [&](const std::string& name, SlotKind slot, bool shared) {
        specs.push_back(parse_attention(name));
        specs.back().slot = slot;
        specs.back().slot_shared = shared;
        return &specs.back();
    };
    slotted("softmax", SlotKind::key, false);
    slotted("softmax", SlotKind::key_value, true);
    slotted("softmax", SlotKind::value, false);
    slotted("sigmoid-norm", SlotKind::value, true);
    slotted("sigmoid-norm", SlotKind::sink_token, false);
    slotted("elu", SlotKind::key_value, false);
    slotted("linear-kernel-norm", SlotKind::key_value, false);
    slotted("softmax", SlotKind::logit, false);
    slotted("softmax", SlotKind::logit, true);
    slotted("softmax", SlotKind::zero_logit, false);
    slotted("softpick", SlotKind::value, false);  // softpick takes the V bias only
    AttentionSpec* windowed = slotted("softmax", SlotKind::key_value, false);
    windowed->mask = MaskKind::window;
    windowed->window = 3;
    // Every spec in the tiny model, then the FFN types, the positions and the summed heads (each
    // under softmax; the entries above have SwiGLU, RoPE and concatenated heads).
    std::vector<ModelConfig> configs;
    for (const AttentionSpec& spec : specs) {
        configs.push_back(tiny_config("softmax"));
        configs.back().attention = spec;
    }
    for (const FfnKind ffn : {FfnKind::geglu, FfnKind::reglu, FfnKind::relu, FfnKind::gelu, FfnKind::swish}) {
        configs.push_back(tiny_config("softmax"));
        configs.back().ffn = ffn;
    }
    for (const PositionKind position : {PositionKind::nope, PositionKind::sinusoidal, PositionKind::learned,
                                        PositionKind::alibi, PositionKind::t5}) {
        configs.push_back(tiny_config("softmax"));
        configs.back().position = position;
    }
    configs.push_back(tiny_config("softpick"));  // softpick under a position bias
    configs.back().position = PositionKind::alibi;
    configs.push_back(tiny_config("softmax"));
    configs.back().sum_heads = true;
    for (const AttentionGate gate : {AttentionGate::headwise, AttentionGate::elementwise}) {
        configs.push_back(tiny_config("softmax"));
        configs.back().attention_gate = gate;
    }
    configs.push_back(tiny_config("softmax"));  // the head-wise RMSNorm, alone and before a gate
    configs.back().head_norm = true;
    configs.push_back(tiny_config("sigmoid"));
    configs.back().head_norm = true;
    configs.back().attention_gate = AttentionGate::elementwise;
    configs.push_back(tiny_config("sigmoid"));  // a gate with post-norm (it reads x) and summed heads
    configs.back().attention_gate = AttentionGate::headwise;
    configs.back().post_norm = true;
    configs.back().sum_heads = true;
    configs.push_back(tiny_config("softmax"));
    configs.back().post_norm = true;
    configs.push_back(tiny_config("sigmoid-norm"));
    configs.back().post_norm = true;
    configs.back().ffn = FfnKind::gelu;
    return configs;
}

}  // namespace

TEST_CASE("whole model: backward matches central finite differences for every attention variant") {
    const std::vector<ModelConfig> configs = every_variant_config();
    for (const ModelConfig& c : configs) {
        {
            Model<CpuBackend<double>> model(c);
            model.init_weights(7);
            // Larger weights than the init so that every nonlinearity is exercised (and the slot's
            // k*, v*, initialised at 0.02, as large as the other weights).
            for (size_t i = 0; i < model.n_params(); i++) model.params()[i] *= 3.0;
            for (const TensorSpec& s : model.param_table().specs())
                if (s.name.find("attn_slot") != std::string::npos)
                    for (size_t k = 0; k < s.numel; k++) model.params()[s.offset + k] *= 10.0;
            const size_t B = 2, T = 6;
            const auto inputs = random_tokens(B * T, c.vocab_size, 1);
            auto targets = random_tokens(B * T, c.vocab_size, 2);
            targets[3] = -1;  // an ignored position
            model.zero_grad();
            model.forward(inputs.data(), targets.data(), B, T);
            model.backward(1.0);
            const std::vector<double> analytic(model.grads(), model.grads() + model.n_params());

            double worst = 0.0;
            size_t worst_index = 0;
            const double h = 1e-5;  // truncation error ~h^2, rounding ~1e-16/h: both far below a real bug (>1e-3)
            // Every tensor is probed at several positions (all of them for the small ones).
            for (const TensorSpec& s : model.param_table().specs()) {
                const size_t stride = s.numel > 40 ? s.numel / 40 + 1 : 1;
                for (size_t k = 0; k < s.numel; k += stride) {
                    const size_t i = s.offset + k;
                    const double saved = model.params()[i];
                    model.params()[i] = saved + h;
                    const double up = model.forward(inputs.data(), targets.data(), B, T);
                    model.params()[i] = saved - h;
                    const double down = model.forward(inputs.data(), targets.data(), B, T);
                    model.params()[i] = saved;
                    const double numeric = (up - down) / (2 * h);
                    const double err = std::fabs(numeric - analytic[i]) / std::max(1e-4, std::fabs(numeric) + std::fabs(analytic[i]));
                    if (err > worst) {
                        worst = err;
                        worst_index = i;
                    }
                }
            }
            MESSAGE(c.attention.describe() << ", ffn " << ffn_name(c.ffn) << ", position " << position_name(c.position)
                                           << std::string(c.sum_heads ? ", heads summed" : "")
                                           << std::string(c.post_norm ? ", post-norm" : "") << ": max relative error " << worst << " at parameter " << worst_index << " of "
                                    << model.n_params());
            CHECK(worst < 1e-5);
        }
    }
}

TEST_CASE("whole model: forward rejects token ids outside the vocabulary") {
    Model<CpuBackend<float>> model(tiny_config("softmax"));
    model.init_weights(1);
    std::vector<int32_t> inputs(4, 1), targets(4, 2);
    inputs[2] = 11;
    CHECK_THROWS_WITH_AS(model.forward(inputs.data(), targets.data(), 1, 4),
                         doctest::Contains("input token id 11 at position 2 is outside the vocabulary"), Error);
}

TEST_CASE("whole model: the slot's parameters, and the (T+1)-key maps the sink measurement reads") {
    ModelConfig c = tiny_config("softmax");
    c.attention.slot = SlotKind::key_value;
    c.attention.softmax_alpha = 0.5;
    const size_t L = c.n_layers, H = c.n_heads, D = c.head_dim(), B = 2, T = 6, Tm = T + 1;
    Model<CpuBackend<double>> model(c);
    model.init_weights(3);
    size_t slot_tensors = 0;
    for (const TensorSpec& s : model.param_table().specs())
        if (s.name == "blocks.attn_slot_k" || s.name == "blocks.attn_slot_v") {
            slot_tensors++;
            CHECK(s.shape == std::vector<size_t>{L, H, D});
            double sum_sq = 0;
            for (size_t k = 0; k < s.numel; k++) sum_sq += model.params()[s.offset + k] * model.params()[s.offset + k];
            const double rms = std::sqrt(sum_sq / double(s.numel));
            CHECK(rms > 0.01);  // N(0, 0.02^2): 32 values put the rms within [0.01, 0.03] with certainty
            CHECK(rms < 0.03);
        }
    CHECK(slot_tensors == 2);
    ModelConfig shared = c;
    shared.attention.slot_shared = true;
    CHECK(shared.n_params() == c.n_params() - 2 * L * (H - 1) * D);

    const auto inputs = random_tokens(B * T, c.vocab_size, 5);
    model.keep_attention_maps(true);
    model.forward(inputs.data(), nullptr, B, T);
    const Activations<double>& a = model.acts();
    std::vector<float> att(a.att_maps, a.att_maps + L * B * H * T * T), att_slot(a.att_slot, a.att_slot + L * B * H * T), maps;
    maps_with_slot(maps, att, att_slot, L * B * H, T, float(slot_own_weight<HostMath, double>(c.attention)));
    REQUIRE(maps.size() == L * B * H * Tm * Tm);
    for (size_t m = 0; m < L * B * H; m++) {
        const float* map = maps.data() + m * Tm * Tm;
        // row 0 is the slot's own row, q_0 = 0: the slot alone, with the whole row's mass alpha
        CHECK(map[0] == doctest::Approx(0.5));
        for (size_t j = 1; j < Tm; j++) CHECK(map[j] == 0.0f);
        // every row sums to alpha over the slot and the real keys, and sees no future key
        for (size_t i = 1; i < Tm; i++) {
            double row = 0;
            for (size_t j = 0; j < Tm; j++) row += map[i * Tm + j];
            CHECK(row == doctest::Approx(0.5).epsilon(1e-5));
            for (size_t j = i + 1; j < Tm; j++) CHECK(map[i * Tm + j] == 0.0f);
            CHECK(map[i * Tm] > 0.0f);
        }
    }
}

TEST_CASE("whole model: post-norm equals its formula on a hand-made model; pre-norm keeps the residual") {
    // One block whose two branches are zero (W_o = 0, W3 = 0): pre-norm then passes x_0 through
    // unchanged, post-norm gives x_1 = RMSNorm_2(RMSNorm_1(x_0)) with the gains g1, g2, and the LM
    // head reads x_1 itself (no final norm).
    for (const bool post : {false, true}) {
        CAPTURE(post);
        ModelConfig c = tiny_config("softmax");
        c.n_layers = 1;
        c.post_norm = post;
        Model<CpuBackend<double>> model(c);
        model.init_weights(9);
        const size_t C = c.d_model, V = c.vocab_size, B = 1, T = 3, N = B * T;
        std::vector<double> g1(C), g2(C);
        for (const TensorSpec& s : model.param_table().specs()) {
            double* w = model.params() + s.offset;
            if (s.name == "blocks.attn_out.weight" || s.name == "blocks.ffn_out.weight") std::fill(w, w + s.numel, 0.0);
            for (size_t k = 0; k < C; k++) {
                if (s.name == "blocks.attn_norm.weight") w[k] = g1[k] = 0.5 + 0.1 * double(k);
                if (s.name == "blocks.ffn_norm.weight") w[k] = g2[k] = 2.0 - 0.05 * double(k);
            }
        }
        const std::vector<int32_t> inputs = {1, 4, 7};
        model.forward(inputs.data(), nullptr, B, T);
        const Activations<double>& a = model.acts();
        auto rmsnorm = [&](const double* x, const std::vector<double>& g) {
            double ms = 0;
            for (size_t k = 0; k < C; k++) ms += x[k] * x[k];
            const double r = 1.0 / std::sqrt(ms / double(C) + c.norm_eps);
            std::vector<double> y(C);
            for (size_t k = 0; k < C; k++) y[k] = x[k] * r * g[k];
            return y;
        };
        double err = 0;
        for (size_t n = 0; n < N; n++) {
            const double* x0 = a.resid + n * C;
            const double* x1 = a.resid + N * C + n * C;
            const std::vector<double> want = post ? rmsnorm(rmsnorm(x0, g1).data(), g2) : std::vector<double>(x0, x0 + C);
            for (size_t k = 0; k < C; k++) err = std::max(err, std::fabs(x1[k] - want[k]));
            if (post) {  // logits = W_head x_1
                const double* head = model.params() + model.param_table().find("lm_head.weight").offset;
                for (size_t v = 0; v < V; v++) {
                    double z = 0;
                    for (size_t k = 0; k < C; k++) z += head[v * C + k] * x1[k];
                    err = std::max(err, std::fabs(a.logits[n * V + v] - z));
                }
            }
        }
        CHECK(err < 1e-12);
        CHECK(model.param_table().contains("final_norm.weight") == !post);
    }
}

TEST_CASE("whole model: training keeps no attention maps; the keep-maps mode adds them and changes no bits") {
    // The training path keeps one value per row (att_saved, att_z: (L, B, H, T)) and no (T, T) matrix;
    // the keep-maps mode of the sink analysis adds att_maps (L, B, H, T, T) and leaves the loss and
    // every gradient bitwise as they were. T = 70 spans two query blocks of the CPU attention.
    ModelConfig c = tiny_config("softmax");
    c.attention.slot = SlotKind::key_value;
    c.attention.mask = MaskKind::window;
    c.attention.window = 40;
    c.context = 70;
    const size_t L = c.n_layers, H = c.n_heads, B = 2, T = 70;
    Model<CpuBackend<float>> model(c);
    model.init_weights(4);
    const auto inputs = random_tokens(B * T, c.vocab_size, 6), targets = random_tokens(B * T, c.vocab_size, 7);
    auto step = [&] {
        model.zero_grad();
        const double loss = model.forward(inputs.data(), targets.data(), B, T);
        model.backward(1.0);
        return std::make_pair(loss, std::vector<float>(model.grads(), model.grads() + model.n_params()));
    };
    CHECK(!model.keeps_attention_maps());
    const auto plain = step();
    CHECK(model.acts().att_maps == nullptr);
    const size_t plain_bytes = model.activation_bytes();
    model.keep_attention_maps(true);
    const auto with_maps = step();
    REQUIRE(model.acts().att_maps != nullptr);
    CHECK(model.activation_bytes() - plain_bytes == L * B * H * T * T * sizeof(float));
    CHECK(plain.first == with_maps.first);
    CHECK(plain.second == with_maps.second);
    // the maps: each row (keys and slot) sums to one
    for (size_t r = 0; r < L * B * H * T; r++) {
        double row = model.acts().att_slot[r];
        for (size_t j = 0; j < T; j++) row += model.acts().att_maps[r * T + j];
        CHECK(row == doctest::Approx(1.0).epsilon(1e-5));
    }
    model.keep_attention_maps(false);
    step();
    CHECK(model.acts().att_maps == nullptr);
    CHECK(model.activation_bytes() == plain_bytes);
}

TEST_CASE("whole model: loss, gradients and the AdamW update are bitwise the same for 1, 2 and 3 threads") {
    // The trainer changes its thread count between steps when other processes share the machine
    // (src/util/cpu_share.h); that is only safe because no result depends on it. Every variant, at
    // a width where the GEMMs are split between threads (over 2 MFLOP) and T = 70 (two query blocks).
    const int saved_threads = omp_get_max_threads();
    for (ModelConfig c : every_variant_config()) {
        c.d_model = 64;
        c.n_heads = 4;
        c.d_ffn = 160;
        c.vocab_size = 300;
        c.context = 70;
        const size_t B = 2, T = 70;
        const auto inputs = random_tokens(B * T, c.vocab_size, 3), targets = random_tokens(B * T, c.vocab_size, 4);
        struct Result {
            double loss;
            std::vector<float> grads, params;
        };
        auto run = [&](int threads) {
            omp_set_num_threads(threads);
            Model<CpuBackend<float>> model(c);
            model.init_weights(5);
            model.zero_grad();
            Result r;
            r.loss = model.forward(inputs.data(), targets.data(), B, T);
            model.backward(1.0);
            r.grads.assign(model.grads(), model.grads() + model.n_params());
            const double norm = model.grad_norm();
            model.adamw_step(AdamWHyper{}, 1, 1.0 / norm);
            r.params.assign(model.params(), model.params() + model.n_params());
            return r;
        };
        const Result one = run(1);
        for (int threads : {2, 3}) {
            const Result many = run(threads);
            INFO(c.attention.describe() << ", ffn " << ffn_name(c.ffn) << ", position " << position_name(c.position)
                                        << ", " << threads << " threads");
            CHECK(many.loss == one.loss);
            CHECK(many.grads == one.grads);
            CHECK(many.params == one.params);
        }
    }
    omp_set_num_threads(saved_threads);
}
