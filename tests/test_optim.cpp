// The optimizer and the gradient-norm reduction of src/ops/adamw.h: adamw_update against two steps worked
// out by hand, and sum_squares (exact values, bitwise independence of the thread count).
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/ops.h"

using namespace sinklab;

namespace {

// Restores the OpenMP thread count when a test ends (even on a failed REQUIRE).
struct ThreadCountGuard {
    int saved = omp_get_max_threads();
    ~ThreadCountGuard() { omp_set_num_threads(saved); }
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// AdamW, two steps by hand.
//
//   lr = 0.01, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_scale = 0.5
//   p0 = (1, -2, 0.5),  m0 = v0 = 0
//   raw grads step 1: ( 0.2, -0.4, 0.0)  ->  g1 = 0.5 * raw = ( 0.1, -0.2, 0.0)
//   raw grads step 2: (-0.2,  0.1, 0.6)  ->  g2 = 0.5 * raw = (-0.1, 0.05, 0.3)
//
// Step 1 (t = 1): bias corrections 1 - 0.9 = 0.1 and 1 - 0.95 = 0.05
//   m1 = 0.1 g1               = ( 0.01,   -0.02,  0)
//   v1 = 0.05 g1^2            = ( 0.0005,  0.002, 0)
//   m^ = m1 / 0.1             = ( 0.1,    -0.2,   0)
//   v^ = v1 / 0.05            = ( 0.01,    0.04,  0)     sqrt: (0.1, 0.2, 0)
//   u  = m^ / (sqrt(v^) + eps) = (0.1/0.10000001, -0.2/0.20000001, 0/1e-8)
//                             = (0.99999990000001, -0.999999950000002, 0)
//   p1 = p0 - lr (u + wd p0)
//      = (1 - 0.01 (0.99999990000001 + 0.1), -2 - 0.01 (-0.999999950000002 - 0.2), 0.5 - 0.01 (0 + 0.05))
//      = (0.9890000010, -1.9880000005, 0.4995)
//   (the third parameter has no gradient: only the decay moves it, by lr wd p = 5e-4)
//
// Step 2 (t = 2): bias corrections 1 - 0.81 = 0.19 and 1 - 0.9025 = 0.0975
//   m2 = 0.9 m1 + 0.1 g2      = (0.009 - 0.01, -0.018 + 0.005, 0 + 0.03)      = (-0.001, -0.013, 0.03)
//   v2 = 0.95 v1 + 0.05 g2^2  = (0.000475 + 0.0005, 0.0019 + 0.000125, 0.0045) = (0.000975, 0.002025, 0.0045)
//   m^ = m2 / 0.19            = (-0.0052631578947, -0.0684210526316, 0.1578947368421)
//   v^ = v2 / 0.0975          = ( 0.01, 0.0207692307692, 0.0461538461538)
//   sqrt(v^)                  = ( 0.1,  0.1441153384246, 0.2148344622118)
//   u                         = (-0.0526315736842, -0.4747658967593, 0.7349599680931)
//   p2 = p1 - lr (u + wd p1)
//      = (0.98900000100 - 0.01 (-0.0526315736842 + 0.0989000001),
//         -1.98800000050 - 0.01 (-0.4747658967593 - 0.1988000000),
//          0.49950000000 - 0.01 ( 0.7349599680931 + 0.0499500000))
//      = (0.988537316735842, -1.981264341531907, 0.491650900319069)
// (the long decimals above were checked with 30-digit arithmetic.)

TEST_CASE_TEMPLATE("adamw_update: two steps by hand (weight decay, grad_scale, bias correction)", T, double,
                   float) {
    // Relative tolerance. double: a few roundings of ~1e-16. float: a few roundings of 6e-8, amplified
    // 10x by the cancellation in m2[0] = 0.009 - 0.01 (measured 5e-7).
    const double tol = std::is_same_v<T, double> ? 1e-14 : 2e-6;
    AdamWHyper hp;
    hp.lr = 0.01;
    hp.beta1 = 0.9;
    hp.beta2 = 0.95;
    hp.eps = 1e-8;
    hp.weight_decay = 0.1;
    const T grad_scale = T(0.5);

    std::vector<T> p = {T(1.0), T(-2.0), T(0.5)}, m(3, T(0)), v(3, T(0));
    const std::vector<T> g1 = {T(0.2), T(-0.4), T(0.0)}, g2 = {T(-0.2), T(0.1), T(0.6)};

    double worst = 0;  // max relative error against the hand-computed values
    auto expect = [&](const std::vector<T>& got, const double* want, const char* what, int step) {
        for (int i = 0; i < 3; i++) {
            CAPTURE(what);
            CAPTURE(step);
            CAPTURE(i);
            CHECK(double(got[i]) == doctest::Approx(want[i]).epsilon(tol));
            if (want[i] != 0.0)
                worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / std::fabs(want[i]));
            else
                CHECK(got[i] == T(0));
        }
    };

    adamw_update(p.data(), g1.data(), m.data(), v.data(), 3, hp, 1, grad_scale);
    const double m1[] = {0.01, -0.02, 0.0}, v1[] = {0.0005, 0.002, 0.0};
    const double p1[] = {0.989000000999999900000009999999, -1.98800000049999997500000125, 0.4995};
    expect(m, m1, "m", 1);
    expect(v, v1, "v", 1);
    expect(p, p1, "p", 1);

    adamw_update(p.data(), g2.data(), m.data(), v.data(), 3, hp, 2, grad_scale);
    const double m2[] = {-0.001, -0.013, 0.03}, v2[] = {0.000975, 0.002025, 0.0045};
    const double p2[] = {0.988537316735842010626325253157, -1.98126434153190662799381618389,
                         0.491650900319068962407507397698};
    expect(m, m2, "m", 2);
    expect(v, v2, "v", 2);
    expect(p, p2, "p", 2);
    MESSAGE("adamw (" << std::string(std::is_same_v<T, double> ? "double" : "float")
                      << "), 2 steps by hand: max rel err of m, v, p " << worst << " (bound " << tol << ")");
}

TEST_CASE("adamw_update: grad_scale multiplies the gradient before the moments; no grad and no decay = no move") {
    std::mt19937_64 rng(401);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    const size_t n = 1000;
    std::vector<double> p(n), g(n), g_half(n);
    for (size_t i = 0; i < n; i++) {
        p[i] = dist(rng);
        g[i] = dist(rng);
        g_half[i] = 0.5 * g[i];  // exact
    }
    AdamWHyper hp;
    std::vector<double> pa = p, ma(n, 0.0), va(n, 0.0), pb = p, mb(n, 0.0), vb(n, 0.0);
    for (size_t step = 1; step <= 3; step++) {
        adamw_update(pa.data(), g.data(), ma.data(), va.data(), n, hp, step, 0.5);
        adamw_update(pb.data(), g_half.data(), mb.data(), vb.data(), n, hp, step, 1.0);
    }
    CHECK(pa == pb);
    CHECK(ma == mb);
    CHECK(va == vb);

    hp.weight_decay = 0.0;
    std::vector<double> pc = p, zeros(n, 0.0), mc(n, 0.0), vc(n, 0.0);
    adamw_update(pc.data(), zeros.data(), mc.data(), vc.data(), n, hp, 1, 1.0);
    CHECK(pc == p);
}

// ------------------------------------------------------------------------------------------------
// sum_squares

TEST_CASE("sum_squares: exact on known inputs") {
    CHECK(sum_squares<double>(nullptr, 0) == 0.0);
    const float small[] = {3.f, 4.f};
    CHECK(sum_squares(small, 2) == 25.0);
    // 1..n with n = 40000 > 2 chunks of 2^14: every partial sum is an integer below 2^53, so the
    // result is exact in any summation order: n (n + 1) (2n + 1) / 6.
    const size_t n = 40000;
    std::vector<float> xf(n);
    std::vector<double> xd(n);
    for (size_t i = 0; i < n; i++) xf[i] = float(i + 1), xd[i] = double(i + 1);
    const double want = double(n) * double(n + 1) * double(2 * n + 1) / 6.0;
    CHECK(want == 21334133340000.0);
    CHECK(sum_squares(xf.data(), n) == want);
    CHECK(sum_squares(xd.data(), n) == want);
    // Float inputs are squared in double: 0.1f^2 is not rounded to float.
    const float tenth = 0.1f;
    CHECK(sum_squares(&tenth, 1) == double(tenth) * double(tenth));
}

TEST_CASE_TEMPLATE("sum_squares: bitwise identical for 1, 2 and 3 threads; accurate", T, float, double) {
    ThreadCountGuard guard;
    std::mt19937_64 rng(402);
    std::normal_distribution<double> dist(0.0, 1.0);
    const size_t n = (size_t(1) << 20) + 12345;  // 64 full chunks and a partial one
    std::vector<T> x(n);
    for (auto& e : x) e = T(dist(rng));

    omp_set_num_threads(1);
    const double s1 = sum_squares(x.data(), n);
    omp_set_num_threads(2);
    const double s2 = sum_squares(x.data(), n);
    omp_set_num_threads(3);
    const double s3 = sum_squares(x.data(), n);
    CHECK(std::memcmp(&s1, &s2, sizeof(double)) == 0);
    CHECK(std::memcmp(&s1, &s3, sizeof(double)) == 0);

    long double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (long double)x[i] * (long double)x[i];
    const double rel = double(std::fabs((long double)s1 - ref) / ref);
    MESSAGE("sum_squares (" << std::string(std::is_same_v<T, double> ? "double" : "float") << ", n = " << n
                            << "): " << s1 << ", threads 1/2/3 bitwise equal, rel err vs long double " << rel);
    // Each chunk of 2^14 terms is summed sequentially in double and the 65 chunk sums in chunk
    // order: the worst-case bound is about (2^14 + 65) * 2^-53 ~ 1.8e-12 (positive terms), the
    // typical error (random-walk rounding) ~1e-14.
    CHECK(rel < 2e-12);
}
