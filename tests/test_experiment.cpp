// `sinklab experiment`: a tiny experiment end to end, a killed experiment resumed to the same table,
// --dry-run and --print-commands, --collect over runs made by separate `sinklab train` calls,
// malformed files, and every experiment file of the repository at both scales.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "data/shard.h"
#include "experiment/experiment.h"
#include "test_helpers.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

using namespace sinklab;
using testing::TempDir;

namespace {

// A corpus of 64 ids (train, val, a probe of 8 sequences of 16) and an experiment directory with a
// scales file and one experiment of three runs and four rows.
void write_tiny_experiment(const TempDir& dir, size_t slow_steps = 12) {
    std::filesystem::create_directories(dir / "data");
    std::filesystem::create_directories(dir / "experiments");
    write_shard(dir / "data/train.bin", testing::patterned_tokens(20000, 64, 1));
    write_shard(dir / "data/val.bin", testing::patterned_tokens(4000, 64, 2));
    write_shard(dir / "data/probe.bin", testing::patterned_tokens(8 * 16, 64, 3), false, 16);
    write_file_atomic(dir / "data/prepare.json", "{\"vocab_size\": 64}\n");
    write_file_atomic(dir / "experiments/scales.json", R"({
  "laptop": {"about": "tiny", "train": {"data": "{data}/train.bin", "val": "{data}/val.bin", "preset": "tiny",
             "vocab": 64, "steps": 12, "batch": 4, "seq": 16, "lr": 3e-3, "warmup": 2, "eval-every": 6,
             "val-batches": 2, "checkpoint-every": 3, "log-every": 100, "first-token": "{eot}", "device": "cpu"},
             "sink": {"probe": "{data}/probe.bin"}},
  "paper": {"train": {"data": "{data}/train.bin", "preset": "tiny", "vocab": 64, "steps": 5000, "seq": 16}}
})");
    write_file_atomic(dir / "experiments/tiny.json", R"({
  "title": "Tiny", "reference": "none", "about": "a test",
  "measure": ["sink_1", "sink_star", "stream_window", "stream_sink"],
  "rows": [
    {"name": "softmax", "train": {"attention": "softmax"}, "paper": {"sink_1": 18.18, "val_loss": 3.73}},
    {"name": "softmax, random", "train": {"attention": "softmax"}, "sink": {"probe-kind": "random", "count": 8, "length": 16}},
    {"name": "sigmoid", "train": {"attention": "sigmoid", "steps": )" + std::to_string(slow_steps) + R"(}},
    {"name": "k bias", "train": {"slot": "k-bias"}, "paper": {"sink_star": 73.34, "sink_1": 0.0}}
  ]
})");
}

std::string experiment_command(const TempDir& dir, const std::string& runs, const std::string& results,
                                const std::string& extra = "") {
    return testing::sinklab_bin() + " experiment " + (dir / "experiments/tiny.json") + " --data-dir " + (dir / "data") +
           " --runs " + runs + " --results " + results + " --threads 1 " + extra;
}

}  // namespace

TEST_CASE("an experiment runs end to end into one table; a rerun trains nothing") {
    TempDir dir("experiment_e2e");
    write_tiny_experiment(dir);
    const std::string log = dir / "log.txt";
    REQUIRE(testing::run(experiment_command(dir, dir / "runs", dir / "results"), log) == 0);
    const Json table = Json::parse(testing::slurp(dir / "results/table.json"));
    const Json::Array& rows = table.at("rows").as_array();
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].at("run").as_string() == "softmax");
    CHECK(rows[1].at("run").as_string() == "softmax");  // same training options: one run, two measurements
    CHECK(rows[2].at("run").as_string() == "sigmoid");
    CHECK(rows[3].at("run").as_string() == "k-bias");
    for (const Json& r : rows) {
        INFO(r.dump());
        CHECK(r.at("status").as_string() == "finished");
        CHECK(r.at("tokens").as_number() == 12 * 4 * 16);
        CHECK(r.at("val_loss").is_number());
        CHECK(r.at("measured").at("sink_1").is_number());
        // the streaming test of the run: perplexities of the rolling window, K = 0 and K = 4
        CHECK(r.at("measured").at("stream_window").as_number() > 1.0);
        CHECK(r.at("measured").at("stream_sink").as_number() > 1.0);
    }
    const Json stream = Json::parse(testing::slurp(dir / "runs/softmax/stream/stream.json"));
    CHECK(stream.at("window").as_int() == 5);  // a quarter of --seq 16, at least K + 1
    CHECK(stream.at("keep_first").as_int() == 4);
    CHECK(rows[0].at("paper").at("sink_1").as_number() == 18.18);
    CHECK(rows[3].at("measured").at("sink_star").is_number());   // the slot row reports Sink*
    CHECK(rows[0].at("measured").at("sink_star").is_null());     // no slot: none
    CHECK(rows[2].at("proxy").as_bool());                        // sigmoid without a normaliser: proxy scores
    CHECK(std::filesystem::exists(dir / "runs/softmax/sink.json"));
    CHECK(std::filesystem::exists(dir / "runs/softmax/sink-8-16-random.json"));
    const std::string md = testing::slurp(dir / "results/table.md");
    CHECK(md.find("| softmax, random |") != std::string::npos);
    CHECK(md.find("| 18.18 |") != std::string::npos);
    CHECK(testing::slurp(dir / "results/sink.svg").find("<svg") != std::string::npos);
    CHECK(testing::slurp(dir / "results/loss.svg").find("<svg") != std::string::npos);

    // A rerun: nothing trained or measured again, the same table.
    const std::string metrics = testing::slurp(dir / "runs/sigmoid/metrics.jsonl");
    const std::string train_log = testing::slurp(dir / "runs/sigmoid/train.log");
    REQUIRE(testing::run(experiment_command(dir, dir / "runs", dir / "results"), log) == 0);
    CHECK(testing::slurp(dir / "runs/sigmoid/metrics.jsonl") == metrics);
    CHECK(testing::slurp(dir / "runs/sigmoid/train.log") == train_log);
    CHECK(Json::parse(testing::slurp(dir / "results/table.json")).dump() == table.dump());

    // A changed option: that run (only) is trained afresh.
    std::string file = testing::slurp(dir / "experiments/tiny.json");
    file.replace(file.find("\"k-bias\""), 8, "\"kv-bias\"");
    write_file_atomic(dir / "experiments/tiny.json", file);
    REQUIRE(testing::run(experiment_command(dir, dir / "runs", dir / "results"), log) == 0);
    CHECK(testing::slurp(log).find("made with other options; training it afresh") != std::string::npos);
    CHECK(testing::slurp(dir / "runs/sigmoid/train.log") == train_log);
    CHECK(testing::slurp(dir / "runs/k-bias/config.json").find("kv-bias") != std::string::npos);
}

TEST_CASE("a killed experiment resumes and finishes with the same table") {
    TempDir dir("experiment_kill");
    write_tiny_experiment(dir, 600);  // the sigmoid run is long enough to be killed in the middle
    const std::string log = dir / "log.txt";
    REQUIRE(testing::run(experiment_command(dir, dir / "whole", dir / "whole_results"), log) == 0);

    // The same experiment into another directory, killed (with its trainer) once the sigmoid run has
    // written a checkpoint.
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        const std::string command = "exec " + experiment_command(dir, dir / "killed", dir / "killed_results") + " >" +
                                    (dir / "killed_log.txt") + " 2>&1";
        execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    bool killed = false;
    for (int i = 0; i < 60000 && !killed; i++) {
        if (std::filesystem::exists(dir / "killed/sigmoid/checkpoints/latest")) {
            kill(-pid, SIGKILL);
            killed = true;
        }
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) break;  // finished before the kill: the test says so below
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(killed);
    waitpid(pid, nullptr, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the trainer's lock is freed with it
    const std::string metrics = testing::slurp(dir / "killed/sigmoid/metrics.jsonl");
    CHECK(metrics.find("\"step\":600") == std::string::npos);  // killed in the middle

    REQUIRE(testing::run(experiment_command(dir, dir / "killed", dir / "killed_results"), log) == 0);
    CHECK(testing::slurp(dir / "killed/sigmoid/train.log").find("resum") != std::string::npos);
    CHECK(testing::slurp(dir / "killed_results/table.json") == testing::slurp(dir / "whole_results/table.json"));
    CHECK(testing::slurp(dir / "killed/sigmoid/sink.json") == testing::slurp(dir / "whole/sigmoid/sink.json"));
}

TEST_CASE("--dry-run and --print-commands change nothing; --collect builds the table from separate train runs") {
    TempDir dir("experiment_commands");
    write_tiny_experiment(dir);
    const std::string log = dir / "log.txt";
    REQUIRE(testing::run(experiment_command(dir, dir / "runs", dir / "results", "--dry-run"), log) == 0);
    const std::string plan = testing::slurp(log);
    for (const char* name : {"softmax, random", "sigmoid", "k bias", "not run", "sink-8-16-random.json"})
        CHECK_MESSAGE(plan.find(name) != std::string::npos, name);
    CHECK(!std::filesystem::exists(dir / "runs"));
    CHECK(!std::filesystem::exists(dir / "results"));

    const std::string commands_file = dir / "commands.txt";
    REQUIRE(testing::run(experiment_command(dir, dir / "cluster", dir / "results", "--print-commands"), commands_file) == 0);
    std::vector<std::string> commands;
    {
        std::istringstream in(testing::slurp(commands_file));
        for (std::string line; std::getline(in, line);) commands.push_back(line);
    }
    REQUIRE(commands.size() == 3);  // three runs for four rows
    for (const std::string& c : commands) CHECK(c.find(" train ") != std::string::npos);
    CHECK(commands[0].find("--out " + (dir / "cluster/softmax")) != std::string::npos);
    CHECK(commands[2].find("--slot k-bias") != std::string::npos);
    CHECK(!std::filesystem::exists(dir / "cluster"));

    // The scheduler's part: each line run on its own, then the table collected.
    for (const std::string& c : commands) REQUIRE(testing::run(c, log) == 0);
    REQUIRE(testing::run(testing::sinklab_bin() + " experiment " + (dir / "experiments/tiny.json") + " --data-dir " +
                             (dir / "data") + " --collect " + (dir / "cluster") + " --results " + (dir / "collected"),
                         log) == 0);
    REQUIRE(testing::run(experiment_command(dir, dir / "runs", dir / "results"), log) == 0);
    CHECK(testing::slurp(dir / "collected/table.json") == testing::slurp(dir / "results/table.json"));
}

TEST_CASE("a malformed experiment file is refused naming the file and the key") {
    TempDir dir("experiment_bad");
    write_tiny_experiment(dir);
    const std::string path = dir / "experiments/bad.json";
    auto refused = [&](const std::string& text, const std::string& message, const std::string& extra = "") {
        write_file_atomic(path, text);
        const std::string log = dir / "log.txt";
        const int rc = testing::run(testing::sinklab_bin() + " experiment " + path + " --data-dir " + (dir / "data") +
                                        " --dry-run " + extra,
                                    log);
        const std::string out = testing::slurp(log);
        INFO(text << " -> " << out);
        CHECK(rc == 1);
        CHECK(out.find(path) != std::string::npos);
        CHECK(out.find(message) != std::string::npos);
    };
    const std::string row = R"({"name": "a", "train": {"attention": "softmax"}})";
    refused(R"({"title": "t", "rows": [)" + row + R"(], "colour": 1})", "unknown key \"colour\"");
    refused(R"({"rows": [)" + row + "]}", "\"title\" is required");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {"lrr": 1}}]})", "\"lrr\" is not an option of sinklab train");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {"out": "x"}}]})", "\"out\" belongs to `sinklab experiment`");
    refused(R"({"title": "t", "rows": [{"name": "a", "sink": {"json": "x"}}]})", "\"json\" is not a sink option");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {}, "papr": {}}]})", "rows[0] (\"a\"): unknown key \"papr\"");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {"lr": {"gpu": 1}}}]})", "unknown key \"gpu\"");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {"lr": [1, 2]}}]})", "\"lr\": expected a string, number");
    refused(R"({"title": "t", "measure": ["sink_11"], "rows": [)" + row + "]}", "\"sink_11\" is not a column");
    refused(R"({"title": "t", "rows": [)" + row + "," + row + "]}", "a second row of that name");
    refused(R"({"title": "t", "rows": [)" + row, "invalid JSON");
    refused(R"({"title": "t", "rows": [)" + row + "]}", "has no row \"b\"", "--only b");
    refused(R"({"title": "t", "rows": [{"name": "a", "train": {"steps": 0}}]})", "--steps 0 is not a positive number");
}

TEST_CASE("every experiment of the repository loads at both scales") {
    const char* source = std::getenv("SINKLAB_SOURCE_DIR");
    const std::string root = source ? source : ".";
    TempDir data("experiment_files");
    write_file_atomic(data / "prepare.json", "{\"vocab_size\": 2048}\n");
    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(root + "/experiments")) {
        if (entry.path().extension() != ".json" || entry.path().stem() == "scales") continue;
        files++;
        for (const std::string& scale : experiment_scales()) {
            INFO(entry.path() << " at " << scale);
            Experiment e;
            REQUIRE_NOTHROW(e = load_experiment(entry.path().string(), scale, data.path));
            CHECK(!e.rows.empty());
            CHECK(!e.reference.empty());
            bool any_paper = false;
            for (const ExperimentRow& row : e.rows) any_paper = any_paper || !row.paper.is_null();
            CHECK(any_paper);
            for (const ExperimentRun& run : e.runs) CHECK(run.planned_tokens > 0);
        }
    }
    CHECK(files >= 17);
}
