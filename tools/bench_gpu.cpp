// GPU benchmark (run by tools/gpu_check.sh): the fused attention kernels alone, and whole-model
// training throughput of tinyllama-60m, on the first GPU, in bf16 mode.
//   bench_gpu [--json PATH] [--quick]
// Attention: forward and backward TFLOP/s for softmax and sigmoid at B x H = 64 x 8, T = 2048,
// head dim 96 (the 60M model's attention), and at head dim 128 and context 4096 (131072 tokens). Causal FLOPs, FlashAttention's
// convention: forward 4 B H T^2 D / 2, backward 2.5x forward (the work a backward must do; ours
// recomputes more, which shows as a lower rate).
// Model: tinyllama-60m (SPEC.md section 2) at context 2048, batch 8 x 2048 tokens, random tokens;
// tokens/s over timed steps (forward, backward, grad norm, AdamW) and bf16 model FLOP utilisation
// = train_flops_per_token x tokens/s / 989 TFLOP/s (the H100/H200 SXM dense bf16 peak).
// Memory: the device bytes the step holds (model, activations, scratch, cuBLAS workspace; the CUDA
// context is not counted) and the largest batch whose step fits.
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

// The attention shapes: the yardstick first (the 60M model's attention at batch 64:
// B x H = 64 x 8, T = 2048, head dim 96), then a wider head and a longer context at the same
// 131072 tokens per call. (head dim, context, heads); batch = kTokens / context.
struct AttentionShape {
    size_t D, T, H;
};
constexpr AttentionShape kAttentionShapes[] = {{96, 2048, 8}, {128, 2048, 8}, {96, 4096, 8}};

// Device inputs shared by every attention shape (131072 tokens, up to 8 heads of 128): random
// once, each shape reads a prefix.
struct AttentionBuffers {
    static constexpr size_t kTokens = 131072, kMaxC = 8 * 128;
    float *qkv, *dout, *out, *saved, *z, *dqkv;
    AttentionBuffers() {
        const auto q = random_normal(kTokens * 3 * kMaxC, 1), d = random_normal(kTokens * kMaxC, 2);
        qkv = CudaBackend::alloc<float>(q.size());
        dout = CudaBackend::alloc<float>(d.size());
        out = CudaBackend::alloc<float>(kTokens * kMaxC);
        saved = CudaBackend::alloc<float>(kTokens * 8);
        z = CudaBackend::alloc<float>(kTokens * 8);
        dqkv = CudaBackend::alloc<float>(q.size());
        CudaBackend::upload(qkv, q.data(), q.size());
        CudaBackend::upload(dout, d.data(), d.size());
    }
    ~AttentionBuffers() {
        for (float* p : {qkv, dout, out, saved, z, dqkv}) CudaBackend::release(p);
    }
};

Json bench_attention(AttentionBuffers& buf, const std::string& variant, const AttentionShape& shape, bool quick) {
    const size_t D = shape.D, T = shape.T, H = shape.H, B = AttentionBuffers::kTokens / T, C = H * D;
    const AttentionSpec spec = parse_attention(variant);
    const int reps = quick ? 5 : 15;
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

// One tinyllama-60m training step (forward, backward, grad norm, AdamW) on random tokens.
struct ModelStep {
    ModelConfig config;
    size_t B, T;
    Model<CudaBackend> model;
    AdamWHyper hp;
    std::vector<int32_t> inputs, targets;
    size_t step = 0;
    double loss = 0;
    ModelStep(const std::string& variant, size_t batch, size_t context)
        : config(config_for(variant)), B(batch), T(context), model(config), inputs(B * T), targets(B * T) {
        model.init_weights(1);
        Rng rng(5);
        for (size_t i = 0; i < B * T; i++) {
            inputs[i] = int32_t(rng.below(config.vocab_size));
            targets[i] = int32_t(rng.below(config.vocab_size));
        }
    }
    static ModelConfig config_for(const std::string& variant) {
        ModelConfig c = preset("tinyllama-60m");
        c.attention = parse_attention(variant);
        return c;
    }
    void operator()() {
        step++;
        model.zero_grad();
        loss = model.forward(inputs.data(), targets.data(), B, T);
        model.backward(1.0);
        const double norm = model.grad_norm();
        model.adamw_step(hp, step, norm > 1.0 ? 1.0 / norm : 1.0);
    }
};

constexpr double kGiB = double(size_t(1) << 30);

Json bench_model(const std::string& variant, bool quick) {
    const size_t B = 8, T = 2048;
    cuda::reset_peak_device_bytes();
    const size_t before = cuda::device_memory_stats().live_bytes;
    ModelStep train_step(variant, B, T);
    const double t = median_seconds(train_step, 2, quick ? 3 : 8);
    const double tokens_per_s = double(B * T) / t;
    const double mfu = train_step.config.train_flops_per_token(T) * tokens_per_s / kPeakBf16;
    Json j = Json::object();
    j["bench"] = "model";
    j["preset"] = "tinyllama-60m";
    j["variant"] = variant;
    j["batch"] = double(B);
    j["context"] = double(T);
    j["step_ms"] = t * 1e3;
    j["tokens_per_s"] = tokens_per_s;
    j["mfu_bf16"] = mfu;
    j["loss_last"] = train_step.loss;
    j["activation_gib"] = double(train_step.model.activation_bytes()) / kGiB;
    j["peak_device_gib"] = double(cuda::device_memory_stats().peak_bytes - before) / kGiB;
    return j;
}

// The largest batch of 2048-token sequences whose tinyllama-60m training step fits in device
// memory: doubling from 8, then bisection; each candidate builds the model and runs one step.
Json bench_largest_batch() {
    auto fits = [](size_t B) {
        try {
            ModelStep train_step("softmax", B, 2048);
            train_step();
            CudaBackend::synchronize();
            return true;
        } catch (const Error& e) {
            if (std::string(e.what()).find("allocate") == std::string::npos) throw;
            return false;
        }
    };
    size_t ok = 0, bad = 8;
    while (fits(bad)) {
        ok = bad;
        bad *= 2;
    }
    while (bad - ok > 1) {
        const size_t mid = (ok + bad) / 2;
        (fits(mid) ? ok : bad) = mid;
    }
    const cuda::DeviceQuery q = cuda::query_device();
    Json j = Json::object();
    j["bench"] = "largest_batch";
    j["preset"] = "tinyllama-60m";
    j["context"] = 2048.0;
    j["largest_batch"] = double(ok);
    j["device_gib"] = double(q.memory_bytes) / kGiB;
    return j;
}

}  // namespace

int main(int argc, char** argv) {
    std::string json_path, only = "attention,model,memory";
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--json") && i + 1 < argc)
            json_path = argv[++i];
        else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else {
            std::fprintf(stderr,
                         "usage: bench_gpu [--json PATH] [--quick] [--only attention,model,memory]\n"
                         "  attention: fused attention kernels alone (softmax, sigmoid), bf16\n"
                         "  model:     tinyllama-60m training step at 8 x 2048 tokens, bf16 (tokens/s, MFU, memory)\n"
                         "  memory:    the largest batch of 2048-token sequences whose training step fits\n");
            return 2;
        }
    }
    // The comma-separated parts of --only.
    std::vector<std::string> parts;
    for (size_t begin = 0; begin <= only.size();) {
        const size_t end = std::min(only.find(',', begin), only.size());
        parts.push_back(only.substr(begin, end - begin));
        begin = end + 1;
    }
    const auto wanted = [&](const char* part) { return std::find(parts.begin(), parts.end(), part) != parts.end(); };
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
        if (wanted("attention")) {
            fmt::print("{:<10} {:>4} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10}\n", "attention", "D", "T", "B x H", "fwd ms",
                       "fwd TF/s", "bwd ms", "bwd TF/s");
            AttentionBuffers buf;
            for (const AttentionShape& shape : kAttentionShapes)
                for (const char* v : {"softmax", "sigmoid"}) {
                    const Json j = bench_attention(buf, v, shape, quick);
                    fmt::print("{:<10} {:>4} {:>6} {:>7} {:>10.3f} {:>10.1f} {:>10.3f} {:>10.1f}\n", v, shape.D, shape.T,
                               fmt::format("{}x{}", AttentionBuffers::kTokens / shape.T, shape.H),
                               j.at("fwd_ms").as_number(), j.at("fwd_tflops").as_number(), j.at("bwd_ms").as_number(),
                               j.at("bwd_tflops").as_number());
                    std::fflush(stdout);
                    record(j);
                }
        }
        if (wanted("model")) {
            fmt::print("{:<24} {:>10} {:>12} {:>8} {:>12}\n", "model (tinyllama-60m)", "step ms", "tokens/s", "MFU",
                       "peak GiB");
            for (const char* v : {"softmax", "sigmoid"}) {
                const Json j = bench_model(v, quick);
                fmt::print("{:<24} {:>10.1f} {:>12.0f} {:>7.1f}% {:>12.2f}\n", v, j.at("step_ms").as_number(),
                           j.at("tokens_per_s").as_number(), 100.0 * j.at("mfu_bf16").as_number(),
                           j.at("peak_device_gib").as_number());
                std::fflush(stdout);
                record(j);
            }
        }
        if (wanted("memory")) {
            const Json j = bench_largest_batch();
            fmt::print("largest batch that fits: {} x 2048 tokens (tinyllama-60m, {:.0f} GiB device)\n",
                       j.at("largest_batch").as_number(), j.at("device_gib").as_number());
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
