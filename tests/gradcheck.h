// Finite-difference gradient checks for the test suites (header-only).
//
// Usage: the loss is a scalar function of some parameters held in double. The helper perturbs the
// parameters in place (restoring each one afterwards) and compares central differences
//
//     n_i = (L(x + h e_i) - L(x - h e_i)) / (2 h)
//
// with the analytic gradient a_i that the caller computed with the backward pass.
//
// The usual way to turn an operation out = f(x) into a scalar loss is L = sum(out * R) with a fixed
// random R: then dL/dout = R, which is what the caller feeds to backward as dout.
//
// Error measure (per index):
//
//     err_i = |a_i - n_i| / max(|a_i| + |n_i|, floor)          floor = 1e-3 by default
//
//   - For gradients well above `floor` this is a symmetric relative error (at most 1; 1 means the
//     two disagree completely, e.g. opposite signs or one of them zero).
//   - For gradients below `floor` it becomes an absolute error scaled by 1/floor. A true gradient
//     of 0 or 1e-9 cannot be resolved relatively by finite differences, only absolutely: the
//     central difference carries roundoff noise of order eps_mach * (magnitude of the terms of L
//     that move) / h. With the default floor an error bound of 1e-6 means "relative 1e-6 for
//     |grad| >= 1e-3, absolute 1e-9 below".
//   - Step h = 1e-5 (not 1e-6): with O(1) values the roundoff noise dominates the truncation error
//     h^2 f'''/6 (1e-10 f'''/6 absolute) down to h ~ 1e-5. Measured on the operations of ops.h
//     (tests/test_ops_grad.cpp) the max absolute error |a - n| is ~3e-10 at h = 1e-6 and ~3e-11 at
//     h = 1e-5; at h = 1e-6 the tiny (~1e-8) gradients that the 1e-8 in Z produces at the first
//     query of normalised sigmoid/elu attention sit right at the noise level. Pass a smaller h
//     for functions with large third derivatives.
//   - The loss should be returned in long double (dot() below does), so that the rounding of L
//     itself (eps * |L| / h ~ 1e-10 for |L| ~ 10) does not add to the noise.
//   So with O(1) inputs and O(1) gradients a correct backward pass gives err ~ 1e-11 .. 1e-8, and a
//   wrong one gives err ~ 1e-3 .. 1.
//
// For large parameter vectors (a whole model) `max_points` checks a deterministic, evenly spread
// subset of the indices instead of all of them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace gradcheck {

struct Options {
    double h = 1e-5;        // central-difference step
    double floor = 1e-3;    // denominator floor, see above
    size_t max_points = 0;  // 0: check every index; otherwise at most this many (evenly spread)
};

struct Result {
    double max_rel_err = 0;  // max_i err_i as defined above
    size_t worst_index = 0;  // the index where it was reached
    double analytic = 0;     // a and n at the worst index
    double numeric = 0;
    double max_abs_err = 0;   // max_i |a_i - n_i|, for information
    double max_abs_grad = 0;  // max_i |a_i|, the scale of the gradient, for information
    size_t checked = 0;       // how many indices were checked
};

inline double rel_err(double a, double n, double floor) {
    return std::fabs(a - n) / std::max(std::fabs(a) + std::fabs(n), floor);
}

// x: the n parameters the loss reads (perturbed in place and restored bitwise);
// analytic: dL/dx (n values); loss: a callable with no arguments returning L(x) as double or, better,
// long double (see dot below).
template <typename Loss>
Result check(double* x, size_t n, const double* analytic, Loss&& loss, const Options& opt = {}) {
    Result r;
    const size_t stride =
        (opt.max_points == 0 || n <= opt.max_points) ? 1 : (n + opt.max_points - 1) / opt.max_points;
    for (size_t i = 0; i < n; i += stride) {
        const double saved = x[i];
        x[i] = saved + opt.h;
        const auto lp = loss();  // double or long double (kept as returned)
        x[i] = saved - opt.h;
        const auto lm = loss();
        x[i] = saved;
        const double num = double((lp - lm) / (2.0 * opt.h));
        const double a = analytic[i];
        const double e = rel_err(a, num, opt.floor);
        r.checked++;
        r.max_abs_err = std::max(r.max_abs_err, std::fabs(a - num));
        r.max_abs_grad = std::max(r.max_abs_grad, std::fabs(a));
        if (e > r.max_rel_err || r.checked == 1) {
            r.max_rel_err = e;
            r.worst_index = i;
            r.analytic = a;
            r.numeric = num;
        }
    }
    return r;
}

// Same for a std::vector of parameters.
template <typename Loss>
Result check(std::vector<double>& x, const std::vector<double>& analytic, Loss&& loss, const Options& opt = {}) {
    return check(x.data(), x.size(), analytic.data(), std::forward<Loss>(loss), opt);
}

// A one-line summary for doctest's MESSAGE / INFO.
inline std::string describe(const std::string& what, const Result& r) {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "%s: max rel err %.3e at [%zu] (analytic %.9e, numeric %.9e); max abs err %.2e, |grad|max %.2e, "
                  "%zu points",
                  what.c_str(), r.max_rel_err, r.worst_index, r.analytic, r.numeric, r.max_abs_err, r.max_abs_grad,
                  r.checked);
    return buf;
}

// ---- small helpers shared by the tests ----

// n values uniform in [lo, hi).
template <typename T = double>
std::vector<T> random_vector(std::mt19937_64& rng, size_t n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> dist(lo, hi);
    std::vector<T> v(n);
    for (auto& e : v) e = T(dist(rng));
    return v;
}

// sum_i a_i b_i, the loss L = sum(out * R). Accumulated in long double (64-bit mantissa on x86) so
// and returned as long double, so that neither the rounding of the sum nor that of L itself adds
// noise to the finite differences: only the roundoff of the operation under test remains.
template <typename T>
long double dot(const std::vector<T>& a, const std::vector<T>& b) {
    long double s = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) s += (long double)a[i] * (long double)b[i];
    return s;
}

// max_i |a_i - b_i| / max(max_i |b_i|, tiny): a norm-wise relative difference (b is the reference).
template <typename A, typename B>
double normwise_rel_diff(const std::vector<A>& a, const std::vector<B>& b) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
        diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
        scale = std::max(scale, std::fabs(double(b[i])));
    }
    return diff / std::max(scale, 1e-300);
}

}  // namespace gradcheck
