// `sinklab compare RUN...`: one table over run directories (see run_reader.h for what a run holds).
#pragma once
#include <string>
#include <vector>

#include "util/json.h"

namespace sinklab {

// The comparison as JSON:
//   {"differing_keys": ["model.attention", ...],
//    "runs": [{"dir", "name", "config": {differing key: value}, "step", "steps_planned", "in_progress",
//              "diverged", "final_train_loss", "final_val_loss", "best_val_loss", "best_val_step",
//              "sink_k": [Sink_1, Sink_2, Sink_3] or null, "sink_source": "sink.json" | "metrics.jsonl" | null,
//              "sink_proxy" and "sink_star" when sink.json has them,
//              "sink_step", "tokens_per_s_median"}, ...]}
// train.out is not compared (every run has its own). Numbers that are not known (no evaluation yet)
// are null. Throws Error naming the run and the file when a run directory lacks config.json or
// metrics.jsonl.
Json compare_runs(const std::vector<std::string>& run_dirs);

// One run's entry of the comparison (its "config" empty): step, diverged, in_progress, losses, sinks.
struct RunData;
Json summarize_run(const RunData& run);

// The table printed by the command.
std::string format_comparison(const Json& comparison);

// The runs of a comparison grouped by the value of one configuration key (e.g. "model.attention"),
// in order of first appearance; each metric over a group's runs as mean, min and max:
//   {"key": KEY, "groups": [{"value": "softmax", "runs": [name, ...],
//                            "metrics": {"val_loss": {"mean", "min", "max", "n"}, ...}}, ...],
//    "metrics": [{"name": "sink_1", "label": "Sink_1 at the end (%)"}, ...]}
// Metrics: val_loss, sink_1..3 (at the end), sink_1_peak (highest during training), alpha_1..3,
// massive_ratio (largest over layers); a run without the value is left out of that metric's n.
// Throws Error naming the key when no run has it.
Json group_comparison(const Json& comparison, const std::string& key);

// The grouped table; with exactly two groups also the difference of their means and whether their
// ranges are separated (every run of one group above every run of the other), and a verdict line.
std::string format_groups(const Json& grouped);

}  // namespace sinklab
