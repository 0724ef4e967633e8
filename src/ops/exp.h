// exp for the hot loops: a float exponential that the compiler can vectorize.
//
// std::exp(float) is a call into libm that GCC will not vectorize (glibc only declares its vector
// variants under -ffast-math), and the CPU training step spends about a sixth of its time in it
// (cross entropy over the vocabulary, SwiGLU's sigmoid, attention weights). exp_float below is
// plain arithmetic, so a loop marked `#pragma omp simd` turns into 16-wide AVX-512 code (and into
// 8-wide AVX2 code thanks to -fno-trapping-math: see CMakeLists.txt).
//
// Method (textbook range reduction, nothing clever):
//   exp(x) = 2^n * exp(r),  n = round(x / ln 2),  r = x - n ln 2  in [-ln2/2, ln2/2]
//   exp(r) by its Taylor series to r^7 (truncation error < r^8/8! <= 5.3e-9, below float's
//   half-ulp of 6e-8), evaluated with fused multiply-adds in Horner form;
//   2^n by writing n + 127 straight into the float's exponent bits.
// ln 2 is split into a high part exactly representable with few bits and a low correction, so
// x - n ln2 loses nothing for |n| <= 128. Measured against double-precision exp on [-87, 88]:
// at most 2 ulp (tests/test_ops_grad.cpp checks it). Inputs below -87.3 give 0, above 88 give
// exp(88) = 1.65e38 (clamped): the callers only ever pass x <= ~0 or the
// argument of a sigmoid, where both ends are harmless.
//
// exp_of(x) picks exp_float for float and std::exp for double, so the double-precision gradient
// checks still run against the library exponential.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace sinklab {

// Always inlined: a call left in a `#pragma omp simd` loop keeps that loop scalar. (GCC's inliner
// gave up on the attention row's twelve score-function instances and called an out-of-line copy.)
#if defined(__GNUC__)
#define SINKLAB_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SINKLAB_ALWAYS_INLINE inline
#endif

SINKLAB_ALWAYS_INLINE float exp_float(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693145751953125f;        // ln 2 to 15 bits: n * kLn2Hi is exact
    constexpr float kLn2Lo = 1.42860682030941723212e-6f;  // ln 2 - kLn2Hi
    constexpr float kMin = -87.3365447f, kMax = 88.0f;  // 2^-126 (smallest normal) .. 1.65e38
    const float keep = x >= kMin ? 1.0f : 0.0f;  // 0 where exp(x) is below the smallest normal float
    x = std::min(std::max(x, kMin), kMax);
    // Round to the nearest integer by adding and subtracting 1.5 * 2^23: at that magnitude a float
    // has no fraction bits left, so the addition itself rounds. (std::nearbyint/floor would do the
    // same, but GCC 12 does not vectorize them.)
    constexpr float kRoundMagic = 12582912.0f;
    const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
    float r = std::fma(-n, kLn2Hi, x);
    r = std::fma(-n, kLn2Lo, r);
    // Horner: 1 + r (1 + r/2 (1 + r/3 (1 + ... (1 + r/7))))
    float p = 1.0f / 5040.0f;
    p = std::fma(p, r, 1.0f / 720.0f);
    p = std::fma(p, r, 1.0f / 120.0f);
    p = std::fma(p, r, 1.0f / 24.0f);
    p = std::fma(p, r, 1.0f / 6.0f);
    p = std::fma(p, r, 0.5f);
    p = std::fma(p, r, 1.0f);
    p = std::fma(p, r, 1.0f);
    // n is in [-126, 127], so n + 127 is a valid biased exponent of a normal float.
    const int32_t exponent_bits = (int32_t(n) + 127) << 23;
    float two_to_n;
    std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);  // (std::bit_cast is C++20; CUDA builds C++17)
    return p * two_to_n * keep;
}

SINKLAB_ALWAYS_INLINE float exp_of(float x) { return exp_float(x); }
inline double exp_of(double x) { return std::exp(x); }

// The exp and reciprocal that the functions written once for host and device
// (src/util/host_device.h) use on the CPU.
struct HostMath {
    template <typename T>
    SINKLAB_ALWAYS_INLINE static T exp(T x) { return exp_of(x); }
    template <typename T>
    static T rcp(T x) { return T(1) / x; }
    template <typename T>
    static T erf(T x) { return std::erf(x); }
};

}  // namespace sinklab
