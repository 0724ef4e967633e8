#include "util/memory.h"

#include <unistd.h>

#include "util/error.h"

namespace sinklab {

size_t physical_memory_bytes() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0;
}

void require_memory(double bytes, const std::string& what, const std::string& advice) {
    const double available = double(physical_memory_bytes());
    if (available > 0 && bytes > available)
        fail("{} needs {:.1f} GiB, more than this machine's {:.1f} GiB of memory ({})", what, bytes / 1073741824.0,
             available / 1073741824.0, advice);
}

}  // namespace sinklab
