// sinklab train: flags -> TrainOptions -> run_training (train.cpp).
#include <omp.h>

#include <filesystem>

#include <fmt/format.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "fileio.h"
#include "shard.h"
#include "train.h"

namespace sinklab {

namespace {

// The flags a resumed run may change; everything else comes from OUT/config.json.
const char* const kResumableFlags[] = {"steps", "threads", "log-every", "checkpoint-every", "eval-every", "sink-every", "out", "resume"};

// The vocabulary size recorded by `sinklab prepare` next to the shards, or 0.
size_t vocab_from_prepare(const std::string& data_pattern) {
    const std::string first = expand_shard_paths(data_pattern).front();
    const std::string summary = std::filesystem::path(first).parent_path().string() + "/prepare.json";
    if (!file_exists(summary)) return 0;
    const Json j = Json::parse(read_file(summary), summary);
    return j.contains("vocab_size") ? size_t(j.at("vocab_size").as_int()) : 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
    ArgParser args("train", "Train a LLaMA-style model on token shards (llm.c format), on the CPU or a CUDA GPU.");
    args.option("data", "", "training shards: a file, a glob such as 'dir/train_*.bin', or a directory", "PATTERN");
    args.option("val", "", "validation shard(s), same forms as --data (none: no validation loss)", "PATTERN");
    args.option("out", "runs/default", "run directory: config.json, metrics.jsonl, checkpoints/", "DIR");
    args.option("config", "", "JSON file of options (keys = long flag names); flags override it", "FILE");
    args.option("preset", "small", "model size: tiny, small, tinyllama-60m, tinyllama-1b", "NAME");
    args.option("attention", "softmax", "softmax, sigmoid, sigmoid-norm, elu, elu-norm", "NAME");
    args.option("sigmoid-bias", "0", "b inside sigmoid(s + b) for the sigmoid variants", "B");
    args.option("init", "paper", "initialisation: paper (the paper's scheme, docs/model.md) or torch (framework defaults)", "NAME");
    args.option("layers", "", "override the preset's number of layers", "N");
    args.option("heads", "", "override the preset's number of heads", "N");
    args.option("width", "", "override the preset's model width", "N");
    args.option("ffn", "", "override the preset's SwiGLU hidden size", "N");
    args.option("vocab", "", "vocabulary size (default: prepare.json next to the shards, else the preset's)", "N");
    args.option("context", "", "override the preset's maximum context", "N");
    args.option("steps", "1000", "optimizer steps in total", "N");
    args.option("batch", "16", "sequences per micro-batch", "N");
    args.option("seq", "256", "tokens per sequence", "N");
    args.option("grad-accum", "1", "micro-batches per optimizer step", "N");
    args.option("lr", "4e-4", "peak learning rate", "LR");
    args.option("min-lr", "0", "final learning rate of the cosine schedule", "LR");
    args.option("warmup", "100", "linear warmup steps", "N");
    args.option("schedule", "constant", "after warmup: constant or cosine", "NAME");
    args.option("weight-decay", "0.1", "decoupled weight decay on all parameters", "WD");
    args.option("beta1", "0.9", "AdamW beta1", "B");
    args.option("beta2", "0.95", "AdamW beta2", "B");
    args.option("adam-eps", "1e-8", "AdamW epsilon", "EPS");
    args.option("clip", "1.0", "global gradient-norm clipping threshold (0: off)", "NORM");
    args.option("seed", "1337", "seed of the initialisation", "N");
    args.option("first-token", "", "start every sequence with this token id (a BOS; e.g. <|endoftext|>)", "ID");
    args.option("threads", "", "OpenMP threads (default: all cores)", "N");
    args.option("eval-every", "100", "validation loss every N steps (and at the end)", "N");
    args.option("val-batches", "8", "validation batches per evaluation", "N");
    args.option("checkpoint-every", "0", "checkpoint every N steps (always at the end)", "N");
    args.option("log-every", "10", "print a step line every N steps", "N");
    args.option("sink-every", "0", "measure Sink_1..10 on --probe every N steps (and at the end) into metrics.jsonl", "N");
    args.option("probe", "", "probe file for --sink-every (sinklab prepare writes probe.bin)", "FILE");
    args.option("device", "auto", "cpu, cuda, or auto (cuda when a GPU is visible)", "NAME");
    args.option("dtype", "auto", "fp32, or bf16 (CUDA mixed precision: bf16 matmuls, fp32 master weights); auto: bf16 on cuda", "NAME");
    args.flag("resume", "continue the run in --out from its latest checkpoint up to --steps in total");
    args.epilog(
        "Examples:\n"
        "  sinklab train --data data/cache/linux-doc/train_*.bin --val data/cache/linux-doc/val_000.bin \\\n"
        "                --preset small --attention sigmoid --steps 600 --out runs/sigmoid\n"
        "  sinklab train --out runs/sigmoid --steps 1200 --resume\n"
        "Outputs in --out: config.json, metrics.jsonl (one JSON object per step: step, loss, lr, grad_norm,\n"
        "tokens_per_s, tokens, and val_loss when evaluated), checkpoints/step_N/{model.safetensors,state.bin}.\n"
        "Exit codes: 0 done, 1 bad input, 4 training diverged (NaN or infinite loss).");
    if (!args.parse(argc, argv)) return 0;

    if (args.has("threads")) {
        const size_t threads = args.get_size("threads");
        if (threads == 0) fail("--threads must be positive");
        omp_set_num_threads(int(threads));
    }

    const bool resume = args.get_flag("resume");
    TrainOptions o;
    if (resume) {
        for (int i = 1; i < argc; i++) {
            const std::string a = argv[i];
            if (a.rfind("--", 0) != 0) continue;
            std::string name(a.begin() + 2, a.end());
            if (const size_t eq = name.find('='); eq != std::string::npos) name.resize(eq);
            bool allowed = false;
            for (const char* f : kResumableFlags) allowed = allowed || name == f;
            if (!allowed)
                fail("--{} cannot be changed on --resume: the run continues with the options in its config.json "
                     "(only --steps, --threads, --log-every, --checkpoint-every, --eval-every may be given)", name);
        }
        const std::string out = args.get("out");
        const std::string config_path = out + "/config.json";
        if (!file_exists(config_path)) fail("--resume: {} not found (is --out the run directory?)", config_path);
        const Json config = Json::parse(read_file(config_path), config_path);
        o = TrainOptions::from_json(config.at("train"), config_path);
        o.model = model_config_from_json(config.at("model"), config_path);
        o.out = out;
        if (args.given("steps")) o.steps = args.get_size("steps");
        if (args.given("log-every")) o.log_every = args.get_size("log-every");
        if (args.given("checkpoint-every")) o.checkpoint_every = args.get_size("checkpoint-every");
        if (args.given("eval-every")) o.eval_every = args.get_size("eval-every");
        if (args.given("sink-every")) o.sink_every = args.get_size("sink-every");
        return run_training(o, true);
    }

    if (args.has("config")) {
        const std::string path = args.get("config");
        const Json file = Json::parse(read_file(path), path);
        if (!file.is_object()) fail("{}: expected a JSON object of options", path);
        for (const auto& [key, value] : file.as_object()) {
            std::string text;
            if (value.is_string()) text = value.as_string();
            else if (value.is_bool()) { if (!value.as_bool()) continue; text.push_back('1'); }
            else text = value.dump();
            args.set_if_not_given(key, text, path);
        }
    }

    o.data = args.get("data");
    o.val = args.get("val");
    o.out = args.get("out");
    o.preset = args.get("preset");
    o.model = preset(o.preset);
    o.model.attention = parse_attention(args.get("attention"));
    o.model.attention.sigmoid_bias = args.get_double("sigmoid-bias");
    o.model.init = parse_init(args.get("init"));
    if (args.has("layers")) o.model.n_layers = args.get_size("layers");
    if (args.has("heads")) o.model.n_heads = args.get_size("heads");
    if (args.has("width")) o.model.d_model = args.get_size("width");
    if (args.has("ffn")) o.model.d_ffn = args.get_size("ffn");
    if (args.has("context")) o.model.context = args.get_size("context");
    if (o.data.empty()) fail("--data is required (training shards; see sinklab prepare)");
    if (args.has("vocab")) {
        o.model.vocab_size = args.get_size("vocab");
    } else if (const size_t v = vocab_from_prepare(o.data)) {
        o.model.vocab_size = v;
    }
    o.steps = args.get_size("steps");
    o.batch = args.get_size("batch");
    o.seq = args.get_size("seq");
    if (!args.has("context") && o.seq > o.model.context) o.model.context = o.seq;
    o.grad_accum = args.get_size("grad-accum");
    o.adam.lr = args.get_double("lr");
    o.min_lr = args.get_double("min-lr");
    o.warmup = args.get_size("warmup");
    o.schedule = args.get("schedule");
    o.adam.weight_decay = args.get_double("weight-decay");
    o.adam.beta1 = args.get_double("beta1");
    o.adam.beta2 = args.get_double("beta2");
    o.adam.eps = args.get_double("adam-eps");
    o.clip = args.get_double("clip");
    o.seed = uint64_t(args.get_size("seed"));
    if (args.has("first-token")) o.first_token = args.get_int("first-token");
    o.eval_every = args.get_size("eval-every");
    o.val_batches = args.get_size("val-batches");
    o.checkpoint_every = args.get_size("checkpoint-every");
    o.log_every = std::max<size_t>(1, args.get_size("log-every"));
    o.sink_every = args.get_size("sink-every");
    o.probe = args.get("probe");
    o.device = args.get("device");
    o.dtype = args.get("dtype");
    return run_training(o, false);
}

}  // namespace sinklab
