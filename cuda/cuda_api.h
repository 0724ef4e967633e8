// The CUDA backend's host-side interface, callable from plain C++ translation units (no CUDA
// headers needed to include it).
#pragma once
#include <cstddef>
#include <string>

namespace sinklab::cuda {

struct DeviceQuery {
    int device_count = 0;
    std::string name;
    size_t memory_bytes = 0;
    int compute_capability = 0;
    std::string status;  // error text when no device is usable
};

DeviceQuery query_device();

}  // namespace sinklab::cuda
