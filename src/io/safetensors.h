// Reading and writing safetensors files of any producer (Hugging Face, sinklab), tensor by tensor.
//
// Format (https://github.com/huggingface/safetensors):
//   u64 little-endian N, then N bytes of JSON header, then the raw little-endian tensor bytes.
//   header = {"<name>": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
//                        "data_offsets": [begin, end]},             (relative to the end of the header)
//             ..., "__metadata__": {"<key>": "<string>", ...}}      (optional)
//
// SafetensorsFile reads the header only and checks every entry (dtype a string, shape a list of
// sizes, offsets inside the file and matching shape x dtype size); a tensor's data is read from
// the file when asked for, converted to float32, straight into the caller's buffer: a 1B-parameter
// file is never held in memory twice. F16 and BF16 convert exactly (every value of both is a float32).
//
// write_safetensors_f32 streams float32 tensors through write_file_atomic (PATH.tmp, fsync, rename:
// PATH is either the old file or the complete new one).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/json.h"

namespace sinklab {

enum class TensorDtype { f32, f16, bf16 };
const char* dtype_name(TensorDtype dtype);  // "F32", "F16", "BF16"
size_t dtype_bytes(TensorDtype dtype);

// float16 / bfloat16 bits -> float32 (exact; infinities, NaNs and subnormals kept).
float f16_to_f32(uint16_t bits);
float bf16_to_f32(uint16_t bits);

struct SafetensorsEntry {
    std::string name;
    TensorDtype dtype;
    std::vector<size_t> shape;
    size_t numel;
    uint64_t begin, end;  // byte offsets after the header
};

class SafetensorsFile {
public:
    // Reads and checks the header of `path`; throws Error naming the file (and the tensor).
    explicit SafetensorsFile(const std::string& path);

    const std::string& path() const { return path_; }
    bool contains(const std::string& name) const { return entries_.count(name) != 0; }
    // The entry of `name`; throws Error naming the file when it is absent.
    const SafetensorsEntry& entry(const std::string& name) const;
    const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
    // The "__metadata__" object (an empty object when the file has none).
    const Json& metadata() const { return metadata_; }

    // Reads tensor `name` as float32 into out[0 .. numel).
    void read_f32(const std::string& name, float* out) const;

private:
    std::string path_;
    uint64_t data_start_ = 0;
    std::map<std::string, SafetensorsEntry> entries_;
    Json metadata_;
};

// One float32 tensor to write: its name, shape and numel contiguous values.
struct TensorToWrite {
    std::string name;
    std::vector<size_t> shape;
    const float* data;
};

// The header bytes (JSON padded with spaces to a multiple of 8) for float32 tensors laid out back to
// back in the given order; metadata: a JSON object of strings (or null for none).
std::string safetensors_header_f32(const std::vector<TensorToWrite>& tensors, const Json& metadata);
// Writes the file atomically (PATH.tmp, fsync, rename), streaming the tensors.
void write_safetensors_f32(const std::string& path, const std::vector<TensorToWrite>& tensors, const Json& metadata);

}  // namespace sinklab
