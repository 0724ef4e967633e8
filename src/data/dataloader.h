// Reads training batches from token shards, in order: each batch is B rows of T+1 consecutive
// tokens (inputs = the first T, targets = the last T), rows following each other through a shard,
// shards following each other, and back to the first shard (a new epoch) at the end. Sequences may
// start mid-document, as in the paper's recipe (docs/data.md). The position (shard, offset, epoch)
// is all the state there is, so a resumed run continues with exactly the batch it would have seen.
//
// With a fixed first token F (>= 0), every row starts with F (a BOS-like token; Gu et al. 2025: a
// fixed token at a position creates a sink there, docs/sinks.md) and the data fills the remaining
// T-1 inputs:
//   inputs[b] = [F, d_0 .. d_{T-2}],  targets[b] = [d_0 .. d_{T-1}]
// Then the data levers (SequenceEdits: a fixed token at a position, random ids at positions) edit
// each row of T + 1 tokens before it is split into inputs and targets.
//
// With a token cap N (`--train-tokens`, the paper's data-amount experiment), only the first N
// tokens of the shards (in order) are read, again and again: the shards are cut at N.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/sequence_edits.h"
#include "data/shard.h"

namespace sinklab {

class DataLoader {
public:
    // `paths`: shards (see expand_shard_paths). Every shard is checked up front; shards too short
    // for one batch are skipped with a warning, and none long enough is an error naming them.
    DataLoader(const std::vector<std::string>& paths, size_t B, size_t T, size_t vocab_size,
               int32_t first_token = -1, const SequenceEdits& edits = {}, size_t max_tokens = 0);

    // Fills inputs (B*T) and targets (B*T) and advances. Token ids outside the vocabulary are an
    // error naming the shard and the position.
    void next_batch(int32_t* inputs, int32_t* targets);

    void reset() { shard_ = offset_ = epoch_ = 0; }
    size_t shard() const { return shard_; }
    size_t offset() const { return offset_; }
    size_t epoch() const { return epoch_; }
    void set_position(size_t shard, size_t offset, size_t epoch);
    size_t total_tokens() const;
    size_t batches_per_epoch() const;

private:
    std::vector<ShardInfo> shards_;
    size_t B_, T_, vocab_size_;
    int32_t first_token_;
    SequenceEdits edits_;
    size_t shard_ = 0, offset_ = 0, epoch_ = 0;
    std::vector<int32_t> buffer_, row_;
};

}  // namespace sinklab
