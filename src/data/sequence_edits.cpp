#include "data/sequence_edits.h"

#include <fmt/format.h>

#include "util/error.h"
#include "util/rng.h"

namespace sinklab {

uint64_t mix_key(uint64_t a, uint64_t b) {
    uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void SequenceEdits::apply(int32_t* row, size_t n, uint64_t row_key, size_t vocab_size) const {
    if (random_end > random_begin) {
        Rng rng(mix_key(seed, row_key));
        for (size_t t = random_begin; t < random_end && t < n; t++) row[t] = int32_t(rng.below(vocab_size));
    }
    if (fixed_token >= 0 && fixed_position < n) row[fixed_position] = int32_t(fixed_token);
}

std::string SequenceEdits::describe() const {
    std::string text;
    if (fixed_token >= 0) text = fmt::format("fixed token {} at position {}", fixed_token, fixed_position);
    if (random_end > random_begin)
        text += fmt::format("{}random ids at positions [{}, {})", text.empty() ? "" : ", ", random_begin, random_end);
    return text.empty() ? "none" : text;
}

void SequenceEdits::validate(size_t seq, size_t vocab_size) const {
    if (fixed_token >= 0 && size_t(fixed_token) >= vocab_size)
        fail("--fixed-token {} is outside the vocabulary (size {})", fixed_token, vocab_size);
    if (fixed_token >= 0 && fixed_position >= seq)
        fail("--fixed-position {} is not inside a sequence of --seq {} tokens", fixed_position, seq);
    if (random_end > seq)
        fail("--random-tokens {}:{} reaches beyond a sequence of --seq {} tokens", random_begin, random_end, seq);
}

void parse_token_range(const std::string& text, size_t& begin, size_t& end) {
    begin = end = 0;
    if (text.empty() || text == "none") return;
    size_t a = 0, b = 0;
    int used = 0;
    if (std::sscanf(text.c_str(), "%zu:%zu%n", &a, &b, &used) != 2 || size_t(used) != text.size() || a >= b)
        fail("--random-tokens: expected A:B with 0 <= A < B (positions [A, B)), got '{}'", text);
    begin = a;
    end = b;
}

}  // namespace sinklab
