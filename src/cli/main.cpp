// sinklab: the command-line front door. Dispatches to a sub-command (src/cmd_*.cpp); every error a
// user can cause arrives here as sinklab::Error and is printed as one line with exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "util/error.h"

namespace {

struct Command {
    const char* name;
    int (*run)(int, char**);
    const char* summary;
};

const Command kCommands[] = {
    {"info", sinklab::cmd_info, "version, compiler, threads, SIMD level, CUDA and GPU"},
    {"train", sinklab::cmd_train, "train a model on token shards (llm.c format)"},
    {"tokenizer", sinklab::cmd_tokenizer, "train, use and inspect the byte-level BPE tokenizer"},
    {"prepare", sinklab::cmd_prepare, "tokenize a corpus into train/val shards, a tokenizer and a probe file"},
    {"sample", sinklab::cmd_sample, "generate text from a checkpoint, streaming token by token"},
    {"sink", sinklab::cmd_sink, "measure attention sinks (Sink_k, norms) of a checkpoint on probe sequences"},
    {"stream", sinklab::cmd_stream, "perplexity through a rolling KV cache: first K + last W - K tokens vs window vs full"},
    {"compare", sinklab::cmd_compare, "one table over run directories: config differences, losses, Sink_1..3, speed"},
    {"experiment", sinklab::cmd_experiment, "one of the paper's experiments: train its grid, measure, table beside the paper"},
    {"import", sinklab::cmd_import, "a Hugging Face LLaMA checkpoint -> a sinklab checkpoint (docs/hf.md)"},
    {"export", sinklab::cmd_export, "a sinklab model -> a Hugging Face LLaMA checkpoint that transformers loads"},
    {"logits", sinklab::cmd_logits, "the logits of one token sequence as raw float32 (to compare with other code)"},
    {"plot", sinklab::cmd_plot, "draw a run's pictures (SVG): loss, Sink_k over steps, sink report plots"},
};

void print_usage() {
    fmt::print("sinklab {}: a from-scratch trainer for studying attention sinks\n\n", SINKLAB_VERSION);
    fmt::print("usage: sinklab <command> [options]      (sinklab <command> --help for its options)\n\ncommands:\n");
    for (const Command& c : kCommands) fmt::print("  {:<10} {}\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        print_usage();
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        fmt::print("sinklab {}\n", SINKLAB_VERSION);
        return 0;
    }
    for (const Command& c : kCommands) {
        if (std::string(argv[1]) != c.name) continue;
        try {
            return c.run(argc - 1, argv + 1);
        } catch (const sinklab::Error& e) {
            std::fflush(stdout);
            fmt::print(stderr, "sinklab {}: error: {}\n", c.name, e.what());
            return 1;
        } catch (const std::exception& e) {
            std::fflush(stdout);
            fmt::print(stderr, "sinklab {}: internal error: {}\n", c.name, e.what());
            return 3;
        }
    }
    fmt::print(stderr, "sinklab: unknown command '{}'\n\n", argv[1]);
    print_usage();
    return 2;
}
