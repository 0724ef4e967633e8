#include "train/train.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <omp.h>

#include "model/backend_cpu.h"
#ifdef SINKLAB_WITH_CUDA
#include "backend_cuda.h"
#include "cuda_api.h"
#endif
#include "data/dataloader.h"
#include "data/shard.h"
#include "model/model.h"
#include "sink/sink.h"
#include "sink/sink_model.h"
#include "train/checkpoint.h"
#include "util/cpu_share.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/gpu_info.h"

namespace sinklab {

SequenceEdits TrainOptions::data_edits() const {
    SequenceEdits e;
    e.fixed_token = fixed_token;
    e.fixed_position = fixed_position;
    parse_token_range(random_tokens, e.random_begin, e.random_end);
    e.seed = seed;
    return e;
}

void TrainOptions::validate() const {
    model.validate();
    if (data.empty()) fail("--data: no training shards given");
    if (steps == 0) fail("--steps must be at least 1");
    if (first_token < -1) fail("--first-token {}: expected a token id >= 0", first_token);
    if (fixed_token < -1) fail("--fixed-token {}: expected a token id >= 0", fixed_token);
    if (!val.empty() && val_batches == 0) fail("--val-batches must be at least 1 with --val");
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
    if (model.attention.mask == MaskKind::prefix && size_t(model.attention.prefix) > seq)
        fail("--prefix {} is longer than --seq {} (the prefix is a part of each training sequence)",
             model.attention.prefix, seq);
}

void drop_prefix_targets(int32_t* targets, size_t B, size_t T, const AttentionSpec& attention) {
    if (attention.mask != MaskKind::prefix) return;
    const size_t loss_from = std::min(T, size_t(attention.prefix) - 1);
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < loss_from; t++) targets[b * T + t] = -1;
}

double learning_rate(const TrainOptions& o, size_t step) {
    const double peak = o.adam.lr;
    if (step < o.warmup) return peak * double(step + 1) / double(o.warmup);
    if (o.schedule == "constant") return peak;
    const size_t decay_steps = o.steps > o.warmup ? o.steps - o.warmup : 1;
    const double progress = std::min(1.0, double(step - o.warmup) / double(std::max<size_t>(decay_steps - 1, 1)));
    return o.min_lr + 0.5 * (peak - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const long s = long(seconds + 0.5);
    if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s / 60) % 60);
    if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
    return fmt::format("{}s", s);
}

namespace {

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

// One training run on a backend, as short named steps; run() reads top to bottom.
template <class Backend>
class Trainer {
public:
    using T = typename Backend::Scalar;

    Trainer(TrainOptions options, bool resume, bool overwrite)
        : o_(std::move(options)),
          resume_(resume),
          overwrite_(overwrite),
          config_path_(o_.out + "/config.json"),
          metrics_path_(o_.out + "/metrics.jsonl"),
          model_(o_.model),
          train_data_(expand_shard_paths(o_.data), o_.batch, o_.seq, o_.model.vocab_size, int32_t(o_.first_token),
                      o_.data_edits(), o_.train_tokens),
          inputs_(o_.batch * o_.seq),
          targets_(o_.batch * o_.seq) {}

    // Returns the process exit code: 0 done (or nothing to do), 4 diverged.
    int run() {
        // Everything that can be refused is checked before the run directory is touched.
        open_validation_data();
        prepare_sink_probe();
        check_first_batches();
        lock_ = std::make_unique<DirectoryLock>(o_.out);  // one trainer per run directory
        check_run_directory();
        if (!restore_or_initialise()) return 0;
        write_config();
        print_summary();
        open_metrics();
        run_start_ = std::chrono::steady_clock::now();
        for (size_t step = start_step_; step < o_.steps; step++) {
            share_the_cpu();
            const StepResult r = train_step(step);
            if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) return report_divergence(step + 1, r);
            const size_t done = step + 1;
            Json m = step_metrics(done, r);
            const bool last = done == o_.steps;
            if (val_data_ && o_.eval_every > 0 && (done % o_.eval_every == 0 || last)) m["val_loss"] = evaluate();
            if (o_.sink_every > 0 && (done % o_.sink_every == 0 || last)) add_sink_metrics(m, measure_sinks());
            metrics_ << m.dump() << "\n";
            metrics_.flush();
            print_progress(done, r, m);
            if ((o_.checkpoint_every > 0 && done % o_.checkpoint_every == 0) || last) save_checkpoint_at(done);
        }
        fmt::print("done: {} steps, checkpoint {}\n", o_.steps, last_checkpoint_);
        return 0;
    }

private:
    struct StepResult {
        double loss, grad_norm, lr, seconds;
    };

    // The validation loader, and --val-batches capped at what the validation data holds.
    void open_validation_data() {
        if (o_.val.empty()) return;
        val_data_ = std::make_unique<DataLoader>(expand_shard_paths(o_.val), o_.batch, o_.seq, o_.model.vocab_size,
                                                 int32_t(o_.first_token), o_.data_edits());
        if (o_.val_batches > val_data_->batches_per_epoch()) {
            fmt::print(stderr, "warning: --val-batches {} exceeds the {} batches the validation data holds; using {}\n",
                       o_.val_batches, val_data_->batches_per_epoch(), val_data_->batches_per_epoch());
            o_.val_batches = val_data_->batches_per_epoch();
        }
    }

    // The first batch of the training (and validation) data, read ahead on copies of the loaders:
    // token ids beyond the vocabulary and the data levers' errors surface before anything is written.
    void check_first_batches() {
        DataLoader train = train_data_;
        train.next_batch(inputs_.data(), targets_.data());
        if (val_data_) {
            DataLoader val = *val_data_;
            val.next_batch(inputs_.data(), targets_.data());
        }
    }

    // A fresh run into a directory that holds one needs --overwrite (which then removes the old
    // run's config.json, metrics.jsonl, sink.json and checkpoints/); --resume continues it.
    void check_run_directory() {
        if (resume_) return;
        namespace fs = std::filesystem;
        const std::vector<std::string> run_files = {config_path_, metrics_path_, o_.out + "/sink.json",
                                                    o_.out + "/checkpoints"};
        std::vector<std::string> present;
        for (const std::string& f : run_files)
            if (fs::exists(f)) present.push_back(f);
        if (present.empty()) return;
        if (!overwrite_)
            fail("{} already holds a run ({}): continue it with --resume, or replace it with --overwrite", o_.out,
                 fmt::join(present, ", "));
        for (const std::string& f : present) fs::remove_all(f);
        fmt::print("--overwrite: removed the previous run in {}\n", o_.out);
    }

    // --resume: weights, AdamW moments and the loader's position from the latest checkpoint, and the
    // metrics cut back to its step; else a fresh initialisation and an empty metrics file. Returns
    // false when the run already has --steps steps.
    bool restore_or_initialise() {
        if (!resume_) {  // check_run_directory left no metrics behind
            model_.init_weights(o_.seed);
            return true;
        }
        const std::string ckpt = latest_checkpoint(o_.out);
        if (ckpt.empty()) fail("--resume: no checkpoint in {}/checkpoints", o_.out);
        const LoadedWeights w = load_safetensors(ckpt + "/model.safetensors");
        if (model_config_to_json(w.config).dump() != model_config_to_json(o_.model).dump())
            fail("--resume: {} holds a different model configuration than {}", ckpt, config_path_);
        RunState st = load_run_state(ckpt + "/state.bin", model_.n_params());
        Backend::upload(model_.params(), w.params.data(), w.params.size());
        Backend::upload(model_.adam_m(), st.adam_m.data(), st.adam_m.size());
        Backend::upload(model_.adam_v(), st.adam_v.data(), st.adam_v.size());
        train_data_.set_position(st.loader_shard, st.loader_offset, st.loader_epoch);
        start_step_ = st.step;
        saved_step_ = st.step;
        last_checkpoint_ = ckpt;
        truncate_metrics(metrics_path_, start_step_);
        fmt::print("resuming {} from {} (step {})\n", o_.out, ckpt, start_step_);
        if (start_step_ >= o_.steps) {
            fmt::print("nothing to do: the run already has {} steps (--steps {})\n", start_step_, o_.steps);
            return false;
        }
        return true;
    }

    // config.json: the model, the options, the parameter counts.
    void write_config() {
        Json config = Json::object();
        config["model"] = model_config_to_json(o_.model);
        config["train"] = o_.to_json();
        config["n_params"] = model_.n_params();
        config["n_nonembedding_params"] = o_.model.n_nonembedding_params();
        write_file_atomic(config_path_, config.dump(2) + "\n");
    }

    void print_summary() const {
        fmt::print("model: {} layers, {} heads, width {}, ffn {}, vocab {}, attention {} | {:.2f}M parameters "
                   "({:.2f}M non-embedding)\n",
                   o_.model.n_layers, o_.model.n_heads, o_.model.d_model, o_.model.d_ffn, o_.model.vocab_size,
                   o_.model.attention.describe(), double(model_.n_params()) / 1e6,
                   double(o_.model.n_nonembedding_params()) / 1e6);
        fmt::print("data: {} tokens in training shards, {} tokens per step ({} x {} x {}), {} steps\n",
                   train_data_.total_tokens(), o_.tokens_per_step(), o_.batch, o_.seq, o_.grad_accum, o_.steps);
    }

    // --sink-every: the probe sequences (looking like the training rows) and a CPU model to measure
    // on: the measurement needs the full attention maps, which a fused GPU kernel never writes, and
    // it leaves the training model's buffers alone.
    void prepare_sink_probe() {
        if (o_.sink_every == 0) return;
        probe_ = read_probe_file(o_.probe);
        if (o_.first_token >= 0) prepend_first_token(probe_, int32_t(o_.first_token));
        edit_probe(probe_, o_.data_edits(), o_.model.vocab_size);
        check_token_range(probe_.tokens, o_.model.vocab_size, o_.probe);
        if (probe_.info.length > o_.model.context)
            fail("--probe: sequences of {} tokens exceed the model's context {}", probe_.info.length, o_.model.context);
        probe_model_ = std::make_unique<Model<CpuBackend<float>>>(o_.model);
    }

    // On the CPU without a fixed --threads: fewer threads while other processes keep cores busy
    // (src/util/cpu_share.h; the results do not depend on the thread count). Says when it changes.
    void share_the_cpu() {
        ThreadGovernor* governor = process_thread_governor();
        if (!governor || o_.device != "cpu") return;
        const int before = governor->threads();
        if (governor->update() != before)
            fmt::print("threads: {} -> {} (other processes keep {:.1f} of the {} cores busy)\n", before,
                       governor->threads(), governor->others_cores(), governor->max_threads());
    }

    void open_metrics() {
        metrics_.open(metrics_path_, std::ios::app);
        if (!metrics_) fail("{}: cannot open for writing", metrics_path_);
    }

    // The next batch of `data` into inputs_ and targets_. Under the prefix-LM mask the targets of the
    // positions before P - 1 are dropped (-1: not counted): the loss covers positions >= P - 1, the
    // predictions of tokens P and later.
    void load_batch(DataLoader& data) {
        data.next_batch(inputs_.data(), targets_.data());
        drop_prefix_targets(targets_.data(), o_.batch, o_.seq, o_.model.attention);
    }

    // One optimizer step: grad_accum micro-batches forward and backward, the gradient norm, and
    // (when both are finite) the clipped AdamW update at the scheduled learning rate.
    StepResult train_step(size_t step) {
        const auto t0 = std::chrono::steady_clock::now();
        StepResult r{0.0, 0.0, learning_rate(o_, step), 0.0};
        model_.zero_grad();
        for (size_t micro = 0; micro < o_.grad_accum; micro++) {
            load_batch(train_data_);
            r.loss += model_.forward(inputs_.data(), targets_.data(), o_.batch, o_.seq) / double(o_.grad_accum);
            model_.backward(1.0 / double(o_.grad_accum));
        }
        r.grad_norm = model_.grad_norm();
        if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) return r;
        const double clip_scale = (o_.clip > 0 && r.grad_norm > o_.clip) ? o_.clip / r.grad_norm : 1.0;
        AdamWHyper hp = o_.adam;
        hp.lr = r.lr;
        model_.adamw_step(hp, step + 1, clip_scale);
        Backend::synchronize();
        r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return r;
    }

    // A NaN or infinite loss or gradient: one metrics line saying so, a message, exit code 4; no
    // checkpoint is written, so the last good one stays the latest.
    int report_divergence(size_t done, const StepResult& r) {
        const auto number = [](double x) { return std::isfinite(x) ? Json(x) : Json(fmt::format("{}", x)); };
        Json m = Json::object();
        m["step"] = done;
        m["loss"] = number(r.loss);
        m["grad_norm"] = number(r.grad_norm);
        m["diverged"] = true;
        metrics_ << m.dump() << "\n";
        metrics_.flush();
        fmt::print(stderr,
                   "error: training diverged at step {}: loss {} grad norm {} ({} attention). Stopped without "
                   "saving; the last good checkpoint {} is untouched.\n",
                   done, r.loss, r.grad_norm, o_.model.attention.describe(),
                   last_checkpoint_.empty() ? std::string("(none)") : last_checkpoint_);
        return 4;
    }

    // The metrics line of a finished step (validation and sink figures are added when due).
    Json step_metrics(size_t done, const StepResult& r) {
        const size_t tokens_per_step = o_.tokens_per_step();
        window_seconds_ += r.seconds;
        window_tokens_ += tokens_per_step;
        Json m = Json::object();
        m["step"] = done;
        m["loss"] = r.loss;
        m["lr"] = r.lr;
        m["grad_norm"] = r.grad_norm;
        m["tokens_per_s"] = double(tokens_per_step) / r.seconds;
        m["tokens"] = double(done * tokens_per_step);
        if (o_.device == "cpu") m["threads"] = omp_get_max_threads();
        return m;
    }

    // Mean validation loss over --val-batches batches from the start of the validation data.
    double evaluate() {
        val_data_->reset();
        double sum = 0.0;
        for (size_t i = 0; i < o_.val_batches; i++) {
            load_batch(*val_data_);
            sum += model_.forward(inputs_.data(), targets_.data(), o_.batch, o_.seq);
        }
        return sum / double(o_.val_batches);
    }

    // Sink_k of the current weights on the probe (on the CPU copy).
    SinkReport measure_sinks() {
        if constexpr (std::is_same_v<T, float>)
            Backend::download(probe_model_->params(), model_.params(), model_.n_params());
        SinkOptions options = sink_options_for(o_.model);
        options.keep_maps = false;
        return measure_model_sinks(*probe_model_, probe_, options);
    }

    // The step line, every --log-every steps, on the first and last step, and whenever the line
    // has a validation loss or a sink figure; tokens/s over the steps since the previous line.
    void print_progress(size_t done, const StepResult& r, const Json& m) {
        const bool due = done % o_.log_every == 0 || done == o_.steps || done == start_step_ + 1 ||
                         m.contains("val_loss") || m.contains("sink_k");
        if (!due) return;
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
        const double eta = elapsed / double(done - start_step_) * double(o_.steps - done);
        std::string extra;
        if (m.contains("val_loss")) extra += fmt::format(" | val {:.4f}", m.at("val_loss").as_number());
        if (m.contains("sink_k")) {
            const bool proxy = m.contains("sink_proxy") && m.at("sink_proxy").as_bool();
            extra += fmt::format(" | Sink_1 {:.1f}%{}", m.at("sink_k").as_array()[0].as_number(), proxy ? " (proxy)" : "");
        }
        if (m.contains("sink_star")) extra += fmt::format(" | Sink* {:.1f}%", m.at("sink_star").as_number());
        fmt::print("step {:>{}}/{} | loss {:.4f}{} | lr {:.2e} | grad norm {:.3f} | {:.0f} tok/s | {:.0f}% | "
                   "elapsed {} | ETA {}\n",
                   done, std::to_string(o_.steps).size(), o_.steps, r.loss, extra, r.lr, r.grad_norm,
                   double(window_tokens_) / window_seconds_, 100.0 * double(done) / double(o_.steps),
                   format_duration(elapsed), format_duration(eta));
        std::fflush(stdout);
        window_seconds_ = 0.0;
        window_tokens_ = 0;
    }

    // checkpoints/step_N: the weights (safetensors), AdamW moments, loader position and options.
    void save_checkpoint_at(size_t done) {
        RunState st;
        st.step = done;
        st.loader_shard = train_data_.shard();
        st.loader_offset = train_data_.offset();
        st.loader_epoch = train_data_.epoch();
        st.options = o_.to_json();
        std::vector<float> host(model_.n_params());
        st.adam_m.resize(model_.n_params());
        st.adam_v.resize(model_.n_params());
        if constexpr (std::is_same_v<T, float>) {
            Backend::download(host.data(), model_.params(), host.size());
            Backend::download(st.adam_m.data(), model_.adam_m(), host.size());
            Backend::download(st.adam_v.data(), model_.adam_v(), host.size());
        }
        try {
            last_checkpoint_ = save_checkpoint(o_.out, o_.model, model_.param_table(), host.data(), st);
            saved_step_ = done;
        } catch (const std::exception& e) {
            // No metrics line may claim a step the run cannot resume from: cut back to the last good
            // checkpoint (a --resume from it writes the same lines again).
            metrics_.close();
            truncate_metrics(metrics_path_, saved_step_);
            fail("saving the checkpoint of step {} failed: {}\n{}: cut back to step {}{}", done, e.what(),
                 metrics_path_, saved_step_,
                 last_checkpoint_.empty() ? std::string(" (no checkpoint)")
                                          : fmt::format("; resume from {} with --resume", last_checkpoint_));
        }
    }

    TrainOptions o_;
    const bool resume_;
    const bool overwrite_;
    std::unique_ptr<DirectoryLock> lock_;  // held from before the first write to the end of the run
    const std::string config_path_, metrics_path_;
    Model<Backend> model_;
    DataLoader train_data_;
    std::unique_ptr<DataLoader> val_data_;
    std::vector<int32_t> inputs_, targets_;
    size_t start_step_ = 0;
    size_t saved_step_ = 0;  // the step of last_checkpoint_ (0: none yet)
    std::string last_checkpoint_;
    Probe probe_;
    std::unique_ptr<Model<CpuBackend<float>>> probe_model_;
    std::ofstream metrics_;
    std::chrono::steady_clock::time_point run_start_;
    double window_seconds_ = 0.0;  // since the last printed step line
    size_t window_tokens_ = 0;
};

}  // namespace

void resolve_device(TrainOptions& o) {
    if (o.device == "auto") o.device = query_gpu().device_count > 0 ? "cuda" : "cpu";
    if (o.dtype == "auto") o.dtype = o.device == "cuda" ? "bf16" : "fp32";
}

int run_training(TrainOptions o, bool resume, bool overwrite) {
    resolve_device(o);
    o.validate();
    if (o.device == "cuda") {
#ifdef SINKLAB_WITH_CUDA
        cuda::require_device();
        cuda::set_precision(cuda::parse_precision(o.dtype));
        fmt::print("device: {} ({})\n", query_gpu().name, o.dtype);
        return Trainer<CudaBackend>(o, resume, overwrite).run();
#else
        fail("--device cuda: this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
    }
    return Trainer<CpuBackend<float>>(o, resume, overwrite).run();
}

}  // namespace sinklab
