// A small, fully specified random number generator, so that initialisation and data order are
// reproducible across compilers and platforms (std::normal_distribution is not).
//   state: xoshiro256** seeded through SplitMix64;  normal(): Box-Muller in double.
#pragma once
#include <cmath>
#include <cstdint>

namespace sinklab {

class Rng {
public:
    explicit Rng(uint64_t seed = 0) { reseed(seed); }

    void reseed(uint64_t seed) {
        uint64_t x = seed;
        for (uint64_t& s : state_) s = splitmix64(x);
        has_spare_ = false;
    }

    uint64_t next_u64() {
        const uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

    // Uniform integer in [0, n) (n > 0), by rejection so that it is unbiased.
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t x;
        do x = next_u64();
        while (x >= limit);
        return x % n;
    }

    // Standard normal N(0, 1), Box-Muller (both values of a pair are used).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        spare_ = radius * std::sin(2.0 * M_PI * u2);
        has_spare_ = true;
        return radius * std::cos(2.0 * M_PI * u2);
    }

    // The whole state, for exact resume.
    struct State {
        uint64_t s[4];
        double spare;
        bool has_spare;
    };
    State state() const { return {{state_[0], state_[1], state_[2], state_[3]}, spare_, has_spare_}; }
    void set_state(const State& st) {
        for (int i = 0; i < 4; i++) state_[i] = st.s[i];
        spare_ = st.spare;
        has_spare_ = st.has_spare;
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    static uint64_t splitmix64(uint64_t& x) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint64_t state_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

}  // namespace sinklab
