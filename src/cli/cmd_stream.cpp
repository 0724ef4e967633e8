// sinklab stream: StreamingLLM's test (Xiao et al. 2023, arXiv 2309.17453). A long document read
// token by token through a rolling KV cache (src/model/kv_cache.h) under three policies:
//   full       no eviction: every token attends to the whole document before it
//   window     the last W tokens (K = 0): the plain rolling window
//   streaming  the first K tokens and the last W - K (the attention sinks kept)
// and the perplexity of each: a table, a picture of the NLL over the document (SVG), and the
// per-position NLLs (JSON and CSV).
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "model/kv_cache.h"
#include "sink/sink.h"  // report_json_text
#include "train/checkpoint.h"
#include "train/run_reader.h"
#include "train/train.h"  // format_duration
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/svg.h"

namespace sinklab {

namespace {

namespace fs = std::filesystem;

// One policy of the cache, and what it measured.
struct StreamMode {
    std::string key;    // "full", "window", "streaming": the JSON and CSV names
    std::string label;  // for the table and the picture
    CachePolicy policy;
    std::vector<double> nll;  // (tokens - 1) nll[t] = -log p(token t + 1 | the cache after token t)
    double mean_nll = 0;
    double seconds = 0;  // the time this mode took (on its own thread)
};

// The arithmetic of one token under a policy, for the ETA: the weights (about 2 flops each) and,
// per cached token and layer, the dot product and the weighted sum of the attention (4C flops).
struct WorkModel {
    double per_token, per_cached_key;
    double token(size_t cached) const { return per_token + per_cached_key * double(cached); }
    // The work of a whole document of n steps under a window (0: no limit).
    double document(size_t steps, size_t window) const {
        double sum = 0;
        for (size_t t = 0; t < steps; t++) sum += token(window ? std::min(t + 1, window) : t + 1);
        return sum;
    }
};

// One progress line (tokens done / total over the modes, elapsed, ETA): rewritten in place on a
// terminal (stderr), else a line every 30 seconds.
class StreamProgress {
public:
    StreamProgress(size_t total_tokens, double total_work) : total_tokens_(total_tokens), total_work_(total_work) {}
    // One token of some mode done (`work` its arithmetic); thread-safe.
    void advance(double work) {
#pragma omp critical(stream_progress)
        {
            tokens_++;
            work_ += work;
            const auto now = std::chrono::steady_clock::now();
            const bool last = tokens_ == total_tokens_;
            if (last || seconds(now - last_print_) >= (tty_ ? 0.2 : 30.0)) {
                last_print_ = now;
                const double elapsed = seconds(now - start_);
                const double eta = work_ > 0 && elapsed > 0.5 ? elapsed * (total_work_ - work_) / work_ : NAN;
                const std::string line = fmt::format("stream: {}/{} tokens (all modes) | {} elapsed | ETA {}", tokens_,
                                                     total_tokens_, format_duration(elapsed), format_duration(eta));
                if (tty_) fmt::print(stderr, "\r\033[K{}{}", line, last ? "\n" : "");
                else fmt::print(stderr, "{}\n", line);
                std::fflush(stderr);
            }
        }
    }
    double elapsed() const { return seconds(std::chrono::steady_clock::now() - start_); }

private:
    static double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
    size_t total_tokens_, tokens_ = 0;
    double total_work_, work_ = 0;
    bool tty_ = isatty(2);
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_print_{};
};

// The document's token ids: FILE as a token shard when it starts with a shard's magic, else raw
// text encoded with the tokenizer (found lazily: a shard needs none).
std::vector<int32_t> read_document(const std::string& path, const std::function<Tokenizer()>& tokenizer,
                                   bool* was_shard) {
    if (!fs::is_regular_file(path)) fail("--text: {}: no such file", path);
    const std::string bytes = read_file(path);
    if (bytes.empty()) fail("--text: {} is empty", path);
    int32_t magic = 0;
    if (bytes.size() >= sizeof(magic)) std::memcpy(&magic, bytes.data(), sizeof(magic));
    *was_shard = magic == kShardMagicU16 || magic == kShardMagicU32;
    if (*was_shard) return read_shard(path);
    return tokenizer().encode(bytes);
}

// Mean NLL over consecutive bins of `bin` positions: x = the bin's middle position (of the
// predicted token), y = the mean.
Series binned_series(const StreamMode& mode, size_t bin, const std::string& color, bool dashed) {
    Series s;
    s.name = fmt::format("{} (ppl {:.2f})", mode.label, std::exp(mode.mean_nll));
    s.color = color;
    s.dashed = dashed;
    for (size_t begin = 0; begin < mode.nll.size(); begin += bin) {
        const size_t end = std::min(mode.nll.size(), begin + bin);
        double sum = 0;
        for (size_t t = begin; t < end; t++) sum += mode.nll[t];
        s.x.push_back(double(begin + end) / 2.0 + 1.0);  // predicted tokens are positions 1 ..
        s.y.push_back(sum / double(end - begin));
    }
    return s;
}

}  // namespace

int cmd_stream(int argc, char** argv) {
    ArgParser args("stream",
                   "Perplexity of a long document read token by token through a rolling KV cache that keeps the "
                   "first K tokens and the last W - K (StreamingLLM, Xiao et al. 2023), beside the full context and "
                   "the plain rolling window (K = 0).");
    args.option("checkpoint", "", "a run directory, a checkpoint directory or a model.safetensors file", "PATH");
    args.option("text", "", "the document: raw text (encoded with the run's tokenizer) or a token shard", "FILE");
    args.option("window", "", "W, the tokens the rolling cache holds (required)", "W");
    args.option("keep-first", "4", "K, the first tokens of the document the streaming cache never evicts (K < W)",
                "K");
    args.option("tokens", "0", "read the first N tokens of the document, the first token included (0: all)", "N");
    args.option("tokenizer", "", "tokenizer file (default: tokenizer.bin next to the run's training shards)", "FILE");
    args.option("first-token", "auto",
                "put this token before the document: auto (the run's --first-token, from its config.json, as its "
                "training rows began), none, or an id", "ID");
    args.option("bin", "64", "the picture averages the NLL over bins of this many positions", "N");
    args.option("out", "stream", "where to write stream.svg, stream.json and stream.csv", "DIR");
    args.threads_option();
    args.epilog(
        "Each token's keys and values (every layer) are computed once, when the token is read, and kept: an\n"
        "evicted token is gone. Positions are those inside the cache: RoPE rotates the key in slot s by s and\n"
        "the new query by its slot; ALiBi and T5 use the slot distance; learned and sinusoidal positions are\n"
        "added at the input with the slot the token enters. The full context is the same computation without\n"
        "eviction. Runs in double precision on the CPU.\n"
        "\n"
        "example:\n"
        "  sinklab stream --checkpoint runs/softmax --text doc.txt --window 16 --keep-first 4 --out runs/softmax/stream\n");
    if (!args.parse(argc, argv)) return 0;

    // ---- the inputs, all checked before anything is written ----
    if (!args.has("checkpoint")) fail("--checkpoint: required (see sinklab stream --help)");
    if (!args.has("text")) fail("--text: required (see sinklab stream --help)");
    if (!args.has("window")) fail("--window: required (see sinklab stream --help)");
    const size_t window = args.get_size("window");
    const size_t keep_first = args.get_size("keep-first");
    if (window == 0) fail("--window: must be at least 1");
    if (keep_first >= window)
        fail("--keep-first {} must be below --window {} (the cache keeps the first K and the last W - K tokens)",
             keep_first, window);
    const size_t bin = args.get_size("bin");
    if (bin == 0) fail("--bin: must be at least 1");
    args.apply_threads();
    if (!fs::exists(args.get("checkpoint"))) fail("--checkpoint: {}: no such file or directory", args.get("checkpoint"));
    const std::string weights_path = resolve_weights_path(args.get("checkpoint"));
    const LoadedWeights weights = load_safetensors(weights_path);
    const ModelConfig& config = weights.config;
    if (const std::string why = kv_cache_unsupported(config); !why.empty()) fail("{}: {}", weights_path, why);
    if (config.position == PositionKind::learned && window > config.context)
        fail("--window {}: the model has learned positions for {} tokens only ({})", window, config.context,
             weights_path);
    const Json run_train = checkpoint_train_config(args.get("checkpoint"), weights_path);

    std::string tokenizer_path;
    auto tokenizer = [&]() {
        tokenizer_path = args.has("tokenizer") ? args.get("tokenizer") : find_run_tokenizer(weights_path);
        Tokenizer tok = Tokenizer::load(tokenizer_path);
        if (tok.vocab_size() > config.vocab_size)
            fail("{}: the tokenizer has {} ids but the model {} only {}: not the tokenizer this model was trained with",
                 tokenizer_path, tok.vocab_size(), weights_path, config.vocab_size);
        return tok;
    };
    bool was_shard = false;
    std::vector<int32_t> tokens = read_document(args.get("text"), tokenizer, &was_shard);
    const int64_t first_token = resolve_first_token(args.get("first-token"), run_train);
    if (first_token >= 0 && size_t(first_token) >= config.vocab_size)
        fail("--first-token {}: outside the model's vocabulary of {} ({})", first_token, config.vocab_size, weights_path);
    if (first_token >= 0) tokens.insert(tokens.begin(), int32_t(first_token));
    if (const size_t limit = args.get_size("tokens"); limit > 0 && tokens.size() > limit) tokens.resize(limit);
    if (config.position == PositionKind::learned && tokens.size() > config.context) {
        fmt::print("learned positions: the document is cut to the model's {} position embeddings (the full context "
                   "cannot go further)\n", config.context);
        tokens.resize(config.context);
    }
    if (tokens.size() < 2)
        fail("--text: {} holds {} token{}: at least 2 are needed (one to read, one to predict)", args.get("text"),
             tokens.size(), tokens.size() == 1 ? "" : "s");
    check_token_range(tokens, config.vocab_size, args.get("text"));

    // ---- the three policies ----
    std::vector<StreamMode> modes;
    modes.push_back({"full", "full context", CachePolicy{0, 0}, {}, 0, 0});
    modes.push_back({"window", fmt::format("window {} (K = 0)", window), CachePolicy{window, 0}, {}, 0, 0});
    if (keep_first > 0)
        modes.push_back({"streaming", fmt::format("streaming {} + {}", keep_first, window - keep_first),
                         CachePolicy{window, keep_first}, {}, 0, 0});
    const size_t steps = tokens.size() - 1;
    const WorkModel work{2.0 * double(config.n_nonembedding_params() + config.vocab_size * config.d_model),
                         4.0 * double(config.d_model * config.n_layers)};
    double total_work = 0;
    for (const StreamMode& m : modes) total_work += work.document(steps, m.policy.window);

    fmt::print("checkpoint {} ({} attention, {} position{})\n", weights_path, config.attention.describe(),
               position_name(config.position), config.post_norm ? ", post-norm" : "");
    fmt::print("document {}: {} tokens{}{}\n", args.get("text"), tokens.size(),
               was_shard ? " (a token shard)" : fmt::format(" (tokenizer {})", tokenizer_path),
               first_token >= 0 ? fmt::format(", first token {} put before it", first_token) : "");
    if (run_train.is_object() && run_train.contains("seq")) {
        const size_t seq = size_t(run_train.at("seq").as_int());
        if (tokens.size() > seq)
            fmt::print("the run trained on rows of {} tokens: the full context goes beyond them from position {} on\n",
                       seq, seq);
        if (window > seq) fmt::print("note: --window {} is longer than the run's training rows ({})\n", window, seq);
    }

    const std::vector<double> params(weights.params.begin(), weights.params.end());
    // One thread per mode (the longest, the full context, first): a token's arithmetic is small, so
    // the operations inside run on that thread alone (nested parallel regions are inactive), and each
    // mode's result does not depend on the thread count.
    // The caches are built first, so that what they refuse (too much memory) is an error here, not
    // inside the parallel loop.
    std::vector<std::unique_ptr<KvCacheModel<double>>> models;
    for (const StreamMode& m : modes)
        models.push_back(std::make_unique<KvCacheModel<double>>(config, params.data(), m.policy, tokens.size()));
    StreamProgress progress(modes.size() * steps, total_work);
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(std::min<size_t>(modes.size(), omp_get_max_threads())))
    for (size_t i = 0; i < modes.size(); i++) {
        StreamMode& m = modes[i];
        KvCacheModel<double>& model = *models[i];
        const double start = omp_get_wtime();
        m.nll = stream_document(model, tokens, [&](size_t) { progress.advance(work.token(model.cached_indices().size())); });
        double sum = 0;
        for (double x : m.nll) sum += x;
        m.mean_nll = sum / double(m.nll.size());
        m.seconds = omp_get_wtime() - start;
    }
    const double seconds = progress.elapsed();

    // ---- the table ----
    fmt::print("\n{:<24} {:>8} {:>10} {:>12}\n", "mode", "tokens", "mean NLL", "perplexity");
    for (const StreamMode& m : modes)
        fmt::print("{:<24} {:>8} {:>10.4f} {:>12.3f}\n", m.label, m.nll.size(), m.mean_nll, std::exp(m.mean_nll));
    fmt::print("({} predicted tokens per mode, {:.1f} s)\n", steps, seconds);

    // ---- the files ----
    const std::string out = args.get("out");
    make_dirs(out);
    LineChart chart;
    chart.title = fmt::format("NLL over the document: {} (window {}, keep first {})",
                              checkpoint_title(weights_path), window, keep_first);
    chart.x_label = "position in the document (tokens)";
    chart.y_label = fmt::format("NLL (mean over {}-token bins)", bin);
    const char* colors[] = {"#444444", "#d62728", "#1f77b4"};
    for (size_t i = 0; i < modes.size(); i++) chart.series.push_back(binned_series(modes[i], bin, colors[i], i == 0));
    const std::string svg_path = (fs::path(out) / "stream.svg").string();
    write_file_atomic(svg_path, line_chart_svg(chart));

    Json report = Json::object();
    report["checkpoint"] = weights_path;
    report["text"] = args.get("text");
    report["tokens"] = tokens.size();
    report["first_token"] = first_token;
    report["window"] = window;
    report["keep_first"] = keep_first;
    report["seconds"] = seconds;
    Json mode_list = Json::array();
    for (const StreamMode& m : modes) {
        Json j = Json::object();
        j["mode"] = m.key;
        j["label"] = m.label;
        j["window"] = m.policy.window;
        j["keep_first"] = m.policy.keep_first;
        j["mean_nll"] = m.mean_nll;
        j["perplexity"] = std::exp(m.mean_nll);
        j["seconds"] = m.seconds;
        j["nll"] = m.nll;  // nll[t]: predicting the token at position t + 1
        mode_list.push_back(j);
    }
    report["modes"] = mode_list;
    const std::string json_path = (fs::path(out) / "stream.json").string();
    write_file_atomic(json_path, report_json_text(report));

    std::string csv = "position,token";
    for (const StreamMode& m : modes) csv += "," + m.key;
    csv += "\n";
    for (size_t t = 0; t < steps; t++) {
        csv += fmt::format("{},{}", t + 1, tokens[t + 1]);
        for (const StreamMode& m : modes) csv += fmt::format(",{:.17g}", m.nll[t]);
        csv += "\n";
    }
    const std::string csv_path = (fs::path(out) / "stream.csv").string();
    write_file_atomic(csv_path, csv);
    for (const std::string& path : {svg_path, json_path, csv_path}) fmt::print("wrote {}\n", path);
    return 0;
}

}  // namespace sinklab
