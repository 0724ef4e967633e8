// Model configuration: sizes, the attention variant, initialisation, and the named presets.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "model/attention_variant.h"
#include "ops/activation.h"  // Activation

namespace sinklab {

// Parses an attention name as above; throws Error naming the flag and the valid names.
AttentionSpec parse_attention(const std::string& name);
const std::vector<std::string>& attention_names();
// The mask names of config.json: "causal", "window", "prefix".
std::string mask_name(MaskKind mask);
MaskKind parse_mask(const std::string& name);
// The slot names of `--slot` and config.json: "none", "k-bias", "kv-bias", "sink-token", "v-bias",
// "sink-logit", "off-by-one";
// and of `--slot-sharing`: "per-head" (false), "shared" (true).
std::string slot_name(SlotKind slot);
SlotKind parse_slot(const std::string& name);
bool parse_slot_sharing(const std::string& name);

// How the model knows positions (docs/model.md, "Positions"): RoPE on q and k (the default); none
// (NoPE); an absolute table added to the embeddings, fixed sinusoidal or learned (a context x C
// parameter); or a bias on the attention scores, ALiBi or T5's buckets (AttentionSpec::position_bias).
// Only `rope` rotates q and k. Names as in `--position` and config.json.
enum class PositionKind : int { rope, nope, sinusoidal, learned, alibi, t5 };
std::string position_name(PositionKind position);
PositionKind parse_position(const std::string& name);
// `--norm`: "pre" (false, the default) or "post" (true).
bool parse_norm_placement(const std::string& name);
// `--head-output`: "concat" (false, the default) or "sum" (true).
bool parse_head_output(const std::string& name);
// `--head-norm` (Li et al. 2026; docs/model.md "Head-wise RMSNorm"): "none" (false, the default) or
// "rms" (true): each head's attention output RMS-normalised with its own D gains before W_o.
bool parse_head_norm(const std::string& name);

// `--attention-gate` (Qiu et al. 2025; docs/model.md "Gated attention"): the attention output
// multiplied by sigmoid(x W_g) before the output projection, x the sub-block's normalised input:
// none; headwise (one gate per head, W_g of C x H); elementwise (one per channel, W_g of C x C).
enum class AttentionGate : int { none, headwise, elementwise };
std::string attention_gate_name(AttentionGate gate);
AttentionGate parse_attention_gate(const std::string& name);

// The feed-forward block (docs/model.md): gated, out = W3 (f(W1 h) * W2 h) with f = silu (swiglu,
// the default), gelu (geglu) or relu (reglu); or plain, out = W2 f(W1 h) with f = relu, gelu or
// silu (swish). Names as in `--ffn-type` and config.json.
enum class FfnKind : int { swiglu, geglu, reglu, relu, gelu, swish };
std::string ffn_name(FfnKind ffn);
FfnKind parse_ffn(const std::string& name);
// The gated forms have two input projections (W1 for the gate, W2 for the up branch).
inline bool ffn_is_gated(FfnKind ffn) { return ffn == FfnKind::swiglu || ffn == FfnKind::geglu || ffn == FfnKind::reglu; }
// f of the FFN: the gate's activation, or the plain FFN's.
Activation ffn_activation(FfnKind ffn);

// Initialisation (docs/model.md).
//   paper:  N(0, 2/(5 fan_in)) for embeddings and linear layers, N(0, (1/sqrt(fan_in)/L)^2) for
//           the FFN output projection; norm gains 1.
//   torch:  PyTorch defaults: nn.Embedding N(0, 1), nn.Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
enum class InitScheme { paper, torch };
InitScheme parse_init(const std::string& name);
std::string init_name(InitScheme init);

struct ModelConfig {
    size_t n_layers = 4;
    size_t n_heads = 4;
    size_t d_model = 128;      // C, the residual width
    size_t d_ffn = 256;        // F, the FFN's hidden size
    FfnKind ffn = FfnKind::swiglu;
    size_t vocab_size = 256;   // V
    size_t context = 256;      // maximum sequence length T (RoPE table size)
    double norm_eps = 1e-5;
    double rope_base = 10000.0;
    AttentionSpec attention;
    PositionKind position = PositionKind::rope;
    bool post_norm = false;  // `--norm post`: x = RMSNorm(x + f(x)) per sub-block, no final norm
    bool sum_heads = false;  // `--head-output sum`: heads added up before a (C, D) output projection
    AttentionGate attention_gate = AttentionGate::none;
    bool head_norm = false;  // `--head-norm rms`: each head's output RMSNorm'ed (its own D gains) before W_o
    InitScheme init = InitScheme::paper;

    size_t head_dim() const { return d_model / n_heads; }
    // G, the number of attention gates per token: H headwise, C elementwise, 0 without a gate.
    size_t gate_count() const {
        return attention_gate == AttentionGate::headwise ? n_heads : attention_gate == AttentionGate::elementwise ? d_model : 0;
    }
    bool has_rope() const { return position == PositionKind::rope; }
    // The attention as the operations run it: `attention` with the position bias of `position`.
    AttentionSpec attention_spec() const;
    // Throws Error naming the offending field (e.g. "n_heads (5) must divide d_model (128)").
    void validate() const;
    size_t n_params() const;               // everything, embeddings and LM head included
    size_t n_nonembedding_params() const;  // without embedding and LM head (the paper's count)
    // FLOPs of one training step per token: 6 x params (matmuls) + attention (fwd+bwd).
    double train_flops_per_token(size_t seq_len) const;
};

// Named presets: "tiny" (tests), "small" (laptop-scale runs), "tinyllama-60m", "tinyllama-1b".
ModelConfig preset(const std::string& name);
const std::vector<std::string>& preset_names();

}  // namespace sinklab

#include "util/json.h"

namespace sinklab {

// The model configuration as JSON (config.json, safetensors metadata) and back. Reading checks
// every field and validates the result; errors name `what` (the file).
Json model_config_to_json(const ModelConfig& c);
ModelConfig model_config_from_json(const Json& j, const std::string& what);

}  // namespace sinklab
