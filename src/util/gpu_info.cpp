#include "util/gpu_info.h"

#ifdef SINKLAB_WITH_CUDA
#include "cuda_api.h"
#endif

namespace sinklab {

GpuInfo query_gpu() {
    GpuInfo info;
#ifdef SINKLAB_WITH_CUDA
    info.compiled = true;
    info.archs = SINKLAB_CUDA_ARCHS_STR;
    const cuda::DeviceQuery q = cuda::query_device();
    info.device_count = q.device_count;
    info.name = q.name;
    info.memory_bytes = q.memory_bytes;
    info.compute_capability = q.compute_capability;
    info.status = q.status;
#else
    info.status = "built without CUDA (nvcc was not found at configure time)";
#endif
    return info;
}

}  // namespace sinklab
