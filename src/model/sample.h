// Choosing the next token from a row of logits: greedy, temperature and top-k sampling.
#pragma once
#include <cstddef>
#include <cstdint>

#include "util/rng.h"

namespace sinklab {

// logits: (n) scores of the candidate ids 0..n-1 -> the chosen id.
//   temperature == 0: the argmax (the smallest id on ties).
//   else: p(i) proportional to exp((logits[i] - max) / temperature) over the top_k largest logits
//   (all when top_k == 0 or top_k >= n; ties at the k-th value are all kept), drawn with one
//   uniform number from rng by walking the cumulative sum in id order.
int32_t sample_token(const float* logits, size_t n, double temperature, size_t top_k, Rng& rng);

}  // namespace sinklab
