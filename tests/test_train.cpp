// Training-loop tests: determinism, exact resume, overfitting one batch, the schedule, checkpoint
// round trips and crash safety, and the errors a user can run into.
#include <doctest/doctest.h>
#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "model/backend_cpu.h"
#include "model/model.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "train/train.h"
#include "util/cpu_share.h"
#include "util/fileio.h"

using namespace sinklab;
using testing::TempDir;

namespace {

TrainOptions tiny_run(const TempDir& dir, const std::string& name, const std::string& attention = "softmax") {
    TrainOptions o;
    o.data = dir / "train.bin";
    o.val = dir / "val.bin";
    o.out = dir / name;
    o.preset = "tiny";
    o.model = preset("tiny");
    o.model.attention = parse_attention(attention);
    o.steps = 20;
    o.batch = 4;
    o.seq = 16;
    o.adam.lr = 3e-3;
    o.warmup = 5;
    o.eval_every = 10;
    o.val_batches = 2;
    o.log_every = 1000;
    return o;
}

void write_data(const TempDir& dir, size_t vocab = 64) {
    write_shard(dir / "train.bin", testing::patterned_tokens(20000, vocab, 1));
    write_shard(dir / "val.bin", testing::patterned_tokens(4000, vocab, 2));
}

std::vector<double> metric_values(const std::string& run_dir, const std::string& key) {
    std::vector<double> out;
    std::ifstream in(run_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        const Json j = Json::parse(line);
        if (j.contains(key)) out.push_back(j.at(key).as_number());
    }
    return out;
}

std::vector<float> final_weights(const std::string& run_dir) {
    return load_safetensors(resolve_weights_path(run_dir)).params;
}

}  // namespace

TEST_CASE("training is bitwise deterministic for a given seed and thread count") {
    TempDir dir("determinism");
    write_data(dir);
    REQUIRE(run_training(tiny_run(dir, "a"), false) == 0);
    REQUIRE(run_training(tiny_run(dir, "b"), false) == 0);
    const auto la = metric_values(dir / "a", "loss"), lb = metric_values(dir / "b", "loss");
    REQUIRE(la.size() == 20);
    CHECK(la == lb);  // exact equality of every loss
    CHECK(metric_values(dir / "a", "val_loss") == metric_values(dir / "b", "val_loss"));
    CHECK(final_weights(dir / "a") == final_weights(dir / "b"));
    CHECK(la.back() < la.front() - 0.5);  // and it learns
}

TEST_CASE("resume: 10 steps + resume to 20 equals 20 steps in one go") {
    TempDir dir("resume");
    write_data(dir);
    REQUIRE(run_training(tiny_run(dir, "straight"), false) == 0);
    TrainOptions first = tiny_run(dir, "split");
    first.steps = 10;
    REQUIRE(run_training(first, false) == 0);
    TrainOptions second = tiny_run(dir, "split");
    REQUIRE(run_training(second, true) == 0);
    CHECK(metric_values(dir / "straight", "loss") == metric_values(dir / "split", "loss"));
    CHECK(metric_values(dir / "straight", "val_loss") == metric_values(dir / "split", "val_loss"));
    CHECK(final_weights(dir / "straight") == final_weights(dir / "split"));
    // Resuming a finished run does nothing.
    CHECK(run_training(second, true) == 0);
}

TEST_CASE("a tiny model overfits one fixed batch under softmax and sigmoid attention") {
    for (const std::string attention : {"softmax", "sigmoid"}) {
        TempDir dir("overfit_" + attention);
        // Exactly one batch of 4 x 16 (+1) tokens: every step sees the same batch.
        write_shard(dir / "train.bin", testing::patterned_tokens(4 * 16 + 1, 64, 3));
        TrainOptions o = tiny_run(dir, "run", attention);
        o.val = "";
        o.steps = 300;
        o.adam.lr = 1e-2;
        o.adam.weight_decay = 0.0;
        REQUIRE(run_training(o, false) == 0);
        const auto losses = metric_values(o.out, "loss");
        MESSAGE(attention << ": loss " << losses.front() << " -> " << losses.back());
        CHECK(losses.front() > 3.5);
        CHECK(losses.back() < 0.05);
    }
}

TEST_CASE("window, prefix, alpha, slot, FFN type, positions, summed heads, post-norm and data levers: recorded in config.json, resumed exactly") {
    TempDir dir("masks");
    write_data(dir);
    REQUIRE(run_training(tiny_run(dir, "causal"), false) == 0);
    for (const std::string knob : {"window", "prefix", "alpha", "slot", "ffn", "position", "heads", "norm", "levers"}) {
        CAPTURE(knob);
        auto run = [&](const std::string& name, size_t steps) {
            TrainOptions o = tiny_run(dir, knob + "_" + name);
            if (knob == "window") o.model.attention.window = 3, o.model.attention.mask = MaskKind::window;
            if (knob == "prefix") o.model.attention.prefix = 5, o.model.attention.mask = MaskKind::prefix;
            if (knob == "alpha") o.model.attention.softmax_alpha = 0.5;
            if (knob == "slot") o.model.attention.slot = SlotKind::key_value, o.model.attention.slot_shared = true;
            if (knob == "ffn") o.model.ffn = FfnKind::geglu;
            if (knob == "position") o.model.position = PositionKind::learned;
            if (knob == "heads") o.model.sum_heads = true;
            if (knob == "norm") o.model.post_norm = true;
            if (knob == "levers") o.fixed_token = 5, o.fixed_position = 1, o.random_tokens = "3:5", o.train_tokens = 700;
            o.steps = steps;
            return o;
        };
        REQUIRE(run_training(run("straight", 20), false) == 0);
        REQUIRE(run_training(run("split", 10), false) == 0);
        REQUIRE(run_training(run("split", 20), true) == 0);
        CHECK(metric_values(dir / (knob + "_straight"), "loss") == metric_values(dir / (knob + "_split"), "loss"));
        CHECK(final_weights(dir / (knob + "_straight")) == final_weights(dir / (knob + "_split")));
        // The run's config.json and the checkpoint's metadata both carry the knob.
        const std::string config_path = dir / (knob + "_straight") + "/config.json";
        const ModelConfig from_config = model_config_from_json(Json::parse(read_file(config_path)).at("model"),
                                                               "config");
        const ModelConfig from_weights = load_safetensors(resolve_weights_path(dir / (knob + "_straight"))).config;
        for (const ModelConfig& m : {from_config, from_weights}) {
            CHECK(m.attention.describe() == run("", 1).model.attention.describe());
            CHECK(m.attention.window == run("", 1).model.attention.window);
            CHECK(m.attention.prefix == run("", 1).model.attention.prefix);
            CHECK(m.attention.softmax_alpha == run("", 1).model.attention.softmax_alpha);
            CHECK(m.attention.slot == run("", 1).model.attention.slot);
            CHECK(m.attention.slot_shared == run("", 1).model.attention.slot_shared);
            CHECK(m.ffn == run("", 1).model.ffn);
            CHECK(m.position == run("", 1).model.position);
            CHECK(m.sum_heads == run("", 1).model.sum_heads);
            CHECK(m.post_norm == run("", 1).model.post_norm);
        }
        if (knob == "levers") {  // the data levers are train options: config.json's "train" object
            const TrainOptions read = TrainOptions::from_json(Json::parse(read_file(config_path)).at("train"), config_path);
            CHECK(read.fixed_token == 5);
            CHECK(read.fixed_position == 1);
            CHECK(read.random_tokens == "3:5");
            CHECK(read.train_tokens == 700);
        }
        // A masked model trains differently from the causal one.
        CHECK(metric_values(dir / (knob + "_straight"), "loss") != metric_values(dir / "causal", "loss"));
    }
}

TEST_CASE("prefix LM: the loss counts positions >= P - 1 only") {
    AttentionSpec spec;
    std::vector<int32_t> targets(2 * 6, 7);
    drop_prefix_targets(targets.data(), 2, 6, spec);  // causal: unchanged
    CHECK(targets == std::vector<int32_t>(12, 7));
    spec.mask = MaskKind::prefix;
    spec.prefix = 3;
    drop_prefix_targets(targets.data(), 2, 6, spec);
    CHECK(targets == std::vector<int32_t>{-1, -1, 7, 7, 7, 7, -1, -1, 7, 7, 7, 7});
    spec.prefix = 1;  // a prefix of one token drops nothing
    std::vector<int32_t> all(6, 7);
    drop_prefix_targets(all.data(), 1, 6, spec);
    CHECK(all == std::vector<int32_t>(6, 7));
}

TEST_CASE("learning-rate schedule: warmup, constant and cosine") {
    TrainOptions o;
    o.adam.lr = 1e-3;
    o.warmup = 4;
    o.steps = 14;
    CHECK(learning_rate(o, 0) == doctest::Approx(2.5e-4));
    CHECK(learning_rate(o, 3) == doctest::Approx(1e-3));
    CHECK(learning_rate(o, 10) == doctest::Approx(1e-3));
    o.schedule = "cosine";
    o.min_lr = 1e-4;
    CHECK(learning_rate(o, 4) == doctest::Approx(1e-3));                         // start of the decay: peak
    CHECK(learning_rate(o, 13) == doctest::Approx(1e-4));                        // last step: the floor
    CHECK(learning_rate(o, 4 + 9 / 2) == doctest::Approx(1e-4 + 0.5 * 9e-4 * (1 + std::cos(M_PI * 4.0 / 9.0))));
}

TEST_CASE("checkpoints: safetensors and run state round trip; corruption is detected") {
    TempDir dir("ckpt");
    ModelConfig c = preset("tiny");
    c.attention = parse_attention("sigmoid-norm");
    Model<CpuBackend<float>> model(c);
    model.init_weights(5);
    RunState st;
    st.step = 7;
    st.loader_shard = 1;
    st.loader_offset = 640;
    st.loader_epoch = 2;
    st.options = Json::object();
    st.adam_m.assign(model.n_params(), 0.25f);
    st.adam_v.assign(model.n_params(), 0.5f);
    const std::string ckpt = save_checkpoint(dir.path, c, model.param_table(), model.params(), st);
    CHECK(latest_checkpoint(dir.path) == ckpt);
    const LoadedWeights w = load_safetensors(ckpt + "/model.safetensors");
    CHECK(model_config_to_json(w.config).dump() == model_config_to_json(c).dump());
    CHECK(std::equal(w.params.begin(), w.params.end(), model.params()));
    const RunState back = load_run_state(ckpt + "/state.bin", model.n_params());
    CHECK(back.step == 7);
    CHECK(back.loader_offset == 640);
    CHECK(back.adam_v == st.adam_v);

    // Truncations and wrong magic numbers give errors naming the file.
    const std::string weights = testing::slurp(ckpt + "/model.safetensors");
    write_file_atomic(dir / "cut.safetensors", weights.substr(0, weights.size() - 100));
    CHECK_THROWS_WITH_AS(load_safetensors(dir / "cut.safetensors"), doctest::Contains("cut.safetensors"), Error);
    write_file_atomic(dir / "garbage.safetensors", std::string(64, 'x'));
    CHECK_THROWS_AS(load_safetensors(dir / "garbage.safetensors"), Error);
    const std::string state = testing::slurp(ckpt + "/state.bin");
    write_file_atomic(dir / "cut.bin", state.substr(0, state.size() - 9));
    CHECK_THROWS_WITH_AS(load_run_state(dir / "cut.bin", model.n_params()), doctest::Contains("cut.bin"), Error);
    std::string flipped = state;
    flipped[100] ^= 1;
    write_file_atomic(dir / "flipped.bin", flipped);
    CHECK_THROWS_WITH_AS(load_run_state(dir / "flipped.bin", model.n_params()), doctest::Contains("checksum"), Error);
    CHECK_THROWS_WITH_AS(load_run_state(ckpt + "/state.bin", model.n_params() + 1), doctest::Contains("parameters"),
                         Error);

    // A save that died half-way (a leftover .tmp directory) does not disturb the latest checkpoint.
    std::filesystem::create_directories(dir.path + "/checkpoints/step_0000008.tmp");
    write_file_atomic(dir.path + "/checkpoints/step_0000008.tmp/model.safetensors", "partial");
    CHECK(latest_checkpoint(dir.path) == ckpt);
}

TEST_CASE("killing training during checkpoint saves never damages the last good checkpoint") {
    TempDir dir("kill");
    write_data(dir);
    // Checkpoint every step; kill -9 at several moments; the latest checkpoint must always load.
    for (int attempt = 0; attempt < 4; attempt++) {
        const std::string out = dir / ("run" + std::to_string(attempt));
        const std::string cmd = testing::sinklab_bin() + " train --data " + (dir / "train.bin") +
                                " --preset tiny --steps 100000 --batch 4 --seq 16 --checkpoint-every 1 --log-every 1000 --out " + out;
        const pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), nullptr);
            _exit(127);
        }
        // Wait for the first checkpoint (however loaded the machine is), then kill at a different
        // moment each time, most likely in the middle of one of the per-step saves.
        const std::string latest_file = out + "/checkpoints/latest";
        for (int waited = 0; waited < 600 && !std::filesystem::exists(latest_file); waited++)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::this_thread::sleep_for(std::chrono::milliseconds(37 + 61 * attempt));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        const std::string latest = latest_checkpoint(out);
        REQUIRE_MESSAGE(!latest.empty(), "no checkpoint written before the kill");
        const LoadedWeights w = load_safetensors(latest + "/model.safetensors");
        const RunState st = load_run_state(latest + "/state.bin", w.params.size());
        CHECK(st.step > 0);
        // And the run resumes from it.
        CHECK(testing::run(testing::sinklab_bin() + " train --out " + out + " --resume --steps " +
                           std::to_string(st.step + 2)) == 0);
    }
}

TEST_CASE("bad input: clear errors naming the culprit and non-zero exit codes") {
    TempDir dir("badinput");
    write_data(dir);
    const std::string bin = testing::sinklab_bin();
    const std::string base = bin + " train --data " + (dir / "train.bin") + " --steps 2 --batch 2 --seq 8 --out " + (dir / "run");
    const std::string log = dir / "log.txt";
    auto expect_error = [&](const std::string& args, const std::string& message, int code = 1) {
        const int rc = testing::run(base + " " + args, log);
        const std::string out = testing::slurp(log);
        INFO(args << " -> " << out);
        CHECK(rc == code);
        CHECK(out.find(message) != std::string::npos);
    };
    expect_error("--preset tiny --heads 3", "n_heads (3) must divide d_model (16)");
    expect_error("--preset tiny --heads 16", "must be even for RoPE");
    expect_error("--preset tiny --layers 0", "n_layers must be positive");
    expect_error("--preset tiny --attention cosine", "unknown attention 'cosine'");
    expect_error("--preset nano", "unknown preset 'nano'");
    expect_error("--preset tiny --lr abc", "--lr: expected a number");
    expect_error("--preset tiny --bogus 1", "unknown option --bogus");
    expect_error("--preset tiny --vocab 10", "outside the model's vocabulary (size 10)");
    expect_error("--preset tiny --window 4 --prefix 2", "--window (4) and --prefix (2) cannot be combined");
    expect_error("--preset tiny --attention sigmoid --softmax-alpha 0.5",
                 "--softmax-alpha (0.5) applies only to --attention softmax (got --attention sigmoid)");
    expect_error("--preset tiny --softmax-alpha 0", "--softmax-alpha must be a positive number");
    expect_error("--preset tiny --prefix 9", "--prefix 9 is longer than --seq 8");
    expect_error("--preset tiny --attention elu --sigmoid-bias 1", "--sigmoid-bias (1) applies only to");
    expect_error("--preset tiny --slot z-bias",
                 "--slot: unknown slot 'z-bias' (valid: none, k-bias, kv-bias, sink-token, v-bias, sink-logit, off-by-one)");
    expect_error("--preset tiny --attention sigmoid --slot v-bias",
                 "--slot v-bias needs normalised attention weights (got --attention sigmoid");
    expect_error("--preset tiny --attention elu --slot k-bias", "--slot k-bias needs normalised attention weights");
    expect_error("--preset tiny --attention softpick --slot kv-bias",
                 "--slot kv-bias cannot be combined with --attention softpick");
    expect_error("--preset tiny --attention softpick --slot sink-logit",
                 "--slot sink-logit needs softmax attention (got --attention softpick)");
    expect_error("--preset tiny --random-tokens 4:2", "--random-tokens: expected A:B with 0 <= A < B");
    expect_error("--preset tiny --fixed-token 3 --fixed-position 8", "--fixed-position 8 is not inside a sequence of --seq 8");
    expect_error("--preset tiny --position xpos", "--position: unknown position encoding 'xpos' (valid: rope, nope");
    expect_error("--preset tiny --ffn-type glu", "--ffn-type: unknown feed-forward type 'glu' (valid: swiglu, geglu");
    expect_error("--preset tiny --slot-sharing shared", "--slot-sharing shared needs a slot (got --slot none)");
    expect_error("--preset tiny --slot kv-bias --slot-sharing some", "--slot-sharing: unknown value 'some'");

    // Shards: truncated, wrong magic, empty pattern.
    std::string shard = testing::slurp(dir / "train.bin");
    write_file_atomic(dir / "cut.bin", shard.substr(0, shard.size() - 10));
    std::string wrong = shard;
    wrong[0] = 0x11;
    write_file_atomic(dir / "wrong.bin", wrong);
    const std::string tail = " --preset tiny --steps 2 --batch 2 --seq 8 --out " + (dir / "run2");
    auto expect_data_error = [&](const std::string& data, const std::string& message) {
        const int rc = testing::run(bin + " train --data " + data + tail, log);
        const std::string out = testing::slurp(log);
        INFO(data << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
    };
    expect_data_error(dir / "cut.bin", "cut.bin: truncated shard");
    expect_data_error(dir / "wrong.bin", "wrong.bin: not a token shard: magic");
    expect_data_error(dir / "nothing_*.bin", "no shard matches");
    std::filesystem::create_directories(dir / "corpus");  // a prepared corpus named as a directory
    write_file_atomic(dir / "corpus/prepare.json", "{}\n");
    write_file_atomic(dir / "corpus/train_000.bin", shard);
    expect_data_error(dir / "corpus", "is a prepared corpus (it has prepare.json): name its shards");

    // Resume of a run whose checkpoint was damaged.
    REQUIRE(testing::run(base + " --preset tiny") == 0);
    const std::string latest = latest_checkpoint(dir / "run");
    const std::string weights = testing::slurp(latest + "/model.safetensors");
    write_file_atomic(latest + "/model.safetensors", weights.substr(0, weights.size() / 2));
    const int rc = testing::run(bin + " train --out " + (dir / "run") + " --resume --steps 4", log);
    CHECK(rc == 1);
    CHECK(testing::slurp(log).find("model.safetensors") != std::string::npos);
}

TEST_CASE("a save that fails leaves no .tmp directory and no metrics line beyond the last good checkpoint") {
    TempDir dir("failed_save");
    write_data(dir);
    const std::string bin = testing::sinklab_bin(), out = dir / "run", log = dir / "log.txt";
    const std::string base = bin + " train --data " + (dir / "train.bin") +
                             " --preset tiny --batch 2 --seq 8 --checkpoint-every 2 --log-every 1000 --out " + out;
    REQUIRE(testing::run(base + " --steps 4") == 0);
    const std::string good = latest_checkpoint(out);
    REQUIRE(good.find("step_0000004") != std::string::npos);
    // A leftover of a save that died, as kill -9 leaves it: the next successful save removes it.
    std::filesystem::create_directories(out + "/checkpoints/step_0000003.tmp");
    // Resume with files limited to 50 KB (sh's ulimit counts 512-byte blocks; SIGXFSZ ignored, so a
    // write past the limit fails with EFBIG like a full disk): metrics fit, the weights (280 KB) do not.
    const int rc = testing::run("sh -c 'trap \"\" XFSZ; ulimit -f 100; exec " + bin + " train --out " + out +
                                    " --resume --steps 8'",
                                log);
    const std::string text = testing::slurp(log);
    INFO(text);
    CHECK(rc == 1);
    CHECK(text.find("saving the checkpoint of step 6 failed") != std::string::npos);
    CHECK(text.find("cut back to step 4") != std::string::npos);
    CHECK(latest_checkpoint(out) == good);
    for (const auto& e : std::filesystem::directory_iterator(out + "/checkpoints"))
        CHECK_MESSAGE(e.path().filename().string().find(".tmp") == std::string::npos, e.path().string());
    size_t last_step = 0;
    std::istringstream metrics(testing::slurp(out + "/metrics.jsonl"));
    for (std::string line; std::getline(metrics, line);)
        if (!line.empty()) last_step = size_t(Json::parse(line, "metrics").at("step").as_int());
    CHECK(last_step == 4);
    // Resumed without the limit, the run finishes as if nothing had happened.
    REQUIRE(testing::run(bin + " train --out " + out + " --resume --steps 8") == 0);
    CHECK(latest_checkpoint(out).find("step_0000008") != std::string::npos);
}

TEST_CASE("a NaN or infinite loss stops training with a message and leaves the last good checkpoint") {
    TempDir dir("diverge");
    write_data(dir);
    // A learning rate of 1e30 (reached slowly through a long warmup) blows the weights up within a
    // few steps; each step is checkpointed while it is still finite.
    const std::string out = dir / "run";
    const std::string log = dir / "log.txt";
    const int rc = testing::run(testing::sinklab_bin() + " train --data " + (dir / "train.bin") +
                                    " --preset tiny --steps 50 --batch 2 --seq 8 --lr 1e30 --warmup 1000 "
                                    "--checkpoint-every 1 --out " + out, log);
    const std::string text = testing::slurp(log);
    INFO(text);
    CHECK(rc == 4);
    CHECK(text.find("training diverged at step") != std::string::npos);
    const std::string latest = latest_checkpoint(out);
    REQUIRE(!latest.empty());
    const LoadedWeights w = load_safetensors(latest + "/model.safetensors");
    CHECK(load_run_state(latest + "/state.bin", w.params.size()).step >= 1);
    CHECK(text.find(latest) != std::string::npos);  // the message names the checkpoint
}

// The README's `sinklab train` table is written by hand; it must name every option the command has
// (train_options(), plus the command-level --config, --threads, --resume).
TEST_CASE("the README's train table names every flag of sinklab train") {
    const char* source_dir = std::getenv("SINKLAB_SOURCE_DIR");
    REQUIRE(source_dir != nullptr);
    const std::string readme = read_file(std::string(source_dir) + "/README.md");
    const size_t begin = readme.find("### `sinklab train`");
    REQUIRE(begin != std::string::npos);
    const std::string section = readme.substr(begin, readme.find("\n### ", begin + 1) - begin);
    // "--name" as a whole flag: not the prefix of a longer one ("--val" in "--val-batches").
    auto names = [&](const std::string& flag) {
        const std::string needle = "--" + flag;
        for (size_t at = section.find(needle); at != std::string::npos; at = section.find(needle, at + 1)) {
            const char next = at + needle.size() < section.size() ? section[at + needle.size()] : ' ';
            if (!(std::isalnum(static_cast<unsigned char>(next)) || next == '-')) return true;
        }
        return false;
    };
    std::vector<std::string> flags = {"config", "threads", "resume"};
    for (const TrainOption& opt : train_options()) flags.push_back(opt.flag);
    for (const std::string& flag : flags) CHECK_MESSAGE(names(flag), "README.md's train table lacks --" << flag);
}

namespace {

// Every file under `dir` (relative path -> bytes), the lock file left out.
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != ".lock")
            files[std::filesystem::relative(e.path(), dir).string()] = testing::slurp(e.path().string());
    return files;
}

}  // namespace

TEST_CASE("a refused command leaves the run directory byte-identical; one trainer per directory") {
    TempDir dir("refused");
    write_data(dir);
    write_shard(dir / "bad.bin", std::vector<int32_t>(200, 500));  // ids beyond the vocabulary (64)
    write_file_atomic(dir / "garbage.probe", "not a probe");
    const std::string bin = testing::sinklab_bin();
    const std::string run = dir / "run";
    const std::string base = bin + " train --preset tiny --vocab 64 --steps 3 --batch 2 --seq 8 --eval-every 0 --out " + run;
    const std::string log = dir / "log.txt";
    REQUIRE(testing::run(base + " --data " + (dir / "train.bin"), log) == 0);
    const auto before = snapshot(run);
    REQUIRE(before.count("config.json") == 1);
    auto refused = [&](const std::string& args, const std::string& message) {
        const int rc = testing::run(base + " " + args, log);
        const std::string out = testing::slurp(log);
        INFO(args << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
        CHECK(snapshot(run) == before);
    };
    refused("--data " + (dir / "bad.bin"), "token id 500");
    refused("--data " + (dir / "train.bin") + " --probe " + (dir / "garbage.probe") + " --sink-every 1", "garbage.probe");
    refused("--data " + (dir / "train.bin") + " --steps 0", "--steps must be at least 1");
    refused("--data " + (dir / "train.bin") + " --first-token -5", "--first-token -5: expected a token id >= 0");
    refused("--data " + (dir / "train.bin") + " --val " + (dir / "val.bin") + " --val-batches 0",
            "--val-batches must be at least 1");
    refused("--data " + (dir / "train.bin"), "already holds a run");
    write_file_atomic(dir / "resume.json", "{\"resume\": true}");
    refused("--data " + (dir / "train.bin") + " --config " + (dir / "resume.json"), "\"resume\" cannot come from a config file");
    {  // a trainer holding the directory: a second one is refused, naming the holder's pid
        DirectoryLock held(run);
        refused("--data " + (dir / "train.bin") + " --overwrite", "another sinklab train (pid " + std::to_string(getpid()));
    }
    // --overwrite replaces the run (the lock is free again)
    REQUIRE(testing::run(base + " --data " + (dir / "train.bin") + " --overwrite --steps 2", log) == 0);
    CHECK(testing::slurp(log).find("--overwrite: removed the previous run") != std::string::npos);
    CHECK(metric_values(run, "loss").size() == 2);
    // sample refuses a temperature that is not a number
    CHECK(testing::run(bin + " sample --checkpoint " + run + " --temperature nan --tokens 2", log) == 1);
    CHECK(testing::slurp(log).find("--temperature must be a finite number") != std::string::npos);
}

TEST_CASE("sizes that cannot fit are refused before allocating, naming the flag or the file") {
    TempDir dir("sizes");
    write_data(dir);
    const std::string bin = testing::sinklab_bin();
    const std::string log = dir / "log.txt";
    const std::string base = bin + " train --data " + (dir / "train.bin") + " --preset tiny --vocab 64 --steps 3 --batch 2 "
                             "--seq 8 --eval-every 0 --out " + (dir / "run");
    auto refused = [&](const std::string& command, const std::vector<std::string>& messages) {
        const int rc = testing::run(command, log);
        const std::string out = testing::slurp(log);
        INFO(command << " -> " << out);
        CHECK(rc == 1);
        for (const std::string& m : messages) CHECK(out.find(m) != std::string::npos);
    };
    const std::string too_big = "more than this machine's";
    refused(base + " --width 1000000", {too_big, "reduce --width"});
    refused(base + " --context 1000000000", {too_big, "context 1000000000", "--context"});
    refused(base + " --vocab 1000000000", {too_big, "--vocab"});
    CHECK(!std::filesystem::exists(dir / "run"));  // nothing written

    // A checkpoint whose metadata claims a width its tensors do not have.
    REQUIRE(testing::run(base, log) == 0);
    const std::string weights = dir / "run/checkpoints/step_0000003/model.safetensors";
    const std::string bytes = testing::slurp(weights);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    Json header = Json::parse(bytes.substr(8, header_len));
    Json config = Json::parse(header["__metadata__"]["sinklab_config"].as_string());
    config["d_model"] = 1000000;
    header["__metadata__"]["sinklab_config"] = config.dump();
    const std::string text = header.dump();
    std::string forged(8, '\0');
    const uint64_t forged_len = text.size();
    std::memcpy(forged.data(), &forged_len, 8);
    forged += text + bytes.substr(8 + header_len);
    write_file_atomic(dir / "forged.safetensors", forged);
    refused(bin + " sink --checkpoint " + (dir / "forged.safetensors") + " --probe-kind random",
            {"forged.safetensors: its configuration (2 layers, width 1000000", "corrupt metadata?"});
    // A probe too large to hold.
    refused(bin + " sink --checkpoint " + (dir / "run") + " --probe-kind random --count 1000000000",
            {too_big, "--count 1000000000 x --length 64 probe tokens", "reduce --count or --length"});
}

TEST_CASE("bad files and values are refused naming the culprit") {
    TempDir dir("culprits");
    write_data(dir);
    const std::string bin = testing::sinklab_bin();
    const std::string log = dir / "log.txt";
    const std::string run = dir / "run";
    const std::string base = bin + " train --data " + (dir / "train.bin") + " --preset tiny --vocab 64 --steps 3 --batch 2 "
                             "--seq 8 --eval-every 0 --out " + run;
    auto refused = [&](const std::string& command, const std::string& message) {
        const int rc = testing::run(command, log);
        const std::string out = testing::slurp(log);
        INFO(command << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(message) != std::string::npos);
    };
    // --seq above the preset's context: said, not silent
    REQUIRE(testing::run(base + " --seq 40", log) == 0);
    CHECK(testing::slurp(log).find("--seq 40 is longer than the preset's context 32: the model's context is raised to 40") !=
          std::string::npos);
    // a sink --first-token outside the vocabulary
    refused(bin + " sink --checkpoint " + run + " --probe-kind random --first-token 64",
            "--first-token 64: outside the model's vocabulary of 64");
    // a safetensors header whose dtype is not a string
    const std::string weights = run + "/checkpoints/step_0000003/model.safetensors";
    std::string bytes = testing::slurp(weights);
    const size_t at = bytes.find("\"dtype\": \"F32\"");
    REQUIRE(at != std::string::npos);
    bytes.replace(at, 14, "\"dtype\": 12345");
    write_file_atomic(dir / "bad_dtype.safetensors", bytes);
    refused(bin + " sink --checkpoint " + (dir / "bad_dtype.safetensors") + " --probe-kind random",
            "bad_dtype.safetensors: tensor '");
    refused(bin + " sink --checkpoint " + (dir / "bad_dtype.safetensors") + " --probe-kind random", "\"dtype\" is not a string");
    // a run whose config.json lacks its "train" object
    write_file_atomic(run + "/config.json", "{\"model\": {}}");
    refused(bin + " train --out " + run + " --resume", run + "/config.json has no \"train\" object");
}

TEST_CASE("thread governor: one thread fewer per 0.6 of a core the other processes keep busy") {
    CHECK(ThreadGovernor::threads_for(2, 0.0) == 2);
    CHECK(ThreadGovernor::threads_for(2, 0.59) == 2);
    CHECK(ThreadGovernor::threads_for(2, 0.61) == 1);  // one busy process beside 2 threads gets ~0.67
    CHECK(ThreadGovernor::threads_for(2, 1.0) == 1);   // ... and 1.0 beside 1 thread: stays at 1
    CHECK(ThreadGovernor::threads_for(2, 7.0) == 1);   // never fewer than one
    CHECK(ThreadGovernor::threads_for(8, 2.7) == 5);
    CHECK(ThreadGovernor::threads_for(1, 0.9) == 1);
    CHECK(ThreadGovernor::threads_for(4, -0.1) == 4);  // tick rounding can make a reading slightly negative

    // A real reading (Linux /proc): after the window it measures and sets OpenMP's thread count.
    const int saved = omp_get_max_threads();
    ThreadGovernor governor(2);
    const auto start = std::chrono::steady_clock::now();
    volatile double x = 0;
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(600)) x = x + 1.0;
    const int threads = governor.update();
    CHECK(threads >= 1);
    CHECK(threads <= 2);
    CHECK(governor.others_cores() >= 0.0);
    CHECK(omp_get_max_threads() == threads);
    omp_set_num_threads(saved);
}
