#include "model/config.h"

#include <cmath>
#include <iterator>

#include <fmt/ranges.h>

#include "model/params.h"
#include "util/error.h"

namespace sinklab {

namespace {

// Every `--attention` name as data: its score function, normaliser and feature map
// (docs/attention.md has the math of each).
struct AttentionName {
    const char* name;
    ScoreFunction score;
    Normalizer normalizer;
    FeatureMap feature_map;
};
using SF = ScoreFunction;
using NZ = Normalizer;
using FM = FeatureMap;
constexpr AttentionName kAttentionNames[] = {
    {"softmax", SF::exp, NZ::softmax, FM::none},
    {"sigmoid", SF::sigmoid, NZ::none, FM::none},
    {"sigmoid-norm", SF::sigmoid, NZ::sum, FM::none},
    {"elu", SF::elu, NZ::none, FM::none},
    {"elu-norm", SF::elu, NZ::sum, FM::none},
    {"linear-kernel", SF::identity, NZ::none, FM::none},
    {"linear-kernel-norm", SF::identity, NZ::abs_sum, FM::none},
    {"elu-kernel", SF::identity, NZ::none, FM::elu},
    {"elu-kernel-norm", SF::identity, NZ::sum, FM::elu},
    {"mlp-kernel", SF::identity, NZ::none, FM::mlp},
    {"mlp-kernel-norm", SF::identity, NZ::abs_sum, FM::mlp},
    {"softpick", SF::exp, NZ::softpick, FM::none},
};

}  // namespace

std::string AttentionSpec::name() const {
    for (const AttentionName& n : kAttentionNames)
        if (n.score == score && n.normalizer == normalizer && n.feature_map == feature_map) return n.name;
    return "?";
}

std::string AttentionSpec::describe() const {
    std::string text = name();
    if (score_bias != 0.0) text += fmt::format(", sigmoid bias {}", score_bias);
    if (softmax_alpha != 1.0) text += fmt::format(", alpha {}", softmax_alpha);
    if (mask == MaskKind::window) text += fmt::format(", window {}", window);
    if (mask == MaskKind::prefix) text += fmt::format(", prefix {}", prefix);
    if (slot != SlotKind::none) text += fmt::format(", {}{}", slot_name(slot), slot_shared ? " (shared)" : "");
    if (position_bias == PositionBias::alibi) text += ", alibi";
    if (position_bias == PositionBias::t5) text += ", t5 buckets";
    return text;
}

// The index of `name` in a table of names (an enum's values in order); else an error naming the flag,
// what was asked for and the valid names.
template <size_t N>
static int index_of_name(const char* const (&names)[N], const std::string& name, const char* flag, const char* what) {
    for (size_t i = 0; i < N; i++)
        if (name == names[i]) return int(i);
    fail("{}: unknown {} '{}' (valid: {})", flag, what, name, fmt::join(names, ", "));
}

// The `--slot` names, in the order of SlotKind.
static const char* const kSlotNames[] = {"none", "k-bias", "kv-bias", "sink-token", "v-bias", "sink-logit", "off-by-one"};

std::string slot_name(SlotKind slot) { return kSlotNames[int(slot)]; }

SlotKind parse_slot(const std::string& name) { return SlotKind(index_of_name(kSlotNames, name, "--slot", "slot")); }

bool parse_slot_sharing(const std::string& name) {
    static const char* const kNames[] = {"per-head", "shared"};
    return index_of_name(kNames, name, "--slot-sharing", "value") == 1;
}

std::string mask_name(MaskKind mask) {
    switch (mask) {
        case MaskKind::window: return "window";
        case MaskKind::prefix: return "prefix";
        case MaskKind::causal: break;
    }
    return "causal";
}

MaskKind parse_mask(const std::string& name) {
    if (name == "causal") return MaskKind::causal;
    if (name == "window") return MaskKind::window;
    if (name == "prefix") return MaskKind::prefix;
    fail("unknown mask '{}' (valid: causal, window, prefix)", name);
}

const std::vector<std::string>& attention_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const AttentionName& n : kAttentionNames) v.push_back(n.name);
        return v;
    }();
    return names;
}

AttentionSpec parse_attention(const std::string& name) {
    for (const AttentionName& n : kAttentionNames)
        if (name == n.name) {
            AttentionSpec spec;
            spec.score = n.score;
            spec.normalizer = n.normalizer;
            spec.feature_map = n.feature_map;
            return spec;
        }
    fail("--attention: unknown attention '{}' (valid: {})", name, fmt::join(attention_names(), ", "));
}

// The `--position` names, in the order of PositionKind.
static const char* const kPositionNames[] = {"rope", "nope", "sinusoidal", "learned", "alibi", "t5"};

std::string position_name(PositionKind position) { return kPositionNames[int(position)]; }

PositionKind parse_position(const std::string& name) {
    return PositionKind(index_of_name(kPositionNames, name, "--position", "position encoding"));
}

bool parse_norm_placement(const std::string& name) {
    static const char* const kNames[] = {"pre", "post"};
    return index_of_name(kNames, name, "--norm", "placement") == 1;
}

bool parse_head_output(const std::string& name) {
    static const char* const kNames[] = {"concat", "sum"};
    return index_of_name(kNames, name, "--head-output", "value") == 1;
}

bool parse_head_norm(const std::string& name) {
    static const char* const kNames[] = {"none", "rms"};
    return index_of_name(kNames, name, "--head-norm", "value") == 1;
}

// The `--attention-gate` names, in the order of AttentionGate.
static const char* const kAttentionGateNames[] = {"none", "headwise", "elementwise"};

std::string attention_gate_name(AttentionGate gate) { return kAttentionGateNames[int(gate)]; }

AttentionGate parse_attention_gate(const std::string& name) {
    return AttentionGate(index_of_name(kAttentionGateNames, name, "--attention-gate", "gate"));
}

AttentionSpec ModelConfig::attention_spec() const {
    AttentionSpec spec = attention;
    spec.position_bias = position == PositionKind::alibi ? PositionBias::alibi
                         : position == PositionKind::t5 ? PositionBias::t5
                                                        : PositionBias::none;
    return spec;
}

// The `--ffn-type` names, in the order of FfnKind.
static const char* const kFfnNames[] = {"swiglu", "geglu", "reglu", "relu", "gelu", "swish"};

std::string ffn_name(FfnKind ffn) { return kFfnNames[int(ffn)]; }

FfnKind parse_ffn(const std::string& name) {
    return FfnKind(index_of_name(kFfnNames, name, "--ffn-type", "feed-forward type"));
}

Activation ffn_activation(FfnKind ffn) {
    switch (ffn) {
        case FfnKind::geglu:
        case FfnKind::gelu: return Activation::gelu;
        case FfnKind::reglu:
        case FfnKind::relu: return Activation::relu;
        case FfnKind::swiglu:
        case FfnKind::swish: break;
    }
    return Activation::silu;
}

InitScheme parse_init(const std::string& name) {
    if (name == "paper") return InitScheme::paper;
    if (name == "torch") return InitScheme::torch;
    fail("--init: unknown initialisation '{}' (valid: paper, torch)", name);
}

std::string init_name(InitScheme init) { return init == InitScheme::paper ? "paper" : "torch"; }

namespace {

// The softmax alpha and the mask (docs/attention.md, "Masks" and "Scaled softmax").
void validate_attention_knobs(const AttentionSpec& a) {
    if (!(a.softmax_alpha > 0.0) || !std::isfinite(a.softmax_alpha))
        fail("invalid model configuration: --softmax-alpha must be a positive number (got {})", a.softmax_alpha);
    if (a.softmax_alpha != 1.0 && !a.is_softmax())
        fail("invalid model configuration: --softmax-alpha ({}) applies only to --attention softmax (got --attention {})",
             a.softmax_alpha, a.name());
    if (a.window < 0 || a.prefix < 0)
        fail("invalid model configuration: --window and --prefix must not be negative");
    if (a.window > 0 && a.prefix > 0)
        fail("invalid model configuration: --window ({}) and --prefix ({}) cannot be combined (one mask per model)",
             a.window, a.prefix);
    const bool consistent = (a.mask == MaskKind::causal && a.window == 0 && a.prefix == 0) ||
                            (a.mask == MaskKind::window && a.window > 0) || (a.mask == MaskKind::prefix && a.prefix > 0);
    if (!consistent)
        fail("invalid model configuration: mask '{}' with window {} and prefix {} (a window mask needs window >= 1, "
             "a prefix mask prefix >= 1, the causal mask neither)",
             mask_name(a.mask), a.window, a.prefix);
    // Without a normaliser, a K bias (value 0) changes nothing, and a V bias is only a constant
    // added to unnormalised sums: both need weights that a normaliser ties together.
    if ((a.slot == SlotKind::key || a.slot == SlotKind::value) && !a.is_normalised())
        fail("invalid model configuration: --slot {} needs normalised attention weights (got --attention {}, which has "
             "no normaliser)",
             slot_name(a.slot), a.name());
    // The sink logits are defined for softmax (gpt-oss's learned logit, the off-by-one softmax).
    if (a.slot_is_logit() && !a.is_softmax())
        fail("invalid model configuration: --slot {} needs softmax attention (got --attention {})", slot_name(a.slot),
             a.name());
    // Softpick's rows have no place for a key slot: a slot score below 0 would only add to the
    // normaliser, and the off-by-one logit (exp(0) - 1 = 0) changes nothing; the slot paths are written
    // for the normalisers that divide g by Z. The V bias (no slot in the row) composes.
    if (a.is_softpick() && a.has_key_slot())
        fail("invalid model configuration: --slot {} cannot be combined with --attention softpick (a key slot or sink "
             "logit joins the softmax-style rows only; --slot v-bias is allowed)",
             slot_name(a.slot));
    if (a.slot_shared && a.slot == SlotKind::zero_logit)
        fail("invalid model configuration: --slot off-by-one has no parameter to share (drop --slot-sharing shared)");
    if (a.slot_shared && a.slot == SlotKind::none)
        fail("invalid model configuration: --slot-sharing shared needs a slot (got --slot none)");
}

}  // namespace

void ModelConfig::validate() const {
    auto positive = [](const char* field, size_t value) {
        if (value == 0) fail("invalid model configuration: {} must be positive (got 0)", field);
    };
    positive("n_layers", n_layers);
    positive("n_heads", n_heads);
    positive("d_model", d_model);
    positive("d_ffn", d_ffn);
    positive("vocab_size", vocab_size);
    positive("context", context);
    if (d_model % n_heads != 0)
        fail("invalid model configuration: n_heads ({}) must divide d_model ({})", n_heads, d_model);
    if (head_dim() % 2 != 0)
        fail("invalid model configuration: head dimension d_model/n_heads = {} must be even for RoPE", head_dim());
    if (!(norm_eps > 0.0)) fail("invalid model configuration: norm_eps must be positive (got {})", norm_eps);
    if (!(rope_base > 1.0)) fail("invalid model configuration: rope_base must be > 1 (got {})", rope_base);
    if (vocab_size > (size_t(1) << 31)) fail("invalid model configuration: vocab_size {} too large", vocab_size);
    if (!std::isfinite(attention.score_bias))
        fail("invalid model configuration: sigmoid_bias must be finite");
    if (attention.score_bias != 0.0 && attention.score != ScoreFunction::sigmoid)
        fail("invalid model configuration: --sigmoid-bias ({}) applies only to --attention sigmoid or sigmoid-norm "
             "(got --attention {})",
             attention.score_bias, attention.name());
    validate_attention_knobs(attention);
}

// Both counts come from the parameter declarations (params.h).
size_t ModelConfig::n_nonembedding_params() const { return count_nonembedding_params(*this); }

size_t ModelConfig::n_params() const { return make_param_table(*this).total(); }

double ModelConfig::train_flops_per_token(size_t seq_len) const {
    // Matmuls: 2 FLOPs per weight forward, 4 backward. Attention (causal, so half of T^2):
    // scores q.k and weighted sum w.v, 2 * 2 * (T/2) * C FLOPs per token forward, twice that backward.
    const double matmul = 6.0 * double(n_params() - vocab_size * d_model);  // the embedding is a lookup
    const double attention_flops = 3.0 * 2.0 * 2.0 * double(n_layers) * double(d_model) * double(seq_len) / 2.0;
    return matmul + attention_flops;
}

const std::vector<std::string>& preset_names() {
    static const std::vector<std::string> names = {"tiny", "small", "tinyllama-60m", "tinyllama-1b"};
    return names;
}

ModelConfig preset(const std::string& name) {
    ModelConfig c;
    if (name == "tiny") {  // for tests: a few thousand parameters
        c.n_layers = 2; c.n_heads = 2; c.d_model = 16; c.d_ffn = 32; c.vocab_size = 64; c.context = 32;
    } else if (name == "small") {  // laptop scale (the main job): ~15k tokens/s on 2 cores, see README
        c.n_layers = 4; c.n_heads = 4; c.d_model = 128; c.d_ffn = 384; c.vocab_size = 2048; c.context = 256;
    } else if (name == "tinyllama-60m") {  // the paper's 60M model (docs/model.md)
        c.n_layers = 10; c.n_heads = 8; c.d_model = 768; c.d_ffn = 1536; c.vocab_size = 50432; c.context = 2048;
    } else if (name == "tinyllama-1b") {
        c.n_layers = 22; c.n_heads = 16; c.d_model = 2048; c.d_ffn = 5632; c.vocab_size = 50432; c.context = 2048;
    } else {
        fail("--preset: unknown preset '{}' (valid: tiny, small, tinyllama-60m, tinyllama-1b)", name);
    }
    return c;
}

}  // namespace sinklab

namespace sinklab {

Json model_config_to_json(const ModelConfig& c) {
    Json j = Json::object();
    j["n_layers"] = c.n_layers;
    j["n_heads"] = c.n_heads;
    j["d_model"] = c.d_model;
    j["d_ffn"] = c.d_ffn;
    j["ffn"] = ffn_name(c.ffn);
    j["position"] = position_name(c.position);
    j["head_output"] = c.sum_heads ? "sum" : "concat";
    j["attention_gate"] = attention_gate_name(c.attention_gate);
    j["head_norm"] = c.head_norm ? "rms" : "none";
    j["norm"] = c.post_norm ? "post" : "pre";
    j["vocab_size"] = c.vocab_size;
    j["context"] = c.context;
    j["norm_eps"] = c.norm_eps;
    j["rope_base"] = c.rope_base;
    j["attention"] = c.attention.name();
    j["sigmoid_bias"] = c.attention.score_bias;
    j["softmax_alpha"] = c.attention.softmax_alpha;
    j["mask"] = mask_name(c.attention.mask);
    j["window"] = c.attention.window;
    j["prefix"] = c.attention.prefix;
    j["slot"] = slot_name(c.attention.slot);
    j["slot_shared"] = c.attention.slot_shared;
    j["init"] = init_name(c.init);
    j["architecture"] = std::string("llama-") + (c.post_norm ? "postnorm-" : "prenorm-") + position_name(c.position) +
                        "-" + ffn_name(c.ffn);
    return j;
}

ModelConfig model_config_from_json(const Json& j, const std::string& what) {
    ModelConfig c;
    try {
        auto size = [&](const char* key) {
            const int64_t v = j.at(key).as_int();
            if (v < 0) fail("{} must not be negative", key);
            return size_t(v);
        };
        c.n_layers = size("n_layers");
        c.n_heads = size("n_heads");
        c.d_model = size("d_model");
        c.d_ffn = size("d_ffn");
        c.vocab_size = size("vocab_size");
        c.context = size("context");
        c.norm_eps = j.at("norm_eps").as_number();
        c.rope_base = j.at("rope_base").as_number();
        c.attention = parse_attention(j.at("attention").as_string());
        // Keys added after the first version are optional (their defaults are what older runs did).
        auto number_or = [&](const char* key, double def) { return j.contains(key) ? j.at(key).as_number() : def; };
        auto int_or = [&](const char* key, int def) { return j.contains(key) ? int(j.at(key).as_int()) : def; };
        c.attention.score_bias = number_or("sigmoid_bias", 0.0);
        c.attention.softmax_alpha = number_or("softmax_alpha", 1.0);
        c.attention.mask = j.contains("mask") ? parse_mask(j.at("mask").as_string()) : MaskKind::causal;
        c.attention.window = int_or("window", 0);
        c.attention.prefix = int_or("prefix", 0);
        c.attention.slot = j.contains("slot") ? parse_slot(j.at("slot").as_string()) : SlotKind::none;
        c.attention.slot_shared = j.contains("slot_shared") && j.at("slot_shared").as_bool();
        c.post_norm = j.contains("norm") && parse_norm_placement(j.at("norm").as_string());
        c.sum_heads = j.contains("head_output") && parse_head_output(j.at("head_output").as_string());
        c.head_norm = j.contains("head_norm") && parse_head_norm(j.at("head_norm").as_string());
        c.attention_gate = j.contains("attention_gate") ? parse_attention_gate(j.at("attention_gate").as_string())
                                                        : AttentionGate::none;
        c.position = j.contains("position") ? parse_position(j.at("position").as_string()) : PositionKind::rope;
        c.ffn = j.contains("ffn") ? parse_ffn(j.at("ffn").as_string()) : FfnKind::swiglu;
        c.init = j.contains("init") ? parse_init(j.at("init").as_string()) : InitScheme::paper;
        c.validate();
    } catch (const Error& e) {
        fail("{}: bad model configuration: {}", what, e.what());
    }
    return c;
}

}  // namespace sinklab
