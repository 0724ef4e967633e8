// Checking a large request against the machine's memory before allocating it, so that a size that
// cannot fit (a mistyped --width, a corrupt header) is an error naming its cause, not a crash.
#pragma once
#include <cstddef>
#include <string>

namespace sinklab {

// The machine's physical memory in bytes (0 when the system does not say).
size_t physical_memory_bytes();

// Throws Error "WHAT needs N GiB, more than this machine's M GiB of memory (ADVICE)" when `bytes`
// (a double, so that products of huge sizes cannot overflow) exceeds the physical memory.
void require_memory(double bytes, const std::string& what, const std::string& advice);

}  // namespace sinklab
