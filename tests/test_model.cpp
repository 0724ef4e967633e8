// Whole-model tests: finite-difference gradient check of the full model (double precision) under
// every attention variant, and the basic contracts of forward/backward.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "model/backend_cpu.h"
#include "model/model.h"

using namespace sinklab;

namespace {

ModelConfig tiny_config(const std::string& attention) {
    ModelConfig c = preset("tiny");
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_model = 8;
    c.d_ffn = 12;
    c.vocab_size = 11;
    c.context = 8;
    c.attention = parse_attention(attention);
    return c;
}

std::vector<int32_t> random_tokens(size_t n, size_t vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

}  // namespace

TEST_CASE("whole model: backward matches central finite differences for every attention variant") {
    // Every named variant, the sigmoid bias, the softmax alpha and the two masks.
    std::vector<AttentionSpec> specs;
    for (const std::string& name : attention_names()) specs.push_back(parse_attention(name));
    specs.push_back(parse_attention("sigmoid"));
    specs.back().score_bias = -1.0;
    specs.push_back(parse_attention("softmax"));
    specs.back().softmax_alpha = 0.5;
    for (const std::string name : {"softmax", "mlp-kernel-norm"}) {
        specs.push_back(parse_attention(name));
        specs.back().mask = MaskKind::window;
        specs.back().window = 3;
        specs.push_back(parse_attention(name));
        specs.back().mask = MaskKind::prefix;
        specs.back().prefix = 4;
    }
    for (const AttentionSpec& spec : specs) {
        {
            ModelConfig c = tiny_config("softmax");
            c.attention = spec;
            Model<CpuBackend<double>> model(c);
            model.init_weights(7);
            // Larger weights than the init so that every nonlinearity is exercised.
            for (size_t i = 0; i < model.n_params(); i++) model.params()[i] *= 3.0;
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
            MESSAGE(spec.describe() << ": max relative error " << worst << " at parameter " << worst_index << " of "
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
