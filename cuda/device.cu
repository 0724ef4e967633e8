// Device discovery for `sinklab info` and for choosing --device.
#include <cuda_runtime.h>

#include "cuda_api.h"

namespace sinklab::cuda {

DeviceQuery query_device() {
    DeviceQuery q;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        q.status = cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error so later calls are not poisoned
        return q;
    }
    q.device_count = count;
    if (count == 0) {
        q.status = "no CUDA device visible";
        return q;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
        q.name = prop.name;
        q.memory_bytes = prop.totalGlobalMem;
        q.compute_capability = prop.major * 10 + prop.minor;
    }
    return q;
}

}  // namespace sinklab::cuda
