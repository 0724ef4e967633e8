// Hugging Face LLaMA-family checkpoints <-> sinklab checkpoints (docs/hf.md).
//
// A Hugging Face checkpoint directory holds config.json and the weights: model.safetensors, or
// several *.safetensors shards named by model.safetensors.index.json ({"weight_map": {tensor: file}}).
// Tensors (PyTorch (out, in) layout, F32, F16 or BF16; converted to float32):
//   model.embed_tokens.weight                          (V, C)
//   model.layers.{i}.input_layernorm.weight            (C)
//   model.layers.{i}.self_attn.q_proj.weight           (H D, C)
//   model.layers.{i}.self_attn.k_proj.weight           (KV D, C)      KV = num_key_value_heads
//   model.layers.{i}.self_attn.v_proj.weight           (KV D, C)
//   model.layers.{i}.self_attn.o_proj.weight           (C, H D)
//   model.layers.{i}.post_attention_layernorm.weight   (C)
//   model.layers.{i}.mlp.gate_proj.weight              (F, C)
//   model.layers.{i}.mlp.up_proj.weight                (F, C)
//   model.layers.{i}.mlp.down_proj.weight              (C, F)
//   model.norm.weight                                  (C)
//   lm_head.weight                                     (V, C), absent when tie_word_embeddings
//
// Mapping onto sinklab's tensors (params.h), layer i:
//   attn_norm[i] = input_layernorm;  ffn_norm[i] = post_attention_layernorm;  final_norm = model.norm
//   attn_qkv[i]  = [q_proj; k_proj expanded; v_proj expanded]      (3C, C)
//   attn_out[i]  = o_proj;  ffn_in[i] = [gate_proj; up_proj];  ffn_out[i] = down_proj
//   embed = embed_tokens;  lm_head = lm_head.weight, or a copy of embed_tokens when tied
// RoPE: Hugging Face's LLaMA rotates the pairs (d, d + D/2) of each head ("rotate_half"), with
// angle t * theta^(-2d/D); sinklab's RoPE (ops/rope.h) is the same rotate-half layout with the same
// angles, so the rows of q_proj and k_proj keep their order within each head (HF's conversion
// script already permuted Meta's interleaved (2d, 2d+1) rows into this order).
// Grouped-query attention: query head h reads key/value head h / (H / KV) (HF's repeat_kv); the
// import copies each key/value head's D rows to every query head of its group, which computes the
// same attention. The export finds the smallest KV whose groups hold identical rows in every
// layer and writes the compact form back, so a GQA checkpoint round-trips.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "util/json.h"

namespace sinklab {

// A Hugging Face config.json read into the model it describes.
struct HfModelInfo {
    ModelConfig config;          // sinklab's model (MHA: the key/value heads expanded)
    size_t kv_heads = 0;         // num_key_value_heads
    bool tied = false;           // tie_word_embeddings
    std::string architecture;    // e.g. "LlamaForCausalLM"
    int64_t bos_token_id = -1;   // -1: none given
    int64_t eos_token_id = -1;
};

// Reads config.json (its path in `what` for messages). Anything sinklab's model cannot represent is
// refused naming the config key: attention_bias, mlp_bias, rope_scaling, sliding_window,
// hidden_act other than silu, head_dim other than hidden_size / num_attention_heads, ...
HfModelInfo hf_config_to_model(const Json& hf, const std::string& what);

// The LLaMA config.json of a sinklab model; refuses (naming the sinklab config key and its value)
// a model whose variant a LLaMA config cannot describe (sigmoid attention, no RoPE, post-norm, ...).
Json model_to_hf_config(const ModelConfig& c, size_t kv_heads);

// A checked Hugging Face checkpoint directory: the configuration, and for every tensor the shard
// that holds it. Opening reads config.json and every shard's header, and checks every expected
// tensor's presence, shape and dtype, so nothing is written for a checkpoint that cannot load.
struct HfCheckpoint {
    std::string dir;
    HfModelInfo info;
    std::map<std::string, std::string> shard_of;      // tensor name -> safetensors file
    std::map<std::string, SafetensorsFile> files;     // file -> its checked header
};
HfCheckpoint open_hf_checkpoint(const std::string& dir);

// Reads the weights into params, laid out by make_param_table(checkpoint.info.config).
void read_hf_weights(const HfCheckpoint& checkpoint, float* params);

// sinklab import --hf DIR --out OUT: OUT/model.safetensors (sinklab's format), OUT/hf_import.json
// (the source, the architecture, num_key_value_heads, bos/eos ids) and OUT/tokenizer.json when the
// source has one. Refuses an OUT that already holds a model.safetensors unless overwrite.
void import_hf_checkpoint(const std::string& hf_dir, const std::string& out_dir, bool overwrite, bool verbose);

// sinklab export: writes OUT/config.json and OUT/model.safetensors (F32, HF names) of a sinklab
// model; kv_heads 0: the smallest that describes the weights exactly (see above).
void export_hf_checkpoint(const ModelConfig& config, const float* params, const std::string& out_dir,
                          const Json& extra_config, bool overwrite, bool verbose);

// The smallest number of key/value heads whose groups of query heads share identical k and v rows
// in every layer (H when the heads all differ).
size_t shared_kv_heads(const ModelConfig& config, const float* params);

// The BOS id of an imported model: bos_token_id of the hf_import.json beside its weights file.
// Throws Error naming the file when there is none or it gives no BOS.
int64_t imported_bos_token(const std::string& weights_path);

}  // namespace sinklab
