// Checkpoints.
//
// Weights: safetensors (https://github.com/huggingface/safetensors format):
//   8 bytes little-endian u64 N, then N bytes of JSON header, then the raw tensor bytes.
//   header = {"__metadata__": {"format": "pt", "sinklab_config": "<model config JSON>",
//                              "sinklab_version": "..."},
//             "<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...}
//   Tensor names and shapes are those of make_param_table() in model.h (per-layer tensors stacked
//   with a leading layer dimension), little-endian float32.
//
// Run state (state.bin): what the weights do not hold but an exact resume needs.
//   "SINKSTAT" (8 bytes), u32 version = 1, u32 reserved,
//   u64 step (optimizer steps done), u64 n_params,
//   u64 loader shard, u64 loader offset, u64 loader epoch,
//   u32 JSON length + JSON (the training options, for checking),
//   n_params f32 AdamW m, n_params f32 AdamW v,
//   u64 FNV-1a checksum of everything before it.
//
// A run directory keeps checkpoints as OUT/checkpoints/step_XXXXXXX/{model.safetensors,state.bin}
// and a file OUT/checkpoints/latest naming the newest complete one. A checkpoint is written into
// a temporary directory that is renamed into place before `latest` is atomically replaced, so a
// crash at any moment leaves the previous checkpoint intact and `latest` pointing at a complete one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/tensor_table.h"
#include "util/json.h"

namespace sinklab {

// Serialises the weights (host float32, laid out by `table`) as safetensors bytes.
std::string safetensors_bytes(const ModelConfig& config, const TensorTable& table, const float* params);
void save_safetensors(const std::string& path, const ModelConfig& config, const TensorTable& table,
                      const float* params);

struct LoadedWeights {
    ModelConfig config;
    std::vector<float> params;  // laid out by make_param_table(config)
};
// Reads and checks a safetensors checkpoint written by sinklab: header bounds, JSON, metadata,
// every expected tensor present with the right dtype and shape. Throws Error naming the file.
LoadedWeights load_safetensors(const std::string& path);
// The same checks, then the weights are read straight into destination(config), a buffer of
// make_param_table(config).total() floats the caller provides once the configuration is known (a
// model's own parameters: no second copy of a large model's weights). Returns the configuration.
ModelConfig load_safetensors_into(const std::string& path, const std::function<float*(const ModelConfig&)>& destination);

struct RunState {
    uint64_t step = 0;
    uint64_t loader_shard = 0, loader_offset = 0, loader_epoch = 0;
    Json options;               // the training options of the run
    std::vector<float> adam_m, adam_v;
};
void save_run_state(const std::string& path, const RunState& state);
RunState load_run_state(const std::string& path, size_t expected_params);

// Writes OUT/checkpoints/step_<step>/ atomically, points `latest` at it, keeps the newest `keep`.
// Returns the checkpoint directory.
std::string save_checkpoint(const std::string& run_dir, const ModelConfig& config, const TensorTable& table,
                            const float* params, const RunState& state, size_t keep = 2);

// The newest complete checkpoint directory of a run, or "" when there is none.
std::string latest_checkpoint(const std::string& run_dir);

// Accepts a .safetensors file, a checkpoint directory or a run directory; returns the weights file.
std::string resolve_weights_path(const std::string& path);

}  // namespace sinklab
