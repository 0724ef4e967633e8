#include "data/dataloader.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "util/error.h"

namespace sinklab {

DataLoader::DataLoader(const std::vector<std::string>& paths, size_t B, size_t T, size_t vocab_size,
                       int32_t first_token, const SequenceEdits& edits, size_t max_tokens)
    : B_(B), T_(T), vocab_size_(vocab_size), first_token_(first_token), edits_(edits) {
    if (first_token >= 0 && size_t(first_token) >= vocab_size)
        fail("--first-token {} is outside the vocabulary (size {})", first_token, vocab_size);
    edits_.validate(T, vocab_size);
    const size_t need = B * T + 1;
    if (max_tokens > 0 && max_tokens < need)
        fail("--train-tokens {} is less than one batch of {} x {} + 1 = {} tokens", max_tokens, B, T, need);
    std::vector<std::string> too_short;
    size_t budget = max_tokens > 0 ? max_tokens : SIZE_MAX;  // the cap: shards cut at the first N tokens
    for (const std::string& p : paths) {
        if (budget == 0) break;
        ShardInfo info = read_shard_header(p);
        info.n_tokens = std::min(info.n_tokens, budget);
        budget -= info.n_tokens;
        if (info.n_tokens < need) too_short.push_back(fmt::format("{} ({} tokens)", p, info.n_tokens));
        else shards_.push_back(info);
    }
    if (shards_.empty())
        fail("no shard holds one batch of {} x {} + 1 = {} tokens: {}", B, T, need, fmt::join(too_short, ", "));
    for (const std::string& s : too_short)
        fmt::print(stderr, "warning: skipping shard {}: shorter than one batch of {} tokens\n", s, need);
    buffer_.resize(need);
    row_.resize(T + 1);
}

void DataLoader::set_position(size_t shard, size_t offset, size_t epoch) {
    if (shard >= shards_.size() || offset + B_ * T_ + 1 > shards_[shard].n_tokens)
        fail("data position (shard {}, offset {}) is not valid for these shards (were they changed?)", shard, offset);
    shard_ = shard;
    offset_ = offset;
    epoch_ = epoch;
}

size_t DataLoader::total_tokens() const {
    size_t n = 0;
    for (const ShardInfo& s : shards_) n += s.n_tokens;
    return n;
}

size_t DataLoader::batches_per_epoch() const {
    size_t n = 0;
    for (const ShardInfo& s : shards_) n += (s.n_tokens - 1) / (B_ * T_);
    return n;
}

void DataLoader::next_batch(int32_t* inputs, int32_t* targets) {
    const size_t need = B_ * T_ + 1;
    const ShardInfo& shard = shards_[shard_];
    read_shard_tokens(shard, offset_, need, buffer_.data());
    for (size_t i = 0; i < need; i++)
        if (buffer_[i] < 0 || size_t(buffer_[i]) >= vocab_size_)
            fail("{}: token id {} at position {} is outside the model's vocabulary (size {}); "
                 "set --vocab to the tokenizer's size",
                 shard.path, buffer_[i], offset_ + i, vocab_size_);
    const bool fixed_first = first_token_ >= 0;
    for (size_t b = 0; b < B_; b++) {
        // row b: T + 1 tokens, [F, d_0 .. d_{T-1}] with a first token, else [d_0 .. d_T]
        for (size_t t = 0; t <= T_; t++)
            row_[t] = fixed_first ? (t == 0 ? first_token_ : buffer_[b * T_ + t - 1]) : buffer_[b * T_ + t];
        if (edits_.any()) edits_.apply(row_.data(), T_ + 1, mix_key(mix_key(epoch_, shard_), offset_ + b * T_), vocab_size_);
        for (size_t t = 0; t < T_; t++) {
            inputs[b * T_ + t] = row_[t];
            targets[b * T_ + t] = row_[t + 1];
        }
    }
    offset_ += B_ * T_;
    if (offset_ + need > shard.n_tokens) {  // the next batch does not fit: next shard
        offset_ = 0;
        if (++shard_ == shards_.size()) {
            shard_ = 0;
            epoch_++;
        }
    }
}

}  // namespace sinklab
