// The options of `sinklab train`, declared once (train_options()): each one's flag (also its key in
// --config files), default, help, its key in the run's config.json, whether --resume may change it,
// and how it is read from the command line and from / into config.json. cmd_train.cpp declares
// the flags from this list, applies them in its order, and TrainOptions::to_json / from_json
// write and read the run's options through it. Adding an option is one entry here (and a field of
// TrainOptions or ModelConfig).
#include <algorithm>

#include "cli/cli.h"
#include "train/train.h"
#include "util/error.h"

namespace sinklab {

namespace {

// A field of TrainOptions (or of its AdamW hyperparameters), by reference.
template <typename V>
using Field = V& (*)(TrainOptions&);

// The value of a field of a const TrainOptions (Field gives write access; reading needs no copy).
template <typename V>
const V& read(const TrainOptions& o, Field<V> field) {
    return field(const_cast<TrainOptions&>(o));
}

// Options stored in config.json's "train" object under `key`, typed: size, double, integer, string.
TrainOption size_option(const char* flag, const char* def, const char* metavar, const char* help, const char* key,
                        Field<size_t> field, bool resumable = false) {
    return {flag, def, metavar, help, key, resumable, nullptr,
            [=](TrainOptions& o, const ArgParser& a) { field(o) = a.get_size(flag); },
            [=](const TrainOptions& o) { return Json(read(o, field)); },
            [=](TrainOptions& o, const Json& j) { field(o) = size_t(j.as_int()); }};
}
TrainOption double_option(const char* flag, const char* def, const char* metavar, const char* help, const char* key,
                          Field<double> field) {
    return {flag, def, metavar, help, key, false, nullptr,
            [=](TrainOptions& o, const ArgParser& a) { field(o) = a.get_double(flag); },
            [=](const TrainOptions& o) { return Json(read(o, field)); },
            [=](TrainOptions& o, const Json& j) { field(o) = j.as_number(); }};
}
TrainOption string_option(const char* flag, const char* def, const char* metavar, const char* help, const char* key,
                          Field<std::string> field, const char* json_missing = nullptr) {
    return {flag, def, metavar, help, key, false, json_missing,
            [=](TrainOptions& o, const ArgParser& a) { field(o) = a.get(flag); },
            [=](const TrainOptions& o) { return Json(read(o, field)); },
            [=](TrainOptions& o, const Json& j) { field(o) = j.as_string(); }};
}
// An option of the model (stored in config.json's "model" object by model_config_to_json, not here).
TrainOption model_option(const char* flag, const char* def, const char* metavar, const char* help,
                         void (*apply)(ModelConfig&, const ArgParser&, const char*)) {
    return {flag, def, metavar, help, nullptr, false, nullptr,
            [=](TrainOptions& o, const ArgParser& a) { apply(o.model, a, flag); }, nullptr, nullptr};
}

// The size of a mask (--window, --prefix): a token count that fits an int.
int mask_size(const ArgParser& a, const char* flag) {
    const size_t n = a.get_size(flag);
    if (n > (size_t(1) << 30)) fail("--{} {} is too large", flag, n);
    return int(n);
}

std::vector<TrainOption> make_train_options() {
    using O = TrainOptions;
    std::vector<TrainOption> options = {
        // ---- data and output ----
        string_option("data", "", "PATTERN", "training shards: a file, a glob such as 'dir/train_*.bin', or a directory of shards (not a prepared corpus: name its train_*.bin)",
                      "data", [](O& o) -> std::string& { return o.data; }),
        string_option("val", "", "PATTERN", "validation shard(s), same forms as --data (none: no validation loss)", "val",
                      [](O& o) -> std::string& { return o.val; }),
        string_option("out", "runs/default", "DIR", "run directory: config.json, metrics.jsonl, checkpoints/", "out",
                      [](O& o) -> std::string& { return o.out; }),
        // ---- the model: the preset first, then what overrides it ----
        {"preset", "small", "NAME", "model size: tiny, small, tinyllama-60m, tinyllama-1b", "preset", false, nullptr,
         [](O& o, const ArgParser& a) {
             o.preset = a.get("preset");
             o.model = preset(o.preset);
         },
         [](const O& o) { return Json(o.preset); }, [](O& o, const Json& j) { o.preset = j.as_string(); }},
        model_option("attention", "softmax", "NAME",
                     "softmax, sigmoid, sigmoid-norm, elu, elu-norm, linear-kernel, linear-kernel-norm, elu-kernel, "
                     "elu-kernel-norm, mlp-kernel, mlp-kernel-norm, softpick (docs/attention.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.attention = parse_attention(a.get(f)); }),
        model_option("sigmoid-bias", "0", "B", "b inside sigmoid(s + b) for the sigmoid variants",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.attention.score_bias = a.get_double(f); }),
        model_option("softmax-alpha", "1", "A", "softmax only: scale the weights so that each row sums to A",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.attention.softmax_alpha = a.get_double(f); }),
        model_option("window", "0", "W", "sliding-window mask: each query sees its last W keys, itself included (0: off)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) {
                         m.attention.window = mask_size(a, f);
                         if (m.attention.window > 0) m.attention.mask = MaskKind::window;
                     }),
        model_option("prefix", "0", "P",
                     "prefix-LM mask: the first P tokens see each other, the loss counts positions >= P-1 (0: off)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) {
                         m.attention.prefix = mask_size(a, f);
                         if (m.attention.prefix > 0) m.attention.mask = MaskKind::prefix;
                     }),
        model_option("slot", "none", "KIND",
                     "extra key/value slot: none, k-bias, kv-bias, sink-token (= kv-bias), v-bias (softpick: only v-bias); "
                     "or a sink logit (softmax): "
                     "sink-logit (learned per head), off-by-one (fixed at 0) (docs/attention.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.attention.slot = parse_slot(a.get(f)); }),
        model_option("slot-sharing", "per-head", "HOW",
                     "the slot's k* and v*: per-head (one per head) or shared (one for all heads)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) {
                         m.attention.slot_shared = parse_slot_sharing(a.get(f));
                     }),
        model_option("init", "paper", "NAME", "initialisation: paper (the paper's scheme, docs/model.md) or torch (framework defaults)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.init = parse_init(a.get(f)); }),
        model_option("layers", "", "N", "override the preset's number of layers",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.n_layers = a.get_size(f); }),
        model_option("heads", "", "N", "override the preset's number of heads",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.n_heads = a.get_size(f); }),
        model_option("width", "", "N", "override the preset's model width",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.d_model = a.get_size(f); }),
        model_option("position", "rope", "NAME",
                     "positions: rope, nope, sinusoidal, learned (absolute, added to the embeddings), alibi, t5 "
                     "(score biases) (docs/model.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.position = parse_position(a.get(f)); }),
        model_option("norm", "pre", "WHERE",
                     "RMSNorm placement: pre (before each sub-block, and a final norm) or post (after each residual "
                     "add, no final norm)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.post_norm = parse_norm_placement(a.get(f)); }),
        model_option("attention-gate", "none", "KIND",
                     "gate the attention output by sigmoid(x W_g) before Wo: none, headwise (one gate per head), "
                     "elementwise (one per channel) (docs/model.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) {
                         m.attention_gate = parse_attention_gate(a.get(f));
                     }),
        model_option("head-norm", "none", "HOW",
                     "each head's attention output before Wo: none, or rms (RMSNorm per head with its own gains; "
                     "docs/model.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.head_norm = parse_head_norm(a.get(f)); }),
        model_option("head-output", "concat", "HOW",
                     "the heads' outputs: concat (then a C x C projection) or sum (then one D x C projection)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.sum_heads = parse_head_output(a.get(f)); }),
        model_option("ffn-type", "swiglu", "NAME",
                     "feed-forward block: swiglu, geglu, reglu (gated), relu, gelu, swish (docs/model.md)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.ffn = parse_ffn(a.get(f)); }),
        model_option("ffn", "", "N", "override the preset's FFN hidden size F",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.d_ffn = a.get_size(f); }),
        model_option("vocab", "", "N", "vocabulary size (default: prepare.json next to the shards, else the preset's)",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.vocab_size = a.get_size(f); }),
        model_option("context", "", "N", "override the preset's maximum context",
                     [](ModelConfig& m, const ArgParser& a, const char* f) { m.context = a.get_size(f); }),
        // ---- optimisation ----
        size_option("steps", "1000", "N", "optimizer steps in total", "steps", [](O& o) -> size_t& { return o.steps; }, true),
        size_option("batch", "16", "N", "sequences per micro-batch", "batch", [](O& o) -> size_t& { return o.batch; }),
        size_option("seq", "256", "N", "tokens per sequence", "seq", [](O& o) -> size_t& { return o.seq; }),
        size_option("grad-accum", "1", "N", "micro-batches per optimizer step", "grad_accum",
                    [](O& o) -> size_t& { return o.grad_accum; }),
        double_option("lr", "4e-4", "LR", "peak learning rate", "lr", [](O& o) -> double& { return o.adam.lr; }),
        double_option("min-lr", "0", "LR", "final learning rate of the cosine schedule", "min_lr",
                      [](O& o) -> double& { return o.min_lr; }),
        size_option("warmup", "100", "N", "linear warmup steps", "warmup", [](O& o) -> size_t& { return o.warmup; }),
        string_option("schedule", "constant", "NAME", "after warmup: constant or cosine", "schedule",
                      [](O& o) -> std::string& { return o.schedule; }),
        double_option("weight-decay", "0.1", "WD", "decoupled weight decay on all parameters", "weight_decay",
                      [](O& o) -> double& { return o.adam.weight_decay; }),
        double_option("beta1", "0.9", "B", "AdamW beta1", "beta1", [](O& o) -> double& { return o.adam.beta1; }),
        double_option("beta2", "0.95", "B", "AdamW beta2", "beta2", [](O& o) -> double& { return o.adam.beta2; }),
        double_option("adam-eps", "1e-8", "EPS", "AdamW epsilon", "adam_eps", [](O& o) -> double& { return o.adam.eps; }),
        double_option("clip", "1.0", "NORM", "global gradient-norm clipping threshold (0: off)", "clip",
                      [](O& o) -> double& { return o.clip; }),
        {"seed", "1337", "N", "seed of the initialisation", "seed", false, nullptr,
         [](O& o, const ArgParser& a) { o.seed = uint64_t(a.get_size("seed")); },
         [](const O& o) { return Json(double(o.seed)); }, [](O& o, const Json& j) { o.seed = uint64_t(j.as_int()); }},
        {"first-token", "", "ID", "start every sequence with this token id (a BOS; e.g. <|endoftext|>)", "first_token",
         false, nullptr, [](O& o, const ArgParser& a) { o.first_token = a.get_int("first-token"); },
         [](const O& o) { return Json(o.first_token); }, [](O& o, const Json& j) { o.first_token = j.as_int(); }},
        // ---- the data levers (docs/data.md): absent from older runs' config.json, where they were off ----
        {"fixed-token", "", "ID", "write this token id at --fixed-position of every sequence (replacing the data token)",
         "fixed_token", false, "-1", [](O& o, const ArgParser& a) { o.fixed_token = a.get_int("fixed-token"); },
         [](const O& o) { return Json(o.fixed_token); },
         [](O& o, const Json& j) { o.fixed_token = j.is_string() ? std::stoll(j.as_string()) : j.as_int(); }},
        {"fixed-position", "0", "P", "the position (0-based) of --fixed-token", "fixed_position", false, "0",
         [](O& o, const ArgParser& a) { o.fixed_position = a.get_size("fixed-position"); },
         [](const O& o) { return Json(o.fixed_position); },
         [](O& o, const Json& j) { o.fixed_position = j.is_string() ? std::stoull(j.as_string()) : size_t(j.as_int()); }},
        string_option("random-tokens", "", "A:B", "uniform random token ids at positions [A, B) of every sequence (seeded)",
                      "random_tokens", [](O& o) -> std::string& { return o.random_tokens; }, ""),
        {"train-tokens", "0", "N", "train on the first N tokens of --data only, repeated (0: all)", "train_tokens", false,
         "0", [](O& o, const ArgParser& a) { o.train_tokens = a.get_size("train-tokens"); },
         [](const O& o) { return Json(o.train_tokens); },
         [](O& o, const Json& j) { o.train_tokens = j.is_string() ? std::stoull(j.as_string()) : size_t(j.as_int()); }},
        // ---- evaluation, logging, checkpoints ----
        size_option("eval-every", "100", "N", "validation loss every N steps (and at the end)", "eval_every",
                    [](O& o) -> size_t& { return o.eval_every; }, true),
        size_option("val-batches", "8", "N", "validation batches per evaluation", "val_batches",
                    [](O& o) -> size_t& { return o.val_batches; }),
        size_option("checkpoint-every", "0", "N", "checkpoint every N steps (always at the end)", "checkpoint_every",
                    [](O& o) -> size_t& { return o.checkpoint_every; }, true),
        {"log-every", "10", "N", "print a step line every N steps", "log_every", true, nullptr,
         [](O& o, const ArgParser& a) { o.log_every = std::max<size_t>(1, a.get_size("log-every")); },
         [](const O& o) { return Json(o.log_every); }, [](O& o, const Json& j) { o.log_every = size_t(j.as_int()); }},
        size_option("sink-every", "0", "N", "measure Sink_1..10 on --probe every N steps (and at the end) into metrics.jsonl",
                    "sink_every", [](O& o) -> size_t& { return o.sink_every; }, true),
        string_option("probe", "", "FILE", "probe file for --sink-every (sinklab prepare writes probe.bin)", "probe",
                      [](O& o) -> std::string& { return o.probe; }),
        // ---- where it runs ----
        string_option("device", "auto", "NAME", "cpu, cuda, or auto (cuda when a GPU is visible)", "device",
                      [](O& o) -> std::string& { return o.device; }),
        string_option("dtype", "auto", "NAME",
                      "fp32, or bf16 (CUDA mixed precision: bf16 matmuls, fp32 master weights); auto: bf16 on cuda",
                      "dtype", [](O& o) -> std::string& { return o.dtype; }, "fp32"),
    };
    return options;
}

}  // namespace

const std::vector<TrainOption>& train_options() {
    static const std::vector<TrainOption> options = make_train_options();
    return options;
}

Json TrainOptions::to_json() const {
    Json j = Json::object();
    for (const TrainOption& opt : train_options())
        if (opt.json_key) j[opt.json_key] = opt.write_json(*this);
    j["tokens_per_step"] = tokens_per_step();
    return j;
}

TrainOptions TrainOptions::from_json(const Json& j, const std::string& what) {
    TrainOptions o;
    try {
        for (const TrainOption& opt : train_options()) {
            if (!opt.json_key) continue;
            if (!j.contains(opt.json_key) && opt.json_missing) {  // written before the option existed
                opt.read_json(o, Json(opt.json_missing));
                continue;
            }
            opt.read_json(o, j.at(opt.json_key));
        }
    } catch (const Error& e) {
        fail("{}: bad training options: {}", what, e.what());
    }
    return o;
}

}  // namespace sinklab
