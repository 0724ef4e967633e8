#include "util/fileio.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "util/error.h"

namespace sinklab {

void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& produce) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) fail("{}: cannot create ({})", tmp, std::strerror(errno));
    const auto write_all = [&](const void* data, size_t bytes) {
        const char* p = static_cast<const char*>(data);
        while (bytes > 0) {
            const ssize_t n = ::write(fd, p, std::min<size_t>(bytes, size_t(1) << 30));
            if (n < 0) {
                if (errno == EINTR) continue;
                const int saved = errno;
                ::close(fd);
                ::unlink(tmp.c_str());
                fail("{}: write failed ({})", tmp, std::strerror(saved));
            }
            p += n;
            bytes -= size_t(n);
        }
    };
    produce(write_all);
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        ::unlink(tmp.c_str());
        fail("{}: cannot flush to disk ({})", tmp, std::strerror(errno));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int saved = errno;
        ::unlink(tmp.c_str());
        fail("{}: cannot rename into place ({})", path, std::strerror(saved));
    }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    write_file_atomic(path, [&](const auto& write) { write(bytes.data(), bytes.size()); });
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open ({})", path, std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) fail("{}: read error", path);
    return buffer.str();
}

void make_dirs(const std::string& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) fail("{}: cannot create directory ({})", path, ec.message());
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

DirectoryLock::DirectoryLock(const std::string& dir) {
    make_dirs(dir);
    const std::string path = dir + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("{}: cannot open the lock file: {}", path, std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        char pid[32] = {};
        const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK)
            fail("{}: another sinklab train (pid {}) is using this run directory; wait for it or use another --out",
                 dir, n > 0 ? std::string(pid, size_t(n)) : std::string("?"));
        fail("{}: cannot lock: {}", path, std::strerror(err));
    }
    const std::string me = std::to_string(::getpid());
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size()))
        fmt::print(stderr, "warning: {}: could not record this process's pid\n", path);
}

DirectoryLock::~DirectoryLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

}  // namespace sinklab
