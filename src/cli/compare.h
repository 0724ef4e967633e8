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

}  // namespace sinklab
