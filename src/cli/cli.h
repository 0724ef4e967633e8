// Command-line parsing shared by every sub-command: declared options, typed getters with errors
// that name the flag, and a generated --help.
//
//   ArgParser args("train", "Train a model on token shards.");
//   args.option("steps", "1000", "number of optimizer steps");
//   args.flag("resume", "continue the run in --out");
//   if (!args.parse(argc, argv)) return 0;   // --help was printed
//   size_t steps = args.get_size("steps");
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sinklab {

class ArgParser {
public:
    ArgParser(std::string command, std::string summary);

    // --name VALUE (or --name=VALUE). An empty default means "not set unless given".
    void option(const std::string& name, const std::string& default_value, const std::string& help,
                const std::string& metavar = "VALUE");
    // --name VALUE... : every following argument up to the next --flag (may repeat).
    void multi_option(const std::string& name, const std::string& help, const std::string& metavar = "VALUE");
    // --name : a boolean switch.
    void flag(const std::string& name, const std::string& help);
    // Free text appended to --help (examples, formats).
    void epilog(const std::string& text);

    // Parses argv[first..argc). Returns false when --help was asked for (and printed).
    // Throws Error for unknown flags and missing values.
    bool parse(int argc, char** argv, int first = 1);

    bool given(const std::string& name) const;  // set on the command line (not a default)
    bool has(const std::string& name) const;    // has a non-empty value (given or default)
    bool get_flag(const std::string& name) const;
    std::string get(const std::string& name) const;
    std::vector<std::string> get_list(const std::string& name) const;
    int64_t get_int(const std::string& name) const;
    size_t get_size(const std::string& name) const;  // non-negative integer
    double get_double(const std::string& name) const;

    // Sets an option's value unless it was given on the command line (config files use this, so
    // that flags override the file). Throws Error naming `source` for unknown keys.
    void set_if_not_given(const std::string& name, const std::string& value, const std::string& source);

    std::string help() const;

    // --threads N, the OpenMP threads of a command (default: all cores): declared by
    // threads_option(), applied (after parse) by apply_threads(), which refuses 0. A long job
    // (the trainer) passes adaptive = true: then, unless --threads or OMP_NUM_THREADS fixes the
    // count, it starts on all cores and gives threads up while other processes keep cores busy
    // (src/util/cpu_share.h).
    void threads_option(bool adaptive = false);
    void apply_threads(bool adaptive = false) const;

private:
    struct Spec {
        std::string name, default_value, help, metavar;
        enum Kind { value, multi, boolean } kind;
    };
    const Spec& spec(const std::string& name) const;

    std::string command_, summary_, epilog_;
    std::vector<Spec> specs_;
    std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace sinklab
