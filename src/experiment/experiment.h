// The paper's experiments as data. An experiment file (experiments/NAME.json; the format is in
// docs/experiments.md) names a table of settings; each setting (a row) is a set of `sinklab train`
// options on top of a scale's recipe (experiments/scales.json: laptop or paper) and, optionally,
// `sinklab sink` options for its measurement, with the paper's figures for that row.
//
//   experiment file + scale -> Experiment (rows, and the distinct training runs they need)
//   runs directory          -> table (one row per setting: measured sinks, losses, tokens, paper's figures)
//
// Rows whose training options are identical share one run (e.g. one model measured on natural,
// random and repeated probes). `sinklab experiment` (src/cli/cmd_experiment.cpp) trains and
// measures the runs; everything here is pure planning and reading.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "util/json.h"

namespace sinklab {

// Command-line options as (flag without "--", value) pairs, sorted by flag; a switch has value "".
using OptionList = std::vector<std::pair<std::string, std::string>>;

struct ExperimentRun {
    std::string slug;      // its directory under the runs directory
    OptionList train;      // the `sinklab train` options (without --out)
    double planned_tokens; // steps x batch x seq x grad-accum
    size_t steps;
};

struct ExperimentRow {
    std::string name;
    size_t run = 0;          // index into Experiment::runs
    OptionList sink;         // the `sinklab sink` options (without --checkpoint and --json)
    std::string sink_file;   // the report's file name in the run directory: sink.json, sink-random.json, ...
    Json paper;              // the paper's figures for this row ({"sink_1": 18.18, "val_loss": 3.73, ...}) or null
};

struct Experiment {
    std::string name;        // the file's stem
    std::string file;
    std::string scale;       // laptop or paper
    std::string title, reference, about, scale_about;
    std::vector<std::string> columns;  // what each row reports: sink_1 .. sink_10, sink_star
    std::vector<ExperimentRow> rows;
    std::vector<ExperimentRun> runs;
};

// The scales an experiment can run at.
const std::vector<std::string>& experiment_scales();

// experiments/NAME.json for a bare NAME, else the path itself.
std::string experiment_path(const std::string& name_or_path);

// Reads an experiment file and the scales file (scales.json next to it) at one scale. `data_dir`
// replaces {data} in option values and its prepare.json gives {eot} (the vocabulary's last id,
// <|endoftext|>). Throws Error naming the file and the key for anything malformed.
Experiment load_experiment(const std::string& path, const std::string& scale, const std::string& data_dir);

// The rows a --only list selects (names or run slugs); every row when the list is empty. Throws
// Error naming an unknown row.
std::vector<size_t> select_rows(const Experiment& e, const std::vector<std::string>& only);

// argv of the commands: `BIN train OPTIONS --out RUN_DIR` and `BIN sink --checkpoint RUN_DIR
// --json RUN_DIR/SINK_FILE OPTIONS`.
std::vector<std::string> train_command(const ExperimentRun& run, const std::string& bin, const std::string& run_dir);
std::vector<std::string> sink_command(const ExperimentRow& row, const std::string& bin, const std::string& run_dir);
// The streaming test of a run (the columns stream_full, stream_window, stream_sink): `BIN stream
// --checkpoint RUN_DIR` over the first kStreamTokens tokens of the run's --val shard, with a window
// of a quarter of its --seq keeping the first kStreamKeepFirst, into RUN_DIR/kStreamDir.
constexpr size_t kStreamTokens = 1024, kStreamKeepFirst = 4;
constexpr const char* kStreamDir = "stream";
bool measures_streaming(const Experiment& e);
std::vector<std::string> stream_command(const ExperimentRun& run, const std::string& bin, const std::string& run_dir);
// One line a shell reads back as the same argv (single quotes where needed).
std::string shell_line(const std::vector<std::string>& argv);

// Where a run stands in its directory.
enum class RunState {
    missing,    // no run there
    other,      // a run made with other options (its experiment.json differs): it is started afresh
    partial,    // interrupted: continues with --resume
    finished,   // every step done
    diverged,   // training stopped on a non-finite loss (the paper's "training failed")
};
const char* run_state_name(RunState s);
// `check_options`: compare the options recorded in RUN/experiment.json (runs made by `sinklab
// experiment`); off for --collect, whose runs were made elsewhere.
RunState run_state(const ExperimentRun& run, const std::string& run_dir, bool check_options);
// The record of the options a run was made with (RUN/experiment.json).
std::string run_record(const ExperimentRun& run);

// The table of an experiment over its runs directory (runs that are missing give empty cells):
//   {"experiment", "title", "reference", "about", "scale", "scale_about", "columns": [...],
//    "rows": [{"name", "run", "status", "steps", "tokens", "val_loss", "proxy",
//              "measured": {column: value or null}, "paper": {...} or null}]}
// Nothing in it depends on where or when the runs were made, so a resumed experiment, or runs made
// elsewhere and collected, give the same bytes.
Json experiment_table(const Experiment& e, const std::string& runs_dir, bool check_options);
std::string table_markdown(const Json& table);
// Writes table.md, table.json, sink.svg (measured against the paper's, per row) and loss.svg (the
// runs' validation losses over tokens on shared axes) into out_dir; returns the paths.
std::vector<std::string> write_experiment_results(const Experiment& e, const Json& table, const std::string& runs_dir,
                                                  const std::string& out_dir);

}  // namespace sinklab
