#include "data/shard.h"

#include <glob.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

ShardInfo read_shard_header(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open shard ({})", path, std::strerror(errno));
    int32_t header[kShardHeaderInts];
    in.read(reinterpret_cast<char*>(header), sizeof(header));
    if (in.gcount() != std::streamsize(sizeof(header)))
        fail("{}: truncated shard: {} bytes, shorter than the 1024-byte header", path, in.gcount());
    ShardInfo info;
    info.path = path;
    if (header[0] == kShardMagicU16) {
        if (header[1] != 1) fail("{}: unsupported shard version {} for magic {} (expected 1)", path, header[1], header[0]);
        info.wide = false;
    } else if (header[0] == kShardMagicU32) {
        if (header[1] != 7) fail("{}: unsupported shard version {} for magic {} (expected 7)", path, header[1], header[0]);
        info.wide = true;
    } else {
        fail("{}: not a token shard: magic {} (expected {} or {})", path, header[0], kShardMagicU16, kShardMagicU32);
    }
    if (header[2] < 0) fail("{}: corrupt shard header: negative token count {}", path, header[2]);
    if (header[3] < 0) fail("{}: corrupt shard header: negative sequence length {}", path, header[3]);
    info.n_tokens = size_t(header[2]);
    info.sequence_length = size_t(header[3]);
    const size_t expected = sizeof(header) + info.n_tokens * (info.wide ? 4 : 2);
    const size_t actual = std::filesystem::file_size(path);
    if (actual < expected)
        fail("{}: truncated shard: header promises {} tokens ({} bytes) but the file has {} bytes", path,
             info.n_tokens, expected, actual);
    if (actual > expected)
        fail("{}: corrupt shard: {} bytes after the {} tokens the header promises", path, actual - expected,
             info.n_tokens);
    return info;
}

void read_shard_tokens(const ShardInfo& info, size_t offset, size_t count, int32_t* out) {
    if (offset + count > info.n_tokens)
        fail("{}: read past the end (tokens {}..{} of {})", info.path, offset, offset + count, info.n_tokens);
    std::ifstream in(info.path, std::ios::binary);
    if (!in) fail("{}: cannot open shard ({})", info.path, std::strerror(errno));
    const size_t width = info.wide ? 4 : 2;
    in.seekg(std::streamoff(kShardHeaderInts * 4 + offset * width));
    std::vector<unsigned char> raw(count * width);
    in.read(reinterpret_cast<char*>(raw.data()), std::streamsize(raw.size()));
    if (size_t(in.gcount()) != raw.size()) fail("{}: short read at token {}", info.path, offset);
    for (size_t i = 0; i < count; i++) {
        const unsigned char* p = raw.data() + i * width;
        uint32_t v = uint32_t(p[0]) | uint32_t(p[1]) << 8;
        if (info.wide) v |= uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
        if (v > uint32_t(INT32_MAX)) fail("{}: token id {} at position {} does not fit int32", info.path, v, offset + i);
        out[i] = int32_t(v);
    }
}

std::vector<int32_t> read_shard(const std::string& path, ShardInfo* info_out) {
    const ShardInfo info = read_shard_header(path);
    std::vector<int32_t> tokens(info.n_tokens);
    if (info.n_tokens) read_shard_tokens(info, 0, info.n_tokens, tokens.data());
    if (info_out) *info_out = info;
    return tokens;
}

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, bool wide, size_t sequence_length) {
    if (tokens.size() > size_t(INT32_MAX)) fail("{}: too many tokens for one shard ({})", path, tokens.size());
    for (size_t i = 0; i < tokens.size(); i++) {
        if (tokens[i] < 0) fail("{}: negative token id {} at position {}", path, tokens[i], i);
        if (!wide && tokens[i] > 0xFFFF) wide = true;  // does not fit uint16: use the uint32 variant
    }
    int32_t header[kShardHeaderInts] = {};
    header[0] = wide ? kShardMagicU32 : kShardMagicU16;
    header[1] = wide ? 7 : 1;
    header[2] = int32_t(tokens.size());
    header[3] = int32_t(sequence_length);
    std::string bytes(reinterpret_cast<const char*>(header), sizeof(header));
    const size_t width = wide ? 4 : 2;
    bytes.reserve(bytes.size() + tokens.size() * width);
    for (const int32_t t : tokens) {
        const uint32_t v = uint32_t(t);
        for (size_t b = 0; b < width; b++) bytes += char((v >> (8 * b)) & 0xFF);
    }
    write_file_atomic(path, bytes);
}

std::vector<std::string> expand_shard_paths(const std::string& pattern) {
    std::vector<std::string> paths;
    if (std::filesystem::is_directory(pattern)) {
        // A corpus made by `sinklab prepare` holds training, validation and probe shards and the
        // tokenizer side by side: taking all its .bin files would train on the validation text.
        if (std::filesystem::exists(std::filesystem::path(pattern) / "prepare.json"))
            fail("'{}' is a prepared corpus (it has prepare.json): name its shards, e.g. --data '{}/train_*.bin' "
                 "and --val '{}/val_*.bin'", pattern, pattern, pattern);
        for (const auto& entry : std::filesystem::directory_iterator(pattern))
            if (entry.is_regular_file() && entry.path().extension() == ".bin") paths.push_back(entry.path().string());
    } else {
        glob_t g{};
        if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; i++) paths.emplace_back(g.gl_pathv[i]);
        globfree(&g);
    }
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) fail("no shard matches '{}'", pattern);
    return paths;
}

void check_token_range(const std::vector<int32_t>& tokens, size_t vocab_size, const std::string& what) {
    for (size_t i = 0; i < tokens.size(); i++)
        if (tokens[i] < 0 || size_t(tokens[i]) >= vocab_size)
            fail("{}: token id {} at position {} is outside the vocabulary (size {})", what, tokens[i], i, vocab_size);
}

}  // namespace sinklab
