// The CUDA backend's host-side interface, callable from plain C++ translation units (no CUDA
// headers needed to include it): device discovery, the precision setting, device memory, and the
// materialising attention path used by the sink analysis.
#pragma once
#include <cstddef>
#include <string>

namespace sinklab {
struct AttentionSpec;
}

namespace sinklab::cuda {

struct DeviceQuery {
    int device_count = 0;
    std::string name;
    size_t memory_bytes = 0;
    int compute_capability = 0;
    int multiprocessors = 0;
    std::string status;  // error text when no device is usable
};

DeviceQuery query_device();

// The CUDA architectures this build carries code for, e.g. "90" (SINKLAB_CUDA_ARCHS).
std::string compiled_archs();

// Throws Error("--device cuda: no CUDA GPU is visible (<reason>)") when no GPU can run this
// build's kernels (none visible, no driver, or no code for its architecture). The trainer calls
// this for --device cuda before building a Model<CudaBackend>.
void require_device();

// Precision of the matrix work (a runtime setting, since CudaBackend's members are static).
//   fp32: every matmul and the attention in fp32 (CUDA cores; no TF32). For parity tests.
//   bf16: cuBLAS with bf16 tensor cores and fp32 accumulation on the fp32 buffers
//         (CUBLAS_COMPUTE_32F_FAST_16BF); attention tiles converted to bf16 in shared memory,
//         q.k and w.v on bf16 tensor cores (wmma) with fp32 accumulation and fp32 statistics.
//   Weights, activations, gradients and AdamW moments are stored in fp32 in both modes.
enum class Precision { fp32, bf16 };
void set_precision(Precision p);
Precision precision();
const char* precision_name(Precision p);
// "fp32" or "bf16"; throws Error naming --dtype otherwise.
Precision parse_precision(const std::string& name);

// Device memory (plain cudaMalloc; new memory is zeroed like the CPU backend's).
void* device_alloc(size_t bytes);
void device_free(void* p);
void device_zero(void* p, size_t bytes);
void copy_to_device(void* dst, const void* host, size_t bytes);
void copy_to_host(void* host, const void* src, size_t bytes);
void device_synchronize();

// Device memory this process holds through device_alloc, the scratch buffers and the cuBLAS
// workspace (the CUDA context itself is not counted): now, and the most it has held at once since
// the start or the last reset_peak_device_bytes().
struct DeviceMemoryStats {
    size_t live_bytes = 0, peak_bytes = 0;
};
DeviceMemoryStats device_memory_stats();
void reset_peak_device_bytes();
// Counts an allocation made outside device_alloc (the cuBLAS workspace): + on allocation.
void count_device_bytes(size_t bytes);

// The sink analysis' materialising path (not part of the Backend interface): the attention
// weights w[b, h, i, j] as the CPU's attention_forward writes them into `att` (B, H, T, T),
// zeros above the diagonal, and the normaliser Z (B, H, T) (1 for softmax and unnormalised
// variants); with a key slot (slot_k, else null) its weights into att_slot (B, H, T). qkv (B, T, 3C)
// after RoPE. Always fp32. Device pointers.
void attention_weights(float* att, float* att_z, float* att_slot, const float* qkv, const float* slot_k, size_t B,
                       size_t Tn, size_t C, size_t H, const AttentionSpec& spec);

}  // namespace sinklab::cuda
