// GPU benchmark (run by tools/gpu_check.sh): the fused attention kernels alone, and whole-model
// training throughput of tinyllama-60m, its time per operation, on the first GPU, in bf16 mode.
//   bench_gpu [--json PATH] [--quick] [--only attention,model,profile,memory]
// Attention: forward and backward TFLOP/s for softmax and sigmoid at B x H = 64 x 8, T = 2048,
// head dim 96 (the 60M model's attention), and at head dim 128 and context 4096 (131072 tokens). Causal FLOPs, FlashAttention's
// convention: forward 4 B H T^2 D / 2, backward 2.5x forward (the work a backward must do; ours
// recomputes more, which shows as a lower rate).
// Model: tinyllama-60m (the preset in src/model/config.cpp) at context 2048, batch 8 x 2048 tokens, random tokens;
// tokens/s over timed steps (forward, backward, grad norm, AdamW) and bf16 model FLOP utilisation
// = train_flops_per_token x tokens/s / 989 TFLOP/s (the H100/H200 SXM dense bf16 peak).
// Profile: the GPU time of each operation of that step (softmax, 8 x 2048 tokens), by label (the
// backend function; matmuls with their shape IC->OC, so the LM head shows apart), from CUDA events
// around every call; per step, median over the profiled steps; with its share of the step, the
// unattributed rest (host work, gaps between kernels) and the totals of attention, matmul, LM
// head, cross entropy and element-wise operations.
// Memory: the device bytes the step holds (model, activations, scratch, cuBLAS workspace; the CUDA
// context is not counted) and the largest batch whose step fits.
// Times: host clock around synchronised repetitions, median; warm-up first (profile: CUDA events).
#ifdef SINKLAB_WITH_CUDA
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "backend_cuda.h"
#include "cuda_api.h"
#include "model/model.h"
#include "util/error.h"
#include "util/json.h"
#include "util/rng.h"

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
// once, each shape reads a prefix. With them the key slot's k*, v* (8 heads of 128), its weights and
// the per-(b, h) gradients of k* and v* (at most 64 x 8 heads of 128).
struct AttentionBuffers {
    static constexpr size_t kTokens = 131072, kMaxC = 8 * 128, kMaxBHD = 64 * 8 * 128;
    float *qkv, *dout, *out, *saved, *z, *dqkv, *slot_k, *slot_v, *att_slot, *d_slot_k, *d_slot_v;
    AttentionBuffers() {
        const auto q = random_normal(kTokens * 3 * kMaxC, 1), d = random_normal(kTokens * kMaxC, 2);
        const auto slot = random_normal(2 * kMaxC, 3);
        qkv = CudaBackend::alloc<float>(q.size());
        dout = CudaBackend::alloc<float>(d.size());
        out = CudaBackend::alloc<float>(kTokens * kMaxC);
        saved = CudaBackend::alloc<float>(kTokens * 8);
        z = CudaBackend::alloc<float>(kTokens * 8);
        dqkv = CudaBackend::alloc<float>(q.size());
        slot_k = CudaBackend::alloc<float>(kMaxC);
        slot_v = CudaBackend::alloc<float>(kMaxC);
        att_slot = CudaBackend::alloc<float>(kTokens * 8);
        d_slot_k = CudaBackend::alloc<float>(kMaxBHD);
        d_slot_v = CudaBackend::alloc<float>(kMaxBHD);
        CudaBackend::upload(qkv, q.data(), q.size());
        CudaBackend::upload(dout, d.data(), d.size());
        CudaBackend::upload(slot_k, slot.data(), kMaxC);
        CudaBackend::upload(slot_v, slot.data() + kMaxC, kMaxC);
    }
    ~AttentionBuffers() {
        for (float* p : {qkv, dout, out, saved, z, dqkv, slot_k, slot_v, att_slot, d_slot_k, d_slot_v})
            CudaBackend::release(p);
    }
};

// One attention variant to time: its label in the table and its spec.
struct AttentionBenchCase {
    std::string label;
    AttentionSpec spec;
};

// At the yardstick shape: every operation the named variants ask of the kernels (the mlp kernels
// and the unnormalised elu kernel run linear-kernel's on other inputs), the scaled softmax, a window
// of 64 (about 1/16 of causal attention's work at T = 2048), a prefix of 1024, and the KV slot. At
// the other shapes: softmax, sigmoid and softpick.
std::vector<AttentionBenchCase> attention_bench_cases(bool yardstick) {
    std::vector<AttentionBenchCase> cases;
    auto add = [&](const std::string& label, AttentionSpec spec) { cases.push_back({label, spec}); };
    if (!yardstick) {
        for (const char* v : {"softmax", "sigmoid", "softpick"}) add(v, parse_attention(v));
        return cases;
    }
    for (const std::string& v : attention_names()) {
        const AttentionSpec spec = parse_attention(v);
        if (spec.feature_map == FeatureMap::none || spec.normalizer == Normalizer::sum) add(v, spec);
    }
    AttentionSpec spec = parse_attention("softmax");
    spec.softmax_alpha = 0.5;
    add("softmax a=0.5", spec);
    spec = parse_attention("softmax");
    spec.mask = MaskKind::window;
    spec.window = 64;
    add("softmax w=64", spec);
    spec = parse_attention("softmax");
    spec.mask = MaskKind::prefix;
    spec.prefix = 1024;
    add("softmax p=1024", spec);
    spec = parse_attention("softmax");
    spec.slot = SlotKind::key_value;
    add("softmax kv-bias", spec);
    spec.slot = SlotKind::logit;  // the sink logits of later work: learned per head, and off-by-one's 0
    add("softmax sink-logit", spec);
    spec.slot = SlotKind::zero_logit;
    add("softmax off-by-one", spec);
    return cases;
}

Json bench_attention(AttentionBuffers& buf, const AttentionBenchCase& c, const AttentionShape& shape, bool quick) {
    const size_t D = shape.D, T = shape.T, H = shape.H, B = AttentionBuffers::kTokens / T, C = H * D;
    const AttentionSpec& spec = c.spec;
    const bool slot = spec.has_key_slot();
    const float* slot_k = spec.has_slot_score_param() ? buf.slot_k : nullptr;
    const float* slot_v = slot && spec.has_slot_value() ? buf.slot_v : nullptr;
    const int reps = quick ? 5 : 15;
    const double fwd = median_seconds(
        [&] {
            CudaBackend::attention_forward(buf.out, buf.saved, buf.z, buf.att_slot, buf.qkv, slot_k, slot_v, B, T, C, H,
                                           spec);
        },
        2, reps);
    const double bwd = median_seconds(
        [&] {
            CudaBackend::attention_backward(buf.dqkv, buf.d_slot_k, buf.d_slot_v, buf.dout, buf.out, buf.qkv, slot_k,
                                            slot_v, buf.saved, buf.z, buf.att_slot, B, T, C, H, spec);
        },
        2, reps);
    // Causal FLOPs for every variant (a window or a prefix does less or more work in the same time
    // budget: compare their ms with softmax's).
    const double flops_fwd = 4.0 * double(B * H) * double(T) * double(T) * double(D) / 2.0;
    Json j = Json::object();
    j["bench"] = "attention";
    j["variant"] = c.label;
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

// One tinyllama-60m training step (forward, backward, grad norm, AdamW) on random tokens, on
// Backend: CudaBackend, or ProfiledCudaBackend for the per-operation profile.
template <class Backend>
struct ModelStep {
    ModelConfig config;
    size_t B, T;
    Model<Backend> model;
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
    ModelStep<CudaBackend> train_step(variant, B, T);
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

// ---- profile: the GPU time of each operation of a training step ----

// Throws Error naming the CUDA runtime call that failed, with the runtime's reason.
void check_cuda(cudaError_t status, const char* call) {
    if (status != cudaSuccess) fail("{} failed: {}", call, cudaGetErrorString(status));
}

// The GPU time of the operations of training steps, by label: a CUDA event recorded on the default
// stream (the backend's only stream) before and after each operation, and a pair around the step.
// An operation's time runs from its start event to its end event on the GPU: its kernels, cuBLAS
// calls, memsets and copies, plus the launch latency the GPU waits out when the host is behind.
// What no pair covers (host work such as the loss download, gaps between kernels) is the step's
// time minus the labelled time.
// Profiling is on between begin_step() and end_step(); outside, timed() only runs the operation.
// The events come from a pool created once (reserve_events) and reused: end_step() reads the time
// of every event it recorded before the next step records any of them again.
// One profiler for the process (instance()), since ProfiledCudaBackend's members are static.
class OpProfiler {
public:
    struct OpTime {
        size_t calls = 0;
        double ms = 0;  // summed over the calls of one step
    };
    struct StepProfile {
        double step_ms = 0;                 // from the pair of events around the step
        std::map<std::string, OpTime> ops;  // by label
    };

    static OpProfiler& instance() {
        static OpProfiler profiler;
        return profiler;
    }

    // Forgets the profiled steps and the count of calls.
    void reset() {
        steps_.clear();
        calls_seen_ = 0;
    }
    // The operations run through timed() since the last reset, profiled or not.
    size_t calls_seen() const { return calls_seen_; }
    // One entry per profiled step since the last reset.
    const std::vector<StepProfile>& steps() const { return steps_; }

    // Creates events until the pool holds n, so that a profiled step creates none.
    void reserve_events(size_t n) {
        while (events_.size() < n) {
            cudaEvent_t event;
            check_cuda(cudaEventCreate(&event), "cudaEventCreate");
            events_.push_back(event);
        }
    }
    // Destroys the pool (after the last profiled step).
    void release_events() {
        for (cudaEvent_t event : events_) check_cuda(cudaEventDestroy(event), "cudaEventDestroy");
        events_.clear();
        used_ = 0;
    }

    // Starts a profiled step: records its start event. Call it with the GPU idle (after a
    // synchronize or the previous end_step()), so that the step's time is its own.
    void begin_step() {
        if (enabled_) fail("OpProfiler::begin_step: the previous step was not ended");
        enabled_ = true;
        pending_.clear();
        used_ = 0;
        step_start_ = record_event();
    }

    // Runs op and returns what it returns; within a profiled step, between a start and an end
    // event, under label.
    template <class F>
    auto timed(std::string label, F&& op) {
        calls_seen_++;
        if (!enabled_) return op();
        const size_t start = record_event();
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            op();
            pending_.push_back({std::move(label), start, record_event()});
        } else {
            auto result = op();
            pending_.push_back({std::move(label), start, record_event()});
            return result;
        }
    }

    // Ends the profiled step: records its end event, waits for it (and so for every event before
    // it on the stream), and adds the step's times by label to steps(). The pool is free again.
    void end_step() {
        if (!enabled_) fail("OpProfiler::end_step: no step was begun");
        const size_t step_end = record_event();
        enabled_ = false;
        check_cuda(cudaEventSynchronize(events_[step_end]), "cudaEventSynchronize");
        StepProfile step;
        step.step_ms = elapsed_ms(step_start_, step_end);
        for (const PendingOp& pending : pending_) {
            OpTime& op = step.ops[pending.label];
            op.calls++;
            op.ms += elapsed_ms(pending.start, pending.end);
        }
        steps_.push_back(std::move(step));
        pending_.clear();
        used_ = 0;
    }

private:
    // An operation of the current step: its label and the indices of its events in events_.
    struct PendingOp {
        std::string label;
        size_t start, end;
    };

    // Records the next unused event of the pool on the default stream (creating one if the pool
    // is used up) and returns its index.
    size_t record_event() {
        reserve_events(used_ + 1);
        check_cuda(cudaEventRecord(events_[used_], 0), "cudaEventRecord");
        return used_++;
    }
    // Milliseconds between two recorded, completed events.
    double elapsed_ms(size_t start, size_t end) const {
        float ms = 0;
        check_cuda(cudaEventElapsedTime(&ms, events_[start], events_[end]), "cudaEventElapsedTime");
        return double(ms);
    }

    bool enabled_ = false;
    size_t calls_seen_ = 0;
    std::vector<cudaEvent_t> events_;
    size_t used_ = 0;  // events_[0, used_) are recorded in the current step
    size_t step_start_ = 0;
    std::vector<PendingOp> pending_;
    std::vector<StepProfile> steps_;
};

// CudaBackend with every operation run through OpProfiler::timed (the memory functions stay
// CudaBackend's, except zero, which zero_grad and backward run every step). Labels: the function's
// name; matmuls add their shape " IC->OC", so the LM head (OC = vocab size) and each kind of block
// matmul show apart.
struct ProfiledCudaBackend : CudaBackend {
    template <typename U>
    static void zero(U* p, size_t n) {
        timed("zero", [&] { CudaBackend::zero(p, n); });
    }
    static void embedding_forward(T* out, const int32_t* tokens, const T* wte, size_t N, size_t C) {
        timed("embedding_forward", [&] { CudaBackend::embedding_forward(out, tokens, wte, N, C); });
    }
    static void embedding_backward(T* dwte, const T* dout, const int32_t* tokens, size_t N, size_t C) {
        timed("embedding_backward", [&] { CudaBackend::embedding_backward(dwte, dout, tokens, N, C); });
    }
    static void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, size_t N, size_t C, T eps) {
        timed("rmsnorm_forward", [&] { CudaBackend::rmsnorm_forward(out, rstd, x, w, N, C, eps); });
    }
    static void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, size_t N,
                                 size_t C) {
        timed("rmsnorm_backward", [&] { CudaBackend::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C); });
    }
    static void matmul_forward(T* out, const T* inp, const T* weight, size_t N, size_t IC, size_t OC) {
        timed(fmt::format("matmul_forward {}->{}", IC, OC),
              [&] { CudaBackend::matmul_forward(out, inp, weight, N, IC, OC); });
    }
    static void matmul_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, size_t N,
                                size_t IC, size_t OC) {
        timed(fmt::format("matmul_backward {}->{}", IC, OC),
              [&] { CudaBackend::matmul_backward(dinp, dweight, dout, inp, weight, N, IC, OC); });
    }
    static void rope_forward(T* out, const T* qkv, const T* cos_t, const T* sin_t, size_t B, size_t Tn, size_t C,
                             size_t H) {
        timed("rope_forward", [&] { CudaBackend::rope_forward(out, qkv, cos_t, sin_t, B, Tn, C, H); });
    }
    static void rope_backward(T* dqkv, const T* dout, const T* cos_t, const T* sin_t, size_t B, size_t Tn,
                              size_t C, size_t H) {
        timed("rope_backward", [&] { CudaBackend::rope_backward(dqkv, dout, cos_t, sin_t, B, Tn, C, H); });
    }
    template <class... A>
    static void attention_forward(A... a) {
        timed("attention_forward", [&] { CudaBackend::attention_forward(a...); });
    }
    template <class... A>
    static void attention_backward(A... a) {
        timed("attention_backward", [&] { CudaBackend::attention_backward(a...); });
    }
    template <class... A>
    static void head_sum_forward(A... a) {
        timed("head_sum_forward", [&] { CudaBackend::head_sum_forward(a...); });
    }
    template <class... A>
    static void head_sum_backward(A... a) {
        timed("head_sum_backward", [&] { CudaBackend::head_sum_backward(a...); });
    }
    template <class... A>
    static void bias_add_forward(A... a) {
        timed("bias_add_forward", [&] { CudaBackend::bias_add_forward(a...); });
    }
    template <class... A>
    static void bias_add_backward(A... a) {
        timed("bias_add_backward", [&] { CudaBackend::bias_add_backward(a...); });
    }
    template <class... A>
    static void glu_forward(A... a) {
        timed("glu_forward", [&] { CudaBackend::glu_forward(a...); });
    }
    template <class... A>
    static void glu_backward(A... a) {
        timed("glu_backward", [&] { CudaBackend::glu_backward(a...); });
    }
    static void residual_add(T* x, const T* y, size_t n) {
        timed("residual_add", [&] { CudaBackend::residual_add(x, y, n); });
    }
    static void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, size_t N, size_t V) {
        timed("crossentropy_forward", [&] { CudaBackend::crossentropy_forward(losses, logits, targets, N, V); });
    }
    static void crossentropy_backward(T* dlogits, const T* logits, const int32_t* targets, T dloss, size_t N,
                                      size_t V) {
        timed("crossentropy_backward",
              [&] { CudaBackend::crossentropy_backward(dlogits, logits, targets, dloss, N, V); });
    }
    static double sum_squares(const T* x, size_t n) {
        return timed("sum_squares", [&] { return CudaBackend::sum_squares(x, n); });
    }
    static void adamw_update(T* params, const T* grads, T* m, T* v, size_t n, const AdamWHyper& hp, size_t step,
                             T grad_scale) {
        timed("adamw_update", [&] { CudaBackend::adamw_update(params, grads, m, v, n, hp, step, grad_scale); });
    }

private:
    // The profiler's timed() (its return type spelled out: the operations above use it before
    // its definition).
    template <class F>
    static std::invoke_result_t<F&> timed(std::string label, F&& op) {
        return OpProfiler::instance().timed(std::move(label), std::forward<F>(op));
    }
};

// One label of the profile: its calls per step and its GPU time per step (the calls' sum within a
// step, median over the profiled steps).
struct ProfileRow {
    std::string op;
    size_t calls = 0;
    double ms = 0;
};

// The per-operation profile of one training step.
struct ProfileTable {
    std::vector<ProfileRow> rows;  // by time, descending
    double step_ms = 0;            // the whole step, median over the profiled steps
    double labelled_ms = 0;        // the sum of the rows
    size_t vocab_size = 0;         // OC of the LM head's matmuls
};

double median_of(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
}

// The GPU time of each operation of one tinyllama-60m training step (softmax, 8 x 2048 tokens),
// through ProfiledCudaBackend: 2 warm-up steps unprofiled, then 3 (quick) or 5 profiled ones. A
// label's time is the sum of its calls within a step, median over the steps; the step's time
// (events around it) is the median too. The step's time minus the labelled sum is unattributed.
ProfileTable bench_profile(bool quick) {
    const size_t B = 8, T = 2048;
    const int steps = quick ? 3 : 5;
    ModelStep<ProfiledCudaBackend> train_step("softmax", B, T);
    OpProfiler& profiler = OpProfiler::instance();
    profiler.reset();
    for (int i = 0; i < 2; i++) train_step();
    CudaBackend::synchronize();
    // Every event a profiled step records (two per operation, two around the step) exists before
    // the first one starts.
    const size_t calls_per_step = profiler.calls_seen() / 2;
    profiler.reserve_events(2 * calls_per_step + 2);
    profiler.reset();
    for (int i = 0; i < steps; i++) {
        profiler.begin_step();
        train_step();
        profiler.end_step();
    }
    profiler.release_events();

    // Per label: its per-step sums (0 in a step without it) and its calls per step.
    std::map<std::string, std::vector<double>> ms_by_op;
    std::map<std::string, size_t> calls_by_op;
    std::vector<double> step_ms;
    for (const OpProfiler::StepProfile& step : profiler.steps()) {
        step_ms.push_back(step.step_ms);
        for (const auto& [op, op_time] : step.ops) {
            ms_by_op[op].push_back(op_time.ms);
            calls_by_op[op] = std::max(calls_by_op[op], op_time.calls);
        }
    }
    ProfileTable table;
    table.step_ms = median_of(step_ms);
    table.vocab_size = train_step.config.vocab_size;
    for (auto& [op, ms] : ms_by_op) {
        ms.resize(size_t(steps), 0.0);
        table.rows.push_back({op, calls_by_op[op], median_of(ms)});
        table.labelled_ms += table.rows.back().ms;
    }
    std::sort(table.rows.begin(), table.rows.end(),
              [](const ProfileRow& a, const ProfileRow& b) { return a.ms != b.ms ? a.ms > b.ms : a.op < b.op; });
    return table;
}

// Prints the profile: a row per label by time, the labelled total against the step and the
// unattributed rest, then the group totals: attention, matmul (all of them; of which the LM head,
// OC = vocab size), cross entropy, and element-wise (everything else). The groups attention,
// matmul, cross entropy and element-wise add up to the labelled total.
void print_profile(const ProfileTable& table) {
    const auto line = [&](const std::string& what, const std::string& calls, double ms) {
        fmt::print("{:<32} {:>8} {:>10.3f} {:>7.1f}%\n", what, calls, ms, 100.0 * ms / table.step_ms);
    };
    fmt::print("{:<32} {:>8} {:>10} {:>8}\n", "profile (tinyllama-60m)", "calls", "ms/step", "% step");
    struct GroupTotal {
        size_t calls = 0;
        double ms = 0;
        void add(const ProfileRow& row) {
            calls += row.calls;
            ms += row.ms;
        }
    };
    GroupTotal all, attention, matmul, lm_head, cross_entropy, elementwise;
    const std::string lm_head_shape = fmt::format("->{}", table.vocab_size);
    for (const ProfileRow& row : table.rows) {
        line(row.op, std::to_string(row.calls), row.ms);
        all.add(row);
        if (row.op.starts_with("attention_")) {
            attention.add(row);
        } else if (row.op.starts_with("matmul_")) {
            matmul.add(row);
            if (row.op.ends_with(lm_head_shape)) lm_head.add(row);
        } else if (row.op.starts_with("crossentropy_")) {
            cross_entropy.add(row);
        } else {
            elementwise.add(row);
        }
    }
    line("labelled operations", std::to_string(all.calls), table.labelled_ms);
    line("unattributed (host, gaps)", "", table.step_ms - table.labelled_ms);
    line("step", "", table.step_ms);
    fmt::print("groups:\n");
    line("  attention", std::to_string(attention.calls), attention.ms);
    line("  matmul", std::to_string(matmul.calls), matmul.ms);
    line("    of which lm head", std::to_string(lm_head.calls), lm_head.ms);
    line("  cross entropy", std::to_string(cross_entropy.calls), cross_entropy.ms);
    line("  element-wise", std::to_string(elementwise.calls), elementwise.ms);
}

// The profile as JSON lines: one per label, then the step's total.
std::vector<Json> profile_json(const ProfileTable& table) {
    std::vector<Json> lines;
    for (const ProfileRow& row : table.rows) {
        Json j = Json::object();
        j["bench"] = "profile";
        j["op"] = row.op;
        j["calls"] = double(row.calls);
        j["ms"] = row.ms;
        j["share"] = row.ms / table.step_ms;
        lines.push_back(j);
    }
    Json total = Json::object();
    total["bench"] = "profile_total";
    total["step_ms"] = table.step_ms;
    total["labelled_ms"] = table.labelled_ms;
    lines.push_back(total);
    return lines;
}

// The largest batch of 2048-token sequences whose tinyllama-60m training step fits in device
// memory: doubling from 8, then bisection; each candidate builds the model and runs one step.
Json bench_largest_batch() {
    auto fits = [](size_t B) {
        try {
            ModelStep<CudaBackend> train_step("softmax", B, 2048);
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
    std::string json_path, only = "attention,model,profile,memory";
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
                         "usage: bench_gpu [--json PATH] [--quick] [--only attention,model,profile,memory]\n"
                         "  attention: fused attention kernels alone (softmax, sigmoid), bf16\n"
                         "  model:     tinyllama-60m training step at 8 x 2048 tokens, bf16 (tokens/s, MFU, memory)\n"
                         "  profile:   GPU time per operation of that step (softmax), share of the step, group totals\n"
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
            fmt::print("{:<20} {:>4} {:>6} {:>7} {:>10} {:>10} {:>10} {:>10}\n", "attention", "D", "T", "B x H",
                       "fwd ms", "fwd TF/s", "bwd ms", "bwd TF/s");
            AttentionBuffers buf;
            for (const AttentionShape& shape : kAttentionShapes)
                for (const AttentionBenchCase& c : attention_bench_cases(&shape == &kAttentionShapes[0])) {
                    const Json j = bench_attention(buf, c, shape, quick);
                    fmt::print("{:<20} {:>4} {:>6} {:>7} {:>10.3f} {:>10.1f} {:>10.3f} {:>10.1f}\n", c.label, shape.D,
                               shape.T,
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
        if (wanted("profile")) {
            const ProfileTable table = bench_profile(quick);
            print_profile(table);
            std::fflush(stdout);
            for (const Json& j : profile_json(table)) record(j);
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
