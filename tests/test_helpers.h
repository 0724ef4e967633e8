// Shared helpers for the tests: temporary directories, synthetic shards, running the sinklab binary.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/shard.h"
#include "model/config.h"
#include "util/rng.h"

namespace testing {

// A fresh directory under the system temp dir, removed when the object goes away.
struct TempDir {
    std::string path;
    explicit TempDir(const std::string& tag) {
        path = (std::filesystem::temp_directory_path() / ("sinklab_" + tag + "_" + std::to_string(::getpid()))).string();
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// A model small enough for finite differences in double: 2 layers, 2 heads of 4, FFN 12, under the
// named attention variant, with the given vocabulary and context.
inline sinklab::ModelConfig gradcheck_config(const std::string& attention, size_t vocab, size_t context) {
    sinklab::ModelConfig c = sinklab::preset("tiny");
    c.n_layers = 2;
    c.n_heads = 2;
    c.d_model = 8;
    c.d_ffn = 12;
    c.vocab_size = vocab;
    c.context = context;
    c.attention = sinklab::parse_attention(attention);
    return c;
}

// A token stream with learnable structure: runs of consecutive ids (mod vocab) of random length.
inline std::vector<int32_t> patterned_tokens(size_t n, size_t vocab, uint64_t seed) {
    sinklab::Rng rng(seed);
    std::vector<int32_t> t;
    while (t.size() < n) {
        const size_t start = rng.below(vocab), len = 3 + rng.below(10);
        for (size_t i = 0; i < len && t.size() < n; i++) t.push_back(int32_t((start + i) % vocab));
    }
    return t;
}

// Path of the sinklab binary (CTest sets SINKLAB_BIN).
inline std::string sinklab_bin() {
    const char* p = std::getenv("SINKLAB_BIN");
    return p ? p : "build/sinklab";
}

// Runs a shell command, returns its exit code; its output goes to `log` if given.
inline int run(const std::string& command, const std::string& log = "") {
    const std::string full = log.empty() ? command + " >/dev/null 2>&1" : command + " >" + log + " 2>&1";
    const int status = std::system(full.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace testing
