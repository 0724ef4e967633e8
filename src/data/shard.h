// Token shards in llm.c's format, so shards made by llm.c's data scripts train here unchanged.
//
//   header: 256 little-endian int32
//     [0] magic   20240520 (tokens are uint16)  or  20240801 (tokens are uint32)
//     [1] version 1 with magic 20240520,           7 with magic 20240801
//     [2] number of tokens that follow
//     [3] sinklab extension, 0 in llm.c shards: the sequence length of a probe file (see below)
//   then the tokens, little-endian, 2 or 4 bytes each.
//
// A probe file (for the sink analysis) is a shard holding S sequences of equal length back to back,
// with that length in header[3].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sinklab {

constexpr int32_t kShardMagicU16 = 20240520;
constexpr int32_t kShardMagicU32 = 20240801;
constexpr size_t kShardHeaderInts = 256;

struct ShardInfo {
    std::string path;
    bool wide = false;       // uint32 tokens (else uint16)
    size_t n_tokens = 0;
    size_t sequence_length = 0;  // header[3], 0 when not a probe file
};

// Reads and checks a shard's header: magic, version, and that the file size matches the token
// count. Throws Error naming the file and what is wrong (truncated, wrong magic, ...).
ShardInfo read_shard_header(const std::string& path);

// Reads the whole shard as int32 token ids.
std::vector<int32_t> read_shard(const std::string& path, ShardInfo* info = nullptr);

// Reads tokens [offset, offset + count) of a shard into out (no whole-file load).
void read_shard_tokens(const ShardInfo& info, size_t offset, size_t count, int32_t* out);

// Writes a shard atomically (temporary file + rename). uint16 when every id fits, unless wide=true.
// Throws Error if an id is negative or does not fit the chosen width.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, bool wide = false,
                 size_t sequence_length = 0);

// Expands a file name, a glob pattern ("dir/train_*.bin") or a directory (every *.bin inside) into
// a sorted list of shard paths. Throws Error naming the pattern when nothing matches.
std::vector<std::string> expand_shard_paths(const std::string& pattern);

// Checks that every token id is below vocab_size; throws Error naming the file, the position and
// the id otherwise.
void check_token_range(const std::vector<int32_t>& tokens, size_t vocab_size, const std::string& what);

}  // namespace sinklab
