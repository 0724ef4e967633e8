// sinklab compare RUN...: the configuration keys that differ between runs, their losses, sinks and speed.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/compare.h"
#include "sink/sink.h"
#include "sink/sink_plots.h"
#include "train/run_reader.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace {

Json number_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(); }

std::string run_name(const std::string& dir) {
    std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    return p.string();
}

// A config value, or NaN when the key is missing or not a number.
double config_number(const Json& config, const std::string& section, const std::string& key) {
    if (!config.contains(section) || !config.at(section).contains(key)) return NAN;
    const Json& v = config.at(section).at(key);
    return v.is_number() ? v.as_number() : NAN;
}

// Losses, sinks and speed of one run.
Json summarize(const RunData& run, const std::map<std::string, std::string>& flat,
               const std::vector<std::string>& differing) {
    Json r = Json::object();
    r["dir"] = run.dir;
    r["name"] = run_name(run.dir);
    Json config = Json::object();
    for (const std::string& key : differing) {
        auto it = flat.find(key);
        config[key] = it == flat.end() ? Json() : Json(it->second);
    }
    r["config"] = config;

    double last_step = NAN;
    bool diverged = false;
    std::vector<double> speeds;
    for (const Json& line : run.metrics) {
        if (line.contains("step") && line.at("step").is_number())
            last_step = std::isfinite(last_step) ? std::max(last_step, line.at("step").as_number()) : line.at("step").as_number();
        if (line.contains("tokens_per_s") && line.at("tokens_per_s").is_number())
            speeds.push_back(line.at("tokens_per_s").as_number());
        if (line.contains("loss") && !(line.at("loss").is_number() && std::isfinite(line.at("loss").as_number())))
            diverged = true;  // a non-finite loss is written as null
        if (line.contains("diverged") && line.at("diverged").is_bool() && line.at("diverged").as_bool()) diverged = true;
    }
    const double planned = config_number(run.config, "train", "steps");
    r["step"] = number_or_null(last_step);
    r["steps_planned"] = number_or_null(planned);
    // steps are logged 1-based (the number of optimizer steps done): finished once step == train.steps
    r["in_progress"] = !diverged && std::isfinite(planned) && (!std::isfinite(last_step) || last_step < planned);
    r["diverged"] = diverged;
    r["torn_last_line"] = run.torn_last_line;

    const MetricSeries train = metric_series(run.metrics, "loss");
    r["final_train_loss"] = number_or_null(train.value.empty() ? NAN : train.value.back());
    const MetricSeries val = metric_series(run.metrics, "val_loss");
    double best = NAN, best_step = NAN;
    for (size_t i = 0; i < val.value.size(); i++)
        if (std::isfinite(val.value[i]) && !(val.value[i] >= best)) {
            best = val.value[i];
            best_step = val.step[i];
        }
    r["final_val_loss"] = number_or_null(val.value.empty() ? NAN : val.value.back());
    r["best_val_loss"] = number_or_null(best);
    r["best_val_step"] = number_or_null(best_step);

    // Sink_1..3: the final report when there is one, else the last sink evaluation of training.
    Json sinks;
    Json source;
    double sink_step = NAN;
    auto first_three = [](const Json& list) {
        Json out = Json::array();
        for (size_t k = 0; k < 3; k++)
            out.push_back(k < list.size() && list.as_array()[k].is_number() ? list.as_array()[k] : Json());
        return out;
    };
    if (run.has_sink_report && run.sink_report.contains("sink_k") && run.sink_report.at("sink_k").is_array()) {
        sinks = first_three(run.sink_report.at("sink_k"));
        source = "sink.json";
        if (run.sink_report.contains("proxy") && run.sink_report.at("proxy").is_bool())
            r["sink_proxy"] = run.sink_report.at("proxy").as_bool();
        sink_step = last_step;
    } else {
        for (const Json& line : run.metrics)
            if (line.contains("sink_k") && line.at("sink_k").is_array()) {
                sinks = first_three(line.at("sink_k"));
                source = "metrics.jsonl";
                if (line.contains("sink_proxy") && line.at("sink_proxy").is_bool())
                    r["sink_proxy"] = line.at("sink_proxy").as_bool();
                if (line.contains("sink_star") && line.at("sink_star").is_number()) r["sink_star"] = line.at("sink_star");
                sink_step = line.contains("step") && line.at("step").is_number() ? line.at("step").as_number() : NAN;
            }
    }
    r["sink_k"] = sinks;
    r["sink_source"] = source;
    // alpha_1..3 (mean attention on positions 1..3) from the same source as Sink_k.
    Json alphas;
    if (run.has_sink_report && run.sink_report.contains("alpha_k") && run.sink_report.at("alpha_k").is_array())
        alphas = first_three(run.sink_report.at("alpha_k"));
    else
        for (const Json& line : run.metrics)
            if (line.contains("alpha_k") && line.at("alpha_k").is_array()) alphas = first_three(line.at("alpha_k"));
    r["alpha_k"] = alphas;
    // The highest Sink_1 of the evaluations during training, and its step.
    const MetricSeries sink_1 = metric_list_series(run.metrics, "sink_k", 0);
    double peak = NAN, peak_step = NAN;
    for (size_t i = 0; i < sink_1.value.size(); i++)
        if (std::isfinite(sink_1.value[i]) && !(sink_1.value[i] <= peak)) {
            peak = sink_1.value[i];
            peak_step = sink_1.step[i];
        }
    r["sink_1_peak"] = number_or_null(peak);
    r["sink_1_peak_step"] = number_or_null(peak_step);
    const double massive = run.has_sink_report ? largest_massive_ratio(run.sink_report) : NAN;
    r["massive_ratio_max"] = number_or_null(massive);
    r["sink_step"] = number_or_null(sink_step);
    if (run.has_sink_report && run.sink_report.contains("sink_star")) r["sink_star"] = run.sink_report.at("sink_star");
    r["tokens_per_s_median"] = number_or_null(median(speeds));
    return r;
}

std::string cell(const Json& v, const char* format_spec = "{:.3f}") {
    if (v.is_null()) return "-";
    if (v.is_number()) return fmt::format(fmt::runtime(format_spec), v.as_number());
    if (v.is_string()) return v.as_string();
    return v.dump();
}

}  // namespace

Json summarize_run(const RunData& run) { return summarize(run, {}, {}); }

Json compare_runs(const std::vector<std::string>& run_dirs) {
    if (run_dirs.empty()) fail("compare: give at least one run directory");
    std::vector<RunData> runs;
    std::vector<std::map<std::string, std::string>> flats;
    for (const std::string& dir : run_dirs) {
        runs.push_back(read_run(dir));
        flats.push_back(flatten_json(runs.back().config));
    }
    std::set<std::string> keys;
    for (const auto& flat : flats)
        for (const auto& kv : flat) keys.insert(kv.first);
    std::vector<std::string> differing;
    for (const std::string& key : keys) {
        if (key == "train.out") continue;  // every run has its own directory; not a setting
        bool differs = false;
        for (size_t i = 1; i < flats.size() && !differs; i++) {
            auto a = flats[0].find(key), b = flats[i].find(key);
            const bool has_a = a != flats[0].end(), has_b = b != flats[i].end();
            differs = has_a != has_b || (has_a && a->second != b->second);
        }
        if (differs) differing.push_back(key);
    }
    Json out = Json::object();
    out["differing_keys"] = differing;
    Json list = Json::array();
    for (size_t i = 0; i < runs.size(); i++) list.push_back(summarize(runs[i], flats[i], differing));
    out["runs"] = list;
    return out;
}

std::string format_comparison(const Json& comparison) {
    const Json::Array& runs = comparison.at("runs").as_array();
    std::vector<std::string> differing;
    for (const Json& k : comparison.at("differing_keys").as_array()) differing.push_back(k.as_string());

    std::vector<std::string> header = {"run"};
    for (const std::string& k : differing) header.push_back(k);
    for (const char* h : {"step", "train", "val", "best val", "Sink_1", "Sink_2", "Sink_3", "tok/s"}) header.push_back(h);
    std::vector<std::vector<std::string>> rows;
    bool any_running = false, any_from_metrics = false, any_diverged = false, any_star = false, any_proxy = false;
    for (const Json& r : runs) {
        std::vector<std::string> row = {r.at("name").as_string()};
        for (const std::string& k : differing) row.push_back(cell(r.at("config").at(k)));
        std::string step = cell(r.at("step"), "{:.0f}");
        if (!r.at("steps_planned").is_null()) step = fmt::format("{}/{}", step, cell(r.at("steps_planned"), "{:.0f}"));
        if (r.at("in_progress").as_bool()) {
            step += "*";
            any_running = true;
        }
        if (r.at("diverged").as_bool()) {
            step += " diverged";
            any_diverged = true;
        }
        row.push_back(step);
        row.push_back(cell(r.at("final_train_loss")));
        row.push_back(cell(r.at("final_val_loss")));
        std::string best = cell(r.at("best_val_loss"));
        if (!r.at("best_val_step").is_null()) best = fmt::format("{}@{}", best, cell(r.at("best_val_step"), "{:.0f}"));
        row.push_back(best);
        const bool from_metrics = r.at("sink_source").is_string() && r.at("sink_source").as_string() == "metrics.jsonl";
        const bool proxy = r.contains("sink_proxy") && r.at("sink_proxy").as_bool();
        any_from_metrics = any_from_metrics || from_metrics;
        any_proxy = any_proxy || proxy;
        for (size_t k = 0; k < 3; k++) {
            const Json& s = r.at("sink_k");
            row.push_back(s.is_null() ? "-" : cell(s.as_array()[k], "{:.2f}") + (from_metrics ? "m" : "") + (proxy ? "p" : ""));
        }
        row.push_back(cell(r.at("tokens_per_s_median"), "{:.0f}"));
        any_star = any_star || r.contains("sink_star");
        rows.push_back(row);
    }
    std::vector<size_t> width(header.size());
    for (size_t c = 0; c < header.size(); c++) {
        width[c] = header[c].size();
        for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
    }
    std::string out;
    out += differing.empty() ? "configuration: identical across runs\n"
                             : fmt::format("configuration keys that differ: {}\n", fmt::join(differing, ", "));
    auto emit = [&](const std::vector<std::string>& row) {
        std::string line;
        for (size_t c = 0; c < row.size(); c++) {
            // text columns (run name, configuration) left-aligned, numbers right-aligned
            const bool left = c < 1 + differing.size();
            line += left ? fmt::format("{:<{}}", row[c], width[c]) : fmt::format("{:>{}}", row[c], width[c]);
            if (c + 1 < row.size()) line += "  ";
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out += line + '\n';
    };
    emit(header);
    for (const auto& row : rows) emit(row);
    if (any_running) out += "* still running: fewer steps logged than configured\n";
    if (any_diverged) out += "diverged: a non-finite loss was logged\n";
    if (any_from_metrics) out += "m: Sink_k from the last sink evaluation in metrics.jsonl (no sink.json)\n";
    if (any_proxy) out += "p: measured on proxy scores |w| / sum |w| (weights that are not a distribution: no normaliser, or signed ones)\n";
    if (any_star)
        for (const Json& r : runs)
            if (r.contains("sink_star"))
                out += fmt::format("{}: Sink* (extra slot) {}\n", r.at("name").as_string(), cell(r.at("sink_star"), "{:.2f}"));
    return out;
}

namespace {

struct GroupMetric {
    const char* name;
    const char* label;
    const char* field;  // the run summary's field
    int index;          // entry of a list-valued field, or -1
    const char* format;
};

const GroupMetric kGroupMetrics[] = {
    {"val_loss", "validation loss", "final_val_loss", -1, "{:.3f}"},
    {"sink_1", "Sink_1 at the end (%)", "sink_k", 0, "{:.2f}"},
    {"sink_2", "Sink_2 at the end (%)", "sink_k", 1, "{:.2f}"},
    {"sink_3", "Sink_3 at the end (%)", "sink_k", 2, "{:.2f}"},
    {"sink_1_peak", "Sink_1, highest in training (%)", "sink_1_peak", -1, "{:.2f}"},
    {"alpha_1", "alpha_1 at the end", "alpha_k", 0, "{:.3f}"},
    {"alpha_2", "alpha_2 at the end", "alpha_k", 1, "{:.3f}"},
    {"alpha_3", "alpha_3 at the end", "alpha_k", 2, "{:.3f}"},
    {"massive_ratio", "first-token norm ratio (max over layers)", "massive_ratio_max", -1, "{:.2f}"},
};

double run_metric(const Json& run, const GroupMetric& m) {
    if (!run.contains(m.field)) return NAN;
    const Json& v = run.at(m.field);
    if (m.index < 0) return v.is_number() ? v.as_number() : NAN;
    if (!v.is_array() || size_t(m.index) >= v.size()) return NAN;
    const Json& e = v.as_array()[size_t(m.index)];
    return e.is_number() ? e.as_number() : NAN;
}

const GroupMetric& group_metric(const std::string& name) {
    for (const GroupMetric& m : kGroupMetrics)
        if (name == m.name) return m;
    fail("compare: unknown metric {}", name);
}

}  // namespace

Json group_comparison(const Json& comparison, const std::string& key) {
    bool found = false;
    for (const Json& k : comparison.at("differing_keys").as_array()) found = found || k.as_string() == key;
    if (!found)
        fail("compare --group-by {}: not a configuration key that differs between the runs (they differ in: {})", key,
             comparison.at("differing_keys").dump());
    std::vector<std::string> values;
    std::map<std::string, std::vector<const Json*>> members;
    for (const Json& run : comparison.at("runs").as_array()) {
        const Json& v = run.at("config").at(key);
        const std::string value = v.is_string() ? v.as_string() : v.dump();
        if (!members.count(value)) values.push_back(value);
        members[value].push_back(&run);
    }
    Json out = Json::object();
    out["key"] = key;
    Json metrics = Json::array();
    for (const GroupMetric& m : kGroupMetrics) {
        Json entry = Json::object();
        entry["name"] = m.name;
        entry["label"] = m.label;
        metrics.push_back(entry);
    }
    out["metrics"] = metrics;
    Json groups = Json::array();
    for (const std::string& value : values) {
        Json group = Json::object();
        group["value"] = value;
        Json names = Json::array();
        for (const Json* run : members[value]) names.push_back(run->at("name"));
        group["runs"] = names;
        Json stats = Json::object();
        for (const GroupMetric& m : kGroupMetrics) {
            double sum = 0.0, lo = NAN, hi = NAN;
            size_t n = 0;
            for (const Json* run : members[value]) {
                const double x = run_metric(*run, m);
                if (!std::isfinite(x)) continue;
                sum += x;
                lo = n == 0 ? x : std::min(lo, x);
                hi = n == 0 ? x : std::max(hi, x);
                n++;
            }
            Json s = Json::object();
            s["mean"] = number_or_null(n ? sum / double(n) : NAN);
            s["min"] = number_or_null(lo);
            s["max"] = number_or_null(hi);
            s["n"] = double(n);
            stats[m.name] = s;
        }
        group["metrics"] = stats;
        groups.push_back(group);
    }
    out["groups"] = groups;
    return out;
}

std::string format_groups(const Json& grouped) {
    const Json::Array& groups = grouped.at("groups").as_array();
    const bool pair = groups.size() == 2;
    std::vector<std::string> header = {"metric"};
    for (const Json& g : groups) header.push_back(fmt::format("{} (n={})", g.at("value").as_string(), g.at("runs").size()));
    if (pair) {
        header.push_back("difference");
        header.push_back("ranges");
    }
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> separated, overlapping;
    for (const Json& entry : grouped.at("metrics").as_array()) {
        const GroupMetric& m = group_metric(entry.at("name").as_string());
        std::vector<std::string> row = {m.label};
        bool any = false;
        for (const Json& g : groups) {
            const Json& s = g.at("metrics").at(m.name);
            if (s.at("mean").is_null()) {
                row.push_back("-");
                continue;
            }
            any = true;
            const std::string spec = fmt::format("{} [{}, {}]", m.format, m.format, m.format);
            row.push_back(s.at("n").as_number() > 1
                              ? fmt::format(fmt::runtime(spec), s.at("mean").as_number(), s.at("min").as_number(),
                                            s.at("max").as_number())
                              : cell(s.at("mean"), m.format));
        }
        if (!any) continue;
        if (pair) {
            const Json& a = groups[0].at("metrics").at(m.name);
            const Json& b = groups[1].at("metrics").at(m.name);
            if (a.at("mean").is_null() || b.at("mean").is_null()) {
                row.push_back("-");
                row.push_back("-");
            } else {
                const double diff = a.at("mean").as_number() - b.at("mean").as_number();
                row.push_back(fmt::format(fmt::runtime(std::string("{:+") + (m.format + 2)), diff));
                const bool apart = a.at("min").as_number() > b.at("max").as_number() ||
                                   b.at("min").as_number() > a.at("max").as_number();
                row.push_back(apart ? "separated" : "overlap");
                const std::string said = fmt::format(fmt::runtime(std::string("{} ") + m.format + " against " + m.format),
                                                     m.label, a.at("mean").as_number(), b.at("mean").as_number());
                (apart ? separated : overlapping).push_back(apart ? said : std::string(m.label));
            }
        }
        rows.push_back(row);
    }
    std::vector<size_t> width(header.size());
    for (size_t c = 0; c < header.size(); c++) {
        width[c] = header[c].size();
        for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
    }
    std::string out = fmt::format("grouped by {}: mean [min, max] over each group's runs\n", grouped.at("key").as_string());
    auto emit = [&](const std::vector<std::string>& row) {
        std::string line;
        for (size_t c = 0; c < row.size(); c++) {
            line += c == 0 ? fmt::format("{:<{}}", row[c], width[c]) : fmt::format("{:>{}}", row[c], width[c]);
            if (c + 1 < row.size()) line += "  ";
        }
        out += line + '\n';
    };
    emit(header);
    for (const auto& row : rows) emit(row);
    if (pair) {
        const std::string a = groups[0].at("value").as_string(), b = groups[1].at("value").as_string();
        out += "separated: every run of one group is above every run of the other; overlap: they are not\n";
        if (separated.empty()) {
            out += fmt::format("verdict: no measure separates {} from {} over these runs\n", a, b);
        } else {
            out += fmt::format("verdict: {} and {} differ in every run in {} measure{} ({} against {}):\n", a, b,
                               separated.size(), separated.size() == 1 ? "" : "s", a, b);
            for (const std::string& said : separated) out += "  " + said + "\n";
            if (!overlapping.empty()) out += fmt::format("not separated: {}\n", fmt::join(overlapping, ", "));
        }
    }
    return out;
}

int cmd_compare(int argc, char** argv) {
    ArgParser args("compare", "Compare training runs: differing configuration, losses, Sink_1..3 and speed.");
    args.option("json", "", "also write the comparison as JSON to this file", "OUT");
    args.option("svg", "", "also draw compare_loss.svg, compare_sink.svg and compare_norms.svg (all runs on shared axes) here", "DIR");
    args.option("group-by", "", "also summarise the runs grouped by this configuration key (e.g. model.attention): "
                "mean, min and max of each measure per group and, for two groups, which measures separate them",
                "KEY");
    args.option("sink-position", "1", "the position k whose Sink_k and alpha_k compare_sink.svg draws (1..10)", "K");
    args.epilog(
        "Arguments: run directories written by `sinklab train --out DIR` (config.json, metrics.jsonl,\n"
        "optionally sink.json). Runs still in progress are fine.\n"
        "example: sinklab compare runs/softmax runs/sigmoid --json compare.json\n"
        "         sinklab compare runs/seed*/softmax runs/seed*/sigmoid --group-by model.attention");
    // Run directories are the positional arguments, anywhere on the line; the rest goes to the parser.
    std::vector<std::string> dirs;
    std::vector<char*> options = {argv[0]};
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (arg.rfind("--", 0) != 0 && arg != "-h") {
            dirs.push_back(arg);
            continue;
        }
        options.push_back(argv[i]);
        if ((arg == "--json" || arg == "--svg" || arg == "--group-by" || arg == "--sink-position") && i + 1 < argc) options.push_back(argv[++i]);
    }
    if (!args.parse(int(options.size()), options.data())) return 0;
    if (dirs.empty()) fail("compare: give one or more run directories (see sinklab compare --help)");
    Json comparison = compare_runs(dirs);
    fmt::print("{}", format_comparison(comparison));
    std::string group_key;
    if (args.has("group-by")) {
        group_key = args.get("group-by");
        comparison["grouped"] = group_comparison(comparison, group_key);
        fmt::print("\n{}", format_groups(comparison.at("grouped")));
    }
    if (args.has("json")) {
        write_file_atomic(args.get("json"), report_json_text(comparison));
        fmt::print("wrote {}\n", args.get("json"));
    }
    if (args.has("svg"))
        for (const std::string& path : write_comparison_plots(dirs, args.get("svg"), group_key, args.get_size("sink-position"))) fmt::print("wrote {}\n", path);
    return 0;
}

}  // namespace sinklab
