// sinklab sink: load a checkpoint, run it over probe sequences and measure the attention sink
// (docs/sinks.md): Sink_k for k = 1..10, per layer, mean alpha, and the norm statistics.
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/shard.h"
#include "io/hf_checkpoint.h"
#include "model/backend_cpu.h"
#include "sink/sink.h"
#include "sink/sink_model.h"
#include "sink/sink_plots.h"
#include "train/checkpoint.h"
#include "train/run_reader.h"
#include "train/train.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/memory.h"

namespace sinklab {

// The data levers the probes get: "auto", the run's (its fixed token at its position, its random
// ids at their positions), or "none".
static SequenceEdits resolve_data_levers(const std::string& flag, const Json& run_train) {
    if (flag != "auto" && flag != "none") fail("--data-levers: expected auto or none, got '{}'", flag);
    if (flag == "none" || !run_train.is_object()) return {};
    TrainOptions o;
    auto number = [&](const char* key, auto def) {
        return run_train.contains(key) ? decltype(def)(run_train.at(key).as_int()) : def;
    };
    o.fixed_token = number("fixed_token", int64_t(-1));
    o.fixed_position = number("fixed_position", size_t(0));
    o.seed = number("seed", uint64_t(1337));
    if (run_train.contains("random_tokens")) o.random_tokens = run_train.at("random_tokens").as_string();
    return o.data_edits();
}

int cmd_sink(int argc, char** argv) {
    ArgParser args("sink", "Measure attention sinks (Sink_k^eps, docs/sinks.md) of a checkpoint on probe sequences.");
    args.option("checkpoint", "", "model.safetensors, a checkpoint directory, or a run directory (its latest checkpoint)",
                "PATH");
    args.option("probe", "", "probe file (a shard whose header[3] is the sequence length); needed for natural probes",
                "FILE");
    args.option("probe-kind", "natural", "natural (from --probe) | random (uniform token ids) | repeated (one token repeated)",
                "KIND");
    args.option("count", "0", "number of probe sequences (0: all in the file; 100 for random/repeated)", "N");
    args.option("length", "0", "tokens per probe sequence (0: the file's length; 64 for random/repeated)", "T");
    args.option("seed", "1", "seed of random and repeated probes", "N");
    args.option("first-token", "auto",
                "put this token first in every probe sequence: auto (the run's --first-token, from its "
                "config.json), none, or an id", "ID");
    args.flag("bos",
              "start every probe sequence with the BOS token of an imported Hugging Face model (bos_token_id of "
              "its config.json, kept in hf_import.json by sinklab import), as its tokenizer does");
    args.option("data-levers", "auto",
                "the run's --fixed-token and --random-tokens in every probe sequence: auto (as the run has them, "
                "from its config.json) or none", "HOW");
    args.option("eps", "0.3", "a head is a sink head when alpha_k > eps (strict)");
    args.option("max-k", "10", "report Sink_1 .. Sink_K", "K");
    args.option("proxy", "auto", "measure on proxy scores |w| / sum |w|: auto (when the weights are not a distribution: no normaliser, or signed) | on | off");
    args.option("batch", "16", "probe sequences per forward pass", "B");
    args.option("json", "", "write the report as JSON (sink.json in a run directory is what compare reads)", "OUT");
    args.flag("maps", "include the mean attention maps (L, H, T, T) in the JSON report");
    args.option("svg", "", "write sink_per_layer.svg, norms.svg and attention_maps.svg into this directory", "DIR");
    args.option("svg-tokens", "32", "attention maps show the first N positions", "N");
    args.epilog(
        "examples:\n"
        "  sinklab sink --checkpoint runs/softmax --probe data/probe.bin --json runs/softmax/sink.json --svg runs/softmax\n"
        "  sinklab sink --checkpoint runs/softmax --probe-kind random --count 100 --length 64\n"
        "  sinklab sink --checkpoint imported/tinyllama --probe-kind random --count 100 --length 64 --bos");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("checkpoint")) fail("--checkpoint: required (see sinklab sink --help)");

    const std::string weights_path = resolve_weights_path(args.get("checkpoint"));
    // The weights are read straight into the model, built for inference (no gradients, no AdamW
    // moments): one copy of the weights, which is what lets a 1B imported model fit a 24 GiB machine.
    std::unique_ptr<Model<CpuBackend<float>>> model_holder;
    const ModelConfig config = load_safetensors_into(weights_path, [&](const ModelConfig& c) {
        model_holder = std::make_unique<Model<CpuBackend<float>>>(c, ModelUse::inference);
        return model_holder->params();
    });
    Model<CpuBackend<float>>& model = *model_holder;

    const std::string kind = args.get("probe-kind");
    size_t count = args.get_size("count"), length = args.get_size("length");
    Probe probe;
    if (kind == "natural") {
        if (!args.has("probe")) fail("--probe: natural probes need a probe file (or use --probe-kind random|repeated)");
        probe = read_probe_file(args.get("probe"), count, length);
    } else if (kind == "random" || kind == "repeated") {
        if (count == 0) count = 100;
        if (length == 0) length = 64;
        require_memory(double(count) * double(length) * sizeof(int32_t),
                       fmt::format("--count {} x --length {} probe tokens", count, length), "reduce --count or --length");
        const uint64_t seed = uint64_t(args.get_int("seed"));
        probe = kind == "random" ? make_random_probe(count, length, config.vocab_size, seed)
                                 : make_repeated_probe(count, length, config.vocab_size, seed);
    } else {
        fail("--probe-kind: '{}' is not one of natural, random, repeated", kind);
    }
    const Json run_train = checkpoint_train_config(args.get("checkpoint"), weights_path);
    int64_t first_token = resolve_first_token(args.get("first-token"), run_train);
    if (args.get_flag("bos")) {
        if (args.given("first-token")) fail("--bos: give either --bos or --first-token, not both");
        first_token = imported_bos_token(weights_path);
    }
    if (first_token >= 0 && size_t(first_token) >= config.vocab_size)
        fail("--first-token {}: outside the model's vocabulary of {} ({})", first_token, config.vocab_size, weights_path);
    if (first_token >= 0) {
        prepend_first_token(probe, int32_t(first_token));
        fmt::print("probe sequences start with the fixed first token {}\n", first_token);
    }
    const SequenceEdits levers = resolve_data_levers(args.get("data-levers"), run_train);
    if (levers.any()) {
        levers.validate(probe.info.length, config.vocab_size);
        edit_probe(probe, levers, config.vocab_size);
        fmt::print("probe sequences carry the run's data levers: {}\n", levers.describe());
    }
    if (probe.info.length > config.context)
        fail("--length: probe sequences of {} tokens exceed the model's context {} ({})", probe.info.length,
             config.context, weights_path);
    check_token_range(probe.tokens, config.vocab_size, args.has("probe") ? args.get("probe") : kind + " probe");

    SinkOptions options = sink_options_for(config, args.get_double("eps"));
    const std::string proxy = args.get("proxy");
    if (proxy == "on") options.proxy = true;
    else if (proxy == "off") options.proxy = false;
    else if (proxy != "auto") fail("--proxy: '{}' is not one of auto, on, off", proxy);
    options.max_k = args.get_size("max-k");
    if (options.max_k == 0) fail("--max-k: must be at least 1");
    options.keep_maps = args.has("svg") || args.get_flag("maps");

    const SinkReport report = measure_model_sinks(model, probe, options, args.get_size("batch"));
    fmt::print("checkpoint {} ({} attention)\n", weights_path, config.attention.describe());
    fmt::print("{}", format_sink_report(report));

    if (args.has("json")) {
        write_file_atomic(args.get("json"), report_json_text(sink_report_json(report, args.get_flag("maps"))));
        fmt::print("wrote {}\n", args.get("json"));
    }
    if (args.has("svg")) {
        for (const std::string& path :
             write_report_plots(report, args.get("svg"), checkpoint_title(weights_path), args.get_size("svg-tokens")))
            fmt::print("wrote {}\n", path);
    }
    return 0;
}

}  // namespace sinklab
