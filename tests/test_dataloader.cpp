// Data loader: batches are consecutive rows of the token stream, shards follow each other, the
// epoch wraps, the fixed-first-token mode, and shard round trips in both widths.
#include <doctest/doctest.h>

#include <numeric>

#include "data/dataloader.h"
#include "data/shard.h"
#include "test_helpers.h"
#include "util/error.h"

using namespace sinklab;

TEST_CASE("shards round trip in the uint16 and uint32 variants") {
    testing::TempDir dir("shards");
    std::vector<int32_t> small(1000), large(1000);
    std::iota(small.begin(), small.end(), 0);
    std::iota(large.begin(), large.end(), 70000);  // does not fit uint16
    write_shard(dir / "a.bin", small);
    write_shard(dir / "b.bin", large);
    ShardInfo ia, ib;
    CHECK(read_shard(dir / "a.bin", &ia) == small);
    CHECK(read_shard(dir / "b.bin", &ib) == large);
    CHECK(!ia.wide);
    CHECK(ib.wide);
    CHECK(expand_shard_paths(dir / "*.bin") == std::vector<std::string>{dir / "a.bin", dir / "b.bin"});
    CHECK(expand_shard_paths(dir.path) == std::vector<std::string>{dir / "a.bin", dir / "b.bin"});
    CHECK_THROWS_WITH_AS(write_shard(dir / "c.bin", {1, -2}), doctest::Contains("negative token id -2"), Error);
}

TEST_CASE("the loader walks rows, shards and epochs in order and resumes at a position") {
    testing::TempDir dir("loader");
    std::vector<int32_t> first(25), second(17);
    std::iota(first.begin(), first.end(), 0);
    std::iota(second.begin(), second.end(), 100);
    write_shard(dir / "s0.bin", first);
    write_shard(dir / "s1.bin", second);
    // B = 2 rows of T = 4: a batch consumes 8 tokens and reads 9.
    DataLoader loader({dir / "s0.bin", dir / "s1.bin"}, 2, 4, 200);
    std::vector<int32_t> in(8), tg(8);
    loader.next_batch(in.data(), tg.data());
    CHECK(in == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(tg == std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8});
    loader.next_batch(in.data(), tg.data());
    CHECK(in[0] == 8);
    loader.next_batch(in.data(), tg.data());  // 16..24 fits exactly (16 + 9 = 25)
    CHECK(tg[7] == 24);
    CHECK(loader.shard() == 1);  // 24 + 9 > 25: on to the next shard
    loader.next_batch(in.data(), tg.data());
    CHECK(in[0] == 100);
    loader.next_batch(in.data(), tg.data());
    CHECK(in[0] == 108);
    CHECK(loader.epoch() == 1);  // back to the first shard
    CHECK(loader.shard() == 0);
    // A second loader put at a saved position yields the same next batch.
    DataLoader other({dir / "s0.bin", dir / "s1.bin"}, 2, 4, 200);
    other.set_position(1, 8, 0);
    std::vector<int32_t> in2(8), tg2(8);
    other.next_batch(in2.data(), tg2.data());
    CHECK(in2[0] == 108);
    CHECK_THROWS_AS(other.set_position(5, 0, 0), Error);
}

TEST_CASE("fixed first token: every row starts with it, the data shifts by one") {
    testing::TempDir dir("first");
    std::vector<int32_t> tokens(40);
    std::iota(tokens.begin(), tokens.end(), 1);
    write_shard(dir / "s.bin", tokens);
    DataLoader loader({dir / "s.bin"}, 2, 4, 64, 0);
    std::vector<int32_t> in(8), tg(8);
    loader.next_batch(in.data(), tg.data());
    CHECK(in == std::vector<int32_t>{0, 1, 2, 3, 0, 5, 6, 7});
    CHECK(tg == std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8});
    CHECK_THROWS_WITH_AS(DataLoader({dir / "s.bin"}, 2, 4, 64, 64), doctest::Contains("--first-token 64"), Error);
}

TEST_CASE("token ids beyond the vocabulary are reported with the shard and the position") {
    testing::TempDir dir("range");
    std::vector<int32_t> tokens(20, 3);
    tokens[6] = 99;
    write_shard(dir / "s.bin", tokens);
    DataLoader loader({dir / "s.bin"}, 1, 8, 50);
    std::vector<int32_t> in(8), tg(8);
    CHECK_THROWS_WITH_AS(loader.next_batch(in.data(), tg.data()),
                         doctest::Contains("s.bin: token id 99 at position 6 is outside the model's vocabulary (size 50)"),
                         Error);
    CHECK_THROWS_WITH_AS(DataLoader({dir / "s.bin"}, 4, 8, 50), doctest::Contains("no shard holds one batch"), Error);
}

TEST_CASE("data levers: a fixed token at a position, seeded random ids, identical after a resume") {
    testing::TempDir dir("levers");
    std::vector<int32_t> tokens(500);
    std::iota(tokens.begin(), tokens.end(), 0);
    write_shard(dir / "s.bin", tokens);
    const size_t B = 3, T = 8, V = 1000;
    SequenceEdits edits;
    edits.fixed_token = 999;
    edits.fixed_position = 2;
    edits.random_begin = 4;
    edits.random_end = 6;
    edits.seed = 11;
    DataLoader loader({dir / "s.bin"}, B, T, V, -1, edits);
    std::vector<int32_t> in(B * T), tg(B * T), first_in;
    for (int batch = 0; batch < 4; batch++) {
        loader.next_batch(in.data(), tg.data());
        if (batch == 0) first_in = in;
        for (size_t b = 0; b < B; b++) {
            const int32_t* x = in.data() + b * T;
            const int32_t* y = tg.data() + b * T;
            CHECK(x[2] == 999);  // the fixed token is input 2 and the target of position 1
            CHECK(y[1] == 999);
            for (size_t t = 4; t < 6; t++) {
                CHECK(x[t] >= 0);
                CHECK(x[t] < int32_t(V));
                CHECK(y[t - 1] == x[t]);  // inputs and targets agree on the edited row
            }
            // the other positions are the data: consecutive ids
            CHECK(x[1] + 2 == x[3]);
            CHECK(x[7] == x[6] + 1);
        }
    }
    // The random ids are not the data and differ between rows; another seed gives others.
    CHECK(first_in[4] != first_in[3] + 1);
    CHECK((first_in[4] != first_in[T + 4] || first_in[5] != first_in[T + 5]));
    SequenceEdits reseeded = edits;
    reseeded.seed = 12;
    DataLoader other_seed({dir / "s.bin"}, B, T, V, -1, reseeded);
    std::vector<int32_t> in2(B * T), tg2(B * T);
    other_seed.next_batch(in2.data(), tg2.data());
    CHECK(in2 != first_in);
    // A loader put at the position of batch 3 yields batch 3 exactly (a resume).
    DataLoader straight({dir / "s.bin"}, B, T, V, -1, edits), resumed({dir / "s.bin"}, B, T, V, -1, edits);
    for (int batch = 0; batch < 2; batch++) straight.next_batch(in.data(), tg.data());
    resumed.set_position(straight.shard(), straight.offset(), straight.epoch());
    straight.next_batch(in.data(), tg.data());
    resumed.next_batch(in2.data(), tg2.data());
    CHECK(in == in2);
    CHECK(tg == tg2);
    // Bad levers name their flags.
    SequenceEdits outside = edits;
    outside.fixed_position = T;
    CHECK_THROWS_WITH_AS(DataLoader({dir / "s.bin"}, B, T, V, -1, outside), doctest::Contains("--fixed-position 8"), Error);
    outside = edits;
    outside.fixed_token = int64_t(V);
    CHECK_THROWS_WITH_AS(DataLoader({dir / "s.bin"}, B, T, V, -1, outside), doctest::Contains("--fixed-token 1000"), Error);
}

TEST_CASE("--train-tokens: only the first N tokens, repeated") {
    testing::TempDir dir("cap");
    std::vector<int32_t> first(40), second(40);
    std::iota(first.begin(), first.end(), 0);
    std::iota(second.begin(), second.end(), 100);
    write_shard(dir / "s0.bin", first);
    write_shard(dir / "s1.bin", second);
    // B = 2 rows of T = 4 read 9 tokens a batch; a cap of 20 keeps tokens 0..19 of the first shard:
    // batches start at 0 and 8 (8 + 9 = 17 <= 20), then 16 + 9 > 20 wraps to 0 (a new epoch).
    DataLoader loader({dir / "s0.bin", dir / "s1.bin"}, 2, 4, 200, -1, {}, 20);
    std::vector<int32_t> in(8), tg(8);
    std::vector<int32_t> starts;
    for (int batch = 0; batch < 6; batch++) {
        loader.next_batch(in.data(), tg.data());
        starts.push_back(in[0]);
        for (int32_t x : in) CHECK(x < 20);
        for (int32_t y : tg) CHECK(y < 20);
    }
    CHECK(starts == std::vector<int32_t>{0, 8, 0, 8, 0, 8});
    CHECK(loader.total_tokens() == 20);
    // a cap reaching into the second shard keeps its first tokens
    DataLoader two({dir / "s0.bin", dir / "s1.bin"}, 2, 4, 200, -1, {}, 50);
    CHECK(two.total_tokens() == 50);
    CHECK_THROWS_WITH_AS(DataLoader({dir / "s0.bin"}, 2, 4, 200, -1, {}, 5), doctest::Contains("--train-tokens 5"), Error);
}
