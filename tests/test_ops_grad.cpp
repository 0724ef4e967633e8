// Gradient checks (central finite differences in double) for every operation of the CPU backend
// (src/ops/ops.h, src/ops/matmul.h), accumulation (+=) semantics of every backward, forward known answers,
// and float-vs-double agreement.
//
// Bounds. Inputs are O(1) and L = sum(out * R) with R uniform in [-1, 1), so gradients are O(1).
// gradcheck.h's central difference (h = 1e-5, L in long double) is then accurate to ~5e-11 absolute,
// and its error err = |a-n| / max(|a|+|n|, 1e-3) is ~1e-11 .. 1e-8 for a correct backward pass. We
// require err < 1e-6 (relative 1e-6 for |grad| >= 1e-3, absolute 1e-9 below): a margin of about 100
// over the measured worst case, while any real mistake in a backward formula gives err >~ 1e-3.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "model/config.h"
#include "ops/matmul.h"
#include "ops/ops.h"

using namespace sinklab;
using gradcheck::describe;
using gradcheck::dot;
using gradcheck::random_vector;
using Vec = std::vector<double>;

namespace {

constexpr double kGradBound = 1e-6;    // max relative error of a gradient check (see above)
constexpr double kAccumBound = 1e-13;  // backward on a pre-filled buffer vs prefill + fresh gradient

// Small odd shapes: B=2, T=5, C=8, H=2 (D=4), V=7, F=5, matmul 10 x 8 -> 5.
constexpr size_t B = 2, Tn = 5, C = 8, H = 2, D = C / H, N = B * Tn, V = 7, F = 5;

void report(const std::string& what, const gradcheck::Result& r, double bound = kGradBound) {
    MESSAGE(describe(what, r));
    CHECK_MESSAGE(r.max_rel_err < bound, what);
}

// Backward must accumulate: run it on a zero buffer (-> G) and on a buffer pre-filled with random P
// (-> A); A must equal P + G up to the rounding of the additions. Returns the max relative difference.
template <typename Backward>
double accumulation_error(size_t n, Backward&& backward, std::mt19937_64& rng) {
    Vec fresh(n, 0.0);
    backward(fresh.data());
    const Vec prefill = random_vector(rng, n);
    Vec acc = prefill;
    backward(acc.data());
    double err = 0;
    for (size_t i = 0; i < n; i++) {
        const double want = prefill[i] + fresh[i];
        err = std::max(err, std::fabs(acc[i] - want) / std::max(std::fabs(want), 1.0));
    }
    return err;
}

void report_accumulation(const std::string& what, double err) {
    MESSAGE(what << ": backward on a pre-filled buffer vs prefill + gradient, max rel diff " << err);
    CHECK_MESSAGE(err < kAccumBound, what);
}

// The attention without a key slot (its pointers null), as most tests here run it.
//   saved, att_z: (B, H, T) what the forward keeps for the backward;
//   att: (B, H, T, T) the weights, written in the keep-maps mode (att not null); training passes null.
template <typename T>
void attention_forward_no_slot(T* out, T* saved, T* att_z, const T* qkv, size_t Bn, size_t Tq, size_t Cn, size_t Hn,
                               const AttentionSpec& spec, T* att = nullptr) {
    attention_forward(out, saved, att_z, nullptr, qkv, nullptr, nullptr, Bn, Tq, Cn, Hn, spec, att);
}
template <typename T>
void attention_backward_no_slot(T* dqkv, const T* dout, const T* qkv, const T* saved, const T* att_z, size_t Bn,
                                size_t Tq, size_t Cn, size_t Hn, const AttentionSpec& spec) {
    attention_backward(dqkv, nullptr, nullptr, dout, qkv, nullptr, nullptr, saved, att_z, nullptr, Bn, Tq, Cn, Hn, spec);
}

struct Variant {
    AttentionSpec s;
    std::string label() const { return s.describe(); }
    AttentionSpec spec() const { return s; }
};

// The named attention with its sigmoid bias, softmax alpha and mask.
Variant variant(const std::string& name, double bias = 0.0, double alpha = 1.0, MaskKind mask = MaskKind::causal,
                int size = 0) {
    AttentionSpec s = parse_attention(name);
    s.score_bias = bias;
    s.softmax_alpha = alpha;
    s.mask = mask;
    if (mask == MaskKind::window) s.window = size;
    if (mask == MaskKind::prefix) s.prefix = size;
    return {s};
}

Variant with_position(Variant v, PositionBias bias) {
    v.s.position_bias = bias;
    return v;
}

// Every score function and normaliser, the sigmoid bias, the softmax alpha, and the window and
// prefix masks (a window of 2 and a prefix of 3 at T = 5).
const std::vector<Variant>& all_variants() {
    static const std::vector<Variant> v = {
        variant("softmax"),
        variant("sigmoid"),
        variant("sigmoid-norm"),
        variant("elu"),
        variant("elu-norm"),
        variant("sigmoid", -1.5),
        variant("sigmoid-norm", -1.5),
        variant("softmax", 0.0, 0.5),
        variant("softmax", 0.0, 1.0, MaskKind::window, 2),
        variant("sigmoid-norm", 0.0, 1.0, MaskKind::window, 2),
        variant("elu", 0.0, 1.0, MaskKind::window, 2),
        variant("softmax", 0.0, 2.0, MaskKind::prefix, 3),
        variant("sigmoid", -1.5, 1.0, MaskKind::prefix, 3),
        variant("elu-norm", 0.0, 1.0, MaskKind::prefix, 3),
        variant("linear-kernel"),
        variant("linear-kernel-norm"),
        variant("linear-kernel-norm", 0.0, 1.0, MaskKind::window, 2),
        with_position(variant("softmax"), PositionBias::alibi),
        with_position(variant("sigmoid-norm", 0.0, 1.0, MaskKind::prefix, 3), PositionBias::alibi),
        with_position(variant("softmax"), PositionBias::t5),
        with_position(variant("elu", 0.0, 1.0, MaskKind::prefix, 3), PositionBias::t5),
        variant("softpick"),
        variant("softpick", 0.0, 1.0, MaskKind::window, 2),
        variant("softpick", 0.0, 1.0, MaskKind::prefix, 3),
        with_position(variant("softpick"), PositionBias::alibi),
        with_position(variant("softpick", 0.0, 1.0, MaskKind::window, 2), PositionBias::t5),
    };
    return v;
}

// Whether query i may attend to key j, written from the definitions (docs/attention.md, "Masks"),
// independently of attention_variant.h.
bool reference_allowed(const AttentionSpec& spec, size_t i, size_t j) {
    switch (spec.mask) {
        case MaskKind::window: return j <= i && j + size_t(spec.window) > i;
        case MaskKind::prefix: return j <= i || j < size_t(spec.prefix);
        case MaskKind::causal: break;
    }
    return j <= i;
}

// The position bias of docs/attention.md, written from its definitions: ALiBi m_h (j - i) with
// m_h = 2^(-8 (h + 1) / H); T5 the bucket of i - j from the log formula.
long double reference_position_bias(const AttentionSpec& spec, size_t h, size_t n_heads, size_t i, size_t j) {
    const long double distance = (long double)i - (long double)j;
    switch (spec.position_bias) {
        case PositionBias::alibi:
            return -std::pow(2.0L, -8.0L * (long double)(h + 1) / (long double)n_heads) * distance;
        case PositionBias::t5: {
            if (distance < 16) return distance < 0 ? 0.0L : distance;
            return std::min(31.0L, 16.0L + std::floor(std::log(distance / 16.0L) / std::log(8.0L) * 16.0L));
        }
        case PositionBias::none: break;
    }
    return 0.0L;
}

// An independent, straightforward evaluation of docs/attention.md for one (b, h, i) row, in long
// double: returns the unnormalised similarities g_ij for every key j (0 where i may not attend).
// Softpick (the exp score function) gets exp(s_ij); reference_softpick turns them into its terms.
std::vector<long double> reference_sims(const Vec& qkv, size_t b, size_t h, size_t i, size_t Tq, size_t Cq,
                                        size_t Hq, const AttentionSpec& spec) {
    const size_t Dq = Cq / Hq;
    std::vector<long double> s(Tq);
    for (size_t j = 0; j < Tq; j++) {
        long double dotqk = 0;
        for (size_t d = 0; d < Dq; d++)
            dotqk += (long double)qkv[(b * Tq + i) * 3 * Cq + h * Dq + d] *
                     (long double)qkv[(b * Tq + j) * 3 * Cq + Cq + h * Dq + d];
        s[j] = dotqk / std::sqrt((long double)Dq) + reference_position_bias(spec, h, Hq, i, j);
    }
    std::vector<long double> g(Tq, 0.0L);
    for (size_t j = 0; j < Tq; j++) {
        if (!reference_allowed(spec, i, j)) continue;
        switch (spec.score) {
            case ScoreFunction::exp:
                g[j] = std::exp(s[j]);
                break;
            case ScoreFunction::sigmoid:
                g[j] = 1.0L / (1.0L + std::exp(-(s[j] + (long double)spec.score_bias)));
                break;
            case ScoreFunction::elu:
                g[j] = s[j] > 0 ? s[j] + 1.0L : std::exp(s[j]);
                break;
            case ScoreFunction::identity:
                g[j] = s[j];
                break;
        }
    }
    return g;
}

// Softpick from its definition (docs/attention.md, "Softpick"), for a row of exp(s_ij) from
// reference_sims: the numerators relu(exp(s) - 1) replace g in place (0 where i may not attend),
// and the normaliser Z = sum_j |exp(s_ij) - 1| + 1e-6 over the allowed keys is returned.
long double reference_softpick(std::vector<long double>& g, const AttentionSpec& spec, size_t i) {
    long double z = 1e-6L;
    for (size_t j = 0; j < g.size(); j++) {
        if (!reference_allowed(spec, i, j)) continue;
        const long double a = g[j] - 1.0L;
        z += std::fabs(a);
        g[j] = a > 0 ? a : 0.0L;
    }
    return z;
}

// Calls run() under 1, 2 and 3 OpenMP threads (the count restored afterwards) and checks that each
// vector of floats it returns is bitwise the same every time.
template <class Run>
void check_same_bits_for_1_2_3_threads(const Run& run) {
    const int saved_threads = omp_get_max_threads();
    std::vector<std::vector<std::vector<float>>> results;
    for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        results.push_back(run());
    }
    omp_set_num_threads(saved_threads);
    for (size_t t = 1; t < results.size(); t++)
        for (size_t k = 0; k < results[0].size(); k++) {
            CAPTURE(k);
            CHECK(results[t][k] == results[0][k]);
        }
}

}  // namespace

// ================================================================================================
// Gradient checks
// ================================================================================================

TEST_CASE("gradcheck helper: accepts a right gradient, rejects a wrong one, samples with max_points") {
    std::mt19937_64 rng(100);
    Vec x = random_vector(rng, 50);
    auto loss = [&] {
        long double s = 0;
        for (double e : x) s += (long double)e * e * e;  // L = sum x^3,  dL/dx = 3 x^2
        return s;
    };
    Vec grad(x.size());
    for (size_t i = 0; i < x.size(); i++) grad[i] = 3 * x[i] * x[i];
    const Vec x_before = x;
    const auto good = gradcheck::check(x, grad, loss);
    CHECK(x == x_before);  // parameters restored bitwise
    CHECK(good.checked == 50);
    CHECK(good.max_rel_err < kGradBound);  // truncation h^2 f'''/6 = 1e-10 absolute here
    grad[17] *= 1.001;                     // one entry 0.1% off
    const auto bad = gradcheck::check(x, grad, loss);
    CHECK(bad.worst_index == 17);
    CHECK(bad.max_rel_err > 1e-4);
    gradcheck::Options opt;
    opt.max_points = 10;
    CHECK(gradcheck::check(x, grad, loss, opt).checked == 10);
    MESSAGE(describe("helper self-test, right gradient", good));
    MESSAGE(describe("helper self-test, one entry 0.1% off", bad));
}

TEST_CASE("gradcheck: embedding (dwte)") {
    std::mt19937_64 rng(101);
    const std::vector<int32_t> tokens = {3, 1, 3, 0, 6, 3, 1, 5, 0, 3};  // repeats; ids 2 and 4 unused
    Vec wte = random_vector(rng, V * C), R = random_vector(rng, N * C), out(N * C);
    auto loss = [&] {
        embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
        return dot(out, R);
    };
    Vec dwte(V * C, 0.0);
    embedding_backward(dwte.data(), R.data(), tokens.data(), N, C);
    report("embedding dwte", gradcheck::check(wte, dwte, loss));
    for (size_t c = 0; c < C; c++) CHECK(dwte[2 * C + c] == 0.0);  // unused rows get no gradient
    report_accumulation("embedding dwte",
                        accumulation_error(
                            V * C, [&](double* g) { embedding_backward(g, R.data(), tokens.data(), N, C); }, rng));
}

TEST_CASE("gradcheck: rmsnorm (dx, dweight)") {
    std::mt19937_64 rng(102);
    Vec x = random_vector(rng, N * C), w = random_vector(rng, C, 0.5, 1.5), R = random_vector(rng, N * C);
    Vec out(N * C), rstd(N);
    const double eps = 1e-5;
    auto loss = [&] {
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
        return dot(out, R);
    };
    loss();
    Vec dx(N * C, 0.0), dw(C, 0.0);
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
    report("rmsnorm dx", gradcheck::check(x, dx, loss));
    report("rmsnorm dweight", gradcheck::check(w, dw, loss));
    loss();  // restore rstd for x (check() restores x bitwise, so rstd is the same)
    Vec scratch(C, 0.0);
    report_accumulation("rmsnorm dx", accumulation_error(
                                          N * C,
                                          [&](double* g) {
                                              std::fill(scratch.begin(), scratch.end(), 0.0);
                                              rmsnorm_backward(g, scratch.data(), R.data(), x.data(), w.data(),
                                                               rstd.data(), N, C);
                                          },
                                          rng));
    Vec scratch_x(N * C, 0.0);
    report_accumulation("rmsnorm dweight", accumulation_error(
                                               C,
                                               [&](double* g) {
                                                   std::fill(scratch_x.begin(), scratch_x.end(), 0.0);
                                                   rmsnorm_backward(scratch_x.data(), g, R.data(), x.data(),
                                                                    w.data(), rstd.data(), N, C);
                                               },
                                               rng));
}

TEST_CASE("gradcheck: rmsnorm over groups (the head-wise norm), and each group is a plain rmsnorm") {
    std::mt19937_64 rng(117);
    Vec x = random_vector(rng, N * C), w = random_vector(rng, C, 0.5, 1.5), R = random_vector(rng, N * C);
    Vec out(N * C), rstd(N * H);
    const double eps = 1e-5;
    auto loss = [&] {
        rmsnorm_groups_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, H, eps);
        return dot(out, R);
    };
    loss();
    // known answer: group (n, h) equals the plain RMSNorm of its D values with gains w[h D, h D + D)
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < H; h++) {
            Vec one(D), one_rstd(1);
            rmsnorm_forward(one.data(), one_rstd.data(), x.data() + n * C + h * D, w.data() + h * D, size_t(1), D,
                            eps);
            CHECK(one_rstd[0] == rstd[n * H + h]);
            for (size_t d = 0; d < D; d++) CHECK(one[d] == out[n * C + h * D + d]);
        }
    Vec dx(N * C, 0.0), dw(C, 0.0);
    rmsnorm_groups_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C, H);
    report("rmsnorm groups dx", gradcheck::check(x, dx, loss));
    report("rmsnorm groups dweight", gradcheck::check(w, dw, loss));
}

TEST_CASE("gradcheck: rope (dqkv, v passed through)") {
    std::mt19937_64 rng(103);
    const size_t T_max = 8;
    Vec cos_t(T_max * D / 2), sin_t(T_max * D / 2);
    rope_table(cos_t.data(), sin_t.data(), T_max, D, 10000.0);
    Vec qkv = random_vector(rng, N * 3 * C), R = random_vector(rng, N * 3 * C), out(N * 3 * C);
    auto loss = [&] {
        rope_forward(out.data(), qkv.data(), cos_t.data(), sin_t.data(), B, Tn, C, H);
        return dot(out, R);
    };
    Vec dqkv(N * 3 * C, 0.0);
    rope_backward(dqkv.data(), R.data(), cos_t.data(), sin_t.data(), B, Tn, C, H);
    report("rope dqkv", gradcheck::check(qkv, dqkv, loss));
    // v is copied: its gradient is exactly dout.
    for (size_t n = 0; n < N; n++)
        for (size_t c = 2 * C; c < 3 * C; c++) CHECK(dqkv[n * 3 * C + c] == R[n * 3 * C + c]);
    report_accumulation(
        "rope dqkv",
        accumulation_error(
            N * 3 * C, [&](double* g) { rope_backward(g, R.data(), cos_t.data(), sin_t.data(), B, Tn, C, H); },
            rng));
}

TEST_CASE("gradcheck: matmul (dinp, dweight; dinp == nullptr)") {
    std::mt19937_64 rng(104);
    const size_t IC = 8, OC = 5;
    Vec inp = random_vector(rng, N * IC), w = random_vector(rng, OC * IC), R = random_vector(rng, N * OC);
    Vec out(N * OC);
    auto loss = [&] {
        matmul_forward(out.data(), inp.data(), w.data(), N, IC, OC);
        return dot(out, R);
    };
    Vec dinp(N * IC, 0.0), dw(OC * IC, 0.0);
    matmul_backward(dinp.data(), dw.data(), R.data(), inp.data(), w.data(), N, IC, OC);
    report("matmul dinp", gradcheck::check(inp, dinp, loss));
    report("matmul dweight", gradcheck::check(w, dw, loss));

    // dinp == nullptr: only dweight, identical to the full call.
    Vec dw_only(OC * IC, 0.0);
    matmul_backward<double>(nullptr, dw_only.data(), R.data(), inp.data(), w.data(), N, IC, OC);
    CHECK(dw_only == dw);
    report("matmul dweight (dinp = nullptr)", gradcheck::check(w, dw_only, loss));

    Vec scratch_w(OC * IC), scratch_i(N * IC);
    report_accumulation(
        "matmul dinp",
        accumulation_error(
            N * IC,
            [&](double* g) { matmul_backward(g, scratch_w.data(), R.data(), inp.data(), w.data(), N, IC, OC); },
            rng));
    report_accumulation(
        "matmul dweight",
        accumulation_error(
            OC * IC,
            [&](double* g) { matmul_backward(scratch_i.data(), g, R.data(), inp.data(), w.data(), N, IC, OC); },
            rng));
    report_accumulation(
        "matmul dweight (dinp = nullptr)",
        accumulation_error(
            OC * IC,
            [&](double* g) { matmul_backward<double>(nullptr, g, R.data(), inp.data(), w.data(), N, IC, OC); },
            rng));
}

TEST_CASE("gradcheck: attention, every variant (dqkv)") {
    for (const Variant& var : all_variants()) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(105);
        // q, k in [-1.5, 1.5): scores s = q.k / 2 spread over roughly [-2, 2], both signs (elu's two branches).
        Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5), R = random_vector(rng, N * C);
        Vec out(N * C), saved(B * H * Tn), att_z(B * H * Tn);
        auto loss = [&] {
            attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec);
            return dot(out, R);
        };
        loss();
        Vec dqkv(N * 3 * C, 0.0);
        attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), B, Tn, C, H, spec);
        report("attention " + var.label() + " dqkv", gradcheck::check(qkv, dqkv, loss));
        report_accumulation("attention " + var.label() + " dqkv", accumulation_error(
                                                                      N * 3 * C,
                                                                      [&](double* g) {
                                                                          attention_backward_no_slot(g, R.data(),
                                                                                                     qkv.data(),
                                                                                                     saved.data(),
                                                                                                     att_z.data(), B,
                                                                                                     Tn, C, H, spec);
                                                                      },
                                                                      rng));
    }
}

TEST_CASE("gradcheck: the max(|sum|, 1) normaliser through its three branches (sum > 1, |sum| <= 1, sum < -1)") {
    const AttentionSpec spec = parse_attention("linear-kernel-norm");
    std::mt19937_64 rng(109);
    // Wider inputs than above so that row sums cross 1 and -1 at T = 5.
    Vec qkv = random_vector(rng, N * 3 * C, -2.5, 2.5), R = random_vector(rng, N * C);
    Vec out(N * C), saved(B * H * Tn), att_z(B * H * Tn);
    auto loss = [&] {
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec);
        return dot(out, R);
    };
    loss();
    size_t above = 0, clamped = 0, below = 0;
    for (double z : att_z) (z > 1 ? above : z < -1 ? below : clamped)++;
    MESSAGE("rows with sum > 1: " << above << ", |sum| <= 1: " << clamped << ", sum < -1: " << below);
    CHECK(above > 0);
    CHECK(clamped > 0);
    CHECK(below > 0);
    Vec dqkv(N * 3 * C, 0.0);
    attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), B, Tn, C, H, spec);
    report("attention linear-kernel-norm (three branches) dqkv", gradcheck::check(qkv, dqkv, loss));
}

TEST_CASE("gradcheck: the identity score with the sum normaliser (elu-kernel-norm), on positive features") {
    // In the model, q and k reach the attention as elu(x) + 1 > 0, so every score and every row sum
    // is positive; with signed inputs the sum + 1e-8 could be near zero, which the variant never sees.
    const AttentionSpec spec = parse_attention("elu-kernel-norm");
    std::mt19937_64 rng(111);
    Vec qkv = random_vector(rng, N * 3 * C, 0.05, 2.0), R = random_vector(rng, N * C);
    Vec out(N * C), saved(B * H * Tn), att_z(B * H * Tn), att(B * H * Tn * Tn);
    auto loss = [&] {
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec);
        return dot(out, R);
    };
    attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t i = 0; i < Tn; i++) {
            double row = 0;
            for (size_t j = 0; j <= i; j++) row += att[(bh * Tn + i) * Tn + j];
            CHECK(row == doctest::Approx(1.0 - 1e-8 / att_z[bh * Tn + i]).epsilon(1e-14));  // rows sum to 1 - eps / Z
        }
    Vec dqkv(N * 3 * C, 0.0);
    attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), B, Tn, C, H, spec);
    report("attention elu-kernel-norm (positive features) dqkv", gradcheck::check(qkv, dqkv, loss));
}

TEST_CASE("gradcheck: activations (relu, elu + 1) and the qkv merge") {
    std::mt19937_64 rng(110);
    const size_t n = N * 3 * C;
    for (Activation f : {Activation::relu, Activation::elu_plus_one, Activation::gelu, Activation::silu}) {
        Vec x = random_vector(rng, n, -2.0, 2.0), R = random_vector(rng, n), out(n);
        auto loss = [&] {
            activation_forward(out.data(), x.data(), n, f);
            return dot(out, R);
        };
        Vec dx(n, 0.0);
        activation_backward(dx.data(), R.data(), x.data(), n, f);
        report("activation " + std::to_string(int(f)) + " dx",
               gradcheck::check(x, dx, loss));
        report_accumulation("activation dx", accumulation_error(
                                                 n, [&](double* g) { activation_backward(g, R.data(), x.data(), n, f); },
                                                 rng));
    }
    Vec a = random_vector(rng, n), v = random_vector(rng, n), R = random_vector(rng, n), out(n);
    auto loss = [&] {
        qkv_merge_forward(out.data(), a.data(), v.data(), N, C);
        return dot(out, R);
    };
    loss();
    for (size_t i = 0; i < n; i++) CHECK(out[i] == (i % (3 * C) < 2 * C ? a[i] : v[i]));
    Vec da(n, 0.0), dv(n, 0.0);
    qkv_merge_backward(da.data(), dv.data(), R.data(), N, C);
    report("qkv_merge dqk_src", gradcheck::check(a, da, loss));
    report("qkv_merge dv_src", gradcheck::check(v, dv, loss));
}

TEST_CASE("gradcheck: attention with window and prefix masks over several query blocks (dqkv)") {
    // T = 150 spans three of the CPU's query blocks (kAttentionQueryBlock = 64), so the blocks that
    // start after the window (keys from keys_seen(first row).begin) and the prefix's bidirectional
    // block are both exercised. One head of width 4 keeps the finite differences cheap.
    const size_t Bl = 1, Tl = 150, Cl = 4, Hl = 1, Nl = Bl * Tl;
    for (const Variant& var : {variant("softmax", 0.0, 1.0, MaskKind::window, 20),
                               variant("sigmoid-norm", 0.0, 1.0, MaskKind::window, 70),
                               variant("softmax", 0.0, 1.0, MaskKind::prefix, 70),
                               variant("elu", 0.0, 1.0, MaskKind::prefix, 100),
                               variant("softpick", 0.0, 1.0, MaskKind::window, 70),
                               variant("softpick", 0.0, 1.0, MaskKind::prefix, 70)}) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(107);
        Vec qkv = random_vector(rng, Nl * 3 * Cl, -1.5, 1.5), R = random_vector(rng, Nl * Cl);
        Vec out(Nl * Cl), att(Bl * Hl * Tl * Tl, 7.0), saved(Bl * Hl * Tl), att_z(Bl * Hl * Tl);
        auto loss = [&] {
            attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), Bl, Tl, Cl, Hl, spec);
            return dot(out, R);
        };
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), Bl, Tl, Cl, Hl, spec, att.data());
        size_t mask_errors = 0;  // softpick: a key it may see can still get 0 (a score <= 0)
        for (size_t i = 0; i < Tl; i++)
            for (size_t j = 0; j < Tl; j++)
                mask_errors += spec.is_softpick() ? (att[i * Tl + j] != 0.0 && !reference_allowed(spec, i, j))
                                                  : (att[i * Tl + j] != 0.0) != reference_allowed(spec, i, j);
        CHECK(mask_errors == 0);
        Vec dqkv(Nl * 3 * Cl, 0.0);
        attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), Bl, Tl, Cl, Hl, spec);
        report("attention T=150 " + var.label() + " dqkv", gradcheck::check(qkv, dqkv, loss));
    }
}

TEST_CASE("gradcheck: the recomputing backward over several query blocks: key slots, biases, every normaliser") {
    // T = 150 spans three query blocks of the CPU (kAttentionQueryBlock = 64), each with its own key
    // range [kb, ke); the backward recomputes every block's weights from the forward's per-row
    // statistics (saved, att_z), so each kind of statistic is checked here at that length: softmax's
    // LSE with a key slot and with the sink logit, a position bias with a window, softpick's log Z,
    // the sum normaliser's Z, and no normaliser. One head of width 4 keeps the differences cheap.
    const size_t Bl = 1, Tl = 150, Cl = 4, Hl = 1, Dl = 4, Nl = Bl * Tl;
    struct Case {
        Variant var;
        SlotKind slot;
    };
    const std::vector<Case> cases = {
        {variant("softmax", 0.0, 1.0, MaskKind::window, 70), SlotKind::key_value},
        {variant("softmax", 0.0, 0.5), SlotKind::logit},
        {variant("softmax", 0.0, 1.0, MaskKind::prefix, 70), SlotKind::zero_logit},
        {with_position(variant("softmax", 0.0, 1.0, MaskKind::window, 20), PositionBias::alibi), SlotKind::none},
        {with_position(variant("softpick"), PositionBias::t5), SlotKind::none},
        {variant("sigmoid-norm", 0.0, 1.0, MaskKind::prefix, 70), SlotKind::key},
        {variant("sigmoid", -1.5, 1.0, MaskKind::window, 70), SlotKind::key_value},
        {variant("elu"), SlotKind::none},
        {variant("linear-kernel-norm"), SlotKind::none},
    };
    for (const Case& c : cases) {
        AttentionSpec spec = c.var.spec();
        spec.slot = c.slot;
        CAPTURE(spec.describe());
        const size_t W = size_t(spec.slot_score_width(int(Dl)));
        const bool has_k = spec.has_slot_score_param(), has_v = spec.has_key_slot() && spec.has_slot_value();
        std::mt19937_64 rng(117);
        Vec qkv = random_vector(rng, Nl * 3 * Cl, -1.5, 1.5), R = random_vector(rng, Nl * Cl);
        Vec slot_k = random_vector(rng, W, -1.5, 1.5), slot_v = random_vector(rng, Dl, -1.5, 1.5);
        Vec out(Nl * Cl), saved(Bl * Hl * Tl), att_z(Bl * Hl * Tl), att_slot(Bl * Hl * Tl);
        auto loss = [&] {
            attention_forward(out.data(), saved.data(), att_z.data(), att_slot.data(), qkv.data(),
                              has_k ? slot_k.data() : nullptr, has_v ? slot_v.data() : nullptr, Bl, Tl, Cl, Hl, spec);
            return dot(out, R);
        };
        loss();
        Vec dqkv(Nl * 3 * Cl, 0.0), dk(W, 7.0), dv(Dl, 7.0);  // (B H = 1: the per-(b, h) gradients are the sums)
        attention_backward(dqkv.data(), has_k ? dk.data() : nullptr, has_v ? dv.data() : nullptr, R.data(), qkv.data(),
                           has_k ? slot_k.data() : nullptr, has_v ? slot_v.data() : nullptr, saved.data(), att_z.data(),
                           att_slot.data(), Bl, Tl, Cl, Hl, spec);
        report("attention T=150 " + spec.describe() + " dqkv", gradcheck::check(qkv, dqkv, loss));
        if (has_k) report("attention T=150 " + spec.describe() + " dk* / ds_h", gradcheck::check(slot_k, dk, loss));
        if (has_v) report("attention T=150 " + spec.describe() + " dv*", gradcheck::check(slot_v, dv, loss));
    }
}

TEST_CASE("attention forward: the keep-maps mode writes the maps and changes nothing else, bitwise") {
    // The maps (B, H, T, T) are written only when asked for (the sink analysis); out and what the
    // backward reads (saved, att_z, att_slot) must be the same bits either way. T = 150: three blocks.
    const size_t Bm = 2, Tm = 150, Cm = 16, Hm = 2, Dm = Cm / Hm, Nm = Bm * Tm;
    std::mt19937_64 rng(119);
    const auto qkv = random_vector<float>(rng, Nm * 3 * Cm, -1.5, 1.5);
    const auto slot_k = random_vector<float>(rng, Hm * Dm, -1.5, 1.5), slot_v = random_vector<float>(rng, Hm * Dm);
    std::vector<AttentionSpec> specs;
    for (const Variant& v : all_variants()) specs.push_back(v.spec());
    AttentionSpec slotted = variant("softmax", 0.0, 1.0, MaskKind::window, 70).spec();
    slotted.slot = SlotKind::key_value;
    specs.push_back(slotted);
    slotted = variant("sigmoid-norm").spec();
    slotted.slot = SlotKind::key;
    specs.push_back(slotted);
    for (const AttentionSpec& spec : specs) {
        CAPTURE(spec.describe());
        const float* k_star = spec.has_slot_score_param() ? slot_k.data() : nullptr;
        const float* v_star = spec.has_key_slot() && spec.has_slot_value() ? slot_v.data() : nullptr;
        auto run = [&](std::vector<float>* maps) {
            std::vector<std::vector<float>> r = {std::vector<float>(Nm * Cm), std::vector<float>(Bm * Hm * Tm),
                                                 std::vector<float>(Bm * Hm * Tm), std::vector<float>(Bm * Hm * Tm)};
            attention_forward(r[0].data(), r[1].data(), r[2].data(), r[3].data(), qkv.data(), k_star, v_star, Bm, Tm,
                              Cm, Hm, spec, maps ? maps->data() : nullptr);
            return r;
        };
        std::vector<float> maps(Bm * Hm * Tm * Tm, 123.0f);
        const auto plain = run(nullptr), with_maps = run(&maps);
        for (size_t k = 0; k < plain.size(); k++) CHECK(plain[k] == with_maps[k]);
        // the maps: exactly 0 outside the mask, and out_i = sum_j w_ij v_j (+ w_i* v*) from them
        const AttentionSpec shaped = for_shape(spec, int(Tm), int(Hm));
        size_t mask_errors = 0;
        double max_err = 0;
        for (size_t b = 0; b < Bm; b++)
            for (size_t h = 0; h < Hm; h++)
                for (size_t i = 0; i < Tm; i++) {
                    const float* w = maps.data() + ((b * Hm + h) * Tm + i) * Tm;
                    for (size_t j = 0; j < Tm; j++) mask_errors += w[j] != 0.0f && !key_visible(shaped, int(i), int(j));
                    for (size_t d = 0; d < Dm; d++) {  // relative to sum_j |w_ij v_j| (float rounding of the sum)
                        double o = v_star ? double(plain[3][(b * Hm + h) * Tm + i]) * v_star[h * Dm + d] : 0.0;
                        double scale = std::fabs(o);
                        for (size_t j = 0; j < Tm; j++) {
                            const double term = double(w[j]) * qkv[(b * Tm + j) * 3 * Cm + 2 * Cm + h * Dm + d];
                            o += term;
                            scale += std::fabs(term);
                        }
                        const double got = plain[0][(b * Tm + i) * Cm + h * Dm + d];
                        max_err = std::max(max_err, std::fabs(o - got) / std::max(scale, 1e-30));
                    }
                }
        CHECK(mask_errors == 0);
        CHECK(max_err < 2e-5);
    }
}

TEST_CASE("attention over several query blocks is bitwise independent of the thread count") {
    // The recomputing backward at T = 150 (three query blocks), with a window, a key slot and softpick.
    const size_t Bd = 2, Td = 150, Cd = 32, Hd = 4, Dd = Cd / Hd, Nd = Bd * Td;
    std::mt19937_64 rng(503);
    const auto qkv = random_vector<float>(rng, Nd * 3 * Cd, -1.5, 1.5), dout = random_vector<float>(rng, Nd * Cd);
    const auto slot_k = random_vector<float>(rng, Hd * Dd, -1.5, 1.5), slot_v = random_vector<float>(rng, Hd * Dd);
    std::vector<AttentionSpec> specs = {variant("softpick", 0.0, 1.0, MaskKind::window, 70).spec(),
                                        variant("sigmoid", -1.5, 1.0, MaskKind::prefix, 70).spec()};
    AttentionSpec slotted = variant("softmax", 0.0, 1.0, MaskKind::window, 70).spec();
    slotted.slot = SlotKind::key_value;
    specs.push_back(slotted);
    auto run = [&] {
        std::vector<std::vector<float>> r;
        for (const AttentionSpec& spec : specs) {
            const bool slot = spec.has_key_slot();
            std::vector<float> out(Nd * Cd), saved(Bd * Hd * Td), z(Bd * Hd * Td), w_slot(Bd * Hd * Td),
                dqkv(Nd * 3 * Cd, 0.f), dk(Bd * Hd * Dd), dv(Bd * Hd * Dd);
            attention_forward(out.data(), saved.data(), z.data(), w_slot.data(), qkv.data(),
                              slot ? slot_k.data() : nullptr, slot ? slot_v.data() : nullptr, Bd, Td, Cd, Hd, spec);
            attention_backward(dqkv.data(), dk.data(), dv.data(), dout.data(), qkv.data(),
                               slot ? slot_k.data() : nullptr, slot ? slot_v.data() : nullptr, saved.data(), z.data(),
                               w_slot.data(), Bd, Td, Cd, Hd, spec);
            for (auto* v : {&out, &saved, &z, &dqkv, &dk, &dv}) r.push_back(*v);
        }
        return r;
    };
    check_same_bits_for_1_2_3_threads(run);
}

TEST_CASE("gradcheck: glu (dfc) under each gate function: SwiGLU, GeGLU, ReGLU") {
    for (const Activation f : {Activation::silu, Activation::gelu, Activation::relu}) {
        CAPTURE(int(f));
        std::mt19937_64 rng(106);
        Vec fc = random_vector(rng, N * 2 * F, -3.0, 3.0), R = random_vector(rng, N * F), out(N * F);
        auto loss = [&] {
            glu_forward(out.data(), fc.data(), N, F, f);
            return dot(out, R);
        };
        Vec dfc(N * 2 * F, 0.0);
        glu_backward(dfc.data(), R.data(), fc.data(), N, F, f);
        report("glu dfc, activation " + std::to_string(int(f)), gradcheck::check(fc, dfc, loss));
        report_accumulation("glu dfc", accumulation_error(
                                           N * 2 * F, [&](double* g) { glu_backward(g, R.data(), fc.data(), N, F, f); },
                                           rng));
    }
}

TEST_CASE("activations: known values of gelu (erf form) and silu") {
    // gelu(x) = x Phi(x): Phi(0) = 1/2, Phi(1) = 0.841344746068543, Phi(-2) = 0.0227501319481792
    CHECK(activation_value<Activation::gelu, HostMath>(0.0) == 0.0);
    CHECK(activation_value<Activation::gelu, HostMath>(1.0) == doctest::Approx(0.841344746068543).epsilon(1e-14));
    CHECK(activation_value<Activation::gelu, HostMath>(-2.0) == doctest::Approx(-0.0455002638963584).epsilon(1e-13));
    // gelu'(0) = 1/2; silu(x) = x / (1 + e^-x), silu'(0) = 1/2
    CHECK(activation_derivative<Activation::gelu, HostMath>(0.0) == doctest::Approx(0.5).epsilon(1e-15));
    CHECK(activation_value<Activation::silu,
          HostMath>(2.0) == doctest::Approx(2.0 / (1.0 + std::exp(-2.0))).epsilon(1e-15));
    CHECK(activation_derivative<Activation::silu, HostMath>(0.0) == doctest::Approx(0.5).epsilon(1e-15));
}

TEST_CASE("gradcheck: crossentropy (dlogits; ignored target; in place)") {
    std::mt19937_64 rng(107);
    Vec logits = random_vector(rng, N * V, -2.0, 2.0), losses(N);
    const std::vector<int32_t> targets = {0, 6, 3, -1, 2, 2, 5, 1, 4, 6};  // row 3 ignored
    const double dloss = 1.0 / 9.0;                                        // mean over the 9 valid rows
    auto loss = [&] {
        crossentropy_forward(losses.data(), logits.data(), targets.data(), N, V);
        long double s = 0;
        for (double l : losses) s += l;
        return dloss * s;
    };
    loss();
    CHECK(losses[3] == 0.0);
    Vec dlogits(N * V, 0.0);
    crossentropy_backward(dlogits.data(), logits.data(), targets.data(), dloss, N, V);
    report("crossentropy dlogits", gradcheck::check(logits, dlogits, loss));
    for (size_t v = 0; v < V; v++) CHECK(dlogits[3 * V + v] == 0.0);  // ignored row: exactly zero
    // Each valid row of the gradient sums to 0 (softmax - one-hot).
    for (size_t n = 0; n < N; n++) {
        double s = 0;
        for (size_t v = 0; v < V; v++) s += dlogits[n * V + v];
        CHECK(std::fabs(s) < 1e-15);
    }
    // Documented as writing (=), not accumulating: a pre-filled buffer gives the same result.
    Vec prefilled = random_vector(rng, N * V);
    crossentropy_backward(prefilled.data(), logits.data(), targets.data(), dloss, N, V);
    CHECK(prefilled == dlogits);
    // In place: dlogits aliasing logits.
    Vec inplace = logits;
    crossentropy_backward(inplace.data(), inplace.data(), targets.data(), dloss, N, V);
    CHECK(inplace == dlogits);
    MESSAGE("crossentropy: ignored row gradient exactly 0; (=) semantics and in-place result bitwise equal");
}

TEST_CASE("gradcheck: residual_add (gradient flows unchanged to both inputs)") {
    std::mt19937_64 rng(108);
    const size_t n = N * C;
    Vec x = random_vector(rng, n), y = random_vector(rng, n), R = random_vector(rng, n), tmp(n);
    auto loss = [&] {
        tmp = x;
        residual_add(tmp.data(), y.data(), n);
        return dot(tmp, R);
    };
    // Backward of x += y is the identity for both x and y: dx = dy = dout = R.
    report("residual_add dx", gradcheck::check(x, R, loss));
    report("residual_add dy", gradcheck::check(y, R, loss));
    tmp = x;
    residual_add(tmp.data(), y.data(), n);
    for (size_t i = 0; i < n; i++) CHECK(tmp[i] == x[i] + y[i]);
}

// ================================================================================================
// Forward known answers
// ================================================================================================

TEST_CASE("attention forward: matches an independent evaluation of docs/attention.md, every variant") {
    for (const Variant& var : all_variants()) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(201);
        Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5);
        Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
        double max_err = 0;
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < Tn; i++) {
                    auto g = reference_sims(qkv, b, h, i, Tn, C, H, spec);
                    long double sum = 0;
                    for (auto e : g) sum += e;
                    // att_z as documented: the normaliser for normalised non-softmax variants, log Z for
                    // softpick, else 1.
                    long double z = 1;
                    if (spec.is_softpick()) {
                        z = reference_softpick(g, spec, i);
                        max_err = std::max(max_err, double(std::fabs(att_z[(b * H + h) * Tn + i] - std::log(z))));
                    } else if (spec.score == ScoreFunction::exp) {
                        CHECK(att_z[(b * H + h) * Tn + i] == 1.0);
                        z = sum / (long double)spec.softmax_alpha;
                    } else if (spec.normalizer == Normalizer::sum) {
                        z = sum + 1e-8L;
                        max_err = std::max(max_err, double(std::fabs(att_z[(b * H + h) * Tn + i] - z) / z));
                    } else if (spec.normalizer == Normalizer::abs_sum) {  // saved with the sign of the sum
                        const long double saved_z = std::fabs(sum) > 1 ? sum : 1.0L;
                        max_err = std::max(max_err, double(std::fabs(att_z[(b * H + h) * Tn + i] - saved_z)));
                        z = std::fabs(saved_z);
                    } else {
                        CHECK(att_z[(b * H + h) * Tn + i] == 1.0);
                    }
                    const double* w = att.data() + ((b * H + h) * Tn + i) * Tn;
                    // (softpick: absolute, as its weights are at most 1 and exp(s - m) - exp(-m) cancels
                    // near s = 0)
                    for (size_t j = 0; j < Tn; j++)
                        if (g[j] != 0)
                            max_err = std::max(max_err, double(std::fabs(w[j] - g[j] / z) /
                                                               (spec.is_softpick() ? 1.0L : std::fabs(g[j] / z))));
                    for (size_t d = 0; d < D; d++) {
                        long double o = 0, scale = 0;
                        for (size_t j = 0; j < Tn; j++) {
                            const long double vj = qkv[(b * Tn + j) * 3 * C + 2 * C + h * D + d];
                            o += g[j] / z * vj;
                            scale += std::fabs(g[j] / z * vj);
                        }
                        max_err =
                            std::max(max_err, double(std::fabs(out[(b * Tn + i) * C + h * D + d] - o) / scale));
                    }
                }
        MESSAGE("attention forward " << var.label() << " vs independent reference: max rel err " << max_err);
        CHECK(max_err < 1e-14);
    }
}

TEST_CASE("attention forward: masked entries are exactly 0, the others not, every variant and mask") {
    // (softpick: the allowed entries are 0 exactly where the score is <= 0)
    for (const Variant& var : all_variants()) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(202);
        Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5);
        // Fill att with garbage first: the mask must be written, not assumed.
        Vec out(N * C), att(B * H * Tn * Tn, 123.0), saved(B * H * Tn), att_z(B * H * Tn);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
        size_t bad = 0;
        for (size_t b = 0; b < B; b++)
            for (size_t h = 0; h < H; h++)
                for (size_t i = 0; i < Tn; i++) {
                    const auto g = reference_sims(qkv, b, h, i, Tn, C, H, spec);
                    for (size_t j = 0; j < Tn; j++) {
                        const bool nonzero = reference_allowed(spec, i, j) && (!spec.is_softpick() || g[j] > 1.0L);
                        bad += (att[((b * H + h) * Tn + i) * Tn + j] != 0.0) != nonzero;
                    }
                }
        CHECK(bad == 0);
    }
}

TEST_CASE("attention forward: all-equal keys give uniform softmax weights 1/(i+1)") {
    std::mt19937_64 rng(203);
    Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5);
    // Every position gets the same key (per batch row and head): k_j = k_0.
    for (size_t b = 0; b < B; b++)
        for (size_t t = 1; t < Tn; t++)
            for (size_t c = 0; c < C; c++) qkv[(b * Tn + t) * 3 * C + C + c] = qkv[(b * Tn) * 3 * C + C + c];
    Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn);
    attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H,
                              parse_attention("softmax"), att.data());
    double max_out_err = 0;
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < Tn; i++) {
                for (size_t j = 0; j <= i; j++) CHECK(att[((b * H + h) * Tn + i) * Tn + j] == 1.0 / double(i + 1));
                // out_i is the mean of v_0..v_i.
                for (size_t d = 0; d < D; d++) {
                    double mean = 0;
                    for (size_t j = 0; j <= i; j++) mean += qkv[(b * Tn + j) * 3 * C + 2 * C + h * D + d];
                    mean /= double(i + 1);
                    max_out_err = std::max(max_out_err, std::fabs(out[(b * Tn + i) * C + h * D + d] - mean));
                }
            }
    CHECK(max_out_err < 1e-15);
}

TEST_CASE("attention forward: sigmoid without normalisation and q = 0 gives sigmoid(bias)") {
    for (double bias : {0.0, -1.5, 2.0}) {
        CAPTURE(bias);
        std::mt19937_64 rng(204);
        Vec qkv = random_vector(rng, N * 3 * C);
        for (size_t n = 0; n < N; n++)
            for (size_t c = 0; c < C; c++) qkv[n * 3 * C + c] = 0.0;  // q = 0
        AttentionSpec spec = parse_attention("sigmoid");
        spec.score_bias = bias;
        Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
        const double want = 1.0 / (1.0 + std::exp(-bias));
        for (size_t bh = 0; bh < B * H; bh++)
            for (size_t i = 0; i < Tn; i++) {
                CHECK(att_z[bh * Tn + i] == 1.0);
                for (size_t j = 0; j <= i; j++) {
                    if (bias == 0.0)
                        CHECK(att[(bh * Tn + i) * Tn + j] == 0.5);  // exactly
                    else
                        CHECK(att[(bh * Tn + i) * Tn + j] == doctest::Approx(want).epsilon(1e-15));
                }
            }
        // out_i = sigmoid(b) * sum_{j<=i} v_j (no normalisation: grows with i).
        double max_err = 0;
        for (size_t b = 0; b < B; b++)
            for (size_t i = 0; i < Tn; i++)
                for (size_t c = 0; c < C; c++) {
                    double s = 0;
                    for (size_t j = 0; j <= i; j++) s += qkv[(b * Tn + j) * 3 * C + 2 * C + c];
                    max_err = std::max(max_err, std::fabs(out[(b * Tn + i) * C + c] - want * s));
                }
        CHECK(max_err < 1e-14);
    }
}

TEST_CASE("attention forward: att_z semantics") {
    // softmax and the un-normalised variants store Z = 1; the normalised sigmoid/elu variants store
    // Z_i = sum_j sim(i, j) + 1e-8, so that w * Z recovers sim and rows sum to 1 - 1e-8 / Z.
    for (const Variant& var : all_variants()) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(205);
        Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5);
        Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
        for (size_t bh = 0; bh < B * H; bh++)
            for (size_t i = 0; i < Tn; i++) {
                const double z = att_z[bh * Tn + i];
                double row = 0;
                for (size_t j = 0; j < Tn; j++) row += att[(bh * Tn + i) * Tn + j];
                // saved: the row statistic the backward recomputes the weights from
                const double row_stat = saved[bh * Tn + i];
                const auto g = reference_sims(qkv, bh / H, bh % H, i, Tn, C, H, spec);  // exp(s_ij) for exp, 0 if masked
                if (spec.is_softmax()) {  // LSE_i: the weights are exp(s_ij - LSE_i) = exp(s_ij) exp(-LSE_i)
                    for (size_t j = 0; j < Tn; j++)
                        CHECK(att[(bh * Tn + i) * Tn + j] ==
                              doctest::Approx(double(g[j] * std::exp((long double)-row_stat))).epsilon(1e-13));
                } else if (spec.is_softpick()) {  // m_i = max(max_j s_ij, 0)
                    long double m = 0;
                    for (size_t j = 0; j < Tn; j++)
                        if (reference_allowed(spec, i, j)) m = std::max(m, std::log(g[j]));
                    CHECK(row_stat == doctest::Approx(double(m)).epsilon(1e-13));
                } else {
                    CHECK(row_stat == 0.0);
                }
                if (spec.is_softpick()) {  // z = log Z >= log 1e-6; rows sum to at most one
                    CHECK(z >= std::log(kSoftpickEps));
                    CHECK(row >= 0.0);
                    CHECK(row <= 1.0 + 1e-14);
                } else if (spec.score == ScoreFunction::exp) {  // each row sums to alpha
                    CHECK(z == 1.0);
                    CHECK(row == doctest::Approx(spec.softmax_alpha).epsilon(1e-14));
                } else if (spec.normalizer == Normalizer::none) {
                    CHECK(z == 1.0);
                } else if (spec.normalizer == Normalizer::abs_sum) {  // rows sum to sign(sum), or to the sum
                    CHECK((z == 1.0 || std::fabs(z) > 1.0));
                    if (z == 1.0) CHECK(std::fabs(row) <= 1.0 + 1e-14);
                    else CHECK(row == doctest::Approx(z > 0 ? 1.0 : -1.0).epsilon(1e-14));
                } else {
                    CHECK(z > 1e-8);
                    CHECK(row == doctest::Approx(1.0 - 1e-8 / z).epsilon(1e-14));
                    CHECK(row * z + 1e-8 == doctest::Approx(z).epsilon(1e-14));  // z = sum sim + 1e-8
                }
            }
    }
}

TEST_CASE("rmsnorm forward: constant row") {
    const double eps = 1e-5;
    Vec w = {0.5, 1.0, 1.5, 2.0, -1.0, 0.25, 3.0, 1.0};
    for (double c : {1.0, -2.5, 0.0, 1e-3}) {
        CAPTURE(c);
        Vec x(C, c), out(C), rstd(1);
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), 1, C, eps);
        const double r = 1.0 / std::sqrt(c * c + eps);
        CHECK(rstd[0] == doctest::Approx(r).epsilon(1e-15));
        for (size_t k = 0; k < C; k++) CHECK(out[k] == doctest::Approx(c * r * w[k]).epsilon(1e-15));
    }
    // A large constant: out -> weight * sign(c) (rstd ~ 1/|c|).
    Vec x(C, 1e3), out(C), rstd(1);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), 1, C, eps);
    for (size_t k = 0; k < C; k++) CHECK(out[k] == doctest::Approx(w[k]).epsilon(1e-11));
}

TEST_CASE("rope forward: identity at position 0, norm-preserving everywhere, v copied") {
    const size_t T_max = 64, Tl = 64, Cl = 16, Hl = 2, Dl = Cl / Hl, Bl = 2;
    Vec cos_t(T_max * Dl / 2), sin_t(T_max * Dl / 2);
    rope_table(cos_t.data(), sin_t.data(), T_max, Dl, 10000.0);
    std::mt19937_64 rng(206);
    Vec qkv = random_vector(rng, Bl * Tl * 3 * Cl), out(Bl * Tl * 3 * Cl);
    rope_forward(out.data(), qkv.data(), cos_t.data(), sin_t.data(), Bl, Tl, Cl, Hl);
    double max_norm_err = 0;
    for (size_t b = 0; b < Bl; b++)
        for (size_t t = 0; t < Tl; t++) {
            const double* x = qkv.data() + (b * Tl + t) * 3 * Cl;
            const double* y = out.data() + (b * Tl + t) * 3 * Cl;
            if (t == 0)
                for (size_t c = 0; c < 3 * Cl; c++) CHECK(y[c] == x[c]);   // exactly the identity
            for (size_t c = 2 * Cl; c < 3 * Cl; c++) CHECK(y[c] == x[c]);  // v untouched
            // each rotated pair (i, i + D/2) keeps its norm, hence every head vector too
            for (size_t hh = 0; hh < 2 * Hl; hh++)
                for (size_t i = 0; i < Dl / 2; i++) {
                    const double a = x[hh * Dl + i], bb = x[hh * Dl + i + Dl / 2];
                    const double ya = y[hh * Dl + i], yb = y[hh * Dl + i + Dl / 2];
                    max_norm_err = std::max(max_norm_err, std::fabs((ya * ya + yb * yb) - (a * a + bb * bb)));
                }
        }
    MESSAGE("rope: max |norm^2 change| over positions 0..63 " << max_norm_err);
    CHECK(max_norm_err < 1e-14);
    // The table itself: angle[t, i] = t * base^(-2i/D).
    CHECK(cos_t[5 * Dl / 2 + 0] == doctest::Approx(std::cos(5.0)).epsilon(1e-15));
    CHECK(sin_t[7 * Dl / 2 + 1] == doctest::Approx(std::sin(7.0 * std::pow(10000.0, -2.0 / 8.0))).epsilon(1e-15));
    // Relative position: <R_t q, R_s k> depends only on t - s.
    {
        const double* q = qkv.data();       // q head 0 at some row
        const double* k = qkv.data() + Cl;  // k head 0
        auto rot = [&](const double* x, size_t t, double* y) {
            for (size_t i = 0; i < Dl / 2; i++) {
                const double c = cos_t[t * Dl / 2 + i], s = sin_t[t * Dl / 2 + i];
                y[i] = x[i] * c - x[i + Dl / 2] * s;
                y[i + Dl / 2] = x[i + Dl / 2] * c + x[i] * s;
            }
        };
        std::vector<double> a(Dl), bvec(Dl);
        auto dotp = [&](size_t t, size_t s) {
            rot(q, t, a.data());
            rot(k, s, bvec.data());
            double r = 0;
            for (size_t i = 0; i < Dl; i++) r += a[i] * bvec[i];
            return r;
        };
        CHECK(dotp(10, 3) == doctest::Approx(dotp(27, 20)).epsilon(1e-12));
    }
}

TEST_CASE("swiglu and crossentropy forward: known values") {
    // swiglu: out = silu(a) * u
    Vec fc = {0.0, 2.0, -1.0, /*up*/ 3.0, 0.5, -4.0}, out(3);
    glu_forward(out.data(), fc.data(), 1, 3, Activation::silu);
    CHECK(out[0] == 0.0);
    CHECK(out[1] == doctest::Approx(2.0 / (1.0 + std::exp(-2.0)) * 0.5).epsilon(1e-15));
    CHECK(out[2] == doctest::Approx(-1.0 / (1.0 + std::exp(1.0)) * -4.0).epsilon(1e-15));
    // crossentropy: uniform logits give log V whatever the target; large shifts are stable.
    Vec logits = {3.0, 3.0, 3.0, 3.0, 1000.0, 990.0, 990.0, 990.0}, losses(2);
    const std::vector<int32_t> targets = {2, 1};
    crossentropy_forward(losses.data(), logits.data(), targets.data(), 2, 4);
    CHECK(losses[0] == doctest::Approx(std::log(4.0)).epsilon(1e-15));
    CHECK(losses[1] == doctest::Approx(10.0 + std::log1p(3.0 * std::exp(-10.0))).epsilon(1e-14));
}

TEST_CASE("exp_float: within 2 ulp of exp on [-87.3, 88], exact at 0, 0 below the normal range") {
    // Every 1009th float of the range (about 2 million values, both signs, all binades), the last
    // one 88 itself. The floats are walked by their rank in increasing order: the bit pattern read as
    // sign and magnitude (-0 and +0 are both rank 0), so a step of 1009 ranks is 1009 nextafter calls
    // without making them (2 billion libm calls took 10 s natively and minutes under qemu-user).
    const auto rank = [](float f) {
        uint32_t bits;
        std::memcpy(&bits, &f, sizeof bits);
        const int64_t magnitude = int64_t(bits & 0x7fffffffu);
        return bits >> 31 ? -magnitude : magnitude;
    };
    const auto from_rank = [](int64_t r) {
        const uint32_t bits = r < 0 ? (0x80000000u | uint32_t(-r)) : uint32_t(r);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
    };
    double worst_ulp = 0;
    float worst_x = 0;
    size_t count = 0;
    const int64_t last = rank(88.0f);
    for (int64_t r = rank(-87.3f); r < last; r++) {
        r = std::min(r + 1008, last);
        const float x = from_rank(r);
        const double reference = std::exp(double(x));
        const double ulp = std::ldexp(1.0, std::ilogb(float(reference)) - 23);
        const double err = std::fabs(double(exp_float(x)) - reference) / ulp;
        if (err > worst_ulp) worst_ulp = err, worst_x = x;
        count++;
    }
    MESSAGE("exp_float: worst error " << worst_ulp << " ulp at x = " << worst_x << " over " << count << " points");
    CHECK(count > 1000000);
    CHECK(worst_ulp <= 2.0);
    CHECK(exp_float(0.0f) == 1.0f);
    CHECK(exp_float(1.0f) == doctest::Approx(std::exp(1.0)).epsilon(2e-7));
    CHECK(exp_float(-88.0f) == 0.0f);
    CHECK(exp_float(-1e30f) == 0.0f);
    CHECK(std::isfinite(exp_float(1e30f)));
    CHECK(std::isnan(exp_float(NAN)));
    // and vectorized (as the hot loops use it) it gives bitwise the scalar results
    std::vector<float> x(1000), y(1000);
    for (size_t i = 0; i < x.size(); i++) x[i] = -80.0f + 0.16f * float(i);
#pragma omp simd
    for (size_t i = 0; i < x.size(); i++) y[i] = exp_float(x[i]);
    size_t differ = 0;
    for (size_t i = 0; i < x.size(); i++) differ += y[i] != exp_float(x[i]);
    CHECK(differ == 0);
}

// ================================================================================================
// Float vs double
// ================================================================================================

TEST_CASE("attention float vs double: forward and backward agree to ~1e-4, every variant") {
    const size_t Bf = 2, Tf = 17, Cf = 32, Hf = 4, Nf = Bf * Tf;
    for (const Variant& var : all_variants()) {
        CAPTURE(var.label());
        const AttentionSpec spec = var.spec();
        std::mt19937_64 rng(301);
        const Vec qkv = random_vector(rng, Nf * 3 * Cf, -1.5, 1.5), R = random_vector(rng, Nf * Cf);
        const std::vector<float> qkv_f(qkv.begin(), qkv.end()), R_f(R.begin(), R.end());

        Vec out(Nf * Cf), att(Bf * Hf * Tf * Tf), saved(Bf * Hf * Tf), att_z(Bf * Hf * Tf), dqkv(Nf * 3 * Cf, 0.0);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), Bf, Tf, Cf, Hf, spec, att.data());
        attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), Bf, Tf, Cf, Hf, spec);

        std::vector<float> out_f(Nf * Cf), att_f(Bf * Hf * Tf * Tf), saved_f(Bf * Hf * Tf), att_z_f(Bf * Hf * Tf),
            dqkv_f(Nf * 3 * Cf, 0.f);
        attention_forward_no_slot(out_f.data(), saved_f.data(), att_z_f.data(), qkv_f.data(), Bf, Tf, Cf, Hf, spec,
                                  att_f.data());
        attention_backward_no_slot(dqkv_f.data(), R_f.data(), qkv_f.data(), saved_f.data(), att_z_f.data(), Bf, Tf, Cf,
                                   Hf, spec);

        const double e_out = gradcheck::normwise_rel_diff(out_f, out);
        const double e_att = gradcheck::normwise_rel_diff(att_f, att);
        const double e_z = gradcheck::normwise_rel_diff(att_z_f, att_z);
        const double e_d = gradcheck::normwise_rel_diff(dqkv_f, dqkv);
        MESSAGE("float vs double attention " << var.label() << ": out " << e_out << ", att " << e_att << ", att_z "
                                             << e_z << ", dqkv " << e_d << " (norm-wise rel)");
        CHECK(e_out < 1e-4);
        CHECK(e_att < 1e-4);
        CHECK(e_z < 1e-4);
        CHECK(e_d < 1e-4);
    }
}

TEST_CASE("swiglu and crossentropy float vs double: forward and backward agree to ~1e-6") {
    const size_t Nf = 19, Ff = 37, Vf = 300;
    std::mt19937_64 rng(303);
    const Vec fc = random_vector(rng, Nf * 2 * Ff, -6.0, 6.0), dout = random_vector(rng, Nf * Ff);
    const Vec logits = random_vector(rng, Nf * Vf, -8.0, 8.0);
    std::vector<int32_t> targets(Nf);
    for (size_t n = 0; n < Nf; n++) targets[n] = n == 3 ? -1 : int32_t((n * 31) % Vf);
    const std::vector<float> fc_f(fc.begin(), fc.end()), dout_f(dout.begin(), dout.end()),
        logits_f(logits.begin(), logits.end());
    const Vec fc_r(fc_f.begin(), fc_f.end()), dout_r(dout_f.begin(), dout_f.end()),
        logits_r(logits_f.begin(), logits_f.end());

    Vec out(Nf * Ff), dfc(Nf * 2 * Ff, 0.0), losses(Nf), dlogits(Nf * Vf);
    std::vector<float> out_f(Nf * Ff), dfc_f(Nf * 2 * Ff, 0.f), losses_f(Nf), dlogits_f(Nf * Vf);
    glu_forward(out.data(), fc_r.data(), Nf, Ff, Activation::silu);
    glu_forward(out_f.data(), fc_f.data(), Nf, Ff, Activation::silu);
    glu_backward(dfc.data(), dout_r.data(), fc_r.data(), Nf, Ff, Activation::silu);
    glu_backward(dfc_f.data(), dout_f.data(), fc_f.data(), Nf, Ff, Activation::silu);
    crossentropy_forward(losses.data(), logits_r.data(), targets.data(), Nf, Vf);
    crossentropy_forward(losses_f.data(), logits_f.data(), targets.data(), Nf, Vf);
    crossentropy_backward(dlogits.data(), logits_r.data(), targets.data(), 0.25, Nf, Vf);
    crossentropy_backward(dlogits_f.data(), logits_f.data(), targets.data(), 0.25f, Nf, Vf);
    const double e_out = gradcheck::normwise_rel_diff(out_f, out), e_dfc = gradcheck::normwise_rel_diff(dfc_f, dfc);
    const double e_loss = gradcheck::normwise_rel_diff(losses_f, losses),
                 e_dlogits = gradcheck::normwise_rel_diff(dlogits_f, dlogits);
    MESSAGE("float vs double: swiglu out " << e_out << ", dfc " << e_dfc << "; crossentropy loss " << e_loss
                                           << ", dlogits " << e_dlogits << " (norm-wise rel)");
    CHECK(e_out < 1e-6);
    CHECK(e_dfc < 1e-6);
    CHECK(e_loss < 1e-6);
    CHECK(e_dlogits < 1e-6);
    CHECK(losses_f[3] == 0.0f);
}

TEST_CASE("matmul float vs double: every element within the rounding bound of its dot product") {
    // The float path goes to gemm_f32 (to be replaced by a blocked SIMD kernel); the double path is
    // the reference loop. Odd shapes exercise the edges of any blocking. Bound per element:
    //   |c_f - c_d| <= 2 K u sum_k |a_k b_k| + (|prefill| u),  u = 2^-24   (any summation order).
    struct Shape {
        size_t n, ic, oc;
    };
    const Shape shapes[] = {{1, 1, 1}, {37, 29, 53}, {64, 64, 64}, {65, 17, 130}, {3, 257, 7}};
    const double u = std::ldexp(1.0, -24);
    for (const Shape& s : shapes) {
        CAPTURE(s.n);
        CAPTURE(s.ic);
        CAPTURE(s.oc);
        std::mt19937_64 rng(302);
        const Vec inp = random_vector(rng, s.n * s.ic), w = random_vector(rng, s.oc * s.ic),
                  dout = random_vector(rng, s.n * s.oc), pre_i = random_vector(rng, s.n * s.ic),
                  pre_w = random_vector(rng, s.oc * s.ic);
        const std::vector<float> inp_f(inp.begin(), inp.end()), w_f(w.begin(), w.end()),
            dout_f(dout.begin(), dout.end());
        // inputs rounded to float, so that the comparison measures only the arithmetic
        const Vec inp_r(inp_f.begin(), inp_f.end()), w_r(w_f.begin(), w_f.end()),
            dout_r(dout_f.begin(), dout_f.end());

        Vec out(s.n * s.oc);
        std::vector<float> out_f(s.n * s.oc, 7.f);
        matmul_forward(out.data(), inp_r.data(), w_r.data(), s.n, s.ic, s.oc);
        matmul_forward(out_f.data(), inp_f.data(), w_f.data(), s.n, s.ic, s.oc);
        size_t bad = 0;
        for (size_t n = 0; n < s.n; n++)
            for (size_t o = 0; o < s.oc; o++) {
                double mag = 0;
                for (size_t k = 0; k < s.ic; k++) mag += std::fabs(inp_r[n * s.ic + k] * w_r[o * s.ic + k]);
                bad += std::fabs(out_f[n * s.oc + o] - out[n * s.oc + o]) > 2.0 * double(s.ic) * u * mag + 1e-30;
            }
        CHECK(bad == 0);

        // backward, accumulating onto float-representable prefills
        const std::vector<float> pre_i_f(pre_i.begin(), pre_i.end()), pre_w_f(pre_w.begin(), pre_w.end());
        Vec di(pre_i_f.begin(), pre_i_f.end()), dw(pre_w_f.begin(), pre_w_f.end());
        std::vector<float> di_f = pre_i_f, dw_f = pre_w_f;
        matmul_backward(di.data(), dw.data(), dout_r.data(), inp_r.data(), w_r.data(), s.n, s.ic, s.oc);
        matmul_backward(di_f.data(), dw_f.data(), dout_f.data(), inp_f.data(), w_f.data(), s.n, s.ic, s.oc);
        bad = 0;
        for (size_t n = 0; n < s.n; n++)
            for (size_t i = 0; i < s.ic; i++) {
                double mag = std::fabs(pre_i_f[n * s.ic + i]);
                for (size_t o = 0; o < s.oc; o++) mag += std::fabs(dout_r[n * s.oc + o] * w_r[o * s.ic + i]);
                bad += std::fabs(di_f[n * s.ic + i] - di[n * s.ic + i]) > 2.0 * double(s.oc + 1) * u * mag + 1e-30;
            }
        for (size_t o = 0; o < s.oc; o++)
            for (size_t i = 0; i < s.ic; i++) {
                double mag = std::fabs(pre_w_f[o * s.ic + i]);
                for (size_t n = 0; n < s.n; n++) mag += std::fabs(dout_r[n * s.oc + o] * inp_r[n * s.ic + i]);
                bad += std::fabs(dw_f[o * s.ic + i] - dw[o * s.ic + i]) > 2.0 * double(s.n + 1) * u * mag + 1e-30;
            }
        CHECK(bad == 0);
    }
}

// ================================================================================================
// Determinism: the backward passes that reduce over rows (dwte, dweight, dk/dv) are documented to
// sum in a fixed order, so float results must be bitwise the same for any thread count.
// ================================================================================================

TEST_CASE("float backward passes are bitwise independent of the thread count") {
    const size_t Bd = 2, Td = 33, Cd = 64, Hd = 4, Nd = Bd * Td, Vd = 11, OCd = 48;
    std::mt19937_64 rng(501);
    const auto qkv = random_vector<float>(rng, Nd * 3 * Cd, -1.5, 1.5);
    const auto dout = random_vector<float>(rng, Nd * Cd);
    const auto x = random_vector<float>(rng, Nd * Cd), w = random_vector<float>(rng, Cd, 0.5, 1.5);
    const auto wl = random_vector<float>(rng, OCd * Cd), dout_l = random_vector<float>(rng, Nd * OCd);
    std::vector<int32_t> tokens(Nd);
    for (size_t n = 0; n < Nd; n++) tokens[n] = int32_t((n * 7) % Vd);

    auto run = [&] {
        std::vector<std::vector<float>> r;
        for (const char* name : {"softmax", "sigmoid-norm"}) {
            const AttentionSpec spec = parse_attention(name);
            std::vector<float> out(Nd * Cd), saved(Bd * Hd * Td), z(Bd * Hd * Td), dqkv(Nd * 3 * Cd, 0.f);
            attention_forward_no_slot(out.data(), saved.data(), z.data(), qkv.data(), Bd, Td, Cd, Hd, spec);
            attention_backward_no_slot(dqkv.data(), dout.data(), qkv.data(), saved.data(), z.data(), Bd, Td, Cd, Hd,
                                       spec);
            r.push_back(out);
            r.push_back(dqkv);
        }
        std::vector<float> dwte(Vd * Cd, 0.f);
        embedding_backward(dwte.data(), dout.data(), tokens.data(), Nd, Cd);
        r.push_back(dwte);
        std::vector<float> y(Nd * Cd), rstd(Nd), dx(Nd * Cd, 0.f), dw(Cd, 0.f);
        rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), Nd, Cd, 1e-5f);
        rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), Nd, Cd);
        r.push_back(dx);
        r.push_back(dw);
        std::vector<float> o(Nd * OCd), di(Nd * Cd, 0.f), dwl(OCd * Cd, 0.f);
        matmul_forward(o.data(), x.data(), wl.data(), Nd, Cd, OCd);
        matmul_backward(di.data(), dwl.data(), dout_l.data(), x.data(), wl.data(), Nd, Cd, OCd);
        r.push_back(o);
        r.push_back(di);
        r.push_back(dwl);
        return r;
    };
    check_same_bits_for_1_2_3_threads(run);
}

TEST_CASE("gradcheck: attention with a key slot (dqkv, dk*, dv*), per head and shared") {
    // The slot joins every row as one more key (docs/attention.md, "Extra key/value slots"). The
    // per-(b, h) gradients of k* and v* are summed by bias_add_backward, as the model does.
    struct Case {
        Variant var;
        SlotKind slot;
        bool shared;
    };
    const std::vector<Case> cases = {
        {variant("softmax"), SlotKind::key, false},
        {variant("softmax"), SlotKind::key_value, false},
        {variant("softmax"), SlotKind::key_value, true},
        {variant("softmax", 0.0, 0.5), SlotKind::sink_token, false},
        {variant("sigmoid", -1.5), SlotKind::key_value, false},
        {variant("sigmoid-norm"), SlotKind::key_value, true},
        {variant("elu"), SlotKind::key_value, false},
        {variant("elu-norm"), SlotKind::key, false},
        {variant("linear-kernel"), SlotKind::key_value, false},
        {variant("linear-kernel-norm"), SlotKind::key_value, false},
        {variant("softmax", 0.0, 1.0, MaskKind::window, 2), SlotKind::key_value, false},
        {variant("sigmoid-norm", 0.0, 1.0, MaskKind::prefix, 3), SlotKind::key, true},
        {variant("softmax"), SlotKind::logit, false},
        {variant("softmax"), SlotKind::logit, true},
        {variant("softmax", 0.0, 0.5), SlotKind::zero_logit, false},
        {variant("softmax", 0.0, 1.0, MaskKind::window, 2), SlotKind::logit, false},
    };
    for (const Case& c : cases) {
        AttentionSpec spec = c.var.spec();
        spec.slot = c.slot;
        spec.slot_shared = c.shared;
        CAPTURE(spec.describe());
        // k* (W = D), or the learned sink logit (W = 1); off-by-one has no parameter
        const size_t S = size_t(spec.slot_heads(int(H))), W = size_t(spec.slot_score_width(int(D)));
        std::mt19937_64 rng(113);
        Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5), R = random_vector(rng, N * C);
        Vec slot_k = random_vector(rng, S * W, -1.5, 1.5), slot_v = random_vector(rng, S * D, -1.5, 1.5);
        const bool has_v = spec.has_slot_value(), has_k = spec.has_slot_score_param();
        Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn), att_slot(B * H * Tn);
        auto loss = [&] {
            attention_forward(out.data(), saved.data(), att_z.data(), att_slot.data(), qkv.data(),
                              has_k ? slot_k.data() : nullptr, has_v ? slot_v.data() : nullptr, B, Tn, C, H, spec);
            return dot(out, R);
        };
        attention_forward(out.data(), saved.data(), att_z.data(), att_slot.data(), qkv.data(),
                          has_k ? slot_k.data() : nullptr, has_v ? slot_v.data() : nullptr, B, Tn, C, H, spec,
                          att.data());
        // The slot's weight is part of each row: softmax rows (slot included) sum to alpha.
        if (spec.is_softmax())
            for (size_t bh = 0; bh < B * H; bh++)
                for (size_t i = 0; i < Tn; i++) {
                    double row = att_slot[bh * Tn + i];
                    for (size_t j = 0; j < Tn; j++) row += att[(bh * Tn + i) * Tn + j];
                    CHECK(row == doctest::Approx(spec.softmax_alpha).epsilon(1e-14));
                    CHECK(att_slot[bh * Tn + i] > 0.0);
                }
        Vec dqkv(N * 3 * C, 0.0), partial_k(B * H * W, 7.0), partial_v(B * H * D, 7.0);
        attention_backward(dqkv.data(), has_k ? partial_k.data() : nullptr, has_v ? partial_v.data() : nullptr,
                           R.data(), qkv.data(), has_k ? slot_k.data() : nullptr, has_v ? slot_v.data() : nullptr,
                           saved.data(), att_z.data(), att_slot.data(), B, Tn, C, H, spec);
        Vec dk(S * W, 0.0), dv(S * D, 0.0);
        bias_add_backward(dk.data(), partial_k.data(), B * H / S, S * W);
        bias_add_backward(dv.data(), partial_v.data(), B * H / S, S * D);
        report("attention with slot, " + spec.describe() + ": dqkv", gradcheck::check(qkv, dqkv, loss));
        if (has_k) report("attention with slot, " + spec.describe() + ": dk* / ds_h", gradcheck::check(slot_k, dk, loss));
        if (has_v) report("attention with slot, " + spec.describe() + ": dv*", gradcheck::check(slot_v, dv, loss));
    }
}

TEST_CASE("softpick, known answers: a row by hand, a row of negative scores, scores that overflow exp") {
    // One head of D = 4 (scale 1/2), T = 3, causal; q_i = (2, 0, 0, 0) and k_j = (x_j, 0, 0, 0), so
    // that s_ij = x_j for every query; v_j = e_j, so that out_i = (w_i0, w_i1, w_i2, 0).
    const size_t Tk = 3, Ck = 4;
    const AttentionSpec spec = parse_attention("softpick");
    auto run = [&](const std::array<double, 3>& x, Vec& att, Vec& att_z, Vec& out) {
        Vec qkv(Tk * 3 * Ck, 0.0);
        for (size_t t = 0; t < Tk; t++) {
            qkv[t * 3 * Ck] = 2.0;
            qkv[t * 3 * Ck + Ck] = x[t];
            qkv[t * 3 * Ck + 2 * Ck + t] = 1.0;
        }
        att.assign(Tk * Tk, 7.0);
        att_z.assign(Tk, 7.0);
        out.assign(Tk * Ck, 7.0);
        Vec saved(Tk, 7.0);
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), 1, Tk, Ck, 1, spec, att.data());
        for (size_t i = 0; i < Tk; i++)
            for (size_t d = 0; d < Ck; d++) CHECK(out[i * Ck + d] == doctest::Approx(d < Tk ? att[i * Tk + d] : 0.0));
        // and a backward that stays finite
        Vec dqkv(Tk * 3 * Ck, 0.0), dout(Tk * Ck, 1.0);
        attention_backward_no_slot(dqkv.data(), dout.data(), qkv.data(), saved.data(), att_z.data(), 1, Tk, Ck, 1, spec);
        for (double g : dqkv) CHECK(std::isfinite(g));
    };
    const double eps = 1e-6;
    Vec att, att_z, out;
    {  // exp(x) = 3, 1/2, 2: exp(x) - 1 = 2, -1/2, 1
        run({std::log(3.0), std::log(0.5), std::log(2.0)}, att, att_z, out);
        const double z0 = 2 + eps, z1 = 2.5 + eps, z2 = 3.5 + eps;
        const double want[3][3] = {{2 / z0, 0, 0}, {2 / z1, 0, 0}, {2 / z2, 0, 1 / z2}};
        for (size_t i = 0; i < Tk; i++)
            for (size_t j = 0; j < Tk; j++) CHECK(att[i * Tk + j] == doctest::Approx(want[i][j]).epsilon(1e-14));
        CHECK(att[1 * Tk + 1] == 0.0);  // exactly: a negative score
        CHECK(att[2 * Tk + 1] == 0.0);
        CHECK(att_z[0] == doctest::Approx(std::log(z0)).epsilon(1e-14));
        CHECK(att_z[1] == doctest::Approx(std::log(z1)).epsilon(1e-14));
        CHECK(att_z[2] == doctest::Approx(std::log(z2)).epsilon(1e-14));
    }
    {  // every score below 0: every numerator is 0, the rows and outputs are exactly 0
        run({-1.0, -2.0, -3.0}, att, att_z, out);
        for (double w : att) CHECK(w == 0.0);
        for (double o : out) CHECK(o == 0.0);
        const double z2 = (1 - std::exp(-1.0)) + (1 - std::exp(-2.0)) + (1 - std::exp(-3.0)) + eps;
        CHECK(att_z[2] == doctest::Approx(std::log(z2)).epsilon(1e-14));
    }
    {  // exp(1000) overflows even in double; stabilised, w = (1, e^-1) / (1 + e^-1), and 0 for -5
        run({1000.0, 999.0, -5.0}, att, att_z, out);
        const double e1 = std::exp(-1.0);
        CHECK(att[0] == doctest::Approx(1.0).epsilon(1e-14));
        CHECK(att[2 * Tk + 0] == doctest::Approx(1.0 / (1.0 + e1)).epsilon(1e-14));
        CHECK(att[2 * Tk + 1] == doctest::Approx(e1 / (1.0 + e1)).epsilon(1e-14));
        CHECK(att[2 * Tk + 2] == 0.0);
        CHECK(att_z[2] == doctest::Approx(1000.0 + std::log(1.0 + e1)).epsilon(1e-14));
    }
    {  // the same in float: no overflow either
        std::vector<float> qkv(Tk * 3 * Ck, 0.0f), attf(Tk * Tk), savedf(Tk), zf(Tk), outf(Tk * Ck),
            dq(Tk * 3 * Ck, 0.0f), dout(Tk * Ck, 1.0f);
        const float x[3] = {200.0f, 199.0f, -5.0f};
        for (size_t t = 0; t < Tk; t++) {
            qkv[t * 3 * Ck] = 2.0f;
            qkv[t * 3 * Ck + Ck] = x[t];
            qkv[t * 3 * Ck + 2 * Ck + t] = 1.0f;
        }
        attention_forward_no_slot(outf.data(), savedf.data(), zf.data(), qkv.data(), 1, Tk, Ck, 1, spec, attf.data());
        attention_backward_no_slot(dq.data(), dout.data(), qkv.data(), savedf.data(), zf.data(), 1, Tk, Ck, 1, spec);
        CHECK(attf[2 * Tk + 0] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
        for (float g : dq) CHECK(std::isfinite(g));
    }
}

TEST_CASE("gradcheck: softpick on large scores and on a row of negative scores (dqkv)") {
    // Scores spread over roughly [-40, 40] (q, k in [-9, 9), D = 4): most rows have a maximum far
    // above 0, where exp(s) alone would lose everything but the largest terms to rounding; and
    // a run where every q is negated against positive keys, so that whole rows are negative.
    const AttentionSpec spec = parse_attention("softpick");
    for (int kind = 0; kind < 2; kind++) {
        CAPTURE(kind);
        std::mt19937_64 rng(108 + kind);
        Vec qkv = random_vector(rng, N * 3 * C, kind == 0 ? -9.0 : 0.2, kind == 0 ? 9.0 : 1.0),
            R = random_vector(rng, N * C);
        if (kind == 1)
            for (size_t n = 0; n < N; n++)
                for (size_t c = 0; c < C; c++) qkv[n * 3 * C + c] = -qkv[n * 3 * C + c];
        Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn);
        auto loss = [&] {
            attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec);
            return dot(out, R);
        };
        attention_forward_no_slot(out.data(), saved.data(), att_z.data(), qkv.data(), B, Tn, C, H, spec, att.data());
        if (kind == 1)
            for (double w : att) CHECK(w == 0.0);
        Vec dqkv(N * 3 * C, 0.0);
        attention_backward_no_slot(dqkv.data(), R.data(), qkv.data(), saved.data(), att_z.data(), B, Tn, C, H, spec);
        report(std::string("attention softpick ") + (kind == 0 ? "large scores" : "negative rows") + " dqkv",
               gradcheck::check(qkv, dqkv, loss));
    }
}

TEST_CASE("sink logits, known answers: off-by-one softmax and a learned logit on equal scores") {
    // q = 0: every score is 0, so row i (i + 1 keys) of the off-by-one softmax gives each key and the
    // slot exp(0) / (1 + (i + 1)) = 1 / (i + 2); a learned logit s gives the slot e^s / (e^s + i + 1).
    std::mt19937_64 rng(115);
    Vec qkv = random_vector(rng, N * 3 * C, -1.5, 1.5);
    for (size_t t = 0; t < N; t++)
        for (size_t c = 0; c < C; c++) qkv[t * 3 * C + c] = 0.0;  // q = 0
    Vec out(N * C), att(B * H * Tn * Tn), saved(B * H * Tn), att_z(B * H * Tn), att_slot(B * H * Tn);
    AttentionSpec spec = parse_attention("softmax");
    spec.slot = SlotKind::zero_logit;
    attention_forward(out.data(), saved.data(), att_z.data(), att_slot.data(), qkv.data(), nullptr, nullptr, B, Tn, C, H,
                      spec, att.data());
    for (size_t bh = 0; bh < B * H; bh++)
        for (size_t i = 0; i < Tn; i++) {
            CHECK(att_slot[bh * Tn + i] == doctest::Approx(1.0 / double(i + 2)).epsilon(1e-15));
            for (size_t j = 0; j <= i; j++) CHECK(att[(bh * Tn + i) * Tn + j] == doctest::Approx(1.0 / double(i + 2)).epsilon(1e-15));
        }
    spec.slot = SlotKind::logit;
    const Vec logits = {0.7, -1.2};  // one per head
    attention_forward(out.data(), saved.data(), att_z.data(), att_slot.data(), qkv.data(), logits.data(), nullptr, B, Tn,
                      C, H, spec, att.data());
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++)
            for (size_t i = 0; i < Tn; i++) {
                const double e = std::exp(logits[h]);
                CHECK(att_slot[(b * H + h) * Tn + i] == doctest::Approx(e / (e + double(i + 1))).epsilon(1e-14));
            }
}

TEST_CASE("gradcheck: bias add (dx, dbias), and a bias that only shifts the output") {
    std::mt19937_64 rng(114);
    const size_t rows = 6, n = 5;
    Vec x0 = random_vector(rng, rows * n), bias = random_vector(rng, n), R = random_vector(rng, rows * n), x(rows * n);
    auto loss = [&] {
        x = x0;
        bias_add_forward(x.data(), bias.data(), rows, n);
        return dot(x, R);
    };
    loss();
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < n; c++) CHECK(x[r * n + c] == x0[r * n + c] + bias[c]);
    Vec dbias(n, 0.0);
    bias_add_backward(dbias.data(), R.data(), rows, n);
    report("bias_add dbias", gradcheck::check(bias, dbias, loss));
    report_accumulation("bias_add dbias", accumulation_error(
                                              n, [&](double* g) { bias_add_backward(g, R.data(), rows, n); }, rng));
}

TEST_CASE("position biases: T5 buckets and ALiBi slopes, known answers") {
    // T5's unidirectional buckets (32, max distance 128), from the thresholds of attention_variant.h
    CHECK(t5_bucket(0) == 0);
    CHECK(t5_bucket(15) == 15);
    CHECK(t5_bucket(16) == 16);
    CHECK(t5_bucket(127) == 31);
    CHECK(t5_bucket(128) == 31);
    CHECK(t5_bucket(1000) == 31);
    CHECK(t5_bucket(-3) == 0);
    // ... equal to the formula 16 + floor(log(n / 16) / log(8) * 16), at most 31, for every n
    size_t mismatches = 0;
    for (int n = 16; n < 5000; n++) {
        const int formula = std::min(31, 16 + int(std::log(double(n) / 16.0) / std::log(8.0) * 16.0));
        mismatches += t5_bucket(n) != formula;
    }
    CHECK(mismatches == 0);
    // ALiBi: m_h = 2^(-8 (h + 1) / H): H = 8 gives 1/2 .. 1/256, H = 4 gives 1/4, 1/16, 1/64, 1/256
    AttentionSpec spec = parse_attention("softmax");
    spec.position_bias = PositionBias::alibi;
    for (int H : {4, 8}) {
        const AttentionSpec shaped = for_shape(spec, 16, H);
        for (int h = 0; h < H; h++)
            CHECK(alibi_slope<double>(shaped, h) == doctest::Approx(std::pow(2.0, -8.0 * (h + 1) / H)).epsilon(1e-15));
        CHECK(score_bias<double>(shaped, 1, 5, 2) == doctest::Approx(-3.0 * std::pow(2.0, -16.0 / H)).epsilon(1e-15));
    }
    // H = 3: a slope between powers of two, 2^(-8/3)
    CHECK(alibi_slope<double>(for_shape(spec, 16, 3), 0) == doctest::Approx(std::pow(2.0, -8.0 / 3.0)).epsilon(1e-14));
}

TEST_CASE("sinusoidal positions: known values of the table") {
    const size_t T_max = 5, C = 8;
    Vec table(T_max * C);
    sinusoidal_table(table.data(), T_max, C);
    for (size_t i = 0; i < C / 2; i++) {
        CHECK(table[i] == 0.0);           // sin(0)
        CHECK(table[C / 2 + i] == 1.0);   // cos(0)
    }
    // w_1 = 10000^(-2/8) = 0.1: position 3 has sin(0.3) and cos(0.3) at i = 1
    CHECK(table[3 * C + 1] == doctest::Approx(std::sin(0.3)).epsilon(1e-15));
    CHECK(table[3 * C + 4 + 1] == doctest::Approx(std::cos(0.3)).epsilon(1e-15));
    CHECK(table[4 * C + 0] == doctest::Approx(std::sin(4.0)).epsilon(1e-15));
}

TEST_CASE("gradcheck: sigmoid gate (dy, dz), headwise and elementwise; z = 0 halves the output") {
    for (const size_t G : {H, C}) {  // one gate per head (D channels each), one per channel
        CAPTURE(G);
        std::mt19937_64 rng(116 + G);
        Vec y = random_vector(rng, N * C), z = random_vector(rng, N * G, -2.0, 2.0), R = random_vector(rng, N * C);
        Vec out(N * C);
        auto loss = [&] {
            gate_forward(out.data(), y.data(), z.data(), N, C, G);
            return dot(out, R);
        };
        Vec zero(N * G, 0.0);
        gate_forward(out.data(), y.data(), zero.data(), N, C, G);
        for (size_t i = 0; i < N * C; i++) CHECK(out[i] == y[i] * 0.5);
        loss();
        Vec dy(N * C, 0.0), dz(N * G, 0.0);
        gate_backward(dy.data(), dz.data(), R.data(), y.data(), z.data(), N, C, G);
        report("gate dy, G " + std::to_string(G), gradcheck::check(y, dy, loss));
        report("gate dz, G " + std::to_string(G), gradcheck::check(z, dz, loss));
    }
}

TEST_CASE("gradcheck: head sum (dy), and its forward is the sum over heads") {
    std::mt19937_64 rng(115);
    Vec y = random_vector(rng, N * H * D), R = random_vector(rng, N * D), out(N * D);
    auto loss = [&] {
        head_sum_forward(out.data(), y.data(), N, H, D);
        return dot(out, R);
    };
    loss();
    for (size_t n = 0; n < N; n++)
        for (size_t d = 0; d < D; d++) CHECK(out[n * D + d] == y[(n * H + 0) * D + d] + y[(n * H + 1) * D + d]);
    Vec dy(N * H * D, 0.0);
    head_sum_backward(dy.data(), R.data(), N, H, D);
    report("head_sum dy", gradcheck::check(y, dy, loss));
    report_accumulation("head_sum dy", accumulation_error(
                                           N * H * D, [&](double* g) { head_sum_backward(g, R.data(), N, H, D); }, rng));
}
