// The fused attention kernels of cuda/attention_kernels.cuh compiled as plain C++ and run on the
// CPU emulation of tests/cuda_emu.h, against the CPU reference (src/ops.h). Runs everywhere the
// CUDA toolkit's headers are (built with the CUDA backend), GPU or not: it checks the tiling, the
// causal masks, padding, the online statistics, the backward math and the barriers; the bf16 path
// runs through emulated wmma fragments (whole tiles per lane; real fragment layouts untested).
// Tolerances as in test_gpu_ops.cpp: fp32 2e-5, bf16 3e-2 (relative L2).
#include <doctest/doctest.h>

#include "cuda_emu.h"
// the emulation must come first
#include "attention_kernels.cuh"

#include <cmath>
#include <string>
#include <vector>

#include "ops.h"
#include "rng.h"

using namespace sinklab;
namespace attn = sinklab::cuda::attn;

namespace {

std::vector<float> random_normal(size_t n, uint64_t seed, double std = 1.0) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = float(std * rng.normal());
    return v;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        den += double(want[i]) * want[i];
    }
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

template <typename Tin, int Dp>
void run_case(const std::string& variant, double bias, size_t D, size_t T, size_t B, size_t H) {
    using K = attn::Cfg<Tin, Dp>;
    const bool bf16 = std::is_same_v<Tin, __nv_bfloat16>;
    const double tol = bf16 ? 3e-2 : 2e-5;
    const size_t C = H * D;
    AttentionSpec spec = parse_attention(variant);
    spec.sigmoid_bias = bias;
    const auto qkv = random_normal(B * T * 3 * C, 7 + D + T, 1.5);
    const auto dout = random_normal(B * T * C, 8 + D + T);

    std::vector<float> out(B * T * C), att(B * H * T * T), z(B * H * T), dqkv(B * T * 3 * C, 0.0f);
    attention_forward(out.data(), att.data(), z.data(), qkv.data(), B, T, C, H, spec);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), z.data(), B, T, C, H, spec);

    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> e_out(out.size(), nan), e_lse(B * H * T, nan), e_z(B * H * T, nan), e_delta(B * H * T, nan);
    std::vector<float> e_dqkv(dqkv.size(), 0.0f);
    attn::AttnArgs a{};
    a.qkv = qkv.data();
    a.out = e_out.data();
    a.lse = e_lse.data();
    a.z = e_z.data();
    a.dout = dout.data();
    a.dqkv = e_dqkv.data();
    a.T = int(T);
    a.C = int(C);
    a.H = int(H);
    a.D = int(D);
    a.scale = float(1.0 / std::sqrt(double(D)));
    a.bias = spec.score == ScoreFunction::sigmoid ? float(bias) : 0.0f;
    a.score = spec.score == ScoreFunction::softmax ? attn::kSoftmax
              : spec.score == ScoreFunction::sigmoid ? attn::kSigmoid
                                                     : attn::kElu;
    a.normalize = spec.normalize;
    const emu::Dim grid{unsigned((T + K::Br - 1) / K::Br), unsigned(B * H), 1};
    emu::g_violations = 0;
    emu::launch(grid, K::NT, K::kForwardBytes, [&] { attn::attention_forward_kernel<Tin, Dp>(a); });
    const size_t rows = B * H * T;
    emu::launch({unsigned((rows * 32 + 255) / 256), 1, 1}, 256, 0, [&] {
        attn::attention_delta_kernel(e_delta.data(), dout.data(), e_out.data(), int(B), int(T), int(C), int(H), int(D));
    });
    a.delta = (spec.score == ScoreFunction::softmax || spec.normalize) ? e_delta.data() : nullptr;
    emu::launch(grid, K::NT, K::kBackwardKVBytes, [&] { attn::attention_backward_kv_kernel<Tin, Dp>(a); });
    emu::launch(grid, K::NT, K::kBackwardQBytes, [&] { attn::attention_backward_q_kernel<Tin, Dp>(a); });
    CHECK(emu::g_violations == 0);

    const double eo = rel_err(e_out, out), ez = rel_err(e_z, z), ed = rel_err(e_dqkv, dqkv);
    MESSAGE((bf16 ? "bf16 " : "fp32 ") << spec.name() << " bias " << bias << " D " << D << " T " << T
                                        << ": rel err out " << eo << " Z " << ez << " dqkv " << ed);
    CHECK(eo <= tol);
    CHECK(ez <= tol);
    CHECK(ed <= tol);

    // The materialising path.
    if (!bf16) {
        std::vector<float> w(att.size(), nan), wz(z.size(), nan);
        emu::launch({unsigned(T), unsigned(B * H), 1}, 128, 0, [&] {
            attn::attention_weights_kernel(w.data(), wz.data(), qkv.data(), int(T), int(C), int(H), int(D), a.scale,
                                           a.bias, a.score, a.normalize);
        });
        CHECK(rel_err(w, att) <= 2e-5);
        CHECK(rel_err(wz, z) <= 2e-5);
    }
}

}  // namespace

TEST_CASE("emulated attention kernels, fp32 path, every variant") {
    for (const std::string& v : attention_names()) {
        run_case<float, 64>(v, 0.0, 64, 70, 1, 2);
        if (v == "sigmoid") run_case<float, 64>(v, -2.0, 64, 70, 1, 2);
    }
    run_case<float, 16>("softmax", 0.0, 8, 33, 2, 1);   // padded head dim, two batches
    run_case<float, 96>("elu-norm", 0.0, 96, 5, 1, 1);   // shorter than one tile
}

TEST_CASE("emulated attention kernels, bf16 wmma path, every variant") {
    for (const std::string& v : attention_names()) {
        run_case<__nv_bfloat16, 64>(v, 0.0, 64, 130, 1, 2);
        if (v == "sigmoid") run_case<__nv_bfloat16, 64>(v, -2.0, 64, 130, 1, 2);
    }
    run_case<__nv_bfloat16, 32>("softmax", 0.0, 24, 70, 2, 1);
    run_case<__nv_bfloat16, 128>("sigmoid-norm", 0.0, 128, 64, 1, 1);
    run_case<__nv_bfloat16, 96>("softmax", 0.0, 96, 65, 1, 1);
}
