// The paper's data levers (docs/data.md, "Data levers"): tokens written into every training and
// validation sequence, the same way in the sink probes.
//   fixed token:    token id F at position p of every sequence (`--fixed-token F --fixed-position p`),
//                   replacing the data token there (a fixed token creates a sink at its position;
//                   `--first-token` instead prepends F and shifts the data, docs/data.md);
//   random tokens:  uniform random ids at positions [a, b) of every sequence (`--random-tokens a:b`).
// A sequence here is the row of T + 1 tokens that gives the T inputs and the T targets, so that
// the inputs and targets stay consistent: an edited position is an input at p and the target of
// position p - 1. The random ids are a function of (seed, the row's place in the data, position),
// so a resumed run sees exactly the ids it would have seen.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sinklab {

struct SequenceEdits {
    int64_t fixed_token = -1;  // < 0: none
    size_t fixed_position = 0;
    size_t random_begin = 0, random_end = 0;  // [begin, end); empty: none
    uint64_t seed = 0;

    bool any() const { return fixed_token >= 0 || random_end > random_begin; }
    // Edits one row of n tokens; row_key identifies the row (its place in the data).
    void apply(int32_t* row, size_t n, uint64_t row_key, size_t vocab_size) const;
    // "fixed token 5 at 1, random ids at [0, 2)", or "none".
    std::string describe() const;
    // Checks the edits against rows of `seq` inputs and the vocabulary; errors name the flags.
    void validate(size_t seq, size_t vocab_size) const;
};

// Parses `--random-tokens A:B` (0 <= A < B) into [begin, end); "" is none.
void parse_token_range(const std::string& text, size_t& begin, size_t& end);

// A 64-bit mix of two values (splitmix64's finaliser): keys for the rows.
uint64_t mix_key(uint64_t a, uint64_t b);

}  // namespace sinklab
