// GPU benchmark (run by tools/gpu_check.sh): the fused attention kernels alone, and whole-model
// training throughput of tinyllama-60m, on the first GPU, in bf16 mode.
//   bench_gpu [--json PATH] [--quick]
// Attention: forward and backward TFLOP/s for softmax and sigmoid at head dims 96 and 128 and
// contexts 2048 and 4096 (16 heads, 16384 tokens per call). Causal FLOPs, FlashAttention's
// convention: forward 4 B H T^2 D / 2, backward 2.5x forward (the work a backward must do; ours
// recomputes more, which shows as a lower rate).
// Model: tinyllama-60m (SPEC.md section 2) at context 2048, batch 8 x 2048 tokens, random tokens;
// tokens/s over timed steps (forward, backward, grad norm, AdamW) and bf16 model FLOP utilisation
// = train_flops_per_token x tokens/s / 989 TFLOP/s (the H100/H200 SXM dense bf16 peak).
// Times: host clock around synchronised repetitions, median; warm-up first.
#ifdef SINKLAB_WITH_CUDA
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backend_cuda.h"
#include "cuda_api.h"
#include "json.h"
#include "model.h"
#include "rng.h"

using namespace sinklab;

namespace {

constexpr double kPeakBf16 = 989e12;

double seconds_now() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

template <class F>
double median_seconds(F&& f, int warmup, int reps) {
    for (int i = 0; i < warmup; i++) f();
    CudaBackend::synchronize();
    std::vector<double> t;
    for (int i = 0; i < reps; i++) {
        const double t0 = seconds_now();
        f();
        CudaBackend::synchronize();
        t.push_back(seconds_now() - t0);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

std::vector<float> random_normal(size_t n, uint64_t seed) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = float(rng.normal());
    return v;
}

// Device inputs shared by every attention configuration (16384 tokens, up to 16 heads of 128):
// random once, each configuration reads a prefix.
struct AttentionBuffers {
    static constexpr size_t kTokens = 16384, kMaxC = 16 * 128;
    float *qkv, *dout, *out, *saved, *z, *dqkv;
    AttentionBuffers() {
        const auto q = random_normal(kTokens * 3 * kMaxC, 1), d = random_normal(kTokens * kMaxC, 2);
        qkv = CudaBackend::alloc<float>(q.size());
        dout = CudaBackend::alloc<float>(d.size());
        out = CudaBackend::alloc<float>(kTokens * kMaxC);
        saved = CudaBackend::alloc<float>(kTokens * 16);
        z = CudaBackend::alloc<float>(kTokens * 16);
        dqkv = CudaBackend::alloc<float>(q.size());
        CudaBackend::upload(qkv, q.data(), q.size());
        CudaBackend::upload(dout, d.data(), d.size());
    }
    ~AttentionBuffers() {
        for (float* p : {qkv, dout, out, saved, z, dqkv}) CudaBackend::release(p);
    }
};

Json bench_attention(AttentionBuffers& buf, const std::string& variant, size_t D, size_t T, bool quick) {
    const size_t H = 16, B = AttentionBuffers::kTokens / T, C = H * D;
    const AttentionSpec spec = parse_attention(variant);
    const int reps = quick ? 3 : 10;
    const double fwd = median_seconds(
        [&] { CudaBackend::attention_forward(buf.out, buf.saved, buf.z, buf.qkv, B, T, C, H, spec); }, 2, reps);
    const double bwd = median_seconds(
        [&] { CudaBackend::attention_backward(buf.dqkv, buf.dout, buf.out, buf.qkv, buf.saved, buf.z, B, T, C, H, spec); }, 2,
        reps);
    const double flops_fwd = 4.0 * double(B * H) * double(T) * double(T) * double(D) / 2.0;
    Json j = Json::object();
    j["bench"] = "attention";
    j["variant"] = variant;
    j["head_dim"] = double(D);
    j["context"] = double(T);
    j["batch"] = double(B);
    j["heads"] = double(H);
    j["fwd_ms"] = fwd * 1e3;
    j["bwd_ms"] = bwd * 1e3;
    j["fwd_tflops"] = flops_fwd / fwd / 1e12;
    j["bwd_tflops"] = 2.5 * flops_fwd / bwd / 1e12;
    return j;
}

Json bench_model(const std::string& variant, bool quick) {
    ModelConfig config = preset("tinyllama-60m");
    config.attention = parse_attention(variant);
    const size_t B = 8, T = 2048;
    Model<CudaBackend> model(config);
    model.init_weights(1);
    AdamWHyper hp;
    Rng rng(5);
    std::vector<int32_t> inputs(B * T), targets(B * T);
    for (size_t i = 0; i < B * T; i++) {
        inputs[i] = int32_t(rng.below(config.vocab_size));
        targets[i] = int32_t(rng.below(config.vocab_size));
    }
    size_t step = 0;
    double loss = 0;
    auto train_step = [&] {
        step++;
        model.zero_grad();
        loss = model.forward(inputs.data(), targets.data(), B, T);
        model.backward(1.0);
        const double norm = model.grad_norm();
        model.adamw_step(hp, step, norm > 1.0 ? 1.0 / norm : 1.0);
    };
    const double t = median_seconds(train_step, 2, quick ? 3 : 6);
    const double tokens_per_s = double(B * T) / t;
    const double mfu = config.train_flops_per_token(T) * tokens_per_s / kPeakBf16;
    Json j = Json::object();
    j["bench"] = "model";
    j["preset"] = "tinyllama-60m";
    j["variant"] = variant;
    j["batch"] = double(B);
    j["context"] = double(T);
    j["step_ms"] = t * 1e3;
    j["tokens_per_s"] = tokens_per_s;
    j["mfu_bf16"] = mfu;
    j["loss_last"] = loss;
    j["activation_gib"] = double(model.activation_bytes()) / double(1 << 30);
    return j;
}

}  // namespace

int main(int argc, char** argv) {
    std::string json_path;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else {
            std::fprintf(stderr, "usage: bench_gpu [--json PATH] [--quick]\n");
            return 2;
        }
    }
    try {
        cuda::require_device();
        const cuda::DeviceQuery q = cuda::query_device();
        fmt::print("bench_gpu: {} ({} SMs), precision bf16\n", q.name, q.multiprocessors);
        cuda::set_precision(cuda::Precision::bf16);
        // One JSON object per line, appended as each result comes (a timeout keeps what ran).
        std::FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
        if (!json_path.empty() && !json) fail("bench_gpu: cannot write {}", json_path);
        auto record = [&](const Json& j) {
            if (json) {
                std::fprintf(json, "%s\n", j.dump().c_str());
                std::fflush(json);
            }
        };
        fmt::print("{:<10} {:>4} {:>6} {:>10} {:>10} {:>10} {:>10}\n", "attention", "D", "T", "fwd ms", "fwd TF/s",
                   "bwd ms", "bwd TF/s");
        {
            AttentionBuffers buf;
            for (const char* v : {"softmax", "sigmoid"})
                for (size_t D : {96, 128})
                    for (size_t T : {2048, 4096}) {
                        const Json j = bench_attention(buf, v, D, T, quick);
                        fmt::print("{:<10} {:>4} {:>6} {:>10.3f} {:>10.1f} {:>10.3f} {:>10.1f}\n", v, D, T,
                                   j.at("fwd_ms").as_number(), j.at("fwd_tflops").as_number(), j.at("bwd_ms").as_number(),
                                   j.at("bwd_tflops").as_number());
                        std::fflush(stdout);
                        record(j);
                    }
        }
        fmt::print("{:<24} {:>10} {:>12} {:>8}\n", "model (tinyllama-60m)", "step ms", "tokens/s", "MFU");
        for (const char* v : {"softmax", "sigmoid"}) {
            const Json j = bench_model(v, quick);
            fmt::print("{:<24} {:>10.1f} {:>12.0f} {:>7.1f}%\n", v, j.at("step_ms").as_number(),
                       j.at("tokens_per_s").as_number(), 100.0 * j.at("mfu_bf16").as_number());
            std::fflush(stdout);
            record(j);
        }
        if (json) std::fclose(json);
    } catch (const Error& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
}
#else
#include <cstdio>
int main() {
    std::printf("bench_gpu: built without CUDA (nvcc was not found at configure time)\n");
    return 77;
}
#endif
