// File helpers shared by every writer: atomic replacement, whole-file reads with clear errors.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace sinklab {

// Writes `bytes` to `path` atomically: path.tmp is written, flushed to disk and renamed over path,
// so a crash at any point leaves either the old file or the new one, never a torn one.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for a file too large to build in memory first: `produce` is called once with a writer
// and hands it the file's bytes piece by piece (a safetensors file: header, then each tensor).
void write_file_atomic(const std::string& path,
                       const std::function<void(const std::function<void(const void*, size_t)>&)>& produce);

// Reads a whole file; throws Error naming it when it cannot be opened or read.
std::string read_file(const std::string& path);

// Creates a directory and its parents (no error when it exists).
void make_dirs(const std::string& path);

bool file_exists(const std::string& path);

// An exclusive advisory lock on DIR/.lock (flock), held for the object's lifetime; the kernel drops
// it when the process dies, so a killed trainer never leaves a stale lock. A second holder is
// refused with an error naming DIR and the pid written into the lock file by the first.
class DirectoryLock {
public:
    explicit DirectoryLock(const std::string& dir);
    ~DirectoryLock();
    DirectoryLock(const DirectoryLock&) = delete;
    DirectoryLock& operator=(const DirectoryLock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace sinklab
