// The training loop: options, learning-rate schedule, and run_training() which trains, evaluates,
// logs metrics.jsonl, checkpoints and resumes (see cmd_train.cpp for the flags).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/sequence_edits.h"
#include "model/config.h"
#include "ops/adamw.h"  // AdamWHyper
#include "util/json.h"

namespace sinklab {

struct TrainOptions {
    // data and output
    std::string data;           // shard file, glob or directory
    std::string val;            // validation shard(s); empty = no validation
    std::string out = "runs/default";
    // model
    std::string preset = "small";
    ModelConfig model;
    // optimisation (the defaults against the paper's recipe: docs/model.md)
    size_t steps = 1000;
    size_t batch = 16;          // sequences per micro-batch
    size_t seq = 256;           // tokens per sequence
    size_t grad_accum = 1;      // micro-batches per optimizer step
    AdamWHyper adam;            // adam.lr is the peak learning rate
    double min_lr = 0.0;        // cosine floor
    size_t warmup = 100;
    std::string schedule = "constant";  // constant | cosine
    double clip = 1.0;          // global gradient-norm clipping (0 = off)
    uint64_t seed = 1337;
    int64_t first_token = -1;   // >= 0: every sequence starts with this token (see DataLoader)
    // the data levers (src/data/sequence_edits.h)
    int64_t fixed_token = -1;   // >= 0: this token at fixed_position of every sequence
    size_t fixed_position = 0;
    std::string random_tokens;  // "A:B": random ids at positions [A, B) of every sequence
    size_t train_tokens = 0;    // > 0: only the first N training tokens, repeated
    // evaluation, logging, checkpoints
    size_t eval_every = 100;
    size_t val_batches = 8;
    size_t checkpoint_every = 0;  // 0 = only at the end
    size_t log_every = 10;
    size_t sink_every = 0;
    std::string probe;
    std::string device = "cpu";  // cpu | cuda | auto (cuda when a GPU is visible)
    std::string dtype = "fp32";  // fp32 | bf16 (CUDA mixed precision) | auto (bf16 on cuda)

    Json to_json() const;
    static TrainOptions from_json(const Json& j, const std::string& what);
    void validate() const;
    size_t tokens_per_step() const { return batch * seq * grad_accum; }
    // The data levers as the loaders and the probes apply them (the random ids seeded by `seed`).
    SequenceEdits data_edits() const;
};

class ArgParser;

// One option of `sinklab train`, declared once in train_options.cpp (train_options() lists them in
// the order cmd_train applies them: the preset before what overrides it).
struct TrainOption {
    const char* flag;          // --flag, and the key in --config files
    const char* default_text;  // "" = not set unless given
    const char* metavar;
    const char* help;
    const char* json_key;      // its key in config.json's "train" object; nullptr: a model option, kept in "model"
    bool resumable;            // may be given again with --resume
    const char* json_missing;  // its value for a config.json written before it existed (nullptr: required)
    std::function<void(TrainOptions&, const ArgParser&)> read_flag;  // from the parsed flag (it has a value)
    std::function<Json(const TrainOptions&)> write_json;             // (json_key only)
    std::function<void(TrainOptions&, const Json&)> read_json;       // (json_key only)
};
const std::vector<TrainOption>& train_options();

// Learning rate at 0-based step `step`: linear warmup over `warmup` steps to the peak, then
// constant, or cosine from the peak down to min_lr at the last step.
double learning_rate(const TrainOptions& o, size_t step);

// "42s", "3m05s", "1h07m" ("?" for a negative or non-finite duration).
std::string format_duration(double seconds);

// Under the prefix-LM mask (docs/attention.md), the targets of the positions before P - 1 of each
// of the B rows of T targets become -1 (not counted by the loss): the loss covers the predictions
// of tokens P, P + 1, ... Other masks leave the targets as they are.
void drop_prefix_targets(int32_t* targets, size_t B, size_t T, const AttentionSpec& attention);

// Replaces device/dtype "auto" by what this machine has.
void resolve_device(TrainOptions& o);

// Trains (or, with resume, continues the run in o.out from its latest checkpoint up to o.steps).
// Returns the process exit code: 0 done, 4 diverged (NaN or infinite loss or gradient).
// overwrite: a fresh run may replace a run already in o.out (else that is refused).
int run_training(TrainOptions o, bool resume, bool overwrite = false);

}  // namespace sinklab
