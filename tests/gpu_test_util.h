// Shared by the GPU test suites (tests/test_gpu_*.cpp): the main() that skips cleanly (exit code
// 77, which CTest reports as skipped) when no GPU is visible, device buffers, and error measures.
#pragma once
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend_cuda.h"
#include "cuda_api.h"
#include "util/error.h"
#include "util/rng.h"

namespace gpu_test {

using sinklab::CudaBackend;

// Returns the process exit code: 77 (skip) without a GPU, else doctest's result.
inline int run(const char* suite, int argc, char** argv) {
    const sinklab::cuda::DeviceQuery q = sinklab::cuda::query_device();
    if (q.device_count == 0) {
        std::printf("%s: skipped: no CUDA GPU visible (%s)\n", suite, q.status.c_str());
        return 77;
    }
    try {
        sinklab::cuda::require_device();
    } catch (const sinklab::Error& e) {
        std::printf("%s: FAILED: a GPU is visible but unusable: %s\n", suite, e.what());
        return 1;
    }
    std::printf("%s: running on %s (compute capability %d.%d)\n", suite, q.name.c_str(), q.compute_capability / 10,
                q.compute_capability % 10);
    doctest::Context context(argc, argv);
    return context.run();
}

// A device copy of a host vector, freed on scope exit.
template <typename U>
struct DeviceBuffer {
    U* ptr = nullptr;
    size_t n = 0;
    explicit DeviceBuffer(size_t count) : ptr(CudaBackend::alloc<U>(count)), n(count) {}
    explicit DeviceBuffer(const std::vector<U>& host) : DeviceBuffer(host.size()) {
        CudaBackend::upload(ptr, host.data(), n);
    }
    ~DeviceBuffer() { CudaBackend::release(ptr); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    std::vector<U> host() const {
        std::vector<U> h(n);
        CudaBackend::download(h.data(), ptr, n);
        return h;
    }
    void set(const std::vector<U>& h) { CudaBackend::upload(ptr, h.data(), n); }
};

inline std::vector<float> random_normal(size_t n, uint64_t seed, double std = 1.0) {
    sinklab::Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = float(std * rng.normal());
    return v;
}

inline std::vector<float> filled(size_t n, float value) { return std::vector<float>(n, value); }

// ||got - want|| / max(||want||, tiny); +infinity when `got` has a NaN or infinity.
inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
    REQUIRE(got.size() == want.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        const double d = double(got[i]) - double(want[i]);
        num += d * d;
        den += double(want[i]) * double(want[i]);
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
    return true;
}

// Sets the precision for one scope.
struct PrecisionScope {
    sinklab::cuda::Precision saved;
    explicit PrecisionScope(sinklab::cuda::Precision p) : saved(sinklab::cuda::precision()) {
        sinklab::cuda::set_precision(p);
    }
    ~PrecisionScope() { sinklab::cuda::set_precision(saved); }
};

}  // namespace gpu_test
