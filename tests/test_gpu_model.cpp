// The whole model on the GPU: Model<CudaBackend> against Model<CpuBackend<float>> over 10 AdamW
// steps (same initialisation, same data), for every attention variant; and bitwise determinism
// of the GPU run. Skipped (exit code 77) when no GPU is visible.
//
// Tolerances on the per-step losses (relative): fp32 1e-4 (the two backends sum in different
// orders; ten optimizer steps let the differences grow a little); bf16 2e-2 (matmuls and attention
// on bf16 tensor cores; the loss itself is fp32).
#include "gpu_test_util.h"

#include <algorithm>
#include <string>

#include "model/backend_cpu.h"
#include "model/model.h"

using namespace sinklab;
using namespace gpu_test;
using cuda::Precision;

namespace {

ModelConfig test_config(const std::string& attention) {
    ModelConfig c;
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_model = 128;  // head dim 64
    c.d_ffn = 256;
    c.vocab_size = 512;
    c.context = 128;
    c.attention = parse_attention(attention);
    return c;
}

std::vector<int32_t> random_ids(size_t n, size_t vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

struct RunResult {
    std::vector<double> losses, grad_norms;
    std::vector<float> params;
};

// `steps` steps: forward, backward, clip at 1.0, AdamW. Default batch 2 x 100 tokens (not a multiple
// of the attention tiles), one ignored target.
template <class Backend>
RunResult train(const ModelConfig& config, size_t steps = 10, size_t B = 2, size_t T = 100) {
    Model<Backend> model(config);
    model.init_weights(42);
    AdamWHyper hp;
    hp.lr = 1e-3;
    RunResult r;
    for (size_t step = 1; step <= steps; step++) {
        const auto inputs = random_ids(B * T, config.vocab_size, 100 + step);
        auto targets = random_ids(B * T, config.vocab_size, 200 + step);
        targets[7] = -1;
        model.zero_grad();
        r.losses.push_back(model.forward(inputs.data(), targets.data(), B, T));
        model.backward(1.0);
        const double norm = model.grad_norm();
        r.grad_norms.push_back(norm);
        model.adamw_step(hp, step, norm > 1.0 ? 1.0 / norm : 1.0);
    }
    r.params.resize(model.n_params());
    Backend::download(r.params.data(), model.params(), model.n_params());
    return r;
}

double worst_rel(const std::vector<double>& a, const std::vector<double>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); i++) worst = std::max(worst, std::fabs(a[i] - b[i]) / std::fabs(b[i]));
    return worst;
}

}  // namespace

TEST_CASE("whole model: 10 training steps match the CPU, every attention variant, fp32") {
    PrecisionScope scope(Precision::fp32);
    for (const std::string& name : attention_names()) {
        const ModelConfig config = test_config(name);
        const RunResult cpu = train<CpuBackend<float>>(config);
        const RunResult gpu = train<CudaBackend>(config);
        const double e_loss = worst_rel(gpu.losses, cpu.losses), e_norm = worst_rel(gpu.grad_norms, cpu.grad_norms);
        const double e_params = rel_err(gpu.params, cpu.params);
        MESSAGE("fp32 " << name << ": losses " << cpu.losses.front() << " -> " << cpu.losses.back()
                        << "; worst rel err loss " << e_loss << " grad norm " << e_norm << " params " << e_params);
        CHECK(e_loss <= 1e-4);
        CHECK(e_norm <= 1e-3);
        CHECK(e_params <= 1e-4);
    }
}

// The `small` preset (4 layers, width 128, 4 heads of 32, SwiGLU 384, vocabulary 2048) for 20
// steps at batch 4 x 256: per-step losses and gradient norms within 1e-5 relative of the CPU's.
TEST_CASE("small preset: 20 training steps match the CPU within 1e-5, every attention variant, fp32") {
    PrecisionScope scope(Precision::fp32);
    for (const std::string& name : attention_names()) {
        ModelConfig config = preset("small");
        config.attention = parse_attention(name);
        const RunResult cpu = train<CpuBackend<float>>(config, 20, 4, 256);
        const RunResult gpu = train<CudaBackend>(config, 20, 4, 256);
        const double e_loss = worst_rel(gpu.losses, cpu.losses), e_norm = worst_rel(gpu.grad_norms, cpu.grad_norms);
        MESSAGE("small fp32 " << name << ": losses " << cpu.losses.front() << " -> " << cpu.losses.back()
                              << "; worst rel err over 20 steps: loss " << e_loss << ", grad norm " << e_norm
                              << "; params after 20 steps " << rel_err(gpu.params, cpu.params));
        CHECK(e_loss <= 1e-5);
        CHECK(e_norm <= 1e-5);
    }
}

TEST_CASE("whole model: 10 training steps close to the CPU in bf16") {
    PrecisionScope scope(Precision::bf16);
    for (const std::string& name : {std::string("softmax"), std::string("sigmoid"), std::string("softpick")}) {
        const ModelConfig config = test_config(name);
        const RunResult cpu = train<CpuBackend<float>>(config);
        const RunResult gpu = train<CudaBackend>(config);
        const double e_loss = worst_rel(gpu.losses, cpu.losses);
        MESSAGE("bf16 " << name << ": worst rel err loss " << e_loss);
        CHECK(e_loss <= 2e-2);
    }
}

TEST_CASE("whole model: GPU training is bitwise deterministic") {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
        PrecisionScope scope(p);
        const ModelConfig config = test_config("softmax");
        const RunResult a = train<CudaBackend>(config, 5);
        const RunResult b = train<CudaBackend>(config, 5);
        CHECK(a.losses == b.losses);
        CHECK(a.grad_norms == b.grad_norms);
        CHECK(bitwise_equal(a.params, b.params));
    }
}

TEST_CASE("whole model: the materialising attention path matches the CPU weights") {
    PrecisionScope scope(Precision::fp32);
    const ModelConfig config = test_config("softmax");
    Model<CpuBackend<float>> cpu(config);
    Model<CudaBackend> gpu(config);
    cpu.init_weights(3);
    gpu.init_weights(3);
    const size_t B = 1, T = 64, H = config.n_heads, C = config.d_model;
    const auto inputs = random_ids(B * T, config.vocab_size, 9);
    cpu.keep_attention_maps(true);
    cpu.forward(inputs.data(), nullptr, B, T);
    gpu.forward(inputs.data(), nullptr, B, T);
    // Layer 1's weights from its post-RoPE qkv.
    const size_t N = B * T;
    DeviceBuffer<float> att(B * H * T * T), z(B * H * T);
    cuda::attention_weights(att.ptr, z.ptr, nullptr, gpu.acts().qkv_rope + 1 * N * 3 * C, nullptr, B, T, C, H,
                            config.attention);
    const std::vector<float> want(cpu.acts().att_maps + 1 * B * H * T * T, cpu.acts().att_maps + 2 * B * H * T * T);
    CHECK(rel_err(att.host(), want) <= 1e-4);
}

int main(int argc, char** argv) { return gpu_test::run("test_gpu_model", argc, argv); }
