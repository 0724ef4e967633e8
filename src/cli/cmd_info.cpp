// sinklab info: what this build is and what it can use.
#include <omp.h>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "util/gpu_info.h"
#include "util/json.h"

namespace sinklab {

// The widest SIMD instruction set this binary was compiled for.
static const char* compiled_simd() {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "avx2+fma";
#elif defined(__AVX__)
    return "avx";
#elif defined(__SSE2__)
    return "sse2";
#elif defined(__ARM_NEON)
    return "neon";
#else
    return "scalar";
#endif
}

int cmd_info(int argc, char** argv) {
    ArgParser args("info", "Print the version, compiler, OpenMP threads, SIMD level, and CUDA/GPU status.");
    args.flag("json", "print one JSON object instead of text");
    if (!args.parse(argc, argv)) return 0;

    const GpuInfo gpu = query_gpu();
    const bool gpu_visible = gpu.device_count > 0;
    if (args.get_flag("json")) {
        Json j = Json::object();
        j["version"] = SINKLAB_VERSION;
        j["compiler"] = SINKLAB_COMPILER;
        j["threads"] = omp_get_max_threads();
        j["simd"] = compiled_simd();
        j["cuda_compiled"] = gpu.compiled;
        j["cuda_archs"] = gpu.archs;
        j["gpu"] = gpu_visible;
        j["gpu_name"] = gpu.name;
        j["gpu_memory_bytes"] = double(gpu.memory_bytes);
        j["gpu_status"] = gpu.status;
        fmt::print("{}\n", j.dump());
        return 0;
    }
    fmt::print("sinklab {}\n", SINKLAB_VERSION);
    fmt::print("compiler       {}\n", SINKLAB_COMPILER);
    fmt::print("threads        {} (OpenMP; set OMP_NUM_THREADS or --threads)\n", omp_get_max_threads());
    fmt::print("simd           {}\n", compiled_simd());
    fmt::print("cuda compiled  {}{}\n", gpu.compiled ? "yes" : "no",
               gpu.compiled ? fmt::format(" (sm_{})", gpu.archs) : "");
    if (gpu_visible)
        fmt::print("gpu            {} ({:.1f} GiB, compute capability {}.{})\n", gpu.name,
                   double(gpu.memory_bytes) / (1 << 30), gpu.compute_capability / 10, gpu.compute_capability % 10);
    else
        fmt::print("gpu            none ({})\n", gpu.status);
    return 0;
}

}  // namespace sinklab
