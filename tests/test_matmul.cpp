// The float GEMM (src/ops/matmul.cpp) against the double reference loops, on many shapes and every
// stride pattern, and its determinism across thread counts.
#include <doctest/doctest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ops/matmul.h"

using namespace sinklab;

namespace {

std::vector<float> random_floats(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Storage patterns of an operand X (rows x cols): row-major, column-major (a transposed matrix),
// or a general pair of strides with padding in both (a sub-block of a larger array).
enum class Layout { row_major, col_major, padded };

struct Strided {
    std::vector<float> data;
    size_t row_stride, col_stride;
};

Strided make_operand(size_t rows, size_t cols, Layout layout, uint32_t seed) {
    size_t rs = cols, cs = 1, size = rows * cols;
    if (layout == Layout::col_major) {
        rs = 1;
        cs = rows;
    } else if (layout == Layout::padded) {  // X[r, c] = data[r * (2 cols + 3) + 2 c]
        rs = 2 * cols + 3;
        cs = 2;
        size = rows * rs;
    }
    return {random_floats(std::max<size_t>(size, 1), seed), rs, cs};
}

// Runs gemm_f32 and gemm_reference<double> on the same inputs (C starting from the same random
// values, ldc >= N) and checks every element of C, including that the padding past N is untouched.
// Bound: |c - ref| <= tol * (sum_k |a_mk b_kn| + |c0|), tol a few float epsilons times sqrt(K).
void check_gemm(size_t M, size_t N, size_t K, Layout la, Layout lb, bool accumulate, size_t ldc_pad) {
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    CAPTURE(int(la));
    CAPTURE(int(lb));
    CAPTURE(accumulate);
    CAPTURE(ldc_pad);
    const Strided A = make_operand(M, K, la, 11);
    const Strided B = make_operand(K, N, lb, 12);
    const size_t ldc = N + ldc_pad;
    std::vector<float> C = random_floats(M * ldc, 13);
    const std::vector<float> C0 = C;
    gemm_f32(M, N, K, A.data.data(), A.row_stride, A.col_stride, B.data.data(), B.row_stride, B.col_stride,
             C.data(), ldc, accumulate);

    const std::vector<double> Ad = to_double(A.data), Bd = to_double(B.data);
    std::vector<double> Cd = to_double(C0);
    gemm_reference<double>(M, N, K, Ad.data(), A.row_stride, A.col_stride, Bd.data(), B.row_stride, B.col_stride,
                           Cd.data(), ldc, accumulate);
    // scale[m, n] = sum_k |a_mk b_kn| (+ |c0|): |A| . |B| (+ |C0|) with the same reference loops
    std::vector<double> Aabs = Ad, Babs = Bd, scale(M * ldc);
    for (double& x : Aabs) x = std::fabs(x);
    for (double& x : Babs) x = std::fabs(x);
    for (size_t i = 0; i < scale.size(); i++) scale[i] = std::fabs(double(C0[i]));
    gemm_reference<double>(M, N, K, Aabs.data(), A.row_stride, A.col_stride, Babs.data(), B.row_stride,
                           B.col_stride, scale.data(), ldc, accumulate);
    const double tol = 4.0 * 1.2e-7 * std::sqrt(double(K) + 1.0);
    size_t bad = 0;
    for (size_t m = 0; m < M; m++) {
        for (size_t n = 0; n < N; n++) {
            const double err = std::fabs(double(C[m * ldc + n]) - Cd[m * ldc + n]);
            if (err > tol * scale[m * ldc + n] + 1e-30) bad++;
        }
        for (size_t n = N; n < ldc; n++)
            if (std::memcmp(&C[m * ldc + n], &C0[m * ldc + n], sizeof(float)) != 0) bad++;
    }
    CHECK(bad == 0);
}

}  // namespace

TEST_CASE("gemm_f32: tiny and odd shapes, every layout, overwrite and accumulate") {
    // Thousands of tiny products: one thread (these run single-threaded in gemm_f32 anyway), so that
    // the reference's parallel region does not cost more than the products on a busy machine.
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const size_t sizes[] = {1, 2, 3, 7, 13, 14, 15, 17, 31, 32, 33, 47};
    const Layout layouts[] = {Layout::row_major, Layout::col_major, Layout::padded};
    for (size_t M : sizes)
        for (size_t N : {size_t(1), size_t(5), size_t(16), size_t(33), size_t(65)})
            for (size_t K : {size_t(1), size_t(2), size_t(9), size_t(40)})
                for (Layout la : layouts)
                    for (Layout lb : layouts)
                        for (bool acc : {false, true}) check_gemm(M, N, K, la, lb, acc, (M + N) % 3 == 0 ? 5 : 0);
    omp_set_num_threads(saved);
}

TEST_CASE("gemm_f32: shapes across the cache blocks (MC, NC, KC boundaries and remainders)") {
    struct Shape {
        size_t M, N, K;
    };
    const Shape shapes[] = {{168, 512, 256}, {169, 513, 257}, {300, 70, 600}, {29, 1100, 300},
                            {150, 40, 1000}, {1, 700, 530},   {700, 1, 530},  {64, 64, 1},
                            // a row-major A with K = 1024 is packed (its rows share L1 sets), with
                            // K = 1000 or 256 it is read in place: both ways give the same values
                            {100, 96, 1024},
                            // a single B panel (N <= NC) has two loop orders: all of B packed when
                            // K <= M, KC blocks outermost when K > M (dweight); remainders in all three
                            {600, 100, 530}, {200, 100, 530}, {150, 500, 1300}};
    // The three patterns of a linear layer (forward: B transposed; dinp: plain; dweight: A
    // transposed), both transposed, and general strides.
    const std::pair<Layout, Layout> patterns[] = {{Layout::row_major, Layout::col_major},
                                                  {Layout::row_major, Layout::row_major},
                                                  {Layout::col_major, Layout::row_major},
                                                  {Layout::col_major, Layout::col_major},
                                                  {Layout::padded, Layout::padded}};
    for (const Shape& s : shapes)
        for (const auto& [la, lb] : patterns)
            for (bool acc : {false, true}) check_gemm(s.M, s.N, s.K, la, lb, acc, 3);
}

TEST_CASE("gemm_f32: K = 0 overwrites with zeros or leaves C unchanged; empty M or N is a no-op") {
    std::vector<float> C(6, 5.0f);
    const float dummy = 1.0f;
    gemm_f32(2, 3, 0, &dummy, 1, 1, &dummy, 1, 1, C.data(), 3, true);
    for (float c : C) CHECK(c == 5.0f);
    gemm_f32(2, 3, 0, &dummy, 1, 1, &dummy, 1, 1, C.data(), 3, false);
    for (float c : C) CHECK(c == 0.0f);
    C.assign(6, 5.0f);
    gemm_f32(0, 3, 4, &dummy, 1, 1, &dummy, 1, 1, C.data(), 3, false);
    gemm_f32(2, 0, 4, &dummy, 1, 1, &dummy, 1, 1, C.data(), 3, false);
    for (float c : C) CHECK(c == 5.0f);
}

TEST_CASE("matmul_forward / matmul_backward: float against double") {
    const size_t N = 67, IC = 45, OC = 83;  // odd sizes: every tile is also an edge tile somewhere
    const std::vector<float> inp = random_floats(N * IC, 21), weight = random_floats(OC * IC, 22);
    const std::vector<float> dout = random_floats(N * OC, 23);
    std::vector<float> out(N * OC), dinp = random_floats(N * IC, 24), dweight = random_floats(OC * IC, 25);
    std::vector<double> out_d(N * OC), dinp_d = to_double(dinp), dweight_d = to_double(dweight);
    matmul_forward(out.data(), inp.data(), weight.data(), N, IC, OC);
    matmul_backward(dinp.data(), dweight.data(), dout.data(), inp.data(), weight.data(), N, IC, OC);
    const std::vector<double> inp_d = to_double(inp), weight_d = to_double(weight), dout_d = to_double(dout);
    matmul_forward(out_d.data(), inp_d.data(), weight_d.data(), N, IC, OC);
    matmul_backward(dinp_d.data(), dweight_d.data(), dout_d.data(), inp_d.data(), weight_d.data(), N, IC, OC);
    auto max_rel = [](const std::vector<float>& f, const std::vector<double>& d) {
        double worst = 0;
        for (size_t i = 0; i < f.size(); i++)
            worst = std::max(worst, std::fabs(double(f[i]) - d[i]) / (std::fabs(d[i]) + 1.0));
        return worst;
    };
    CHECK(max_rel(out, out_d) < 1e-5);
    CHECK(max_rel(dinp, dinp_d) < 1e-5);
    CHECK(max_rel(dweight, dweight_d) < 1e-5);

    // dinp = nullptr: only the weight gradient.
    std::vector<float> dweight2 = random_floats(OC * IC, 25);
    matmul_backward<float>(nullptr, dweight2.data(), dout.data(), inp.data(), weight.data(), N, IC, OC);
    CHECK(dweight2 == dweight);
}

TEST_CASE("gemm_f32: bitwise identical results with 1 and 2 threads") {
    struct Shape {
        size_t M, N, K;
        Layout la, lb;
        bool acc;
    };
    // The three patterns of a linear layer (forward, dinp, dweight) and odd shapes.
    const Shape shapes[] = {
        {512, 384, 300, Layout::row_major, Layout::col_major, false},
        {512, 300, 384, Layout::row_major, Layout::row_major, true},
        {384, 300, 700, Layout::col_major, Layout::row_major, true},
        {97, 1000, 513, Layout::padded, Layout::row_major, true},
        {1000, 33, 257, Layout::row_major, Layout::padded, false},
        {15, 31, 2000, Layout::col_major, Layout::col_major, true},
    };
    const int saved = omp_get_max_threads();
    for (const Shape& s : shapes) {
        CAPTURE(s.M);
        CAPTURE(s.N);
        CAPTURE(s.K);
        const Strided A = make_operand(s.M, s.K, s.la, 31), B = make_operand(s.K, s.N, s.lb, 32);
        const std::vector<float> C0 = random_floats(s.M * s.N, 33);
        std::vector<std::vector<float>> results;
        for (int threads : {1, 2, 3}) {
            omp_set_num_threads(threads);
            std::vector<float> C = C0;
            gemm_f32(s.M, s.N, s.K, A.data.data(), A.row_stride, A.col_stride, B.data.data(), B.row_stride,
                     B.col_stride, C.data(), s.N, s.acc);
            results.push_back(C);
        }
        for (size_t i = 1; i < results.size(); i++)
            CHECK(std::memcmp(results[0].data(), results[i].data(), results[0].size() * sizeof(float)) == 0);
    }
    omp_set_num_threads(saved);
}
