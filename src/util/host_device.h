// SINKLAB_HD marks the functions written once for the CPU and the GPU (attention_variant.h,
// src/ops/activation.h): __host__ __device__ under nvcc, always-inlined functions elsewhere. Such a
// function is plain C++17 without std:: calls and takes its exp from a Math policy (HostMath in
// src/ops/exp.h, DeviceMath in cuda/kernels/device_utils.cuh).
#pragma once

#if defined(__CUDACC__)
#define SINKLAB_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Always inlined on the host too: these are the per-element pieces of `#pragma omp simd` loops,
// and one call left in such a loop keeps it scalar (GCC's inliner gives up in the larger loops).
#define SINKLAB_HD inline __attribute__((always_inline))
#else
#define SINKLAB_HD inline
#endif
