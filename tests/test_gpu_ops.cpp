// Every CUDA operation, forward and backward, against the CPU reference (src/ops/ops.h) on the same
// random inputs. Skipped (exit code 77) when no GPU is visible.
//
// Errors are relative L2 norms ||gpu - cpu|| / ||cpu|| (NaN/inf anywhere = failure; GPU outputs are
// poisoned with NaN first where the operation overwrites, so an unwritten element fails).
// Tolerances:
//   kTight (1e-5)      element-wise and row-wise ops (always fp32): only expf/logf ulps and
//                      summation order differ.
//   kFp32 (2e-5)       matmuls and attention in fp32 mode: longer sums in another order.
//   kBf16Matmul (1e-2) matmuls in bf16 mode: operands rounded to bf16 (8 bits of mantissa,
//                      relative 2^-9 each), fp32 accumulation.
//   kBf16Attn (3e-2)   attention in bf16 mode: q, k, v, dO and the weights P / dS rounded to bf16
//                      for the tensor cores; statistics and accumulators fp32.
#include "attention_inputs.h"
#include "gpu_test_util.h"

#include <algorithm>

#include "ops/ops.h"

using namespace sinklab;
using namespace gpu_test;
using cuda::Precision;

namespace {

constexpr double kTight = 1e-5, kFp32 = 2e-5, kBf16Matmul = 1e-2, kBf16Attn = 3e-2;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<int32_t> random_ids(size_t n, size_t vocab, uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = int32_t(rng.below(vocab));
    return t;
}

}  // namespace

TEST_CASE("embedding forward and backward") {
    const size_t N = 300, C = 96, V = 50;
    const auto tokens = random_ids(N, V, 1);
    const auto wte = random_normal(V * C, 2);
    std::vector<float> out_cpu(N * C);
    embedding_forward(out_cpu.data(), tokens.data(), wte.data(), N, C);
    DeviceBuffer<int32_t> d_tokens(tokens);
    DeviceBuffer<float> d_wte(wte), d_out(filled(N * C, kNaN));
    CudaBackend::embedding_forward(d_out.ptr, d_tokens.ptr, d_wte.ptr, N, C);
    CHECK(rel_err(d_out.host(), out_cpu) == 0.0);

    const auto dout = random_normal(N * C, 3);
    auto dwte_cpu = random_normal(V * C, 4);
    DeviceBuffer<float> d_dwte(dwte_cpu), d_dout(dout);
    embedding_backward(dwte_cpu.data(), dout.data(), tokens.data(), N, C);
    CudaBackend::embedding_backward(d_dwte.ptr, d_dout.ptr, d_tokens.ptr, N, C);
    CHECK(rel_err(d_dwte.host(), dwte_cpu) <= kTight);
}

TEST_CASE("rmsnorm forward and backward") {
    const size_t N = 257, C = 200;
    const auto x = random_normal(N * C, 5, 2.0), w = random_normal(C, 6);
    std::vector<float> out(N * C), rstd(N);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    DeviceBuffer<float> dx_in(x), dw_in(w), d_out(filled(N * C, kNaN)), d_rstd(filled(N, kNaN));
    CudaBackend::rmsnorm_forward(d_out.ptr, d_rstd.ptr, dx_in.ptr, dw_in.ptr, N, C, 1e-5f);
    CHECK(rel_err(d_out.host(), out) <= kTight);
    CHECK(rel_err(d_rstd.host(), rstd) <= kTight);

    const auto dy = random_normal(N * C, 7);
    auto dx = random_normal(N * C, 8), dw = random_normal(C, 9);
    DeviceBuffer<float> d_dy(dy), d_dx(dx), d_dw(dw);
    rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
    CudaBackend::rmsnorm_backward(d_dx.ptr, d_dw.ptr, d_dy.ptr, dx_in.ptr, dw_in.ptr, d_rstd.ptr, N, C);
    CHECK(rel_err(d_dx.host(), dx) <= kTight);
    CHECK(rel_err(d_dw.host(), dw) <= kTight);
}

TEST_CASE("rmsnorm over groups (the head-wise norm) forward and backward") {
    const size_t N = 257, H = 8, C = 8 * 96;
    const auto x = random_normal(N * C, 35, 2.0), w = random_normal(C, 36), dy = random_normal(N * C, 37);
    std::vector<float> out(N * C), rstd(N * H);
    rmsnorm_groups_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, H, 1e-5f);
    DeviceBuffer<float> dx_in(x), dw_in(w), d_out(filled(N * C, kNaN)), d_rstd(filled(N * H, kNaN));
    CudaBackend::rmsnorm_groups_forward(d_out.ptr, d_rstd.ptr, dx_in.ptr, dw_in.ptr, N, C, H, 1e-5f);
    CHECK(rel_err(d_out.host(), out) <= kTight);
    CHECK(rel_err(d_rstd.host(), rstd) <= kTight);
    auto dx = random_normal(N * C, 38), dw = random_normal(C, 39);
    DeviceBuffer<float> d_dy(dy), d_dx(dx), d_dw(dw);
    rmsnorm_groups_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C, H);
    CudaBackend::rmsnorm_groups_backward(d_dx.ptr, d_dw.ptr, d_dy.ptr, dx_in.ptr, dw_in.ptr, d_rstd.ptr, N, C, H);
    CHECK(rel_err(d_dx.host(), dx) <= kTight);
    CHECK(rel_err(d_dw.host(), dw) <= kTight);
}

TEST_CASE("matmul forward and backward, fp32 and bf16") {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
        PrecisionScope scope(p);
        const double tol = p == Precision::fp32 ? kFp32 : kBf16Matmul;
        const size_t N = 130, IC = 96, OC = 200;
        const auto inp = random_normal(N * IC, 10), weight = random_normal(OC * IC, 11, 0.1);
        std::vector<float> out(N * OC);
        matmul_forward(out.data(), inp.data(), weight.data(), N, IC, OC);
        DeviceBuffer<float> d_inp(inp), d_w(weight), d_out(filled(N * OC, kNaN));
        CudaBackend::matmul_forward(d_out.ptr, d_inp.ptr, d_w.ptr, N, IC, OC);
        const double e_out = rel_err(d_out.host(), out);
        MESSAGE(cuda::precision_name(p) << " matmul forward rel err " << e_out);
        CHECK(e_out <= tol);

        const auto dout = random_normal(N * OC, 12);
        auto dinp = random_normal(N * IC, 13), dw = random_normal(OC * IC, 14);
        DeviceBuffer<float> d_dout(dout), d_dinp(dinp), d_dw(dw);
        matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), weight.data(), N, IC, OC);
        CudaBackend::matmul_backward(d_dinp.ptr, d_dw.ptr, d_dout.ptr, d_inp.ptr, d_w.ptr, N, IC, OC);
        const double e_dinp = rel_err(d_dinp.host(), dinp), e_dw = rel_err(d_dw.host(), dw);
        MESSAGE(cuda::precision_name(p) << " matmul backward rel err dinp " << e_dinp << " dweight " << e_dw);
        CHECK(e_dinp <= tol);
        CHECK(e_dw <= tol);
        // dinp = nullptr: only the weight gradient
        auto dw2 = random_normal(OC * IC, 15);
        DeviceBuffer<float> d_dw2(dw2);
        matmul_backward<float>(nullptr, dw2.data(), dout.data(), inp.data(), weight.data(), N, IC, OC);
        CudaBackend::matmul_backward(nullptr, d_dw2.ptr, d_dout.ptr, d_inp.ptr, d_w.ptr, N, IC, OC);
        CHECK(rel_err(d_dw2.host(), dw2) <= tol);
    }
}

TEST_CASE("rope forward and backward") {
    const size_t B = 2, T = 37, H = 3, D = 32, C = H * D;
    std::vector<float> cos_t(T * D / 2), sin_t(T * D / 2);
    rope_table(cos_t.data(), sin_t.data(), T, D, 10000.0);
    const auto qkv = random_normal(B * T * 3 * C, 16);
    std::vector<float> out(B * T * 3 * C);
    rope_forward(out.data(), qkv.data(), cos_t.data(), sin_t.data(), B, T, C, H);
    DeviceBuffer<float> d_cos(cos_t), d_sin(sin_t), d_qkv(qkv), d_out(filled(out.size(), kNaN));
    CudaBackend::rope_forward(d_out.ptr, d_qkv.ptr, d_cos.ptr, d_sin.ptr, B, T, C, H);
    CHECK(rel_err(d_out.host(), out) <= kTight);

    const auto dy = random_normal(out.size(), 17);
    auto dx = random_normal(out.size(), 18);
    DeviceBuffer<float> d_dy(dy), d_dx(dx);
    rope_backward(dx.data(), dy.data(), cos_t.data(), sin_t.data(), B, T, C, H);
    CudaBackend::rope_backward(d_dx.ptr, d_dy.ptr, d_cos.ptr, d_sin.ptr, B, T, C, H);
    CHECK(rel_err(d_dx.host(), dx) <= kTight);
}

TEST_CASE("glu (each gate) and activations forward and backward, residual add") {
    for (const Activation f : {Activation::silu, Activation::gelu, Activation::relu})
        for (const size_t F : {150, 152}) {  // one column per thread; four (16-byte loads)
            const size_t N = 77;
            const auto fc = random_normal(N * 2 * F, 19, 2.0);
            std::vector<float> out(N * F);
            glu_forward(out.data(), fc.data(), N, F, f);
            DeviceBuffer<float> d_fc(fc), d_out(filled(N * F, kNaN));
            CudaBackend::glu_forward(d_out.ptr, d_fc.ptr, N, F, f);
            CHECK(rel_err(d_out.host(), out) <= kTight);

            const auto dy = random_normal(N * F, 20);
            auto dfc = random_normal(N * 2 * F, 21);
            DeviceBuffer<float> d_dy(dy), d_dfc(dfc);
            glu_backward(dfc.data(), dy.data(), fc.data(), N, F, f);
            CudaBackend::glu_backward(d_dfc.ptr, d_dy.ptr, d_fc.ptr, N, F, f);
            CHECK(rel_err(d_dfc.host(), dfc) <= kTight);
        }
    for (const Activation f : {Activation::relu, Activation::elu_plus_one, Activation::gelu, Activation::silu}) {
        const size_t n = 5001;
        const auto x = random_normal(n, 24, 2.0), dy = random_normal(n, 25);
        auto dx = random_normal(n, 26);
        std::vector<float> out(n);
        DeviceBuffer<float> d_x(x), d_dy(dy), d_dx(dx), d_out(filled(n, kNaN));
        activation_forward(out.data(), x.data(), n, f);
        activation_backward(dx.data(), dy.data(), x.data(), n, f);
        CudaBackend::activation_forward(d_out.ptr, d_x.ptr, n, f);
        CudaBackend::activation_backward(d_dx.ptr, d_dy.ptr, d_x.ptr, n, f);
        CHECK(rel_err(d_out.host(), out) <= kTight);
        CHECK(rel_err(d_dx.host(), dx) <= kTight);
    }

    for (const size_t G : {size_t(8), size_t(768)}) {  // the sigmoid gate, headwise and elementwise
        const size_t N = 301, C = 768;
        const auto y = random_normal(N * C, 30), z = random_normal(N * G, 31), dout = random_normal(N * C, 32);
        auto dy = random_normal(N * C, 33), dz = random_normal(N * G, 34);
        std::vector<float> out(N * C);
        DeviceBuffer<float> d_y(y), d_z(z), d_dout(dout), d_dy(dy), d_dz(dz), d_out(filled(N * C, kNaN));
        gate_forward(out.data(), y.data(), z.data(), N, C, G);
        gate_backward(dy.data(), dz.data(), dout.data(), y.data(), z.data(), N, C, G);
        CudaBackend::gate_forward(d_out.ptr, d_y.ptr, d_z.ptr, N, C, G);
        CudaBackend::gate_backward(d_dy.ptr, d_dz.ptr, d_dout.ptr, d_y.ptr, d_z.ptr, N, C, G);
        CHECK(rel_err(d_out.host(), out) <= kTight);
        CHECK(rel_err(d_dy.host(), dy) <= kTight);
        CHECK(rel_err(d_dz.host(), dz) <= kTight);
    }

    {  // head sum
        const size_t N = 301, H = 8, D = 96;
        const auto y = random_normal(N * H * D, 27), dout = random_normal(N * D, 28);
        auto dy = random_normal(N * H * D, 29);
        std::vector<float> out(N * D);
        DeviceBuffer<float> d_y(y), d_dout(dout), d_dy(dy), d_out(filled(N * D, kNaN));
        head_sum_forward(out.data(), y.data(), N, H, D);
        head_sum_backward(dy.data(), dout.data(), N, H, D);
        CudaBackend::head_sum_forward(d_out.ptr, d_y.ptr, N, H, D);
        CudaBackend::head_sum_backward(d_dy.ptr, d_dout.ptr, N, H, D);
        CHECK(rel_err(d_out.host(), out) <= kTight);
        CHECK(rel_err(d_dy.host(), dy) <= kTight);
    }

    auto x = random_normal(1001, 22);
    const auto y = random_normal(1001, 23);
    DeviceBuffer<float> d_x(x), d_y(y);
    residual_add(x.data(), y.data(), x.size());
    CudaBackend::residual_add(d_x.ptr, d_y.ptr, x.size());
    CHECK(rel_err(d_x.host(), x) == 0.0);
}

TEST_CASE("cross entropy forward and backward (in place, with an ignored target)") {
    const size_t N = 33, V = 1000;
    const auto logits = random_normal(N * V, 24, 3.0);
    auto targets = random_ids(N, V, 25);
    targets[5] = -1;
    std::vector<float> losses(N);
    crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V);
    DeviceBuffer<float> d_logits(logits), d_losses(filled(N, kNaN));
    DeviceBuffer<int32_t> d_targets(targets);
    CudaBackend::crossentropy_forward(d_losses.ptr, d_logits.ptr, d_targets.ptr, N, V);
    CHECK(rel_err(d_losses.host(), losses) <= kTight);

    std::vector<float> dlogits = logits;
    crossentropy_backward(dlogits.data(), dlogits.data(), targets.data(), 0.37f, N, V);
    CudaBackend::crossentropy_backward(d_logits.ptr, d_logits.ptr, d_targets.ptr, 0.37f, N, V);
    CHECK(rel_err(d_logits.host(), dlogits) <= kTight);
}

TEST_CASE("sum of squares and AdamW") {
    const size_t n = 300001;
    const auto x = random_normal(n, 26);
    DeviceBuffer<float> d_x(x);
    const double want = sum_squares(x.data(), n);
    const double got = CudaBackend::sum_squares(d_x.ptr, n);
    CHECK(std::fabs(got - want) / want <= 1e-12);
    CHECK(CudaBackend::sum_squares(d_x.ptr, n) == got);  // bitwise reproducible

    const size_t m = 10000;
    auto params = random_normal(m, 27), mom = random_normal(m, 28, 0.01), vel = random_normal(m, 29, 0.01);
    for (auto& v : vel) v = v * v;
    const auto grads = random_normal(m, 30);
    DeviceBuffer<float> d_p(params), d_g(grads), d_m(mom), d_v(vel);
    AdamWHyper hp;
    hp.lr = 1e-3;
    adamw_update(params.data(), grads.data(), mom.data(), vel.data(), m, hp, 3, 0.5f);
    CudaBackend::adamw_update(d_p.ptr, d_g.ptr, d_m.ptr, d_v.ptr, m, hp, 3, 0.5f);
    CHECK(rel_err(d_p.host(), params) <= kTight);
    CHECK(rel_err(d_m.host(), mom) <= kTight);
    CHECK(rel_err(d_v.host(), vel) <= kTight);
}

namespace {

struct AttentionCase {
    AttentionSpec spec;
    size_t D, T;
};

AttentionSpec spec_of(const std::string& name, double bias = 0.0) {
    AttentionSpec spec = parse_attention(name);
    spec.score_bias = bias;
    return spec;
}

// Forward and backward of one attention case on both backends; returns the worst relative error.
void check_attention(const AttentionCase& c, Precision p) {
    PrecisionScope scope(p);
    const double tol = p == Precision::fp32 ? kFp32 : kBf16Attn;
    const size_t B = 2, H = 2, D = c.D, T = c.T, C = H * D;
    const AttentionSpec& spec = c.spec;
    const uint64_t seed = 1000 + D * 7 + T * 13 + uint64_t(spec.score) * 3 + (spec.is_normalised() ? 1 : 0);
    auto qkv = random_normal(B * T * 3 * C, seed, 1.5);
    testing::condition_attention_inputs(spec, qkv);
    const auto dout = random_normal(B * T * C, seed + 1);

    // The key slot's k* and v* (null pointers without them).
    const bool slot = spec.has_key_slot(), slot_value = slot && spec.has_slot_value();
    const size_t S = size_t(spec.slot_heads(int(H)));
    const auto slot_k = random_normal(S * D, seed + 2, 1.5), slot_v = random_normal(S * D, seed + 3);
    const float* h_slot_k = slot ? slot_k.data() : nullptr;
    const float* h_slot_v = slot_value ? slot_v.data() : nullptr;

    std::vector<float> out(B * T * C), att(B * H * T * T), saved(B * H * T), z(B * H * T), dqkv(B * T * 3 * C, 0.0f);
    std::vector<float> att_slot(B * H * T), d_slot_k(B * H * D), d_slot_v(B * H * D);
    attention_forward(out.data(), saved.data(), z.data(), att_slot.data(), qkv.data(), h_slot_k, h_slot_v, B, T, C, H,
                      spec, att.data());  // the CPU's maps too, for the materialising path below
    attention_backward(dqkv.data(), d_slot_k.data(), d_slot_v.data(), dout.data(), qkv.data(), h_slot_k, h_slot_v,
                       saved.data(), z.data(), att_slot.data(), B, T, C, H, spec);

    DeviceBuffer<float> d_qkv(qkv), d_dout(dout), d_out(filled(out.size(), kNaN));
    DeviceBuffer<float> d_saved(filled(CudaBackend::attention_saved_size(B, H, T), kNaN)), d_z(filled(z.size(), kNaN));
    DeviceBuffer<float> d_dqkv(dqkv.size()), d_slot_kv(slot_k), d_slot_vv(slot_v);
    DeviceBuffer<float> d_att_slot(filled(att_slot.size(), kNaN)), d_dslot_k(filled(d_slot_k.size(), kNaN)),
        d_dslot_v(filled(d_slot_v.size(), kNaN));
    const float* g_slot_k = slot ? d_slot_kv.ptr : nullptr;
    const float* g_slot_v = slot_value ? d_slot_vv.ptr : nullptr;
    CudaBackend::attention_forward(d_out.ptr, d_saved.ptr, d_z.ptr, d_att_slot.ptr, d_qkv.ptr, g_slot_k, g_slot_v, B, T,
                                   C, H, spec);
    CudaBackend::attention_backward(d_dqkv.ptr, d_dslot_k.ptr, d_dslot_v.ptr, d_dout.ptr, d_out.ptr, d_qkv.ptr, g_slot_k,
                                    g_slot_v, d_saved.ptr, d_z.ptr, d_att_slot.ptr, B, T, C, H, spec);
    if (slot) {
        CHECK(rel_err(d_att_slot.host(), att_slot) <= tol);
        CHECK(rel_err(d_dslot_k.host(), d_slot_k) <= tol);
        if (slot_value) CHECK(rel_err(d_dslot_v.host(), d_slot_v) <= tol);
    }
    const auto g_out = d_out.host(), g_z = d_z.host(), g_dqkv = d_dqkv.host();
    const double e_out = rel_err(g_out, out), e_z = rel_err(g_z, z), e_d = rel_err(g_dqkv, dqkv);
    MESSAGE(cuda::precision_name(p) << " " << spec.describe() << " D " << D << " T " << T
                                    << ": rel err out " << e_out << " Z " << e_z << " dqkv " << e_d);
    CHECK(e_out <= tol);
    CHECK(e_z <= tol);
    CHECK(e_d <= tol);

    // Accumulates (+=): a second backward doubles the gradient, bitwise reproducibly.
    CudaBackend::attention_backward(d_dqkv.ptr, d_dslot_k.ptr, d_dslot_v.ptr, d_dout.ptr, d_out.ptr, d_qkv.ptr, g_slot_k,
                                    g_slot_v, d_saved.ptr, d_z.ptr, d_att_slot.ptr, B, T, C, H, spec);
    const auto g_twice = d_dqkv.host();
    std::vector<float> doubled(g_dqkv.size());
    for (size_t i = 0; i < doubled.size(); i++) doubled[i] = 2.0f * g_dqkv[i];
    CHECK(bitwise_equal(g_twice, doubled));

    // The materialising path for the sink analysis (always fp32).
    if (p == Precision::fp32) {
        DeviceBuffer<float> d_att(filled(att.size(), kNaN)), d_z2(filled(z.size(), kNaN));
        DeviceBuffer<float> d_w_slot(filled(att_slot.size(), kNaN));
        cuda::attention_weights(d_att.ptr, d_z2.ptr, d_w_slot.ptr, d_qkv.ptr, g_slot_k, B, T, C, H, spec);
        CHECK(rel_err(d_att.host(), att) <= kFp32);
        CHECK(rel_err(d_z2.host(), z) <= kFp32);
        if (slot) CHECK(rel_err(d_w_slot.host(), att_slot) <= kFp32);
    }
}

std::vector<AttentionCase> attention_cases(const std::vector<size_t>& dims, const std::vector<size_t>& lengths) {
    std::vector<AttentionCase> cases;
    for (const std::string& v : attention_names())
        for (size_t D : dims)
            for (size_t T : lengths) {
                cases.push_back({spec_of(v), D, T});
                if (v == "sigmoid") cases.push_back({spec_of(v, -2.0), D, T});
            }
    return cases;
}

}  // namespace

TEST_CASE("attention forward and backward, every variant, fp32") {
    for (const AttentionCase& c : attention_cases({64, 96, 128}, {1, 37, 64, 130})) check_attention(c, Precision::fp32);
}

TEST_CASE("attention forward and backward, every variant, bf16 tensor cores") {
    for (const AttentionCase& c : attention_cases({64, 96, 128}, {1, 37, 64, 130})) check_attention(c, Precision::bf16);
}

TEST_CASE("attention: padded head dimensions and many tiles") {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
        for (size_t D : {8, 24, 40}) check_attention({spec_of("softmax"), D, 70}, p);
        for (const std::string& v :
             {std::string("softmax"), std::string("sigmoid"), std::string("elu-norm"), std::string("softpick")})
            check_attention({spec_of(v), 64, 600}, p);
    }
}

TEST_CASE("attention: alpha, window and prefix masks, key slots and position biases, fp32 and bf16") {
    auto with = [](const std::string& name, auto&& change) {
        AttentionSpec spec = parse_attention(name);
        change(spec);
        return spec;
    };
    const std::vector<AttentionSpec> specs = {
        with("softmax", [](AttentionSpec& s) { s.softmax_alpha = 0.5; }),
        with("softmax", [](AttentionSpec& s) { s.mask = MaskKind::window, s.window = 64; }),
        with("sigmoid-norm", [](AttentionSpec& s) { s.mask = MaskKind::window, s.window = 1; }),
        with("softmax", [](AttentionSpec& s) { s.mask = MaskKind::prefix, s.prefix = 100; }),
        with("elu", [](AttentionSpec& s) { s.mask = MaskKind::prefix, s.prefix = 5; }),
        with("softmax", [](AttentionSpec& s) { s.slot = SlotKind::key_value; }),
        with("softmax", [](AttentionSpec& s) { s.slot = SlotKind::key, s.slot_shared = true; }),
        with("sigmoid", [](AttentionSpec& s) { s.slot = SlotKind::sink_token; }),
        with("elu-norm", [](AttentionSpec& s) { s.slot = SlotKind::key_value, s.slot_shared = true; }),
        with("linear-kernel-norm", [](AttentionSpec& s) { s.slot = SlotKind::key_value; }),
        with("softmax", [](AttentionSpec& s) { s.slot = SlotKind::logit; }),
        with("softmax", [](AttentionSpec& s) { s.slot = SlotKind::zero_logit, s.softmax_alpha = 0.5; }),
        with("softmax",
             [](AttentionSpec& s) { s.slot = SlotKind::key_value, s.mask = MaskKind::window, s.window = 64; }),
        with("softmax", [](AttentionSpec& s) { s.position_bias = PositionBias::alibi; }),
        with("sigmoid-norm", [](AttentionSpec& s) { s.position_bias = PositionBias::t5; }),
        with("softpick", [](AttentionSpec& s) { s.mask = MaskKind::window, s.window = 64; }),
        with("softpick", [](AttentionSpec& s) { s.mask = MaskKind::prefix, s.prefix = 100; }),
        with("softpick", [](AttentionSpec& s) { s.position_bias = PositionBias::alibi; }),
    };
    for (Precision p : {Precision::fp32, Precision::bf16})
        for (const AttentionSpec& spec : specs) check_attention({spec, 64, 300}, p);
}

TEST_CASE("attention is bitwise deterministic") {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
        PrecisionScope scope(p);
        const size_t B = 2, H = 4, D = 96, T = 300, C = H * D;
        const AttentionSpec spec = parse_attention("softmax");
        const auto qkv = random_normal(B * T * 3 * C, 40), dout = random_normal(B * T * C, 41);
        DeviceBuffer<float> d_qkv(qkv), d_dout(dout), d_out(B * T * C), d_saved(B * H * T), d_z(B * H * T);
        std::vector<float> first;
        for (int run = 0; run < 2; run++) {
            DeviceBuffer<float> d_dqkv(B * T * 3 * C);
            CudaBackend::attention_forward(d_out.ptr, d_saved.ptr, d_z.ptr, nullptr, d_qkv.ptr, nullptr, nullptr, B, T,
                                           C, H, spec);
            CudaBackend::attention_backward(d_dqkv.ptr, nullptr, nullptr, d_dout.ptr, d_out.ptr, d_qkv.ptr, nullptr,
                                            nullptr, d_saved.ptr, d_z.ptr, nullptr, B, T, C, H, spec);
            auto result = d_out.host();
            const auto g = d_dqkv.host();
            result.insert(result.end(), g.begin(), g.end());
            if (run == 0)
                first = result;
            else
                CHECK(bitwise_equal(first, result));
        }
    }
}

TEST_CASE("attention: unaligned qkv (scalar loads) gives bitwise the aligned result") {
    for (Precision p : {Precision::fp32, Precision::bf16}) {
        PrecisionScope scope(p);
        const size_t B = 1, H = 2, D = 128, T = 150, C = H * D, n = B * T * 3 * C;
        const AttentionSpec spec = parse_attention("softmax");
        const auto qkv = random_normal(n, 50), dout = random_normal(B * T * C, 51);
        std::vector<float> shifted(n + 1, 0.0f);
        std::copy(qkv.begin(), qkv.end(), shifted.begin() + 1);
        DeviceBuffer<float> d_a(qkv), d_u(shifted), d_dout(dout);
        std::vector<float> results[2];
        for (int k = 0; k < 2; k++) {
            const float* q = k == 0 ? d_a.ptr : d_u.ptr + 1;
            DeviceBuffer<float> d_out(B * T * C), d_saved(B * H * T), d_z(B * H * T), d_dqkv(n);
            CudaBackend::attention_forward(d_out.ptr, d_saved.ptr, d_z.ptr, nullptr, q, nullptr, nullptr, B, T, C, H,
                                           spec);
            CudaBackend::attention_backward(d_dqkv.ptr, nullptr, nullptr, d_dout.ptr, d_out.ptr, q, nullptr, nullptr,
                                            d_saved.ptr, d_z.ptr, nullptr, B, T, C, H, spec);
            results[k] = d_out.host();
            const auto g = d_dqkv.host();
            results[k].insert(results[k].end(), g.begin(), g.end());
        }
        CHECK(bitwise_equal(results[0], results[1]));
    }
}

TEST_CASE("unsupported head dimension is a clear error") {
    const size_t B = 1, H = 1, D = 130, T = 4, C = H * D;
    DeviceBuffer<float> d_qkv(B * T * 3 * C), d_out(B * T * C), d_saved(B * H * T), d_z(B * H * T);
    CHECK_THROWS_AS(CudaBackend::attention_forward(d_out.ptr, d_saved.ptr, d_z.ptr, nullptr, d_qkv.ptr, nullptr,
                                                   nullptr, B, T, C, H, parse_attention("softmax")),
                    Error);
}

int main(int argc, char** argv) { return gpu_test::run("test_gpu_ops", argc, argv); }
