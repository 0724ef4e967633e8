#include "train/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "io/safetensors.h"
#include "model/model.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

void append_u64(std::string& out, uint64_t v) {
    for (int i = 0; i < 8; i++) out += char((v >> (8 * i)) & 0xFF);
}
void append_u32(std::string& out, uint32_t v) {
    for (int i = 0; i < 4; i++) out += char((v >> (8 * i)) & 0xFF);
}
void append_floats(std::string& out, const float* data, size_t n) {
    out.append(reinterpret_cast<const char*>(data), n * sizeof(float));  // x86-64 and ARM64: little-endian
}

uint64_t fnv1a(const char* data, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= static_cast<unsigned char>(data[i]);
        h *= 1099511628211ull;
    }
    return h;
}

// Sequential reader over a byte string with bounds checks that name the file.
struct Reader {
    const std::string& bytes;
    const std::string& path;
    size_t pos = 0;
    void need(size_t n, const char* what) const {
        if (pos + n > bytes.size()) fail("{}: truncated: {} ends past the end of the file ({} bytes)", path, what, bytes.size());
    }
    uint64_t u64(const char* what) {
        need(8, what);
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v |= uint64_t(static_cast<unsigned char>(bytes[pos + size_t(i)])) << (8 * i);
        pos += 8;
        return v;
    }
    uint32_t u32(const char* what) {
        need(4, what);
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) v |= uint32_t(static_cast<unsigned char>(bytes[pos + size_t(i)])) << (8 * i);
        pos += 4;
        return v;
    }
    void floats(std::vector<float>& out, size_t n, const char* what) {
        need(n * sizeof(float), what);
        out.resize(n);
        std::memcpy(out.data(), bytes.data() + pos, n * sizeof(float));
        pos += n * sizeof(float);
    }
};

constexpr char kStateMagic[8] = {'S', 'I', 'N', 'K', 'S', 'T', 'A', 'T'};

}  // namespace

std::string safetensors_bytes(const ModelConfig& config, const TensorTable& table, const float* params) {
    Json header = Json::object();
    Json meta = Json::object();
    meta["format"] = "pt";
    meta["sinklab_config"] = model_config_to_json(config).dump();
    meta["sinklab_version"] = SINKLAB_VERSION;
    header["__metadata__"] = meta;
    for (const TensorSpec& s : table.specs()) {
        Json t = Json::object();
        t["dtype"] = "F32";
        t["shape"] = Json(s.shape);
        t["data_offsets"] = Json(std::vector<size_t>{s.offset * 4, (s.offset + s.numel) * 4});
        header[s.name] = t;
    }
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
    std::string out;
    out.reserve(8 + header_text.size() + table.total() * 4);
    append_u64(out, header_text.size());
    out += header_text;
    append_floats(out, params, table.total());
    return out;
}

void save_safetensors(const std::string& path, const ModelConfig& config, const TensorTable& table,
                      const float* params) {
    // The same bytes as safetensors_bytes, streamed from `params` (no second copy of the weights).
    Json meta = Json::object();
    meta["format"] = "pt";
    meta["sinklab_config"] = model_config_to_json(config).dump();
    meta["sinklab_version"] = SINKLAB_VERSION;
    std::vector<TensorToWrite> tensors;
    for (const TensorSpec& s : table.specs()) tensors.push_back({s.name, s.shape, params + s.offset});
    write_safetensors_f32(path, tensors, meta);
}

ModelConfig load_safetensors_into(const std::string& path, const std::function<float*(const ModelConfig&)>& destination) {
    const SafetensorsFile file(path);  // the header, every entry checked against the file
    const Json& metadata = file.metadata();
    if (!metadata.contains("sinklab_config") || !metadata.at("sinklab_config").is_string())
        fail("{}: no sinklab_config in the safetensors metadata (not written by sinklab?)", path);
    const ModelConfig config = model_config_from_json(
        Json::parse(metadata.at("sinklab_config").as_string(), path + " (sinklab_config)"), path);
    const TensorTable table = make_param_table(config);
    // The configuration decides how much to allocate: it must match the tensors the file holds.
    size_t stored = 0;
    for (const auto& [name, entry] : file.entries()) stored += size_t(entry.end - entry.begin);
    if (double(table.total()) * sizeof(float) > double(stored))
        fail("{}: its configuration ({} layers, width {}, vocabulary {}, context {}) has {} parameters ({} bytes), but "
             "the file holds {} bytes of tensors (corrupt metadata?)",
             path, config.n_layers, config.d_model, config.vocab_size, config.context, table.total(),
             table.total() * sizeof(float), stored);
    // Every tensor is checked before anything is allocated or read.
    for (const TensorSpec& s : table.specs())
        if (file.entry(s.name).shape != s.shape)
            fail("{}: tensor '{}' has the wrong shape for its configuration", path, s.name);
    float* params = destination(config);
    for (const TensorSpec& s : table.specs()) file.read_f32(s.name, params + s.offset);
    return config;
}

LoadedWeights load_safetensors(const std::string& path) {
    LoadedWeights w;
    w.config = load_safetensors_into(path, [&](const ModelConfig& config) {
        w.params.resize(make_param_table(config).total());
        return w.params.data();
    });
    return w;
}

void save_run_state(const std::string& path, const RunState& s) {
    if (s.adam_m.size() != s.adam_v.size()) fail("run state: moment sizes differ");
    std::string out(kStateMagic, 8);
    append_u32(out, 1);
    append_u32(out, 0);
    append_u64(out, s.step);
    append_u64(out, s.adam_m.size());
    append_u64(out, s.loader_shard);
    append_u64(out, s.loader_offset);
    append_u64(out, s.loader_epoch);
    const std::string options = s.options.dump();
    append_u32(out, uint32_t(options.size()));
    out += options;
    append_floats(out, s.adam_m.data(), s.adam_m.size());
    append_floats(out, s.adam_v.data(), s.adam_v.size());
    append_u64(out, fnv1a(out.data(), out.size()));
    write_file_atomic(path, out);
}

RunState load_run_state(const std::string& path, size_t expected_params) {
    const std::string bytes = read_file(path);
    if (bytes.size() < 16 || std::memcmp(bytes.data(), kStateMagic, 8) != 0)
        fail("{}: not a sinklab run-state file (wrong magic)", path);
    if (bytes.size() < 8 + 8) fail("{}: truncated", path);
    const size_t body = bytes.size() - 8;
    Reader tail{bytes, path, body};
    if (tail.u64("the checksum") != fnv1a(bytes.data(), body))
        fail("{}: checksum mismatch: the file is truncated or corrupt", path);
    Reader r{bytes, path, 8};
    const uint32_t version = r.u32("the version");
    if (version != 1) fail("{}: unsupported run-state version {}", path, version);
    r.u32("reserved");
    RunState s;
    s.step = r.u64("the step");
    const uint64_t n = r.u64("the parameter count");
    if (n != expected_params)
        fail("{}: holds optimizer state for {} parameters but the model has {}", path, n, expected_params);
    s.loader_shard = r.u64("the loader position");
    s.loader_offset = r.u64("the loader position");
    s.loader_epoch = r.u64("the loader position");
    const uint32_t options_len = r.u32("the options length");
    r.need(options_len, "the options");
    s.options = Json::parse(bytes.substr(r.pos, options_len), path + " (options)");
    r.pos += options_len;
    r.floats(s.adam_m, n, "the AdamW first moment");
    r.floats(s.adam_v, n, "the AdamW second moment");
    if (r.pos != body) fail("{}: {} unexpected bytes before the checksum", path, body - r.pos);
    return s;
}

std::string save_checkpoint(const std::string& run_dir, const ModelConfig& config, const TensorTable& table,
                            const float* params, const RunState& state, size_t keep) {
    const std::string root = run_dir + "/checkpoints";
    make_dirs(root);
    const std::string name = fmt::format("step_{:07d}", state.step);
    const std::string final_dir = root + "/" + name;
    const std::string tmp_dir = final_dir + ".tmp";
    // Leftovers of saves that died (killed, or a full disk) are never a checkpoint: remove them.
    for (const auto& e : fs::directory_iterator(root)) {
        const std::string n = e.path().filename().string();
        if (e.is_directory() && n.rfind("step_", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".tmp")
            fs::remove_all(e.path());
    }
    make_dirs(tmp_dir);
    try {
        save_safetensors(tmp_dir + "/model.safetensors", config, table, params);
        save_run_state(tmp_dir + "/state.bin", state);
    } catch (...) {
        std::error_code ignored;  // the save failed: leave no half-written directory behind
        fs::remove_all(tmp_dir, ignored);
        throw;
    }
    // Replace an older checkpoint of the same step (a resumed run saving again) only now.
    if (fs::exists(final_dir)) {
        if (latest_checkpoint(run_dir) == final_dir) write_file_atomic(root + "/latest", "");
        fs::remove_all(final_dir);
    }
    fs::rename(tmp_dir, final_dir);
    write_file_atomic(root + "/latest", name + "\n");
    // Keep the newest `keep` complete checkpoints.
    std::vector<std::string> steps;
    for (const auto& e : fs::directory_iterator(root)) {
        const std::string n = e.path().filename().string();
        if (e.is_directory() && n.rfind("step_", 0) == 0 && n.find(".tmp") == std::string::npos) steps.push_back(n);
    }
    std::sort(steps.begin(), steps.end());
    for (size_t i = 0; i + keep < steps.size(); i++)
        if (steps[i] != name) fs::remove_all(root + "/" + steps[i]);
    return final_dir;
}

std::string latest_checkpoint(const std::string& run_dir) {
    const std::string latest = run_dir + "/checkpoints/latest";
    if (!fs::exists(latest)) return "";
    std::string name = read_file(latest);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (name.empty()) return "";
    const std::string dir = run_dir + "/checkpoints/" + name;
    if (!fs::exists(dir + "/model.safetensors") || !fs::exists(dir + "/state.bin"))
        fail("{}: names checkpoint '{}' which is incomplete or missing", latest, name);
    return dir;
}

std::string resolve_weights_path(const std::string& path) {
    if (fs::is_regular_file(path)) return path;
    if (!fs::is_directory(path)) fail("--checkpoint: '{}' does not exist", path);
    if (fs::exists(path + "/model.safetensors")) return path + "/model.safetensors";
    const std::string latest = latest_checkpoint(path);
    if (latest.empty()) fail("--checkpoint: no checkpoint in '{}' (expected model.safetensors or checkpoints/latest)", path);
    return latest + "/model.safetensors";
}

}  // namespace sinklab
