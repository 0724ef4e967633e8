// sinklab train: flags -> TrainOptions -> run_training (train.cpp).

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/shard.h"
#include "train/train.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace {

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
    for (const TrainOption& opt : train_options()) args.option(opt.flag, opt.default_text, opt.help, opt.metavar);
    args.option("config", "", "JSON file of options (keys = long flag names); flags override it", "FILE");
    args.threads_option(/*adaptive=*/true);
    args.flag("resume", "continue the run in --out from its latest checkpoint up to --steps in total");
    args.flag("overwrite", "replace the run already in --out (its config, metrics and checkpoints) by a fresh one");
    args.epilog(
        "Examples:\n"
        "  sinklab train --data data/cache/linux-doc/train_*.bin --val data/cache/linux-doc/val_000.bin \\\n"
        "                --preset small --attention sigmoid --steps 600 --out runs/sigmoid\n"
        "  sinklab train --out runs/sigmoid --steps 1200 --resume\n"
        "Outputs in --out: config.json, metrics.jsonl (one JSON object per step: step, loss, lr, grad_norm,\n"
        "tokens_per_s, tokens, threads (on the CPU), and val_loss when evaluated), checkpoints/step_N/{model.safetensors,state.bin}.\n"
        "A fresh run into an --out that holds one is refused unless --overwrite; two trainers never share an --out.\n"
        "Exit codes: 0 done, 1 bad input, 4 training diverged (NaN or infinite loss).");
    if (!args.parse(argc, argv)) return 0;

    args.apply_threads(/*adaptive=*/true);

    const bool resume = args.get_flag("resume");
    TrainOptions o;
    if (resume) {
        // Only the resumable options (and --out, --threads) may be given; the rest comes from config.json.
        std::vector<std::string> allowed = {"out", "threads"};
        std::string allowed_text = "--out, --threads";
        for (const TrainOption& opt : train_options())
            if (opt.resumable) {
                allowed.push_back(opt.flag);
                allowed_text += fmt::format(", --{}", opt.flag);
            }
        for (int i = 1; i < argc; i++) {
            const std::string a = argv[i];
            if (a.rfind("--", 0) != 0) continue;
            std::string name(a.begin() + 2, a.end());
            if (const size_t eq = name.find('='); eq != std::string::npos) name.resize(eq);
            if (name != "resume" && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
                fail("--{} cannot be changed on --resume: the run continues with the options in its config.json "
                     "(only {} may be given)", name, allowed_text);
        }
        const std::string out = args.get("out");
        const std::string config_path = out + "/config.json";
        if (!file_exists(config_path)) fail("--resume: {} not found (is --out the run directory?)", config_path);
        const Json config = Json::parse(read_file(config_path), config_path);
        for (const char* key : {"train", "model"})
            if (!config.contains(key) || !config.at(key).is_object())
                fail("--resume: {} has no \"{}\" object (not written by sinklab train, or damaged)", config_path, key);
        o = TrainOptions::from_json(config.at("train"), config_path);
        o.model = model_config_from_json(config.at("model"), config_path);
        o.out = out;
        for (const TrainOption& opt : train_options())
            if (opt.resumable && args.given(opt.flag)) opt.read_flag(o, args);
        return run_training(o, true);
    }

    if (args.has("config")) {
        const std::string path = args.get("config");
        const Json file = Json::parse(read_file(path), path);
        if (!file.is_object()) fail("{}: expected a JSON object of options", path);
        for (const char* key : {"resume", "overwrite"})
            if (file.contains(key))
                fail("{}: \"{}\" cannot come from a config file; give --{} on the command line", path, key, key);
        for (const auto& [key, value] : file.as_object()) {
            std::string text;
            if (value.is_string()) text = value.as_string();
            else if (value.is_bool()) { if (!value.as_bool()) continue; text.push_back('1'); }
            else text = value.dump();
            args.set_if_not_given(key, text, path);
        }
    }

    // Every option with a value (given, from --config, or its default), in the declared order.
    for (const TrainOption& opt : train_options())
        if (args.has(opt.flag)) opt.read_flag(o, args);
    if (o.data.empty()) fail("--data is required (training shards; see sinklab prepare)");
    if (!args.has("vocab"))
        if (const size_t v = vocab_from_prepare(o.data)) o.model.vocab_size = v;
    if (!args.has("context") && o.seq > o.model.context) {
        fmt::print("--seq {} is longer than the preset's context {}: the model's context is raised to {} (give --context "
                   "to choose it)\n", o.seq, o.model.context, o.seq);
        o.model.context = o.seq;
    }
    return run_training(o, false, args.get_flag("overwrite"));
}

}  // namespace sinklab
