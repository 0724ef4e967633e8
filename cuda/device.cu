// Device discovery, the precision setting, device memory and scratch buffers.
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common.cuh"
#include "cuda_api.h"

namespace sinklab::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* message, const char* file, int line) {
    throw Error(fmt::format("CUDA error: {} failed: {} ({}:{})", call, message, file, line));
}

std::string compiled_archs() {
#ifdef SINKLAB_CUDA_ARCHS_STR
    return SINKLAB_CUDA_ARCHS_STR;
#else
    return "?";
#endif
}

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
        q.multiprocessors = prop.multiProcessorCount;
    }
    return q;
}

// A kernel that exists only so that require_device() can ask whether this build carries code
// the visible GPU can run.
__global__ void probe_kernel(int* x) {
    if (x) *x = 1;
}

void require_device() {
    const DeviceQuery q = query_device();
    if (q.device_count == 0) throw Error(fmt::format("--device cuda: no CUDA GPU is visible ({})", q.status));
    cudaFuncAttributes attr{};
    const cudaError_t err = cudaFuncGetAttributes(&attr, probe_kernel);
    if (err != cudaSuccess) {
        cudaGetLastError();
        throw Error(fmt::format(
            "--device cuda: the GPU {} (compute capability {}.{}) cannot run this build's code (compiled for sm_{}): "
            "{}; rebuild with -DSINKLAB_CUDA_ARCHS=<its architecture>",
            q.name, q.compute_capability / 10, q.compute_capability % 10, compiled_archs(), cudaGetErrorString(err)));
    }
}

// ---- precision ----
static Precision g_precision = Precision::fp32;
void set_precision(Precision p) { g_precision = p; }
Precision precision() { return g_precision; }
const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }
Precision parse_precision(const std::string& name) {
    if (name == "fp32") return Precision::fp32;
    if (name == "bf16") return Precision::bf16;
    throw Error(fmt::format("--dtype: unknown precision '{}' (valid: fp32, bf16)", name));
}

// ---- memory ----
// Live and peak bytes; device_free needs each pointer's size, kept in a map (allocations are few
// and large: the model's four parameter-shaped buffers, its activations, a few scratch buffers).
static std::mutex g_memory_mutex;
static std::unordered_map<void*, size_t> g_sizes;
static DeviceMemoryStats g_memory;

void count_device_bytes(size_t bytes) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_memory.live_bytes += bytes;
    g_memory.peak_bytes = std::max(g_memory.peak_bytes, g_memory.live_bytes);
}
static void record_alloc(void* p, size_t bytes) {
    count_device_bytes(bytes);
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_sizes[p] = bytes;
}
static void record_free(void* p) {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    const auto it = g_sizes.find(p);
    if (it == g_sizes.end()) return;
    g_memory.live_bytes -= it->second;
    g_sizes.erase(it);
}
DeviceMemoryStats device_memory_stats() {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    return g_memory;
}
void reset_peak_device_bytes() {
    std::lock_guard<std::mutex> lock(g_memory_mutex);
    g_memory.peak_bytes = g_memory.live_bytes;
}

void* device_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err != cudaSuccess) {
        cudaGetLastError();
        throw Error(fmt::format("CUDA: cannot allocate {:.2f} GiB of device memory: {}", double(bytes) / (1 << 30),
                                cudaGetErrorString(err)));
    }
    record_alloc(p, bytes);
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}
// Never throws: it runs in destructors. A failure here (a context already broken by an earlier
// error, which was reported when it happened) is cleared and ignored.
void device_free(void* p) {
    if (!p) return;
    record_free(p);
    if (cudaFree(p) != cudaSuccess) cudaGetLastError();
}
void device_zero(void* p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, 0));
}
void copy_to_device(void* dst, const void* host, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* host, const void* src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost));
}
void device_synchronize() { CUDA_CHECK(cudaDeviceSynchronize()); }

// ---- scratch ----
void* scratch(ScratchSlot slot, size_t bytes) {
    static void* buffers[kScratchCount] = {};
    static size_t sizes[kScratchCount] = {};
    if (bytes > sizes[slot]) {
        device_free(buffers[slot]);
        buffers[slot] = nullptr;
        sizes[slot] = 0;
        const size_t grown = bytes + bytes / 4;
        buffers[slot] = device_alloc(grown);
        sizes[slot] = grown;
    }
    return buffers[slot];
}

}  // namespace sinklab::cuda
