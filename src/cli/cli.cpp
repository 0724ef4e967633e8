#include "cli/cli.h"

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>
#include <omp.h>

#include "util/cpu_share.h"
#include "util/error.h"

namespace sinklab {

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::option(const std::string& name, const std::string& default_value, const std::string& help,
                       const std::string& metavar) {
    specs_.push_back({name, default_value, help, metavar, Spec::value});
}

void ArgParser::multi_option(const std::string& name, const std::string& help, const std::string& metavar) {
    specs_.push_back({name, "", help, metavar, Spec::multi});
}

void ArgParser::flag(const std::string& name, const std::string& help) {
    specs_.push_back({name, "", help, "", Spec::boolean});
}

void ArgParser::epilog(const std::string& text) { epilog_ = text; }

const ArgParser::Spec& ArgParser::spec(const std::string& name) const {
    for (const Spec& s : specs_)
        if (s.name == name) return s;
    throw std::logic_error("ArgParser: option --" + name + " was never declared");
}

bool ArgParser::parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            fmt::print("{}", help());
            return false;
        }
        if (arg.rfind("--", 0) != 0) fail("{}: unexpected argument '{}' (see sinklab {} --help)", command_, arg, command_);
        std::string name = arg.substr(2), inline_value;
        const bool has_inline = name.find('=') != std::string::npos;
        if (has_inline) {
            inline_value = name.substr(name.find('=') + 1);
            name = name.substr(0, name.find('='));
        }
        const Spec* s = nullptr;
        for (const Spec& candidate : specs_)
            if (candidate.name == name) s = &candidate;
        if (!s) fail("{}: unknown option --{} (see sinklab {} --help)", command_, name, command_);
        std::vector<std::string>& slot = values_[name];
        if (s->kind == Spec::boolean) {
            if (has_inline) fail("--{}: is a switch and takes no value", name);
            slot = {"1"};
        } else if (s->kind == Spec::value) {
            if (has_inline) {
                slot = {inline_value};
            } else {
                if (i + 1 >= argc) fail("--{}: missing value ({})", name, s->metavar);
                slot = {argv[++i]};
            }
        } else {
            if (has_inline) slot.push_back(inline_value);
            while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) slot.push_back(argv[++i]);
            if (slot.empty()) fail("--{}: missing value ({}...)", name, s->metavar);
        }
    }
    return true;
}

bool ArgParser::given(const std::string& name) const {
    spec(name);
    return values_.count(name) != 0;
}

bool ArgParser::has(const std::string& name) const { return !get(name).empty() || !get_list(name).empty(); }

bool ArgParser::get_flag(const std::string& name) const {
    spec(name);
    return values_.count(name) != 0;
}

std::string ArgParser::get(const std::string& name) const {
    const Spec& s = spec(name);
    auto it = values_.find(name);
    if (it == values_.end() || it->second.empty()) return s.default_value;
    return it->second.back();
}

std::vector<std::string> ArgParser::get_list(const std::string& name) const {
    spec(name);
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

int64_t ArgParser::get_int(const std::string& name) const {
    const std::string text = get(name);
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE) fail("--{}: expected an integer, got '{}'", name, text);
    return value;
}

size_t ArgParser::get_size(const std::string& name) const {
    const int64_t value = get_int(name);
    if (value < 0) fail("--{}: must not be negative (got {})", name, value);
    return size_t(value);
}

double ArgParser::get_double(const std::string& name) const {
    const std::string text = get(name);
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE) fail("--{}: expected a number, got '{}'", name, text);
    return value;
}

void ArgParser::set_if_not_given(const std::string& name, const std::string& value, const std::string& source) {
    bool known = false;
    for (const Spec& s : specs_) known = known || s.name == name;
    if (!known) fail("{}: unknown key '{}' (keys are the long option names of sinklab {})", source, name, command_);
    if (!given(name)) values_[name] = {value};
}

std::string ArgParser::help() const {
    std::string out = fmt::format("usage: sinklab {} [options]\n\n{}\n\noptions:\n", command_, summary_);
    for (const Spec& s : specs_) {
        std::string left = "--" + s.name;
        if (s.kind == Spec::value) left += " " + s.metavar;
        if (s.kind == Spec::multi) left += " " + s.metavar + "...";
        std::string right = s.help;
        if (!s.default_value.empty()) right += fmt::format(" (default: {})", s.default_value);
        out += fmt::format("  {:<28} {}\n", left, right);
    }
    out += fmt::format("  {:<28} {}\n", "--help", "print this help");
    if (!epilog_.empty()) out += "\n" + epilog_ + (epilog_.back() == '\n' ? "" : "\n");
    return out;
}

void ArgParser::threads_option(bool adaptive) {
    option("threads", "",
           adaptive ? "OpenMP threads (default: all cores, fewer while other processes keep cores busy; "
                      "N fixes the count)"
                    : "OpenMP threads (default: all cores)",
           "N");
}

void ArgParser::apply_threads(bool adaptive) const {
    if (!has("threads")) {
        if (adaptive && std::getenv("OMP_NUM_THREADS") == nullptr) enable_adaptive_threads();
        return;
    }
    const size_t threads = get_size("threads");
    if (threads == 0) fail("--threads must be positive");
    omp_set_num_threads(int(threads));
}

}  // namespace sinklab
