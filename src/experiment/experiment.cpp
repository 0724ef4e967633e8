// Experiment files -> runs and rows; run directories -> the experiment's table and pictures.
#include "experiment/experiment.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "cli/compare.h"
#include "sink/sink.h"
#include "train/run_reader.h"
#include "train/train.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/svg.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

// `sinklab sink` options an experiment may set (the rest: --checkpoint, --json, ... are its own).
const std::vector<std::string> kSinkOptions = {"probe",      "probe-kind", "count", "length", "seed",  "first-token",
                                               "data-levers", "eps",        "proxy", "max-k",  "batch"};
// `sinklab train` options an experiment may not set: they belong to the experiment command.
const std::vector<std::string> kReservedTrainOptions = {"out", "resume", "overwrite", "config", "threads"};

bool contains(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

void check_keys(const Json& object, const std::vector<std::string>& allowed, const std::string& where) {
    if (!object.is_object()) fail("{}: expected a JSON object", where);
    for (const auto& [key, value] : object.as_object())
        if (!contains(allowed, key))
            fail("{}: unknown key \"{}\" (expected one of: {})", where, key, fmt::join(allowed, ", "));
}

// "lr 8e-4, 10k steps" -> "lr-8e-4-10k-steps"
std::string slugify(const std::string& name) {
    std::string slug;
    for (const char c : name) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '.' || c == '_') slug.push_back(char(std::tolower(u)));
        else if (!slug.empty() && slug.back() != '-') slug.push_back('-');
    }
    while (!slug.empty() && slug.back() == '-') slug.pop_back();
    return slug.empty() ? "run" : slug;
}

// Turns option values into command-line text at one scale, replacing {data} and {eot}.
class ValueResolver {
public:
    ValueResolver(std::string scale, std::string data_dir) : scale_(std::move(scale)), data_dir_(std::move(data_dir)) {}

    // nullopt: the option is not set (null, false, or a per-scale object without this scale).
    std::optional<std::string> text(const Json& v, const std::string& where) {
        if (v.is_object()) {
            check_keys(v, experiment_scales(), where + " (a value per scale)");
            return v.contains(scale_) ? text(v.at(scale_), where) : std::nullopt;
        }
        if (v.is_null()) return std::nullopt;
        if (v.is_bool()) return v.as_bool() ? std::optional<std::string>("") : std::nullopt;
        if (v.is_number()) return v.dump();
        if (v.is_string()) return substitute(v.as_string(), where);
        fail("{}: expected a string, number, boolean, null or {{\"laptop\": ..., \"paper\": ...}}, got {}", where, v.dump());
    }

private:
    std::string substitute(std::string s, const std::string& where) {
        auto replace_all = [&](const std::string& from, const std::string& to) {
            for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
                s.replace(at, from.size(), to);
        };
        replace_all("{data}", data_dir_);
        if (s.find("{eot}") != std::string::npos) replace_all("{eot}", eot(where));
        return s;
    }

    // <|endoftext|>: the last id of the vocabulary `sinklab prepare` recorded in prepare.json.
    std::string eot(const std::string& where) {
        if (eot_.empty()) {
            const std::string summary = data_dir_ + "/prepare.json";
            if (!file_exists(summary))
                fail("{}: {{eot}} needs {} (the prepared corpus; run `make data` or pass --data-dir)", where, summary);
            const Json j = Json::parse(read_file(summary), summary);
            if (!j.contains("vocab_size")) fail("{}: no vocab_size", summary);
            eot_ = std::to_string(j.at("vocab_size").as_int() - 1);
        }
        return eot_;
    }

    std::string scale_, data_dir_, eot_;
};

// Layers of option objects (scale recipe, experiment override, row) merged key by key, resolved.
OptionList merge_options(const std::vector<std::pair<const Json*, std::string>>& layers, ValueResolver& values) {
    std::map<std::string, std::pair<Json, std::string>> merged;  // key -> (value, where it was set)
    for (const auto& [layer, where] : layers) {
        if (!layer) continue;
        if (!layer->is_object()) fail("{}: expected an object of options", where);
        for (const auto& [key, value] : layer->as_object()) merged[key] = {value, where};
    }
    OptionList out;
    for (const auto& [key, entry] : merged)
        if (const auto text = values.text(entry.first, fmt::format("{}: \"{}\"", entry.second, key)))
            out.emplace_back(key, *text);
    return out;
}

std::string option_or_default(const OptionList& options, const std::string& flag) {
    for (const auto& [k, v] : options)
        if (k == flag) return v;
    for (const TrainOption& opt : train_options())
        if (flag == opt.flag) return opt.default_text;
    return "";
}

double option_number(const OptionList& options, const std::string& flag, const std::string& where) {
    const std::string text = option_or_default(options, flag);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(v > 0)) fail("{}: --{} {} is not a positive number", where, flag, text);
    return v;
}

void check_train_options(const OptionList& options, const std::string& where) {
    std::vector<std::string> flags;
    for (const TrainOption& opt : train_options()) flags.push_back(opt.flag);
    for (const auto& [key, value] : options) {
        if (contains(kReservedTrainOptions, key))
            fail("{}: \"{}\" belongs to `sinklab experiment`, not to an experiment file", where, key);
        if (!contains(flags, key)) fail("{}: \"{}\" is not an option of sinklab train (sinklab train --help)", where, key);
    }
}

void check_sink_options(const OptionList& options, const std::string& where) {
    for (const auto& [key, value] : options)
        if (!contains(kSinkOptions, key))
            fail("{}: \"{}\" is not a sink option an experiment may set (one of: {})", where, key, fmt::join(kSinkOptions, ", "));
}

// The position k of "sink_k" / "alpha_k" (1..10), or 0 when the column is not of that form.
size_t column_position(const std::string& column, const std::string& prefix) {
    if (column.rfind(prefix, 0) != 0) return 0;
    const std::string k = column.substr(prefix.size());
    if (k.empty() || k.size() > 2 || !std::all_of(k.begin(), k.end(), ::isdigit)) return 0;
    const size_t v = std::stoul(k);
    return v >= 1 && v <= 10 ? v : 0;
}

// The `sinklab stream` columns: the perplexity of each of its modes (the JSON's "mode" names).
const std::pair<const char*, const char*> kStreamColumns[] = {
    {"stream_full", "full"}, {"stream_window", "window"}, {"stream_sink", "streaming"}};

const char* stream_mode(const std::string& column) {
    for (const auto& [name, mode] : kStreamColumns)
        if (column == name) return mode;
    return nullptr;
}

void check_column(const std::string& column, const std::string& where) {
    if (column == "sink_star" || column == "massive_ratio" || column == "tokens_per_s" || stream_mode(column) ||
        column_position(column, "sink_") || column_position(column, "alpha_"))
        return;
    fail("{}: \"{}\" is not a column (sink_1 .. sink_10, sink_star, alpha_1 .. alpha_10, massive_ratio, "
         "tokens_per_s, stream_full, stream_window, stream_sink)", where, column);
}

// A column in percent of heads (drawn as bars beside the paper's).
bool is_sink_column(const std::string& column) { return column == "sink_star" || column_position(column, "sink_"); }

// "Sink_1", "Sink*", "alpha_1", ...
std::string column_title(const std::string& column) {
    if (column == "sink_star") return "Sink*";
    if (column == "massive_ratio") return "massive ratio";
    if (column == "tokens_per_s") return "tokens/s";
    if (column == "stream_full") return "ppl full";
    if (column == "stream_window") return "ppl window";
    if (column == "stream_sink") return fmt::format("ppl {} + window", kStreamKeepFirst);
    if (const size_t k = column_position(column, "sink_")) return fmt::format("Sink_{}", k);
    return fmt::format("alpha_{}", column_position(column, "alpha_"));
}

// A measured column from the run's summary (compare.h) and its sink report.
Json measured_value(const std::string& column, const Json& summary, const Json& report, const Json& stream) {
    if (column == "tokens_per_s") return summary.at("tokens_per_s_median");
    if (const char* mode = stream_mode(column)) {  // stream.json's perplexity of that mode
        if (stream.is_null()) return Json();
        for (const Json& m : stream.at("modes").as_array())
            if (m.at("mode").as_string() == mode) return m.at("perplexity");
        return Json();
    }
    if (report.is_null()) return Json();
    if (column == "sink_star") return report.contains("sink_star") ? report.at("sink_star") : Json();
    if (column == "massive_ratio") {
        const double ratio = largest_massive_ratio(report);
        return std::isfinite(ratio) ? Json(ratio) : Json();
    }
    const bool sink = column_position(column, "sink_") != 0;
    const size_t k = sink ? column_position(column, "sink_") : column_position(column, "alpha_");
    const Json& list = report.at(sink ? "sink_k" : "alpha_k");
    return list.is_array() && k <= list.size() ? list.as_array()[k - 1] : Json();
}

}  // namespace

const std::vector<std::string>& experiment_scales() {
    static const std::vector<std::string> scales = {"laptop", "paper"};
    return scales;
}

std::string experiment_path(const std::string& name_or_path) {
    if (name_or_path.find('/') != std::string::npos || name_or_path.find(".json") != std::string::npos)
        return name_or_path;
    return "experiments/" + name_or_path + ".json";
}

Experiment load_experiment(const std::string& path, const std::string& scale, const std::string& data_dir) {
    if (!contains(experiment_scales(), scale))
        fail("--scale: '{}' is not one of {}", scale, fmt::join(experiment_scales(), ", "));
    if (!file_exists(path)) fail("{}: no such experiment file (sinklab experiment --list shows them)", path);
    const Json file = Json::parse(read_file(path), path);
    check_keys(file, {"title", "reference", "about", "measure", "scales", "rows"}, path);
    const std::string scales_path = (fs::path(path).parent_path() / "scales.json").string();
    if (!file_exists(scales_path)) fail("{}: the scales file {} is missing", path, scales_path);
    const Json scales = Json::parse(read_file(scales_path), scales_path);
    check_keys(scales, experiment_scales(), scales_path);
    if (!scales.contains(scale)) fail("{}: no \"{}\" scale", scales_path, scale);
    const std::string scale_where = fmt::format("{}: \"{}\"", scales_path, scale);
    const Json& recipe = scales.at(scale);
    check_keys(recipe, {"about", "train", "sink"}, scale_where);

    Experiment e;
    e.name = fs::path(path).stem().string();
    e.file = path;
    e.scale = scale;
    auto text_of = [&](const Json& object, const char* key, const std::string& where) -> std::string {
        if (!object.contains(key)) return "";
        if (!object.at(key).is_string()) fail("{}: \"{}\" must be a string", where, key);
        return object.at(key).as_string();
    };
    e.title = text_of(file, "title", path);
    if (e.title.empty()) fail("{}: \"title\" is required", path);
    e.reference = text_of(file, "reference", path);
    e.about = text_of(file, "about", path);
    e.scale_about = text_of(recipe, "about", scale_where);

    if (file.contains("measure")) {
        const Json& measure = file.at("measure");
        if (!measure.is_array() || measure.size() == 0)
            fail("{}: \"measure\" must be a non-empty list such as [\"sink_1\", \"sink_star\"]", path);
        for (const Json& c : measure.as_array()) {
            if (!c.is_string()) fail("{}: \"measure\" entries must be strings", path);
            check_column(c.as_string(), path + ": \"measure\"");
            e.columns.push_back(c.as_string());
        }
    } else {
        e.columns = {"sink_1"};
    }

    // The experiment's own additions to a scale's recipe: {"laptop": {"train": {...}, "sink": {...}}}.
    const Json* override_train = nullptr;
    const Json* override_sink = nullptr;
    if (file.contains("scales")) {
        check_keys(file.at("scales"), experiment_scales(), path + ": \"scales\"");
        if (file.at("scales").contains(scale)) {
            const Json& own = file.at("scales").at(scale);
            check_keys(own, {"train", "sink"}, fmt::format("{}: \"scales\".\"{}\"", path, scale));
            if (own.contains("train")) override_train = &own.at("train");
            if (own.contains("sink")) override_sink = &own.at("sink");
        }
    }

    if (!file.contains("rows") || !file.at("rows").is_array() || file.at("rows").size() == 0)
        fail("{}: \"rows\" must be a non-empty list of settings", path);
    ValueResolver values(scale, data_dir);
    std::map<std::string, size_t> run_of_options;  // train options (as text) -> run index
    std::set<std::string> names, slugs;
    const Json::Array& rows = file.at("rows").as_array();
    for (size_t i = 0; i < rows.size(); i++) {
        const Json& r = rows[i];
        std::string where = fmt::format("{}: rows[{}]", path, i);
        if (!r.is_object()) fail("{}: expected an object {{\"name\": ..., \"train\": {{...}}}}", where);
        const std::string name = text_of(r, "name", where);
        if (name.empty()) fail("{}: \"name\" is required", where);
        where += fmt::format(" (\"{}\")", name);
        check_keys(r, {"name", "train", "sink", "paper", "scales"}, where);
        if (!names.insert(name).second) fail("{}: a second row of that name", where);
        if (r.contains("scales")) {
            if (!r.at("scales").is_array()) fail("{}: \"scales\" must be a list of scales", where);
            bool here = false;
            for (const Json& s : r.at("scales").as_array()) {
                if (!s.is_string() || !contains(experiment_scales(), s.as_string()))
                    fail("{}: \"scales\": {} is not one of {}", where, s.dump(), fmt::join(experiment_scales(), ", "));
                here = here || s.as_string() == scale;
            }
            if (!here) continue;
        }
        ExperimentRow row;
        row.name = name;
        const OptionList train =
            merge_options({{recipe.contains("train") ? &recipe.at("train") : nullptr, scale_where + ": \"train\""},
                           {override_train, path + ": \"scales\""},
                           {r.contains("train") ? &r.at("train") : nullptr, where + ": \"train\""}},
                          values);
        check_train_options(train, where);
        row.sink = merge_options({{recipe.contains("sink") ? &recipe.at("sink") : nullptr, scale_where + ": \"sink\""},
                                  {override_sink, path + ": \"scales\""},
                                  {r.contains("sink") ? &r.at("sink") : nullptr, where + ": \"sink\""}},
                                 values);
        check_sink_options(row.sink, where);
        // The report's file: named by the row's own sink options, so rows measuring one run differently
        // keep their reports apart.
        row.sink_file = "sink.json";
        if (r.contains("sink")) {
            std::string suffix;
            for (const auto& [key, value] : merge_options({{&r.at("sink"), where}}, values))
                suffix += "-" + (value.empty() ? key : value);
            if (!suffix.empty()) row.sink_file = "sink-" + slugify(suffix) + ".json";
        }
        if (r.contains("paper")) {
            if (!r.at("paper").is_object()) fail("{}: \"paper\" must be an object of the paper's figures", where);
            row.paper = r.at("paper");
        }

        std::string key;
        for (const auto& [k, v] : train) key += k + '\0' + v + '\0';
        auto found = run_of_options.find(key);
        if (found == run_of_options.end()) {
            ExperimentRun run;
            run.slug = slugify(name);
            for (int n = 2; slugs.count(run.slug); n++) run.slug = slugify(name) + "-" + std::to_string(n);
            slugs.insert(run.slug);
            run.train = train;
            run.steps = size_t(option_number(train, "steps", where));
            run.planned_tokens = option_number(train, "steps", where) * option_number(train, "batch", where) *
                                 option_number(train, "seq", where) * option_number(train, "grad-accum", where);
            found = run_of_options.emplace(key, e.runs.size()).first;
            e.runs.push_back(run);
        }
        row.run = found->second;
        e.rows.push_back(row);
    }
    if (e.rows.empty()) fail("{}: no row runs at the {} scale", path, scale);
    return e;
}

std::vector<size_t> select_rows(const Experiment& e, const std::vector<std::string>& only) {
    std::vector<size_t> selected;
    for (size_t i = 0; i < e.rows.size(); i++) {
        const ExperimentRow& row = e.rows[i];
        if (only.empty() || contains(only, row.name) || contains(only, e.runs[row.run].slug)) selected.push_back(i);
    }
    for (const std::string& name : only) {
        bool known = false;
        for (const ExperimentRow& row : e.rows) known = known || row.name == name || e.runs[row.run].slug == name;
        if (!known) {
            std::vector<std::string> names;
            for (const ExperimentRow& row : e.rows) names.push_back('"' + row.name + '"');
            fail("--only: {} has no row \"{}\" (rows: {})", e.file, name, fmt::join(names, ", "));
        }
    }
    return selected;
}

static void append_options(std::vector<std::string>& argv, const OptionList& options) {
    for (const auto& [key, value] : options) {
        argv.push_back("--" + key);
        if (!value.empty()) argv.push_back(value);
    }
}

std::vector<std::string> train_command(const ExperimentRun& run, const std::string& bin, const std::string& run_dir) {
    std::vector<std::string> argv = {bin, "train"};
    append_options(argv, run.train);
    argv.push_back("--out");
    argv.push_back(run_dir);
    return argv;
}

bool measures_streaming(const Experiment& e) {
    return std::any_of(e.columns.begin(), e.columns.end(), [](const std::string& c) { return stream_mode(c) != nullptr; });
}

std::vector<std::string> stream_command(const ExperimentRun& run, const std::string& bin, const std::string& run_dir) {
    std::string val, seq;
    for (const auto& [flag, value] : run.train) {
        if (flag == "val") val = value;
        if (flag == "seq") seq = value;
    }
    if (val.empty() || seq.empty())
        fail("{}: the streaming columns need the run's --val shard and --seq (the scale's recipe has them)", run.slug);
    const size_t window = std::max<size_t>(std::stoul(seq) / 4, kStreamKeepFirst + 1);
    return {bin, "stream", "--checkpoint", run_dir, "--text", val, "--tokens", std::to_string(kStreamTokens),
            "--window", std::to_string(window), "--keep-first", std::to_string(kStreamKeepFirst),
            "--threads", "1", "--out", run_dir + "/" + kStreamDir};
}

std::vector<std::string> sink_command(const ExperimentRow& row, const std::string& bin, const std::string& run_dir) {
    std::vector<std::string> argv = {bin, "sink", "--checkpoint", run_dir, "--json", run_dir + "/" + row.sink_file};
    append_options(argv, row.sink);
    return argv;
}

std::string shell_line(const std::vector<std::string>& argv) {
    std::string line;
    for (const std::string& a : argv) {
        const bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || std::string("-_./:=,+@%").find(c) != std::string::npos;
        });
        if (!line.empty()) line += ' ';
        if (plain) {
            line += a;
        } else {
            line += '\'';
            for (const char c : a) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
            line += '\'';
        }
    }
    return line;
}

const char* run_state_name(RunState s) {
    switch (s) {
        case RunState::missing: return "not run";
        case RunState::other: return "made with other options";
        case RunState::partial: return "interrupted";
        case RunState::finished: return "finished";
        case RunState::diverged: return "diverged";
    }
    return "?";
}

std::string run_record(const ExperimentRun& run) {
    Json options = Json::array();
    for (const auto& [key, value] : run.train) options.push_back(Json(std::vector<std::string>{key, value}));
    Json record = Json::object();
    record["train_options"] = options;
    return record.dump(2) + "\n";
}

RunState run_state(const ExperimentRun& run, const std::string& run_dir, bool check_options) {
    if (!file_exists(run_dir + "/config.json") || !file_exists(run_dir + "/metrics.jsonl")) return RunState::missing;
    if (check_options) {
        const std::string record = run_dir + "/experiment.json";
        if (!file_exists(record) || read_file(record) != run_record(run)) return RunState::other;
    }
    const Json summary = summarize_run(read_run(run_dir));
    if (summary.at("diverged").as_bool()) return RunState::diverged;
    const Json& step = summary.at("step");
    if (step.is_number() && step.as_number() >= double(run.steps)) return RunState::finished;
    return file_exists(run_dir + "/checkpoints/latest") ? RunState::partial : RunState::missing;
}

Json experiment_table(const Experiment& e, const std::string& runs_dir, bool check_options) {
    Json table = Json::object();
    table["experiment"] = e.name;
    table["title"] = e.title;
    table["reference"] = e.reference;
    table["about"] = e.about;
    table["scale"] = e.scale;
    table["scale_about"] = e.scale_about;
    table["columns"] = e.columns;
    Json rows = Json::array();
    for (const ExperimentRow& row : e.rows) {
        const ExperimentRun& run = e.runs[row.run];
        const std::string dir = runs_dir + "/" + run.slug;
        const RunState state = run_state(run, dir, check_options);
        Json r = Json::object();
        r["name"] = row.name;
        r["run"] = run.slug;
        r["status"] = run_state_name(state);
        r["planned_tokens"] = run.planned_tokens;
        Json measured = Json::object();
        for (const std::string& c : e.columns) measured[c] = Json();
        r["steps"] = Json();
        r["tokens"] = Json();
        r["val_loss"] = Json();
        r["proxy"] = Json();
        if (state != RunState::missing && state != RunState::other) {
            const RunData data = read_run(dir);
            const Json summary = summarize_run(data);
            r["steps"] = summary.at("step");
            r["val_loss"] = summary.at("final_val_loss");
            const MetricSeries tokens = metric_series(data.metrics, "tokens");
            if (!tokens.value.empty()) r["tokens"] = tokens.value.back();
            const std::string report_path = dir + "/" + row.sink_file;
            Json report;
            if (file_exists(report_path)) {
                report = Json::parse(read_file(report_path), report_path);
                if (report.contains("proxy")) r["proxy"] = report.at("proxy");
            }
            const std::string stream_path = dir + "/" + kStreamDir + "/stream.json";
            const Json stream = file_exists(stream_path) ? Json::parse(read_file(stream_path), stream_path) : Json();
            for (const std::string& c : e.columns) measured[c] = measured_value(c, summary, report, stream);
        }
        r["measured"] = measured;
        r["paper"] = row.paper;
        rows.push_back(r);
    }
    table["rows"] = rows;
    return table;
}

namespace {

std::string figure(const Json& v, const char* spec = "{:.2f}") {
    if (v.is_number()) return fmt::format(fmt::runtime(spec), v.as_number());
    if (v.is_string()) return v.as_string();
    return "-";
}

std::string tokens_text(const Json& v) {
    if (!v.is_number()) return "-";
    const double t = v.as_number();
    return t >= 1e9 ? fmt::format("{:.2f}B", t / 1e9) : t >= 1e6 ? fmt::format("{:.2f}M", t / 1e6)
                                                              : fmt::format("{:.0f}K", t / 1e3);
}

}  // namespace

std::string table_markdown(const Json& table) {
    std::string md = fmt::format("## {} ({} scale)\n\n", table.at("title").as_string(), table.at("scale").as_string());
    if (!table.at("reference").as_string().empty()) md += fmt::format("Paper: {}.\n", table.at("reference").as_string());
    if (!table.at("about").as_string().empty()) md += table.at("about").as_string() + "\n";
    if (!table.at("scale_about").as_string().empty())
        md += fmt::format("\nScale: {}\n", table.at("scale_about").as_string());
    md += "\n| setting |";
    std::string rule = "|---|";
    std::vector<std::string> columns;
    for (const Json& c : table.at("columns").as_array()) columns.push_back(c.as_string());
    for (const std::string& c : columns) {
        md += fmt::format(" {} | paper {} |", column_title(c), column_title(c));
        rule += "---:|---:|";
    }
    md += " val loss | paper val loss | tokens | status |\n";
    rule += "---:|---:|---:|---|\n";
    md += rule;
    bool any_proxy = false;
    for (const Json& r : table.at("rows").as_array()) {
        const bool proxy = r.at("proxy").is_bool() && r.at("proxy").as_bool();
        any_proxy = any_proxy || proxy;
        const Json& paper = r.at("paper");
        auto paper_value = [&](const std::string& key) { return paper.contains(key) ? figure(paper.at(key)) : "-"; };
        md += fmt::format("| {} |", r.at("name").as_string());
        for (const std::string& c : columns) {
            const Json& v = r.at("measured").at(c);
            const char* spec = c == "tokens_per_s" ? "{:.0f}" : column_position(c, "alpha_") ? "{:.3f}" : "{:.2f}";
            md += fmt::format(" {}{} | {} |", figure(v, spec), proxy && v.is_number() && is_sink_column(c) ? " p" : "",
                              paper_value(c));
        }
        md += fmt::format(" {} | {} | {} | {} |\n", figure(r.at("val_loss"), "{:.3f}"), paper_value("val_loss"),
                          tokens_text(r.at("tokens")), r.at("status").as_string());
    }
    md += "\nSinks in percent of all heads (eps 0.3, docs/sinks.md); the paper's losses are on Pile-CC with its "
          "60M model, ours on this scale's corpus, so only directions compare.";
    if (any_proxy) md += " p: measured on proxy scores (the weights are not a distribution).";
    md += "\n";
    bool first_note = true;  // the published papers' remarks, marked as theirs
    for (const Json& r : table.at("rows").as_array())
        if (r.at("paper").contains("note")) {
            if (first_note) md += "\nWhat the published papers say (not measured here):\n";
            first_note = false;
            md += fmt::format("\n- {}: {}", r.at("name").as_string(), figure(r.at("paper").at("note")));
        }
    if (md.back() != '\n') md += "\n";
    return md;
}

std::vector<std::string> write_experiment_results(const Experiment& e, const Json& table, const std::string& runs_dir,
                                                  const std::string& out_dir) {
    fs::create_directories(out_dir);
    std::vector<std::string> written;
    auto write = [&](const std::string& name, const std::string& text) {
        write_file_atomic(out_dir + "/" + name, text);
        written.push_back(out_dir + "/" + name);
    };
    write("table.json", table.dump(2) + "\n");
    write("table.md", table_markdown(table));

    // Sink per setting, ours beside the paper's.
    BarChart bars;
    bars.title = fmt::format("{} ({} scale): measured sinks beside the paper's", e.title, e.scale);
    bars.y_label = "percent of heads";
    for (const Json& r : table.at("rows").as_array()) bars.categories.push_back(r.at("name").as_string());
    for (const std::string& c : e.columns) {
        if (!is_sink_column(c)) continue;
        Series ours, paper;
        ours.name = "ours " + column_title(c);
        paper.name = "paper " + column_title(c);
        for (const Json& r : table.at("rows").as_array()) {
            const Json& v = r.at("measured").at(c);
            ours.y.push_back(v.is_number() ? v.as_number() : NAN);
            const Json& p = r.at("paper");
            paper.y.push_back(p.contains(c) && p.at(c).is_number() ? p.at(c).as_number() : NAN);
        }
        bars.series.push_back(ours);
        bars.series.push_back(paper);
    }
    write("sink.svg", bar_chart_svg(bars, std::max(760.0, 90.0 * double(bars.categories.size()) + 200), 460));

    // Validation loss over tokens, one line per run (training loss where a run has no validation).
    LineChart losses;
    losses.title = fmt::format("{} ({} scale): loss over training", e.title, e.scale);
    losses.x_label = "tokens (millions)";
    losses.y_label = "validation loss";
    bool any_val = false;
    for (const ExperimentRun& run : e.runs) {
        const std::string dir = runs_dir + "/" + run.slug;
        if (!file_exists(dir + "/metrics.jsonl")) continue;
        const std::vector<Json> metrics = read_metrics_jsonl(dir + "/metrics.jsonl");
        for (const Json& line : metrics) any_val = any_val || line.contains("val_loss");
    }
    for (const ExperimentRun& run : e.runs) {
        const std::string dir = runs_dir + "/" + run.slug;
        if (!file_exists(dir + "/metrics.jsonl")) continue;
        Series s;
        s.name = run.slug;
        s.markers = any_val;
        for (const Json& line : read_metrics_jsonl(dir + "/metrics.jsonl")) {
            const char* key = any_val ? "val_loss" : "loss";
            if (!line.contains(key) || !line.contains("tokens")) continue;
            s.x.push_back(line.at("tokens").as_number() / 1e6);
            s.y.push_back(line.at(key).is_number() ? line.at(key).as_number() : NAN);
        }
        if (!s.x.empty()) losses.series.push_back(s);
    }
    if (!any_val) losses.y_label = "training loss";
    write("loss.svg", line_chart_svg(losses));
    return written;
}

}  // namespace sinklab
