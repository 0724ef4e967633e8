#include "io/hf_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "data/tokenizer.h"
#include "io/safetensors.h"
#include "model/params.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/memory.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

// The architectures whose blocks are exactly LLaMA's (pre-norm RMSNorm, RoPE, SwiGLU, no biases).
const std::vector<std::string> kLlamaArchitectures = {"LlamaForCausalLM", "MistralForCausalLM"};

// sinklab's LLaMA: the model a LLaMA config.json describes, given its sizes.
ModelConfig llama_model(size_t layers, size_t heads, size_t width, size_t ffn, size_t vocab, size_t context,
                        double norm_eps, double rope_base) {
    ModelConfig c;
    c.n_layers = layers;
    c.n_heads = heads;
    c.d_model = width;
    c.d_ffn = ffn;
    c.ffn = FfnKind::swiglu;
    c.vocab_size = vocab;
    c.context = context;
    c.norm_eps = norm_eps;
    c.rope_base = rope_base;
    c.attention = parse_attention("softmax");
    c.position = PositionKind::rope;
    c.post_norm = false;
    c.sum_heads = false;
    c.attention_gate = AttentionGate::none;
    c.head_norm = false;
    return c;
}

// Typed access to config.json's keys; every message names the file and the key.
struct HfConfigReader {
    const Json& j;
    const std::string& what;
    bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }
    size_t size(const char* key) const {
        if (!has(key)) fail("{}: \"{}\" is missing", what, key);
        const Json& v = j.at(key);
        if (!v.is_number() || v.as_number() < 1 || v.as_number() != std::floor(v.as_number()) || v.as_number() > 1e12)
            fail("{}: \"{}\" must be a positive integer", what, key);
        return size_t(v.as_int());
    }
    double number(const char* key, double def) const {
        if (!has(key)) return def;
        if (!j.at(key).is_number()) fail("{}: \"{}\" must be a number", what, key);
        return j.at(key).as_number();
    }
    bool boolean(const char* key, bool def) const {
        if (!has(key)) return def;
        if (!j.at(key).is_bool()) fail("{}: \"{}\" must be true or false", what, key);
        return j.at(key).as_bool();
    }
    std::string string(const char* key, const std::string& def) const {
        if (!has(key)) return def;
        if (!j.at(key).is_string()) fail("{}: \"{}\" must be a string", what, key);
        return j.at(key).as_string();
    }
    // An id given as a number, or the first of a list of numbers (eos_token_id may be a list).
    int64_t token_id(const char* key) const {
        if (!has(key)) return -1;
        const Json& v = j.at(key);
        const Json& first = v.is_array() && v.size() > 0 ? v.as_array()[0] : v;
        if (!first.is_number() || first.as_number() < 0 || first.as_number() != std::floor(first.as_number()))
            fail("{}: \"{}\" must be a token id", what, key);
        return first.as_int();
    }
};

std::string layer_tensor(size_t layer, const char* name) { return fmt::format("model.layers.{}.{}", layer, name); }

// Every tensor a checkpoint of `info` must hold, with its shape, in file order.
std::vector<std::pair<std::string, std::vector<size_t>>> expected_tensors(const HfModelInfo& info) {
    const ModelConfig& c = info.config;
    const size_t C = c.d_model, F = c.d_ffn, V = c.vocab_size, D = c.head_dim(), KV = info.kv_heads;
    std::vector<std::pair<std::string, std::vector<size_t>>> t;
    t.push_back({"model.embed_tokens.weight", {V, C}});
    for (size_t i = 0; i < c.n_layers; i++) {
        t.push_back({layer_tensor(i, "input_layernorm.weight"), {C}});
        t.push_back({layer_tensor(i, "self_attn.q_proj.weight"), {c.n_heads * D, C}});
        t.push_back({layer_tensor(i, "self_attn.k_proj.weight"), {KV * D, C}});
        t.push_back({layer_tensor(i, "self_attn.v_proj.weight"), {KV * D, C}});
        t.push_back({layer_tensor(i, "self_attn.o_proj.weight"), {C, c.n_heads * D}});
        t.push_back({layer_tensor(i, "post_attention_layernorm.weight"), {C}});
        t.push_back({layer_tensor(i, "mlp.gate_proj.weight"), {F, C}});
        t.push_back({layer_tensor(i, "mlp.up_proj.weight"), {F, C}});
        t.push_back({layer_tensor(i, "mlp.down_proj.weight"), {C, F}});
    }
    t.push_back({"model.norm.weight", {C}});
    if (!info.tied) t.push_back({"lm_head.weight", {V, C}});
    return t;
}

std::string shape_text(const std::vector<size_t>& shape) { return fmt::format("({})", fmt::join(shape, ", ")); }

}  // namespace

// ---------------------------------------------------------------- config.json

HfModelInfo hf_config_to_model(const Json& hf, const std::string& what) {
    if (!hf.is_object()) fail("{}: not a JSON object", what);
    const HfConfigReader r{hf, what};
    HfModelInfo info;
    // The architecture: LLaMA's block, by name.
    if (r.has("architectures")) {
        const Json& list = hf.at("architectures");
        if (!list.is_array() || list.size() == 0 || !list.as_array()[0].is_string())
            fail("{}: \"architectures\" must be a list of names", what);
        info.architecture = list.as_array()[0].as_string();
        if (std::find(kLlamaArchitectures.begin(), kLlamaArchitectures.end(), info.architecture) ==
            kLlamaArchitectures.end())
            fail("{}: \"architectures\": {} is not a LLaMA-family causal LM (sinklab imports {})", what,
                 info.architecture, fmt::join(kLlamaArchitectures, ", "));
    } else {
        const std::string type = r.string("model_type", "");
        if (type != "llama" && type != "mistral")
            fail("{}: neither \"architectures\" nor a \"model_type\" of llama or mistral (got '{}')", what, type);
        info.architecture = type == "llama" ? "LlamaForCausalLM" : "MistralForCausalLM";
    }
    // What the model cannot represent is refused by its key.
    const std::string act = r.string("hidden_act", "silu");
    if (act != "silu") fail("{}: \"hidden_act\" is '{}': sinklab's LLaMA FFN is SwiGLU (silu)", what, act);
    if (r.boolean("attention_bias", false)) fail("{}: \"attention_bias\" is true: sinklab's projections have no biases", what);
    if (r.boolean("mlp_bias", false)) fail("{}: \"mlp_bias\" is true: sinklab's FFN has no biases", what);
    if (r.has("rope_scaling"))
        fail("{}: \"rope_scaling\" is set ({}): long-context RoPE scaling rules are not implemented (plain RoPE only)",
             what, hf.at("rope_scaling").dump());
    if (r.has("sliding_window"))
        fail("{}: \"sliding_window\" is {}: sliding-window attention is not imported (full causal attention only)", what,
             hf.at("sliding_window").dump());
    if (r.boolean("use_sliding_window", false)) fail("{}: \"use_sliding_window\" is true: not imported", what);
    if (r.number("partial_rotary_factor", 1.0) != 1.0)
        fail("{}: \"partial_rotary_factor\" is {}: sinklab's RoPE rotates the whole head", what,
             r.number("partial_rotary_factor", 1.0));
    const size_t layers = r.size("num_hidden_layers"), heads = r.size("num_attention_heads"),
                 width = r.size("hidden_size"), ffn = r.size("intermediate_size"), vocab = r.size("vocab_size");
    const size_t context = r.has("max_position_embeddings") ? r.size("max_position_embeddings") : 2048;
    if (width % heads != 0)
        fail("{}: \"num_attention_heads\" ({}) does not divide \"hidden_size\" ({})", what, heads, width);
    if (r.has("head_dim") && r.size("head_dim") != width / heads)
        fail("{}: \"head_dim\" is {}, not hidden_size / num_attention_heads = {}: sinklab's heads are C / H wide", what,
             r.size("head_dim"), width / heads);
    info.kv_heads = r.has("num_key_value_heads") ? r.size("num_key_value_heads") : heads;
    if (heads % info.kv_heads != 0)
        fail("{}: \"num_key_value_heads\" ({}) does not divide \"num_attention_heads\" ({})", what, info.kv_heads, heads);
    info.tied = r.boolean("tie_word_embeddings", false);
    const double eps = r.number("rms_norm_eps", 1e-6), theta = r.number("rope_theta", 10000.0);
    if (!(eps > 0)) fail("{}: \"rms_norm_eps\" must be positive", what);
    if (!(theta > 1)) fail("{}: \"rope_theta\" must be above 1", what);
    info.config = llama_model(layers, heads, width, ffn, vocab, context, eps, theta);
    try {
        info.config.validate();
    } catch (const Error& e) {
        fail("{}: {}", what, e.what());
    }
    info.bos_token_id = r.token_id("bos_token_id");
    info.eos_token_id = r.token_id("eos_token_id");
    return info;
}

Json model_to_hf_config(const ModelConfig& c, size_t kv_heads) {
    ModelConfig llama = llama_model(c.n_layers, c.n_heads, c.d_model, c.d_ffn, c.vocab_size, c.context, c.norm_eps,
                                    c.rope_base);
    llama.init = c.init;
    const Json ours = model_config_to_json(c), theirs = model_config_to_json(llama);
    std::vector<std::string> differences;
    for (const auto& [key, value] : ours.as_object()) {
        if (key == "architecture" || theirs.at(key).dump() == value.dump()) continue;
        differences.push_back(fmt::format("{} = {} (LLaMA: {})", key, value.dump(), theirs.at(key).dump()));
    }
    if (!differences.empty())
        fail("a LLaMA config.json cannot describe this model: {}", fmt::join(differences, "; "));
    if (kv_heads == 0 || c.n_heads % kv_heads != 0) fail("num_key_value_heads {} does not divide {} heads", kv_heads, c.n_heads);
    Json j = Json::object();
    j["architectures"] = Json(std::vector<std::string>{"LlamaForCausalLM"});
    j["model_type"] = "llama";
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_ffn;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = kv_heads;
    j["head_dim"] = c.head_dim();
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = c.context;
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_base;
    j["rope_scaling"] = Json();
    j["attention_bias"] = false;
    j["attention_dropout"] = 0.0;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
    j["tie_word_embeddings"] = false;
    j["vocab_size"] = c.vocab_size;
    j["torch_dtype"] = "float32";
    j["use_cache"] = true;
    return j;
}

// ---------------------------------------------------------------- reading a checkpoint directory

HfCheckpoint open_hf_checkpoint(const std::string& dir) {
    if (!fs::is_directory(dir)) fail("--hf: '{}' is not a directory", dir);
    const std::string config_path = (fs::path(dir) / "config.json").string();
    if (!fs::exists(config_path)) fail("{}: missing (a Hugging Face checkpoint directory has config.json)", config_path);
    HfCheckpoint ck;
    ck.dir = dir;
    ck.info = hf_config_to_model(Json::parse(read_file(config_path), config_path), config_path);

    // The weight files: the index's, or the one model.safetensors / *.safetensors.
    const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
    std::vector<std::string> files;
    std::map<std::string, std::string> indexed;  // tensor -> file, from the index
    if (fs::exists(index_path)) {
        const Json index = Json::parse(read_file(index_path), index_path);
        if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
            fail("{}: no \"weight_map\" object", index_path);
        for (const auto& [tensor, file] : index.at("weight_map").as_object()) {
            if (!file.is_string()) fail("{}: \"weight_map\": the file of '{}' is not a string", index_path, tensor);
            const std::string path = (fs::path(dir) / file.as_string()).string();
            indexed[tensor] = path;
            if (std::find(files.begin(), files.end(), path) == files.end()) files.push_back(path);
        }
        for (const std::string& f : files)
            if (!fs::exists(f)) fail("{}: names '{}', which does not exist", index_path, f);
    } else {
        std::vector<std::string> found, pickles;
        for (const auto& e : fs::directory_iterator(dir)) {
            const std::string ext = e.path().extension().string();
            if (ext == ".safetensors") found.push_back(e.path().string());
            if (ext == ".bin" || ext == ".pt" || ext == ".pth") pickles.push_back(e.path().filename().string());
        }
        std::sort(found.begin(), found.end());
        if (found.empty() && !pickles.empty())
            fail("{}: only PyTorch pickle weights ({}): sinklab reads safetensors (convert them with "
                 "safetensors.torch.save_file)", dir, fmt::join(pickles, ", "));
        if (found.empty()) fail("{}: no *.safetensors weights", dir);
        if (found.size() > 1)
            fail("{}: {} *.safetensors files but no model.safetensors.index.json to say which tensor is where", dir,
                 found.size());
        files = found;
    }
    for (const std::string& f : files) {
        SafetensorsFile file(f);
        for (const auto& [name, entry] : file.entries()) {
            (void)entry;
            if (ck.shard_of.count(name)) fail("{}: tensor '{}' is also in {}", f, name, ck.shard_of.at(name));
            if (!indexed.empty() && (!indexed.count(name) || indexed.at(name) != f))
                fail("{}: holds tensor '{}', which {} does not place there", f, name, index_path);
            ck.shard_of[name] = f;
        }
        ck.files.emplace(f, std::move(file));
    }
    // Every expected tensor, with its shape; nothing the model cannot represent.
    const auto expected = expected_tensors(ck.info);
    std::map<std::string, std::vector<size_t>> wanted(expected.begin(), expected.end());
    for (const auto& [name, shape] : expected) {
        if (!ck.shard_of.count(name)) fail("{}: tensor '{}' is missing", dir, name);
        const SafetensorsEntry& e = ck.files.at(ck.shard_of.at(name)).entry(name);
        if (e.shape != shape)
            fail("{}: tensor '{}' has shape {}, but config.json implies {}", ck.shard_of.at(name), name,
                 shape_text(e.shape), shape_text(shape));
    }
    for (const auto& [name, file] : ck.shard_of) {
        if (wanted.count(name)) continue;
        if (name.size() > 5 && name.substr(name.size() - 5) == ".bias")
            fail("{}: tensor '{}' is a bias: sinklab's LLaMA has none (config key attention_bias / mlp_bias)", file,
                 name);
        if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;  // a buffer older exports saved
        if (name == "lm_head.weight" && ck.info.tied) continue;                // tied: Hugging Face uses the embedding
        fail("{}: tensor '{}' is not part of a LLaMA model (a different architecture?)", file, name);
    }
    return ck;
}

void read_hf_weights(const HfCheckpoint& ck, float* params) {
    const ModelConfig& c = ck.info.config;
    const size_t L = c.n_layers, C = c.d_model, F = c.d_ffn, D = c.head_dim(), H = c.n_heads, KV = ck.info.kv_heads;
    const ParamTensors<float> p = carve_params(params, c);
    auto read = [&](const std::string& name, float* out) { ck.files.at(ck.shard_of.at(name)).read_f32(name, out); };
    // k or v of one layer, (KV D, C), expanded to (H D, C): query head h gets key/value head h / (H / KV).
    std::vector<float> compact(KV * D * C);
    auto read_expanded = [&](const std::string& name, float* out) {
        read(name, compact.data());
        const size_t group = H / KV;
        for (size_t h = 0; h < H; h++)
            std::memcpy(out + h * D * C, compact.data() + (h / group) * D * C, D * C * sizeof(float));
    };
    read("model.embed_tokens.weight", p.embed);
    for (size_t i = 0; i < L; i++) {
        float* qkv = p.attn_qkv + i * 3 * C * C;  // (3C, C): rows [Wq; Wk; Wv]
        read(layer_tensor(i, "input_layernorm.weight"), p.attn_norm + i * C);
        read(layer_tensor(i, "self_attn.q_proj.weight"), qkv);
        read_expanded(layer_tensor(i, "self_attn.k_proj.weight"), qkv + C * C);
        read_expanded(layer_tensor(i, "self_attn.v_proj.weight"), qkv + 2 * C * C);
        read(layer_tensor(i, "self_attn.o_proj.weight"), p.attn_out + i * C * C);
        read(layer_tensor(i, "post_attention_layernorm.weight"), p.ffn_norm + i * C);
        float* ffn_in = p.ffn_in + i * 2 * F * C;  // (2F, C): rows [W1 (gate); W2 (up)]
        read(layer_tensor(i, "mlp.gate_proj.weight"), ffn_in);
        read(layer_tensor(i, "mlp.up_proj.weight"), ffn_in + F * C);
        read(layer_tensor(i, "mlp.down_proj.weight"), p.ffn_out + i * C * F);
    }
    read("model.norm.weight", p.final_norm);
    if (ck.info.tied)
        std::memcpy(p.lm_head, p.embed, c.vocab_size * C * sizeof(float));
    else
        read("lm_head.weight", p.lm_head);
}

// ---------------------------------------------------------------- import / export

void import_hf_checkpoint(const std::string& hf_dir, const std::string& out_dir, bool overwrite, bool verbose) {
    const HfCheckpoint ck = open_hf_checkpoint(hf_dir);
    const std::string weights_out = (fs::path(out_dir) / "model.safetensors").string();
    if (fs::exists(weights_out) && !overwrite) fail("--out: {} exists (--overwrite replaces it)", weights_out);
    if (fs::exists(out_dir) && !fs::is_directory(out_dir)) fail("--out: '{}' exists and is not a directory", out_dir);
    const ModelConfig& c = ck.info.config;
    const TensorTable table = make_param_table(c);
    require_memory(double(table.total()) * sizeof(float),
                   fmt::format("the imported model ({} parameters as float32)", table.total()),
                   "import on a machine with more memory");
    const std::string tokenizer_in = (fs::path(hf_dir) / "tokenizer.json").string();
    std::string tokenizer_note;
    if (fs::exists(tokenizer_in)) {
        try {
            const Tokenizer tok = Tokenizer::load(tokenizer_in);
            tokenizer_note = fmt::format("tokenizer.json: {} ids, byte-level BPE", tok.vocab_size());
        } catch (const Error& e) {
            tokenizer_note = fmt::format("tokenizer.json copied, but sinklab cannot use it: {}", e.what());
        }
    }
    if (verbose)
        fmt::print("{}: {}, {} layers, {} heads ({} key/value heads{}), width {}, FFN {}, vocabulary {}, context {}{}\n",
                   hf_dir, ck.info.architecture, c.n_layers, c.n_heads, ck.info.kv_heads,
                   ck.info.kv_heads < c.n_heads ? ", expanded to one per query head" : "", c.d_model, c.d_ffn,
                   c.vocab_size, c.context, ck.info.tied ? ", tied embeddings (untied)" : "");
    std::vector<float> params(table.total());
    read_hf_weights(ck, params.data());
    make_dirs(out_dir);
    save_safetensors(weights_out, c, table, params.data());
    Json record = Json::object();
    record["source"] = fs::absolute(hf_dir).string();
    record["architecture"] = ck.info.architecture;
    record["num_key_value_heads"] = ck.info.kv_heads;
    record["tie_word_embeddings"] = ck.info.tied;
    record["bos_token_id"] = ck.info.bos_token_id >= 0 ? Json(ck.info.bos_token_id) : Json();
    record["eos_token_id"] = ck.info.eos_token_id >= 0 ? Json(ck.info.eos_token_id) : Json();
    write_file_atomic((fs::path(out_dir) / "hf_import.json").string(), record.dump(2) + "\n");
    if (fs::exists(tokenizer_in)) write_file_atomic((fs::path(out_dir) / "tokenizer.json").string(), read_file(tokenizer_in));
    if (verbose) {
        fmt::print("wrote {} ({} parameters)\n", weights_out, table.total());
        if (!tokenizer_note.empty()) fmt::print("{}\n", tokenizer_note);
    }
}

size_t shared_kv_heads(const ModelConfig& c, const float* params) {
    const size_t L = c.n_layers, C = c.d_model, D = c.head_dim(), H = c.n_heads;
    const ParamTensors<const float> p = carve_params(params, c);
    for (size_t kv = 1; kv < H; kv++) {
        if (H % kv != 0) continue;
        const size_t group = H / kv;
        bool shared = true;
        for (size_t i = 0; i < L && shared; i++)
            for (size_t part = 1; part <= 2 && shared; part++) {  // k, then v
                const float* rows = p.attn_qkv + i * 3 * C * C + part * C * C;
                for (size_t h = 0; h < H && shared; h++)
                    shared = std::memcmp(rows + h * D * C, rows + (h / group) * group * D * C, D * C * sizeof(float)) == 0;
            }
        if (shared) return kv;
    }
    return H;
}

void export_hf_checkpoint(const ModelConfig& c, const float* params, const std::string& out_dir, const Json& extra_config,
                          bool overwrite, bool verbose) {
    const size_t L = c.n_layers, C = c.d_model, F = c.d_ffn, D = c.head_dim(), H = c.n_heads;
    model_to_hf_config(c, H);  // refuses a variant a LLaMA config cannot describe, before reading the weights
    const size_t kv = shared_kv_heads(c, params);
    Json config = model_to_hf_config(c, kv);
    if (extra_config.is_object())
        for (const auto& [key, value] : extra_config.as_object()) config[key] = value;
    const std::string config_out = (fs::path(out_dir) / "config.json").string(),
                      weights_out = (fs::path(out_dir) / "model.safetensors").string();
    for (const std::string& path : {config_out, weights_out})
        if (fs::exists(path) && !overwrite) fail("--hf: {} exists (--overwrite replaces it)", path);
    if (fs::exists(out_dir) && !fs::is_directory(out_dir)) fail("--hf: '{}' exists and is not a directory", out_dir);
    const ParamTensors<const float> p = carve_params(params, c);
    // k and v with one head per group (a copy only when there are fewer key/value heads than heads).
    std::vector<std::vector<float>> compact;
    const size_t group = H / kv;
    auto kv_rows = [&](size_t layer, size_t part) -> const float* {
        const float* rows = p.attn_qkv + layer * 3 * C * C + part * C * C;
        if (kv == H) return rows;
        compact.emplace_back(kv * D * C);
        for (size_t g = 0; g < kv; g++)
            std::memcpy(compact.back().data() + g * D * C, rows + g * group * D * C, D * C * sizeof(float));
        return compact.back().data();
    };
    compact.reserve(2 * L);
    std::vector<TensorToWrite> tensors;
    tensors.push_back({"model.embed_tokens.weight", {c.vocab_size, C}, p.embed});
    for (size_t i = 0; i < L; i++) {
        const float* qkv = p.attn_qkv + i * 3 * C * C;
        tensors.push_back({layer_tensor(i, "input_layernorm.weight"), {C}, p.attn_norm + i * C});
        tensors.push_back({layer_tensor(i, "self_attn.q_proj.weight"), {C, C}, qkv});
        tensors.push_back({layer_tensor(i, "self_attn.k_proj.weight"), {kv * D, C}, kv_rows(i, 1)});
        tensors.push_back({layer_tensor(i, "self_attn.v_proj.weight"), {kv * D, C}, kv_rows(i, 2)});
        tensors.push_back({layer_tensor(i, "self_attn.o_proj.weight"), {C, C}, p.attn_out + i * C * C});
        tensors.push_back({layer_tensor(i, "post_attention_layernorm.weight"), {C}, p.ffn_norm + i * C});
        tensors.push_back({layer_tensor(i, "mlp.gate_proj.weight"), {F, C}, p.ffn_in + i * 2 * F * C});
        tensors.push_back({layer_tensor(i, "mlp.up_proj.weight"), {F, C}, p.ffn_in + i * 2 * F * C + F * C});
        tensors.push_back({layer_tensor(i, "mlp.down_proj.weight"), {C, F}, p.ffn_out + i * C * F});
    }
    tensors.push_back({"model.norm.weight", {C}, p.final_norm});
    tensors.push_back({"lm_head.weight", {c.vocab_size, C}, p.lm_head});
    Json meta = Json::object();
    meta["format"] = "pt";
    meta["sinklab_version"] = SINKLAB_VERSION;
    make_dirs(out_dir);
    write_safetensors_f32(weights_out, tensors, meta);
    write_file_atomic(config_out, config.dump(2) + "\n");
    if (verbose)
        fmt::print("wrote {} and {} (LlamaForCausalLM, {} layers, {} heads, {} key/value heads, float32)\n", config_out,
                   weights_out, L, H, kv);
}

int64_t imported_bos_token(const std::string& weights_path) {
    const std::string record = (fs::absolute(weights_path).parent_path() / "hf_import.json").string();
    if (!fs::exists(record))
        fail("--bos: {} does not exist: --bos is for models made by sinklab import (use --first-token ID otherwise)",
             record);
    const Json j = Json::parse(read_file(record), record);
    if (!j.is_object() || !j.contains("bos_token_id") || !j.at("bos_token_id").is_number())
        fail("--bos: {} gives no bos_token_id (the model's config.json had none; use --first-token ID)", record);
    return j.at("bos_token_id").as_int();
}

}  // namespace sinklab
