// What the program knows about CUDA: whether the backend was compiled in and which GPU is visible.
#pragma once
#include <cstddef>
#include <string>

namespace sinklab {

struct GpuInfo {
    bool compiled = false;      // built with the CUDA backend
    std::string archs;          // compiled architectures, e.g. "90"
    int device_count = 0;       // visible GPUs (0 when none or no driver)
    std::string name;           // device 0
    size_t memory_bytes = 0;    // device 0 global memory
    int compute_capability = 0; // device 0, e.g. 90
    std::string status;         // why no GPU is usable, when none is
};

GpuInfo query_gpu();

}  // namespace sinklab
