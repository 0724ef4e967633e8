// Reading what a training run leaves in its directory (written by `sinklab train --out DIR`):
//   config.json    {"model": {...}, "train": {...}}
//   metrics.jsonl  one JSON object per line: step, loss, lr, grad_norm, tokens_per_s, tokens, threads
//                  (CPU runs); val_loss on evaluation lines; sink_k (percentages, k = 1..) on
//                  sink-evaluation lines
//   sink.json      optional: the sink report of the final model (sink.h's sink_report_json)
// Runs may still be in progress: a torn last line of metrics.jsonl is dropped, not an error.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "util/json.h"

namespace sinklab {

struct RunData {
    std::string dir;
    Json config;                 // config.json
    std::vector<Json> metrics;   // metrics.jsonl, one object per line
    bool torn_last_line = false; // the last line was incomplete (run being written) and was dropped
    bool has_sink_report = false;
    Json sink_report;            // sink.json when present
};

// Reads metrics.jsonl. A last line that does not parse is taken as being written right now and
// dropped (torn = true); any other bad line throws Error naming the file and the line number.
std::vector<Json> read_metrics_jsonl(const std::string& path, bool* torn = nullptr);

// Reads a run directory. Throws Error naming the run and the file when the directory,
// config.json or metrics.jsonl is missing or unreadable; sink.json is optional.
RunData read_run(const std::string& dir);

// (step, value) pairs of one numeric key over the lines that have it (and a step).
struct MetricSeries {
    std::vector<double> step, value;
};
MetricSeries metric_series(const std::vector<Json>& metrics, const std::string& key);
// The k-th entry (0-based) of a list-valued key, e.g. sink_k[0] = Sink_1, over the lines that have it.
MetricSeries metric_list_series(const std::vector<Json>& metrics, const std::string& key, size_t index);

// {"model": {"n_layers": 4}} -> {"model.n_layers": "4"}: every leaf as text (arrays as JSON text).
std::map<std::string, std::string> flatten_json(const Json& json, const std::string& prefix = "");

double median(std::vector<double> values);  // NaN for an empty list

// ---- what the commands that load a checkpoint (sample, sink, stream) learn from its run ----

// A short name for picture titles: "RUN step_0000120" for RUN/checkpoints/step_0000120/model.safetensors.
std::string checkpoint_title(const std::string& weights_path);

// The "train" object of the config.json of the run a checkpoint belongs to (checkpoint_arg itself
// when it is a run directory, or three levels above RUN/checkpoints/step_N/model.safetensors);
// null when there is none.
Json checkpoint_train_config(const std::string& checkpoint_arg, const std::string& weights_path);

// `--first-token`: "none" (-1), an id, or "auto": the first_token of the run (run_train, from
// checkpoint_train_config), so that inputs start as its training rows did (-1 when it has none).
int64_t resolve_first_token(const std::string& flag, const Json& run_train);

// The tokenizer of a checkpoint: tokenizer.bin (or an imported model's tokenizer.json) in the
// directory of the weights or up to three levels above, or next to the training shards named in
// the run's config.json (train.data; a relative path is tried from the working directory, then
// from each directory above the run, as the run's --out was relative to where it was trained).
// Throws Error naming the checkpoint and `flag` (the option that passes one) when there is none.
std::string find_run_tokenizer(const std::string& weights_path, const std::string& flag = "--tokenizer");

}  // namespace sinklab
