// One error type for everything a user can get wrong: bad flags, bad files, bad configurations.
// The message names the culprit (the flag, the file, the field); main() prints it and exits 1.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sinklab {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace sinklab
