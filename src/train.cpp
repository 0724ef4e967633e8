#include "train.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "backend_cpu.h"
#ifdef SINKLAB_WITH_CUDA
#include "backend_cuda.h"
#include "cuda_api.h"
#endif
#include "checkpoint.h"
#include "dataloader.h"
#include "error.h"
#include "fileio.h"
#include "gpu_info.h"
#include "model.h"
#include "shard.h"
#include "sink.h"
#include "sink_model.h"

namespace sinklab {

void TrainOptions::validate() const {
    model.validate();
    if (data.empty()) fail("--data: no training shards given");
    if (batch == 0) fail("--batch must be positive");
    if (seq == 0) fail("--seq must be positive");
    if (seq > model.context) fail("--seq {} exceeds the model's context {} (raise --context)", seq, model.context);
    if (grad_accum == 0) fail("--grad-accum must be positive");
    if (!(adam.lr > 0) || !std::isfinite(adam.lr)) fail("--lr must be a positive number (got {})", adam.lr);
    if (min_lr < 0 || min_lr > adam.lr) fail("--min-lr must be in [0, --lr] (got {})", min_lr);
    if (schedule != "constant" && schedule != "cosine")
        fail("--schedule: unknown schedule '{}' (valid: constant, cosine)", schedule);
    if (!(adam.beta1 >= 0 && adam.beta1 < 1)) fail("--beta1 must be in [0, 1) (got {})", adam.beta1);
    if (!(adam.beta2 >= 0 && adam.beta2 < 1)) fail("--beta2 must be in [0, 1) (got {})", adam.beta2);
    if (!(adam.eps > 0)) fail("--adam-eps must be positive");
    if (adam.weight_decay < 0) fail("--weight-decay must not be negative");
    if (clip < 0) fail("--clip must not be negative (0 turns clipping off)");
    if (device != "cpu" && device != "cuda") fail("--device: unknown device '{}' (valid: cpu, cuda, auto)", device);
    if (dtype != "fp32" && dtype != "bf16") fail("--dtype: unknown precision '{}' (valid: fp32, bf16, auto)", dtype);
    if (device == "cpu" && dtype != "fp32") fail("--dtype {}: the CPU backend computes in fp32 only", dtype);
    if (sink_every > 0 && probe.empty()) fail("--sink-every needs --probe FILE");
}

double learning_rate(const TrainOptions& o, size_t step) {
    const double peak = o.adam.lr;
    if (step < o.warmup) return peak * double(step + 1) / double(o.warmup);
    if (o.schedule == "constant") return peak;
    const size_t decay_steps = o.steps > o.warmup ? o.steps - o.warmup : 1;
    const double progress = std::min(1.0, double(step - o.warmup) / double(std::max<size_t>(decay_steps - 1, 1)));
    return o.min_lr + 0.5 * (peak - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

namespace {

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const long s = long(seconds + 0.5);
    if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s / 60) % 60);
    if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
    return fmt::format("{}s", s);
}

// Keeps the metrics lines up to and including `step` (used on resume, so that steps the
// interrupted run logged after its last checkpoint are not listed twice).
void truncate_metrics(const std::string& path, size_t step) {
    if (!file_exists(path)) return;
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
            const Json j = Json::parse(line, path);
            if (j.contains("step") && size_t(j.at("step").as_int()) > step) continue;
        } catch (const Error&) {
            continue;  // a torn last line from a killed run
        }
        kept += line + "\n";
    }
    write_file_atomic(path, kept);
}

template <class Backend>
double evaluate(Model<Backend>& model, DataLoader& val, size_t batches, std::vector<int32_t>& inputs,
                std::vector<int32_t>& targets, size_t B, size_t T) {
    val.reset();
    double sum = 0.0;
    for (size_t i = 0; i < batches; i++) {
        val.next_batch(inputs.data(), targets.data());
        sum += model.forward(inputs.data(), targets.data(), B, T);
    }
    return sum / double(batches);
}

template <class Backend>
int train_with(TrainOptions o, bool resume) {
    using T = typename Backend::Scalar;
    const std::string config_path = o.out + "/config.json";
    const std::string metrics_path = o.out + "/metrics.jsonl";
    Model<Backend> model(o.model);
    const int32_t first_token = int32_t(o.first_token);
    DataLoader train_data(expand_shard_paths(o.data), o.batch, o.seq, o.model.vocab_size, first_token);
    std::unique_ptr<DataLoader> val_data;
    if (!o.val.empty())
        val_data = std::make_unique<DataLoader>(expand_shard_paths(o.val), o.batch, o.seq, o.model.vocab_size, first_token);
    if (val_data && o.val_batches > val_data->batches_per_epoch()) {
        fmt::print(stderr, "warning: --val-batches {} exceeds the {} batches the validation data holds; using {}\n",
                   o.val_batches, val_data->batches_per_epoch(), val_data->batches_per_epoch());
        o.val_batches = val_data->batches_per_epoch();
    }

    size_t start_step = 0;
    if (resume) {
        const std::string ckpt = latest_checkpoint(o.out);
        if (ckpt.empty()) fail("--resume: no checkpoint in {}/checkpoints", o.out);
        const LoadedWeights w = load_safetensors(ckpt + "/model.safetensors");
        if (model_config_to_json(w.config).dump() != model_config_to_json(o.model).dump())
            fail("--resume: {} holds a different model configuration than {}", ckpt, config_path);
        RunState st = load_run_state(ckpt + "/state.bin", model.n_params());
        Backend::upload(model.params(), w.params.data(), w.params.size());
        Backend::upload(model.adam_m(), st.adam_m.data(), st.adam_m.size());
        Backend::upload(model.adam_v(), st.adam_v.data(), st.adam_v.size());
        train_data.set_position(st.loader_shard, st.loader_offset, st.loader_epoch);
        start_step = st.step;
        truncate_metrics(metrics_path, start_step);
        fmt::print("resuming {} from {} (step {})\n", o.out, ckpt, start_step);
        if (start_step >= o.steps) {
            fmt::print("nothing to do: the run already has {} steps (--steps {})\n", start_step, o.steps);
            return 0;
        }
    } else {
        model.init_weights(o.seed);
        make_dirs(o.out);
        if (file_exists(metrics_path)) std::filesystem::remove(metrics_path);
    }
    Json config = Json::object();
    config["model"] = model_config_to_json(o.model);
    config["train"] = o.to_json();
    config["n_params"] = model.n_params();
    config["n_nonembedding_params"] = o.model.n_nonembedding_params();
    write_file_atomic(config_path, config.dump(2) + "\n");

    const size_t tokens_per_step = o.tokens_per_step();
    fmt::print("model: {} layers, {} heads, width {}, ffn {}, vocab {}, attention {} | {:.2f}M parameters "
               "({:.2f}M non-embedding)\n",
               o.model.n_layers, o.model.n_heads, o.model.d_model, o.model.d_ffn, o.model.vocab_size,
               o.model.attention.name(), double(model.n_params()) / 1e6, double(o.model.n_nonembedding_params()) / 1e6);
    fmt::print("data: {} tokens in training shards, {} tokens per step ({} x {} x {}), {} steps\n",
               train_data.total_tokens(), tokens_per_step, o.batch, o.seq, o.grad_accum, o.steps);

    // Probe sequences for the sink measurement during training (looking like the training rows).
    Probe probe;
    if (o.sink_every > 0) {
        probe = read_probe_file(o.probe);
        if (first_token >= 0) prepend_first_token(probe, first_token);
        check_token_range(probe.tokens, o.model.vocab_size, o.probe);
        if (probe.info.length > o.model.context)
            fail("--probe: sequences of {} tokens exceed the model's context {}", probe.info.length, o.model.context);
    }
    const SinkOptions sink_options = sink_options_for(o.model);
    // The measurement runs on a CPU copy of the weights: it needs the full attention maps, which a
    // fused GPU kernel never writes, and it leaves the training model's buffers alone.
    std::unique_ptr<Model<CpuBackend<float>>> probe_model;
    if (o.sink_every > 0) probe_model = std::make_unique<Model<CpuBackend<float>>>(o.model);
    auto measure_sinks = [&]() {
        if constexpr (std::is_same_v<T, float>) Backend::download(probe_model->params(), model.params(), model.n_params());
        SinkOptions options = sink_options;
        options.keep_maps = false;
        return measure_model_sinks(*probe_model, probe, options);
    };

    std::ofstream metrics(metrics_path, std::ios::app);
    if (!metrics) fail("{}: cannot open for writing", metrics_path);
    std::vector<int32_t> inputs(o.batch * o.seq), targets(o.batch * o.seq);
    std::string last_checkpoint = resume ? latest_checkpoint(o.out) : "";

    auto save = [&](size_t step_done) {
        RunState st;
        st.step = step_done;
        st.loader_shard = train_data.shard();
        st.loader_offset = train_data.offset();
        st.loader_epoch = train_data.epoch();
        st.options = o.to_json();
        std::vector<float> host(model.n_params());
        st.adam_m.resize(model.n_params());
        st.adam_v.resize(model.n_params());
        if constexpr (std::is_same_v<T, float>) {
            Backend::download(host.data(), model.params(), host.size());
            Backend::download(st.adam_m.data(), model.adam_m(), host.size());
            Backend::download(st.adam_v.data(), model.adam_v(), host.size());
        }
        last_checkpoint = save_checkpoint(o.out, o.model, model.param_table(), host.data(), st);
    };

    const auto run_start = std::chrono::steady_clock::now();
    double window_seconds = 0.0;
    size_t window_tokens = 0;
    for (size_t step = start_step; step < o.steps; step++) {
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = learning_rate(o, step);
        model.zero_grad();
        double loss = 0.0;
        for (size_t micro = 0; micro < o.grad_accum; micro++) {
            train_data.next_batch(inputs.data(), targets.data());
            loss += model.forward(inputs.data(), targets.data(), o.batch, o.seq) / double(o.grad_accum);
            model.backward(1.0 / double(o.grad_accum));
        }
        const double grad_norm = model.grad_norm();
        if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
            Json m = Json::object();
            m["step"] = step + 1;
            m["loss"] = std::isfinite(loss) ? Json(loss) : Json(fmt::format("{}", loss));
            m["grad_norm"] = std::isfinite(grad_norm) ? Json(grad_norm) : Json(fmt::format("{}", grad_norm));
            m["diverged"] = true;
            metrics << m.dump() << "\n";
            metrics.flush();
            fmt::print(stderr,
                       "error: training diverged at step {}: loss {} grad norm {} ({} attention). Stopped without "
                       "saving; the last good checkpoint {} is untouched.\n",
                       step + 1, loss, grad_norm, o.model.attention.name(),
                       last_checkpoint.empty() ? std::string("(none)") : last_checkpoint);
            return 4;
        }
        const double clip_scale = (o.clip > 0 && grad_norm > o.clip) ? o.clip / grad_norm : 1.0;
        AdamWHyper hp = o.adam;
        hp.lr = lr;
        model.adamw_step(hp, step + 1, clip_scale);
        Backend::synchronize();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        window_seconds += seconds;
        window_tokens += tokens_per_step;
        const size_t done = step + 1;

        Json m = Json::object();
        m["step"] = done;
        m["loss"] = loss;
        m["lr"] = lr;
        m["grad_norm"] = grad_norm;
        m["tokens_per_s"] = double(tokens_per_step) / seconds;
        m["tokens"] = double(done * tokens_per_step);
        const bool last = done == o.steps;
        if (val_data && (done % o.eval_every == 0 || last) && o.eval_every > 0) {
            const double val_loss = evaluate(model, *val_data, o.val_batches, inputs, targets, o.batch, o.seq);
            m["val_loss"] = val_loss;
        }
        if (o.sink_every > 0 && (done % o.sink_every == 0 || last)) {
            add_sink_metrics(m, measure_sinks());
        }
        metrics << m.dump() << "\n";
        metrics.flush();

        if (done % o.log_every == 0 || last || done == start_step + 1 || m.contains("val_loss") || m.contains("sink_k")) {
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
            const double eta = elapsed / double(done - start_step) * double(o.steps - done);
            std::string extra;
            if (m.contains("val_loss")) extra += fmt::format(" | val {:.4f}", m.at("val_loss").as_number());
            if (m.contains("sink_k")) extra += fmt::format(" | Sink_1 {:.1f}%", m.at("sink_k").as_array()[0].as_number());
            fmt::print("step {:>{}}/{} | loss {:.4f}{} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s | {:.0f}% | "
                       "elapsed {} | ETA {}\n",
                       done, std::to_string(o.steps).size(), o.steps, loss, extra, lr,
                       grad_norm, double(window_tokens) / window_seconds, 100.0 * double(done) / double(o.steps),
                       format_duration(elapsed), format_duration(eta));
            std::fflush(stdout);
            window_seconds = 0.0;
            window_tokens = 0;
        }
        if ((o.checkpoint_every > 0 && done % o.checkpoint_every == 0) || last) save(done);
    }
    fmt::print("done: {} steps, checkpoint {}\n", o.steps, last_checkpoint);
    return 0;
}

}  // namespace

void resolve_device(TrainOptions& o) {
    if (o.device == "auto") o.device = query_gpu().device_count > 0 ? "cuda" : "cpu";
    if (o.dtype == "auto") o.dtype = o.device == "cuda" ? "bf16" : "fp32";
}

int run_training(TrainOptions o, bool resume) {
    resolve_device(o);
    o.validate();
    if (o.device == "cuda") {
#ifdef SINKLAB_WITH_CUDA
        cuda::require_device();
        cuda::set_precision(cuda::parse_precision(o.dtype));
        fmt::print("device: {} ({})\n", query_gpu().name, o.dtype);
        return train_with<CudaBackend>(o, resume);
#else
        fail("--device cuda: this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
    }
    return train_with<CpuBackend<float>>(o, resume);
}

}  // namespace sinklab
