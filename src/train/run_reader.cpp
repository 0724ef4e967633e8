#include "train/run_reader.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "data/shard.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

std::vector<Json> read_metrics_jsonl(const std::string& path, bool* torn) {
    const std::string text = read_file(path);
    std::vector<Json> lines;
    if (torn) *torn = false;
    size_t start = 0, line_number = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        const bool last = end == std::string::npos;
        if (last) end = text.size();
        line_number++;
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            Json j = Json::parse(line, fmt::format("{} line {}", path, line_number));
            if (!j.is_object()) fail("{} line {}: expected a JSON object", path, line_number);
            lines.push_back(std::move(j));
        } catch (const Error&) {
            // A run in progress may have a half-written last line (no newline yet): drop it.
            const bool unterminated_last = last || text.find_first_not_of(" \t\r\n", start) == std::string::npos;
            if (!unterminated_last) throw;
            if (torn) *torn = true;
        }
    }
    return lines;
}

RunData read_run(const std::string& dir) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(dir)) fail("run {}: not a directory", dir);
    RunData run;
    run.dir = dir;
    const std::string config_path = (fs::path(dir) / "config.json").string();
    const std::string metrics_path = (fs::path(dir) / "metrics.jsonl").string();
    const std::string sink_path = (fs::path(dir) / "sink.json").string();
    if (!fs::exists(config_path)) fail("run {}: missing {} (is this a directory written by sinklab train --out?)", dir, config_path);
    run.config = Json::parse(read_file(config_path), config_path);
    if (!run.config.is_object()) fail("run {}: {} is not a JSON object", dir, config_path);
    if (!fs::exists(metrics_path)) fail("run {}: missing {}", dir, metrics_path);
    run.metrics = read_metrics_jsonl(metrics_path, &run.torn_last_line);
    if (fs::exists(sink_path)) {
        run.sink_report = Json::parse(read_file(sink_path), sink_path);
        run.has_sink_report = true;
    }
    return run;
}

MetricSeries metric_series(const std::vector<Json>& metrics, const std::string& key) {
    MetricSeries out;
    for (const Json& line : metrics) {
        if (!line.contains(key) || !line.contains("step")) continue;
        const Json& v = line.at(key);
        const Json& step = line.at("step");
        if (!step.is_number()) continue;
        if (v.is_number()) {
            out.step.push_back(step.as_number());
            out.value.push_back(v.as_number());
        } else if (v.is_null()) {  // non-finite values are written as null (diverged run)
            out.step.push_back(step.as_number());
            out.value.push_back(NAN);
        }
    }
    return out;
}

MetricSeries metric_list_series(const std::vector<Json>& metrics, const std::string& key, size_t index) {
    MetricSeries out;
    for (const Json& line : metrics) {
        if (!line.contains(key) || !line.contains("step")) continue;
        const Json& v = line.at(key);
        if (!v.is_array() || index >= v.size() || !line.at("step").is_number()) continue;
        const Json& item = v.as_array()[index];
        out.step.push_back(line.at("step").as_number());
        out.value.push_back(item.is_number() ? item.as_number() : NAN);
    }
    return out;
}

std::map<std::string, std::string> flatten_json(const Json& json, const std::string& prefix) {
    std::map<std::string, std::string> out;
    if (json.is_object()) {
        for (const auto& [key, value] : json.as_object()) {
            const std::string name = prefix.empty() ? key : prefix + "." + key;
            if (value.is_object()) {
                for (auto& [k, v] : flatten_json(value, name)) out[k] = v;
            } else {
                out[name] = value.is_string() ? value.as_string() : value.dump();
            }
        }
    } else if (!prefix.empty()) {
        out[prefix] = json.is_string() ? json.as_string() : json.dump();
    }
    return out;
}

double median(std::vector<double> values) {
    std::erase_if(values, [](double v) { return !std::isfinite(v); });
    if (values.empty()) return NAN;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::string checkpoint_title(const std::string& weights_path) {
    namespace fs = std::filesystem;
    const fs::path file = fs::absolute(fs::path(weights_path)).lexically_normal();
    if (file.filename() != "model.safetensors") return file.stem().string();
    const fs::path dir = file.parent_path();
    if (dir.parent_path().filename() == "checkpoints")
        return dir.parent_path().parent_path().filename().string() + " " + dir.filename().string();
    return dir.filename().string();
}

Json checkpoint_train_config(const std::string& checkpoint_arg, const std::string& weights_path) {
    namespace fs = std::filesystem;
    std::vector<fs::path> candidates = {fs::path(checkpoint_arg)};
    const fs::path file = fs::absolute(fs::path(weights_path)).lexically_normal();
    if (file.parent_path().parent_path().filename() == "checkpoints")
        candidates.push_back(file.parent_path().parent_path().parent_path());
    for (const fs::path& dir : candidates) {
        const fs::path config = dir / "config.json";
        if (!fs::is_regular_file(config)) continue;
        const Json j = Json::parse(read_file(config.string()), config.string());
        if (j.contains("train")) return j.at("train");
    }
    return Json();
}

int64_t resolve_first_token(const std::string& flag, const Json& run_train) {
    if (flag == "none") return -1;
    if (flag != "auto") {
        char* end = nullptr;
        const long long id = std::strtoll(flag.c_str(), &end, 10);
        if (flag.empty() || *end != '\0' || id < 0) fail("--first-token: expected auto, none or a token id, got '{}'", flag);
        return id;
    }
    return run_train.is_object() && run_train.contains("first_token") ? run_train.at("first_token").as_int() : -1;
}

std::string find_run_tokenizer(const std::string& weights_path, const std::string& flag) {
    namespace fs = std::filesystem;
    fs::path dir = fs::absolute(weights_path).parent_path();
    for (size_t up = 0; up < 4 && !dir.empty(); up++, dir = dir.parent_path()) {
        if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
        if (fs::exists(dir / "tokenizer.json")) return (dir / "tokenizer.json").string();  // an imported model's
        const fs::path config = dir / "config.json";
        if (!fs::exists(config)) continue;
        try {
            const Json j = Json::parse(read_file(config.string()), config.string());
            if (!j.contains("train") || !j.at("train").contains("data")) continue;
            const fs::path data = j.at("train").at("data").as_string();
            // the shards as written, then (a relative path) from each directory above the run
            std::vector<fs::path> bases = {fs::path()};
            if (data.is_relative())
                for (fs::path above = dir.parent_path(); !above.empty() && above != above.parent_path();
                     above = above.parent_path())
                    bases.push_back(above);
            bases.push_back(fs::path("/"));
            for (const fs::path& base : bases) {
                try {
                    const std::string first = expand_shard_paths((base / data).string()).front();
                    const fs::path candidate = fs::path(first).parent_path() / "tokenizer.bin";
                    if (fs::exists(candidate)) return candidate.string();
                } catch (const Error&) {
                    // not from this directory
                }
            }
        } catch (const Error&) {
            // not found this way; keep looking
        }
    }
    fail("{}: cannot find the tokenizer (looked next to the run's training shards and above the checkpoint): pass "
         "{} FILE",
         weights_path, flag);
}

}  // namespace sinklab
