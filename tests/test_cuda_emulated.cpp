// The fused attention kernels of cuda/kernels/attention.cuh compiled as plain C++ and run on the
// CPU emulation of tests/cuda_emu.h, against the CPU reference (src/ops/attention.h). Runs everywhere the
// CUDA toolkit's headers are (built with the CUDA backend), GPU or not: it checks the tiling, the
// causal masks, padding, the online statistics, the backward math and the barriers; the bf16
// kernels of cuda/kernels/attention_mma.cuh run through the emulated mma.sync and ldmatrix (the fragment
// layouts of the PTX ISA).
// Tolerances as in test_gpu_ops.cpp: fp32 2e-5, bf16 3e-2 (relative L2).
#include <doctest/doctest.h>

#include "cuda_emu.h"
// the emulation must come first
#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/attention_mma.cuh"
#include "kernels/attention_slot.cuh"
#include "kernels/bias.cuh"
#include "kernels/crossentropy.cuh"
#include "kernels/activation.cuh"
#include "kernels/embedding.cuh"
#include "kernels/glu.cuh"
#include "kernels/gate.cuh"
#include "kernels/head_sum.cuh"
#include "kernels/residual.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "matmul_calls.h"

#include "attention_inputs.h"

#include <cmath>
#include <string>
#include <vector>

#include "model/config.h"
#include "ops/ops.h"
#include "util/rng.h"

using namespace sinklab;
namespace attn = sinklab::cuda::attn;
namespace kn = sinklab::cuda::kernels;

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

// misalign: read qkv from one float past a 16-byte boundary (the kernels' scalar-load path).
// Tin = float: the CUDA-core kernels of kernels/attention.cuh; bf16: the mma.sync kernels of
// attention_mma.cuh.
template <typename Tin, int Dp>
void run_case(const AttentionSpec& spec, size_t D, size_t T, size_t B, size_t H, bool misalign = false) {
    constexpr bool bf16 = std::is_same_v<Tin, __nv_bfloat16>;
    using K = std::conditional_t<bf16, attn::MmaCfg<Dp>, attn::Cfg<Dp>>;
    const double tol = bf16 ? 3e-2 : 2e-5;
    const size_t C = H * D;
    auto qkv_storage = random_normal(B * T * 3 * C + 1, 7 + D + T, 1.5);
    testing::condition_attention_inputs(spec, qkv_storage);
    const std::vector<float> qkv(qkv_storage.begin() + (misalign ? 1 : 0),
                                 qkv_storage.begin() + (misalign ? 1 : 0) + B * T * 3 * C);
    const float* qkv_ptr = qkv_storage.data() + (misalign ? 1 : 0);  // the same values
    const auto dout = random_normal(B * T * C, 8 + D + T);

    // The key slot's k* and v* (null without them).
    // The sink logits: one score parameter per head (W = 1), none for off-by-one.
    const bool slot = spec.has_key_slot(), slot_param = spec.has_slot_score_param();
    const size_t S = size_t(spec.slot_heads(int(H))), W = size_t(spec.slot_score_width(int(D)));
    const auto slot_k_values = random_normal(S * W, 9 + D, 1.5), slot_v_values = random_normal(S * D, 10 + D);
    const float* slot_k = slot_param ? slot_k_values.data() : nullptr;
    const float* slot_v = slot && spec.has_slot_value() ? slot_v_values.data() : nullptr;

    std::vector<float> out(B * T * C), att(B * H * T * T), saved(B * H * T), z(B * H * T), att_slot(B * H * T),
        dqkv(B * T * 3 * C, 0.0f);
    std::vector<float> d_slot_k(B * H * W), d_slot_v(B * H * D);
    attention_forward(out.data(), saved.data(), z.data(), att_slot.data(), qkv.data(), slot_k, slot_v, B, T, C, H, spec,
                      att.data());  // the CPU's maps too, for the materialising path below
    attention_backward(dqkv.data(), d_slot_k.data(), d_slot_v.data(), dout.data(), qkv.data(), slot_k, slot_v,
                       saved.data(), z.data(), att_slot.data(), B, T, C, H, spec);

    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> e_out(out.size(), nan), e_lse(B * H * T, nan), e_z(B * H * T, nan), e_delta(B * H * T, nan);
    std::vector<float> e_dqkv(dqkv.size(), 0.0f);
    attn::AttnArgs a = attn::attention_args(qkv_ptr, T, C, H, spec);
    a.out = e_out.data();
    a.lse = e_lse.data();
    a.z = e_z.data();
    a.dout = dout.data();
    a.dqkv = e_dqkv.data();
    const emu::Dim grid{unsigned((T + K::Br - 1) / K::Br), unsigned(B * H), 1};
    const size_t rows = B * H * T;
    const emu::Dim row_warps{unsigned((rows * 32 + 255) / 256), 1, 1};  // one warp per row, 256 threads a block
    std::vector<float> e_slot_s(rows, nan), e_att_slot(rows, nan), e_d_slot_k(B * H * W, nan), e_d_slot_v(B * H * D,
                                nan);
    emu::g_violations = 0;
    if (slot) {
        emu::launch(row_warps, 256, 0, [&] {
            attn::attention_slot_score_kernel(e_slot_s.data(), qkv_ptr, slot_k, int(B), int(T), int(C), int(H), int(D),
                                              a.scale, a.spec);
        });
        a.slot_s = e_slot_s.data();
    }
    emu::launch(grid, K::NT, K::kForwardBytes, [&] {
        if constexpr (bf16) {
            if (spec.keeps_log_normaliser())
                attn::attention_forward_mma_kernel<Dp, true>(a);
            else
                attn::attention_forward_mma_kernel<Dp, false>(a);
        } else {
            if (spec.keeps_log_normaliser())
                attn::attention_forward_kernel<Dp, true>(a);
            else
                attn::attention_forward_kernel<Dp, false>(a);
        }
    });
    if (slot)
        emu::launch(row_warps, 256, 0, [&] {
            attn::attention_slot_output_kernel(e_out.data(), e_att_slot.data(), e_slot_s.data(), e_lse.data(),
                                               e_z.data(), slot_v, int(B), int(T), int(C), int(H), int(D), a.spec);
        });
    emu::launch(row_warps, 256, 0, [&] {
        attn::attention_delta_kernel(e_delta.data(), dout.data(), e_out.data(), e_z.data(), int(B), int(T), int(C),
                                     int(H), int(D), a.spec);
    });
    a.delta = spec.is_normalised() ? e_delta.data() : nullptr;
    if constexpr (bf16) {
        emu::launch(grid, K::NT, K::kBackwardBytes, [&] { attn::attention_backward_kv_mma_kernel<Dp>(a); });
        emu::launch(grid, K::NT, K::kBackwardBytes, [&] { attn::attention_backward_q_mma_kernel<Dp>(a); });
    } else {
        emu::launch(grid, K::NT, K::kBackwardKVBytes, [&] { attn::attention_backward_kv_kernel<Dp>(a); });
        emu::launch(grid, K::NT, K::kBackwardQBytes, [&] { attn::attention_backward_q_kernel<Dp>(a); });
    }
    if (slot) {
        if (slot_param)  // off-by-one has no slot backward (attention.cu does not launch it)
            emu::launch({unsigned(B * H), 1, 1}, 32 * attn::kSlotBackwardWarps, 0, [&] {
                attn::attention_slot_backward_kernel(e_dqkv.data(), e_d_slot_k.data(),
                                                     slot_v ? e_d_slot_v.data() : nullptr, dout.data(), qkv_ptr, slot_k,
                                                     slot_v, e_att_slot.data(), e_z.data(), a.delta, int(T), int(C),
                                                     int(H), int(D), a.scale, a.spec);
            });
        const double ew = rel_err(e_att_slot, att_slot), ek = slot_param ? rel_err(e_d_slot_k, d_slot_k) : 0.0;
        const double ev = slot_v ? rel_err(e_d_slot_v, d_slot_v) : 0.0;
        MESSAGE("  slot: rel err w* " << ew << " dk* " << ek << " dv* " << ev);
        CHECK(ew <= tol);
        CHECK(ek <= tol);
        CHECK(ev <= tol);
    }
    CHECK(emu::g_violations == 0);

    const double eo = rel_err(e_out, out), ez = rel_err(e_z, z), ed = rel_err(e_dqkv, dqkv);
    MESSAGE((bf16 ? "bf16 " : "fp32 ") << spec.describe() << " D " << D << " T " << T
                                        << ": rel err out " << eo << " Z " << ez << " dqkv " << ed);
    CHECK(eo <= tol);
    CHECK(ez <= tol);
    CHECK(ed <= tol);

    // The materialising path.
    if (!bf16) {
        std::vector<float> w(att.size(), nan), wz(z.size(), nan), w_slot(rows, nan);
        emu::launch({unsigned(T), unsigned(B * H), 1}, 128, 0, [&] {
            attn::attention_weights_kernel(w.data(), wz.data(), w_slot.data(), qkv_ptr, slot_k, int(T), int(C), int(H),
                                           int(D), a.scale, a.spec);
        });
        CHECK(rel_err(w, att) <= 2e-5);
        CHECK(rel_err(wz, z) <= 2e-5);
        if (slot) CHECK(rel_err(w_slot, att_slot) <= 2e-5);
    }
}

// The named attention with one field changed: variant("sigmoid", &AttentionSpec::score_bias, -2.0).
AttentionSpec variant(const std::string& name) { return parse_attention(name); }
template <typename Field, typename Value>
AttentionSpec variant(const std::string& name, Field AttentionSpec::*field, Value value) {
    AttentionSpec spec = parse_attention(name);
    spec.*field = Field(value);
    return spec;
}
// The operations the named variants ask of the attention kernels: the mlp kernels and the
// unnormalised elu kernel run the same operation as linear-kernel(-norm) on other inputs.
std::vector<std::string> distinct_operations() {
    std::vector<std::string> names;
    for (const std::string& v : attention_names()) {
        const AttentionSpec spec = parse_attention(v);
        if (spec.feature_map == FeatureMap::none || spec.normalizer == Normalizer::sum) names.push_back(v);
    }
    return names;
}

// The attention `spec` with a key slot.
AttentionSpec with_slot(AttentionSpec spec, SlotKind slot, bool shared = false) {
    spec.slot = slot;
    spec.slot_shared = shared;
    return spec;
}

AttentionSpec masked(const std::string& name, MaskKind mask, int size) {
    AttentionSpec spec = parse_attention(name);
    spec.mask = mask;
    (mask == MaskKind::window ? spec.window : spec.prefix) = size;
    return spec;
}

}  // namespace

TEST_CASE("emulated attention kernels, fp32 path, every variant") {
    for (const std::string& v : distinct_operations())
        run_case<float, 64>(variant(v), 64, 70, 1, v == "softmax" ? 2 : 1);
    run_case<float, 64>(variant("sigmoid", &AttentionSpec::score_bias, -2.0), 64, 70, 1, 1);
    run_case<float, 64>(variant("softmax", &AttentionSpec::softmax_alpha, 0.5), 64, 70, 1, 1);
    run_case<float, 16>(variant("softmax"), 8, 33, 2, 1);   // padded head dim, two batches
    run_case<float, 96>(variant("elu-norm"), 96, 5, 1, 1);   // shorter than one tile
    run_case<float, 64>(variant("softmax"), 64, 40, 1, 1, true);  // unaligned: scalar loads
    run_case<float, 16>(variant("softpick"), 8, 33, 2, 1);  // padded head dim, two batches
}

TEST_CASE("emulated attention kernels, fp32 path, window and prefix masks") {
    // windows shorter than a tile (whole key tiles skipped), of one key, and longer than T
    for (int w : {20, 1, 100}) {
        run_case<float, 64>(masked("softmax", MaskKind::window, w), 64, 100, 1, 1);
        run_case<float, 64>(masked("sigmoid-norm", MaskKind::window, w), 64, 100, 1, 1);
        run_case<float, 64>(masked("softpick", MaskKind::window, w), 64, 100, 1, 1);
    }
    // a prefix inside one tile, across tiles, and longer than the sequence (all tokens see all)
    for (int p : {5, 45, 200}) {
        run_case<float, 64>(masked("softmax", MaskKind::prefix, p), 64, 100, 1, 1);
        run_case<float, 64>(masked("elu", MaskKind::prefix, p), 64, 100, 1, 1);
        run_case<float, 64>(masked("softpick", MaskKind::prefix, p), 64, 100, 1, 1);
    }
}

TEST_CASE("emulated attention kernels with a key slot or a sink logit, fp32 and bf16") {
    run_case<float, 64>(with_slot(variant("softmax"), SlotKind::key_value), 64, 70, 1, 2);
    run_case<float, 64>(with_slot(variant("softmax"), SlotKind::key, true), 64, 70, 1, 2);
    run_case<float, 64>(with_slot(variant("softmax", &AttentionSpec::softmax_alpha, 0.5), SlotKind::sink_token), 64, 70,
                        1, 1);
    run_case<float, 64>(with_slot(variant("sigmoid-norm"), SlotKind::key_value, true), 64, 70, 1, 2);
    run_case<float, 64>(with_slot(variant("elu"), SlotKind::key_value), 64, 70, 1, 1);
    run_case<float, 64>(with_slot(variant("linear-kernel-norm"), SlotKind::key_value), 64, 70, 1, 1);
    run_case<float, 64>(with_slot(masked("softmax", MaskKind::window, 20), SlotKind::key_value), 64, 100, 1, 1);
    run_case<float, 16>(with_slot(variant("softmax"), SlotKind::key_value), 8, 33, 2, 1);  // padded head dim
    run_case<float, 64>(with_slot(variant("softmax"), SlotKind::logit), 64, 70, 1, 2);  // the sink logits
    run_case<float, 64>(with_slot(variant("softmax"), SlotKind::logit, true), 64, 70, 1, 2);
    run_case<float, 64>(with_slot(variant("softmax", &AttentionSpec::softmax_alpha, 0.5), SlotKind::zero_logit), 64, 70,
                        1, 2);
    run_case<__nv_bfloat16, 64>(with_slot(variant("softmax"), SlotKind::logit), 64, 130, 1, 2);
    run_case<__nv_bfloat16, 64>(with_slot(masked("softmax", MaskKind::window, 20), SlotKind::zero_logit), 64, 130, 1, 1);
    run_case<__nv_bfloat16, 64>(with_slot(variant("softmax"), SlotKind::key_value), 64, 130, 1, 2);
    run_case<__nv_bfloat16, 64>(with_slot(variant("sigmoid"), SlotKind::key_value, true), 64, 130, 1, 2);
    run_case<__nv_bfloat16, 64>(with_slot(variant("elu-norm"), SlotKind::key), 64, 130, 1, 1);
    run_case<__nv_bfloat16, 64>(with_slot(masked("softmax", MaskKind::prefix, 70), SlotKind::key_value), 64, 150, 1, 1);
}

TEST_CASE("emulated attention kernels with ALiBi and T5 position biases, fp32 and bf16") {
    for (const PositionBias bias : {PositionBias::alibi, PositionBias::t5}) {
        AttentionSpec softmax = variant("softmax"), sigmoid = variant("sigmoid-norm"), softpick = variant("softpick");
        softmax.position_bias = sigmoid.position_bias = softpick.position_bias = bias;
        run_case<float, 64>(softmax, 64, 150, 1, 2);
        run_case<float, 64>(sigmoid, 64, 150, 1, 2);
        run_case<float, 64>(softpick, 64, 150, 1, 2);
        run_case<__nv_bfloat16, 64>(softmax, 64, 150, 1, 2);
        run_case<__nv_bfloat16, 64>(sigmoid, 64, 150, 1, 2);
        run_case<__nv_bfloat16, 64>(softpick, 64, 150, 1, 2);
    }
}

TEST_CASE("emulated attention kernels, bf16 mma.sync path, every variant") {
    for (const std::string& v : distinct_operations())
        run_case<__nv_bfloat16, 64>(variant(v), 64, 130, 1, v == "softmax" ? 2 : 1);
    run_case<__nv_bfloat16, 64>(variant("sigmoid", &AttentionSpec::score_bias, -2.0), 64, 130, 1, 1);
    run_case<__nv_bfloat16, 64>(variant("softmax", &AttentionSpec::softmax_alpha, 2.0), 64, 130, 1, 1);
    run_case<__nv_bfloat16, 32>(variant("softmax"), 24, 70, 2, 1);
    run_case<__nv_bfloat16, 128>(variant("sigmoid-norm"), 128, 64, 1, 1);
    run_case<__nv_bfloat16, 96>(variant("softmax"), 96, 65, 1, 1);
    run_case<__nv_bfloat16, 128>(variant("sigmoid"), 128, 70, 1, 1, true);  // unaligned: scalar loads
}

TEST_CASE("emulated attention kernels, bf16 mma.sync path, window and prefix masks") {
    for (int w : {20, 1, 100}) {
        run_case<__nv_bfloat16, 64>(masked("softmax", MaskKind::window, w), 64, 150, 1, 1);
        run_case<__nv_bfloat16, 64>(masked("sigmoid", MaskKind::window, w), 64, 150, 1, 1);
        // (not at w = 1: a one-key softpick row is a step, relu(a) / (|a| + eps), whose log Z and
        // gradient near s = 0 bf16's rounding of q and k moves by far more than its tolerance)
        if (w > 1) run_case<__nv_bfloat16, 64>(masked("softpick", MaskKind::window, w), 64, 150, 1, 1);
    }
    for (int p : {5, 70, 200}) {
        run_case<__nv_bfloat16, 64>(masked("softmax", MaskKind::prefix, p), 64, 150, 1, 1);
        run_case<__nv_bfloat16, 64>(masked("elu-norm", MaskKind::prefix, p), 64, 150, 1, 1);
        run_case<__nv_bfloat16, 64>(masked("softpick", MaskKind::prefix, p), 64, 150, 1, 1);
    }
}

TEST_CASE("emulated element-wise and row-wise kernels") {
    const unsigned NT = kn::kThreads;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    Rng rng(99);
    // embedding
    {
        const size_t N = 40, C = 300, V = 7;
        std::vector<int32_t> tokens(N);
        for (auto& t : tokens) t = int32_t(rng.below(V));
        const auto wte = random_normal(V * C, 1), dout = random_normal(N * C, 2);
        std::vector<float> out(N * C), e_out(N * C, nan);
        embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
        emu::launch({3, 1, 1}, NT, 0,
                    [&] { kn::embedding_forward_kernel(e_out.data(), tokens.data(), wte.data(), N, C); });
        CHECK(rel_err(e_out, out) == 0.0);
        auto dwte = random_normal(V * C, 3);
        auto e_dwte = dwte;
        embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
        std::vector<int32_t> order, starts, ids;
        kn::group_positions_by_token(tokens, order, starts, ids);
        emu::launch({unsigned(ids.size()), unsigned((C + NT - 1) / NT), 1}, NT, 0, [&] {
            kn::embedding_backward_kernel(e_dwte.data(), dout.data(), order.data(), starts.data(), ids.data(), C);
        });
        CHECK(rel_err(e_dwte, dwte) == 0.0);  // the same additions in the same order
    }
    // rmsnorm: the plain one (G = 1) and over groups (G = 4 heads of 25, `--head-norm rms`)
    for (const size_t G : {size_t(1), size_t(4)}) {
        CAPTURE(G);
        const size_t N = 300, C = 100, R = N * G;  // R group rows, 8 per block of the launch
        const auto x = random_normal(N * C, 4, 2.0), w = random_normal(C, 5), dy = random_normal(N * C, 6);
        std::vector<float> out(N * C), rstd(R), e_out(N * C, nan), e_rstd(R, nan);
        rmsnorm_groups_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, G, 1e-5f);
        emu::launch({unsigned((R + 7) / 8), 1, 1}, NT, 0, [&] {
            kn::rmsnorm_forward_kernel(e_out.data(), e_rstd.data(), x.data(), w.data(), N, C, G, 1e-5f);
        });
        CHECK(rel_err(e_out, out) <= 1e-5);
        CHECK(rel_err(e_rstd, rstd) <= 1e-5);
        auto dx = random_normal(N * C, 7), dw = random_normal(C, 8);
        auto e_dx = dx, e_dw = dw;
        rmsnorm_groups_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C, G);
        emu::launch({unsigned((R + 7) / 8), 1, 1}, NT, 0, [&] {
            kn::rmsnorm_backward_dx_kernel(e_dx.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C, G);
        });
        const size_t chunks = (N + kn::kRowChunk - 1) / kn::kRowChunk;
        std::vector<float> partial(chunks * C, nan);
        emu::launch({1, unsigned(chunks), 1}, NT, 0, [&] {
            kn::rmsnorm_backward_dw_partial_kernel(partial.data(), dy.data(), x.data(), rstd.data(), N, C, G);
        });
        emu::launch({1, 1, 1}, NT, 0, [&] { kn::column_sum_kernel(e_dw.data(), partial.data(), chunks, C); });
        CHECK(rel_err(e_dx, dx) <= 1e-5);
        CHECK(rel_err(e_dw, dw) <= 1e-5);
    }
    // rope
    {
        const size_t B = 2, T = 5, H = 3, D = 16, C = H * D;
        std::vector<float> cs(T * D / 2), sn(T * D / 2);
        rope_table(cs.data(), sn.data(), T, D, 10000.0);
        const auto qkv = random_normal(B * T * 3 * C, 9), dy = random_normal(B * T * 3 * C, 10);
        std::vector<float> out(qkv.size()), e_out(qkv.size(), nan);
        rope_forward(out.data(), qkv.data(), cs.data(), sn.data(), B, T, C, H);
        emu::launch({2, 1, 1}, NT, 0, [&] {
            kn::rope_forward_kernel(e_out.data(), qkv.data(), cs.data(), sn.data(), B * T, T, C, D);
        });
        CHECK(rel_err(e_out, out) <= 1e-6);
        auto dx = random_normal(qkv.size(), 11);
        auto e_dx = dx;
        rope_backward(dx.data(), dy.data(), cs.data(), sn.data(), B, T, C, H);
        emu::launch({2, 1, 1}, NT, 0, [&] {
            kn::rope_backward_kernel(e_dx.data(), dy.data(), cs.data(), sn.data(), B * T, T, C, D);
        });
        CHECK(rel_err(e_dx, dx) <= 1e-6);
    }
    // bias add: forward, and the column sums of its backward in one pass and in two
    {
        const size_t rows = 700, n = 33;
        const auto bias = random_normal(n, 20), dx = random_normal(rows * n, 21);
        auto x = random_normal(rows * n, 22);
        auto e_x = x;
        bias_add_forward(x.data(), bias.data(), rows, n);
        emu::launch({4, 1, 1}, NT, 0, [&] { kn::bias_add_forward_kernel(e_x.data(), bias.data(), rows, n); });
        CHECK(rel_err(e_x, x) == 0.0);
        for (size_t r : {size_t(5), rows}) {
            auto dbias = random_normal(n, 23);
            auto e_dbias = dbias;
            bias_add_backward(dbias.data(), dx.data(), r, n);
            const size_t chunks = (r + kn::kRowChunk - 1) / kn::kRowChunk;
            std::vector<float> partial(chunks * n, nan);
            emu::launch({1, unsigned(chunks), 1}, NT, 0,
                        [&] { kn::column_sum_partial_kernel(partial.data(), dx.data(), r, n); });
            emu::launch({1, 1, 1}, NT, 0, [&] { kn::column_sum_kernel(e_dbias.data(), partial.data(), chunks, n); });
            CHECK(rel_err(e_dbias, dbias) <= 1e-6);
        }
    }
    // head sum
    {
        const size_t N = 33, H = 3, D = 20;
        const auto y = random_normal(N * H * D, 24), dout = random_normal(N * D, 25);
        std::vector<float> out(N * D), e_out(N * D, nan);
        auto dy = random_normal(N * H * D, 26);
        auto e_dy = dy;
        head_sum_forward(out.data(), y.data(), N, H, D);
        head_sum_backward(dy.data(), dout.data(), N, H, D);
        emu::launch({2, 1, 1}, NT, 0, [&] { kn::head_sum_forward_kernel(e_out.data(), y.data(), N, H, D); });
        emu::launch({2, 1, 1}, NT, 0, [&] { kn::head_sum_backward_kernel(e_dy.data(), dout.data(), N, H, D); });
        CHECK(rel_err(e_out, out) == 0.0);  // the same additions in the same order
        CHECK(rel_err(e_dy, dy) == 0.0);
    }
    // the sigmoid gate of the gated attention, headwise (width 20) and elementwise (width 1)
    for (const size_t G : {size_t(3), size_t(60)}) {
        const size_t N = 33, C = 60;
        const auto y = random_normal(N * C, 27), z = random_normal(N * G, 28), dout = random_normal(N * C, 29);
        std::vector<float> out(N * C), e_out(N * C, nan);
        auto dy = random_normal(N * C, 30), dz = random_normal(N * G, 31);
        auto e_dy = dy, e_dz = dz;
        gate_forward(out.data(), y.data(), z.data(), N, C, G);
        gate_backward(dy.data(), dz.data(), dout.data(), y.data(), z.data(), N, C, G);
        emu::launch({2, 1, 1}, NT, 0, [&] { kn::gate_forward_kernel(e_out.data(), y.data(), z.data(), N, C, G); });
        emu::launch({2, 1, 1}, NT, 0, [&] {
            kn::gate_backward_kernel(e_dy.data(), e_dz.data(), dout.data(), y.data(), z.data(), N, C, G);
        });
        CHECK(rel_err(e_out, out) <= 1e-6);
        CHECK(rel_err(e_dy, dy) <= 1e-6);
        CHECK(rel_err(e_dz, dz) <= 1e-6);
    }
    // the GLU activations (each gate function) and the element-wise activations
    const Activation kActivations[] = {Activation::relu, Activation::elu_plus_one, Activation::gelu, Activation::silu};
    for (const Activation f : kActivations)
        for (const size_t F : {70, 72}) {  // one column per thread; four (16-byte loads)
            CAPTURE(int(f));
            const size_t N = 9;
            const auto fc = random_normal(N * 2 * F, 12, 2.0), dy = random_normal(N * F, 13);
            std::vector<float> out(N * F), e_out(N * F, nan);
            auto dfc = random_normal(N * 2 * F, 14);
            auto e_dfc = dfc;
            glu_forward(out.data(), fc.data(), N, F, f);
            glu_backward(dfc.data(), dy.data(), fc.data(), N, F, f);
            with_activation(f, [&](auto A) {
                constexpr Activation kF = decltype(A)::value;
                emu::launch({2, 1, 1}, NT, 0, [&] { kn::glu_forward_kernel<kF>(e_out.data(), fc.data(), N, F); });
                emu::launch({2, 1, 1}, NT, 0,
                            [&] { kn::glu_backward_kernel<kF>(e_dfc.data(), dy.data(), fc.data(), N, F); });
            });
            CHECK(rel_err(e_out, out) <= 1e-6);
            CHECK(rel_err(e_dfc, dfc) <= 1e-6);
        }
    for (const Activation f : kActivations) {
        CAPTURE(int(f));
        const size_t n = 700;
        const auto x = random_normal(n, 17, 2.0), dy = random_normal(n, 18);
        std::vector<float> out(n), e_out(n, nan);
        auto dx = random_normal(n, 19);
        auto e_dx = dx;
        activation_forward(out.data(), x.data(), n, f);
        activation_backward(dx.data(), dy.data(), x.data(), n, f);
        with_activation(f, [&](auto A) {
            constexpr Activation kF = decltype(A)::value;
            emu::launch({2, 1, 1}, NT, 0, [&] { kn::activation_forward_kernel<kF>(e_out.data(), x.data(), n); });
            emu::launch({2, 1, 1}, NT, 0,
                        [&] { kn::activation_backward_kernel<kF>(e_dx.data(), dy.data(), x.data(), n); });
        });
        CHECK(rel_err(e_out, out) <= 1e-6);
        CHECK(rel_err(e_dx, dx) <= 1e-6);
    }
    {
        auto x = random_normal(1000, 15);
        auto e_x = x;
        const auto y = random_normal(1000, 16);
        residual_add(x.data(), y.data(), x.size());
        emu::launch({2, 1, 1}, NT, 0, [&] { kn::residual_add_kernel(e_x.data(), y.data(), e_x.size()); });
        CHECK(rel_err(e_x, x) == 0.0);
    }
    // cross entropy (in place backward, one ignored row)
    {
        const size_t N = 4, V = 1500;
        const auto logits = random_normal(N * V, 17, 3.0);
        std::vector<int32_t> targets = {3, -1, 1499, 0};
        std::vector<float> losses(N), e_losses(N, nan);
        crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V);
        emu::launch({unsigned(N), 1, 1}, kn::kCeThreads, 0, [&] {
            kn::crossentropy_forward_kernel(e_losses.data(), logits.data(), targets.data(), V);
        });
        CHECK(rel_err(e_losses, losses) <= 1e-6);
        auto d = logits, e_d = logits;
        crossentropy_backward(d.data(), d.data(), targets.data(), 0.25f, N, V);
        emu::launch({unsigned(N), 1, 1}, kn::kCeThreads, 0, [&] {
            kn::crossentropy_backward_kernel(e_d.data(), e_d.data(), targets.data(), 0.25f, V);
        });
        CHECK(rel_err(e_d, d) <= 1e-6);
    }
    // sum of squares, AdamW
    {
        const size_t n = 70000;
        const auto x = random_normal(n, 18);
        const size_t chunks = (n + kn::kSumChunk - 1) / kn::kSumChunk;
        std::vector<double> partial(chunks);
        emu::launch({unsigned(chunks), 1, 1}, NT, 0, [&] { kn::sum_squares_kernel(partial.data(), x.data(), n); });
        double total = 0;
        for (double p : partial) total += p;
        const double want = sum_squares(x.data(), n);
        CHECK(std::fabs(total - want) / want <= 1e-12);
        const size_t m = 3000;
        auto p = random_normal(m, 19), mom = random_normal(m, 20, 0.01), vel = random_normal(m, 21, 0.01);
        for (auto& v : vel) v = v * v;
        const auto g = random_normal(m, 22);
        auto e_p = p, e_m = mom, e_v = vel;
        AdamWHyper hp;
        adamw_update(p.data(), g.data(), mom.data(), vel.data(), m, hp, 4, 0.5f);
        const float bias1 = float(1.0 - std::pow(hp.beta1, 4.0)), bias2 = float(1.0 - std::pow(hp.beta2, 4.0));
        emu::launch({2, 1, 1}, NT, 0, [&] {
            kn::adamw_kernel(e_p.data(), g.data(), e_m.data(), e_v.data(), m, float(hp.beta1), float(hp.beta2), bias1,
                             bias2, float(hp.lr), float(hp.eps), float(hp.weight_decay), 0.5f);
        });
        CHECK(rel_err(e_p, p) <= 1e-6);
        CHECK(rel_err(e_m, mom) <= 1e-6);
        CHECK(rel_err(e_v, vel) <= 1e-6);
    }
}

namespace {

// The BLAS definition of a column-major gemm, with the argument checks cuBLAS makes.
void reference_blas_gemm(const sinklab::cuda::GemmCall& g) {
    REQUIRE(g.lda >= (g.trans_a ? g.k : g.m));
    REQUIRE(g.ldb >= (g.trans_b ? g.n : g.k));
    REQUIRE(g.ldc >= g.m);
    for (size_t j = 0; j < g.n; j++)
        for (size_t i = 0; i < g.m; i++) {
            double sum = 0;
            for (size_t p = 0; p < g.k; p++) {
                const float a = g.trans_a ? g.A[p + i * g.lda] : g.A[i + p * g.lda];
                const float b = g.trans_b ? g.B[j + p * g.ldb] : g.B[p + j * g.ldb];
                sum += double(a) * double(b);
            }
            float& c = g.C[i + j * g.ldc];
            c = float(double(g.beta) * double(c) + sum);
        }
}

}  // namespace

TEST_CASE("the cuBLAS call of each matmul computes the CPU's product") {
    const size_t N = 13, IC = 7, OC = 5;
    const auto inp = random_normal(N * IC, 30), w = random_normal(OC * IC, 31), dout = random_normal(N * OC, 32);
    std::vector<float> out(N * OC), e_out(N * OC, std::numeric_limits<float>::quiet_NaN());
    matmul_forward(out.data(), inp.data(), w.data(), N, IC, OC);
    std::fill(e_out.begin(), e_out.end(), 0.0f);  // beta = 0: BLAS ignores C (NaN * 0 would not)
    reference_blas_gemm(sinklab::cuda::matmul_forward_call(e_out.data(), inp.data(), w.data(), N, IC, OC));
    CHECK(rel_err(e_out, out) <= 1e-6);
    auto dinp = random_normal(N * IC, 33), dw = random_normal(OC * IC, 34);
    auto e_dinp = dinp, e_dw = dw;
    matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, IC, OC);
    reference_blas_gemm(sinklab::cuda::matmul_backward_dinp_call(e_dinp.data(), dout.data(), w.data(), N, IC, OC));
    reference_blas_gemm(sinklab::cuda::matmul_backward_dweight_call(e_dw.data(), dout.data(), inp.data(), N, IC, OC));
    CHECK(rel_err(e_dinp, dinp) <= 1e-6);
    CHECK(rel_err(e_dw, dw) <= 1e-6);
}
