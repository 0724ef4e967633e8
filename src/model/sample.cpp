#include "model/sample.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace sinklab {

int32_t sample_token(const float* logits, size_t n, double temperature, size_t top_k, Rng& rng) {
    if (n == 0) fail("sample_token: no candidates");
    if (temperature < 0) fail("--temperature must be >= 0 (got {})", temperature);
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature == 0) return int32_t(best);

    // The k-th largest logit is the cut: everything below it gets probability 0.
    float cut = -INFINITY;
    if (top_k > 0 && top_k < n) {
        std::vector<float> sorted(logits, logits + n);
        std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(top_k - 1), sorted.end(), std::greater<float>());
        cut = sorted[top_k - 1];
    }
    const double max = double(logits[best]);
    std::vector<double> weights(n, 0.0);
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (logits[i] < cut || std::isnan(logits[i])) continue;
        weights[i] = std::exp((double(logits[i]) - max) / temperature);
        total += weights[i];
    }
    const double target = rng.uniform() * total;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += weights[i];
        if (weights[i] > 0 && sum > target) return int32_t(i);
    }
    return int32_t(best);  // rounding at the very end of the sum
}

}  // namespace sinklab
