// Token choice from logits: greedy, temperature, top-k, determinism.
#include <doctest/doctest.h>

#include <vector>

#include "model/sample.h"
#include "util/error.h"
#include "util/rng.h"

using namespace sinklab;

TEST_CASE("greedy and top-1 pick the argmax") {
    const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 1.5f};
    Rng rng(1);
    CHECK(sample_token(logits.data(), logits.size(), 0.0, 0, rng) == 1);  // smallest id on ties
    for (size_t i = 0; i < 20; i++) {
        const int32_t t = sample_token(logits.data(), logits.size(), 1.0, 1, rng);
        CHECK((t == 1 || t == 3));  // both hold the largest value: ties at the k-th value are kept
    }
}

TEST_CASE("top-k keeps only the k most likely; temperature sharpens") {
    std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f};
    Rng rng(2);
    std::vector<size_t> seen(5, 0);
    for (size_t i = 0; i < 2000; i++) seen[size_t(sample_token(logits.data(), logits.size(), 1.0, 2, rng))]++;
    CHECK(seen[0] + seen[1] + seen[2] == 0);
    CHECK(seen[4] > seen[3]);
    // p(4) / p(3) = e under temperature 1.
    CHECK(double(seen[4]) / double(seen[3]) == doctest::Approx(2.718).epsilon(0.2));
    std::fill(seen.begin(), seen.end(), 0);
    for (size_t i = 0; i < 2000; i++) seen[size_t(sample_token(logits.data(), logits.size(), 0.1, 0, rng))]++;
    CHECK(seen[4] > 1990);
}

TEST_CASE("the same seed gives the same choices") {
    std::vector<float> logits(100);
    for (size_t i = 0; i < logits.size(); i++) logits[i] = float(i % 7) * 0.3f;
    Rng a(9), b(9);
    for (size_t i = 0; i < 100; i++)
        CHECK(sample_token(logits.data(), logits.size(), 0.9, 10, a) == sample_token(logits.data(), logits.size(), 0.9, 10, b));
    CHECK_THROWS_AS(sample_token(logits.data(), logits.size(), -1.0, 0, a), Error);
}
