// sinklab experiment NAME: one experiment of the paper (experiments/NAME.json) run as a grid of
// `sinklab train` runs, each measured with `sinklab sink`, then one table and its pictures
// (src/experiment/experiment.h). Runs are child processes of this binary, with their output in
// RUN/train.log, so the commands --print-commands shows are exactly the ones that run here.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "experiment/experiment.h"
#include "train/train.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace {

namespace fs = std::filesystem;

// This program's own path: the runs are `THIS train ...`.
std::string self_path() {
    std::error_code ec;
    const fs::path p = fs::read_symlink("/proc/self/exe", ec);
    if (ec) fail("cannot find this program's path (/proc/self/exe): {}", ec.message());
    // A binary replaced while it runs (a rebuild) reads "PATH (deleted)": the runs use the new one.
    std::string path = p.string();
    const std::string deleted = " (deleted)";
    if (path.size() > deleted.size() && path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
        path.resize(path.size() - deleted.size());
    return path;
}

// Runs argv with stdout and stderr appended to log_path; calls tick() about once a second while it
// runs. Returns its exit code (128 + signal when killed). The child dies with this process.
int run_child(const std::vector<std::string>& argv, const std::string& log_path, const std::function<void()>& tick) {
    std::fflush(stdout);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) fail("fork failed: {}", std::strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(126);
        const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) _exit(125);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        std::vector<char*> args;
        for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execv(args[0], args.data());
        std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
    for (;;) {
        int status = 0;
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (done < 0) fail("waitpid failed: {}", std::strerror(errno));
        tick();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

// The last lines of a log, for an error message.
std::string log_tail(const std::string& path, size_t lines) {
    if (!file_exists(path)) return "";
    const std::string text = read_file(path);
    size_t at = text.size();
    for (size_t n = 0; n <= lines && at > 0;) {
        at--;
        if (text[at] == '\n') n++;
    }
    return text.substr(at == 0 ? 0 : at + 1);
}

// Tokens of the newest complete line of RUN/metrics.jsonl (0 when there is none yet).
double tokens_logged(const std::string& run_dir) {
    std::ifstream in(run_dir + "/metrics.jsonl", std::ios::binary | std::ios::ate);
    if (!in) return 0;
    const std::streamoff size = in.tellg();
    const std::streamoff from = std::max<std::streamoff>(0, size - 8192);
    in.seekg(from);
    std::string tail(size_t(size - from), '\0');
    in.read(tail.data(), size - from);
    const size_t end = tail.rfind('\n');
    if (end == std::string::npos) return 0;
    const size_t begin = tail.rfind('\n', end == 0 ? 0 : end - 1);
    const std::string line = tail.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1));
    try {
        const Json j = Json::parse(line);
        return j.contains("tokens") && j.at("tokens").is_number() ? j.at("tokens").as_number() : 0;
    } catch (const Error&) {
        return 0;
    }
}

std::string millions(double tokens) { return fmt::format("{:.1f}M", tokens / 1e6); }

// One progress line over the whole experiment: run i of n, tokens, elapsed, ETA. Rewritten in place
// on a terminal; in a log, one line every 30 seconds.
class Progress {
public:
    Progress(double planned_tokens, size_t runs) : planned_(planned_tokens), runs_(runs) {}

    void skip(double tokens) { done_ += tokens; }
    void start_run(size_t index, std::string slug, double tokens_at_start) {
        index_ = index;
        slug_ = std::move(slug);
        run_start_tokens_ = tokens_at_start;
        current_ = tokens_at_start;
    }
    void update(double run_tokens) {
        current_ = std::max(current_, run_tokens);
        const double elapsed = seconds_since(start_);
        if (!tty_ && seconds_since(last_print_) < 30) return;
        last_print_ = std::chrono::steady_clock::now();
        const double done = done_ + current_;
        const double trained = trained_ + current_ - run_start_tokens_;
        const double eta = trained > 0 && elapsed > 10 ? (planned_ - done) * elapsed / trained : NAN;  // "?" at first
        const std::string line =
            fmt::format("run {}/{} {} | {}/{} tokens | {} elapsed | ETA {}", index_ + 1, runs_, slug_, millions(done),
                        millions(planned_), format_duration(elapsed), format_duration(eta));
        if (tty_) fmt::print("\r\033[K{}", line);
        else fmt::print("{}\n", line);
        std::fflush(stdout);
    }
    void end_run(double run_tokens) {
        update(run_tokens);
        trained_ += current_ - run_start_tokens_;
        done_ += current_;
        current_ = 0;
        run_start_tokens_ = 0;
        if (tty_) fmt::print("\n");
    }

private:
    static double seconds_since(std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }
    double planned_, done_ = 0, trained_ = 0, current_ = 0, run_start_tokens_ = 0;
    size_t runs_, index_ = 0;
    std::string slug_;
    bool tty_ = isatty(1);
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_print_{};
};

// The runs the selected rows need, in the order of the rows.
std::vector<size_t> runs_of(const Experiment& e, const std::vector<size_t>& rows) {
    std::vector<size_t> runs;
    for (size_t r : rows)
        if (std::find(runs.begin(), runs.end(), e.rows[r].run) == runs.end()) runs.push_back(e.rows[r].run);
    return runs;
}

void list_experiments() {
    if (!fs::is_directory("experiments")) fail("no experiments/ directory here (run sinklab from the repository root)");
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator("experiments"))
        if (entry.path().extension() == ".json" && entry.path().stem() != "scales") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
        const Json j = Json::parse(read_file(f.string()), f.string());
        const std::string title = j.contains("title") && j.at("title").is_string() ? j.at("title").as_string() : "?";
        const size_t rows = j.contains("rows") ? j.at("rows").size() : 0;
        fmt::print("  {:<22} {} ({} rows)\n", f.stem().string(), title, rows);
    }
}

// Trains (or resumes) one run; returns false when it diverged.
bool train_run(const Experiment& e, size_t run_index, size_t position, const std::string& run_dir,
               const std::string& bin, const std::string& threads, Progress& progress) {
    const ExperimentRun& run = e.runs[run_index];
    const RunState state = run_state(run, run_dir, true);
    std::vector<std::string> argv;
    std::string previous_record;
    if (state == RunState::partial) {
        argv = {bin, "train", "--out", run_dir, "--resume"};
    } else {
        if (state == RunState::other) fmt::print("{}: made with other options; training it afresh\n", run_dir);
        fs::create_directories(run_dir);
        if (file_exists(run_dir + "/experiment.json")) previous_record = read_file(run_dir + "/experiment.json");
        write_file_atomic(run_dir + "/experiment.json", run_record(run));
        argv = train_command(run, bin, run_dir);
        argv.push_back("--overwrite");
    }
    if (!threads.empty()) {
        argv.push_back("--threads");
        argv.push_back(threads);
    }
    const std::string log = run_dir + "/train.log";
    progress.start_run(position, run.slug, state == RunState::partial ? tokens_logged(run_dir) : 0.0);
    const int rc = run_child(argv, log, [&] { progress.update(tokens_logged(run_dir)); });
    progress.end_run(tokens_logged(run_dir));
    if (rc == 4) {
        fmt::print("{}: training diverged (a non-finite loss; the paper's \"training failed\"); see {}\n", run.slug, log);
        return false;
    }
    if (rc != 0) {
        if (!previous_record.empty()) write_file_atomic(run_dir + "/experiment.json", previous_record);
        fail("{}: `sinklab train` failed (exit {}); the end of {}:\n{}", run.slug, rc, log, log_tail(log, 8));
    }
    return true;
}

// True when `file` exists and is newer than the run's metrics (a measurement of the finished run).
bool up_to_date(const std::string& file, const std::string& run_dir) {
    return file_exists(file) && fs::last_write_time(file) >= fs::last_write_time(run_dir + "/metrics.jsonl");
}

// Measures a row's sinks (and the streaming test, when the experiment reports it) unless the
// reports are newer than the run's metrics.
void measure_row(const Experiment& e, const ExperimentRow& row, const std::string& run_dir, const std::string& bin) {
    std::error_code ec;
    if (!up_to_date(run_dir + "/" + row.sink_file, run_dir)) {
        const std::string log = run_dir + "/" + fs::path(row.sink_file).stem().string() + ".txt";
        fs::remove(log, ec);
        const int rc = run_child(sink_command(row, bin, run_dir), log, [] {});
        if (rc != 0) fail("{}: `sinklab sink` failed (exit {}); the end of {}:\n{}", row.name, rc, log, log_tail(log, 8));
    }
    if (measures_streaming(e) && !up_to_date(run_dir + "/" + kStreamDir + "/stream.json", run_dir)) {
        const std::string log = run_dir + "/stream.txt";
        fs::remove(log, ec);
        const int rc = run_child(stream_command(e.runs[row.run], bin, run_dir), log, [] {});
        if (rc != 0) fail("{}: `sinklab stream` failed (exit {}); the end of {}:\n{}", row.name, rc, log, log_tail(log, 8));
    }
}

}  // namespace

int cmd_experiment(int argc, char** argv) {
    ArgParser args("experiment", "Run one of the paper's experiments (experiments/NAME.json): train every setting, "
                                 "measure its sinks, and write the table beside the paper's numbers.");
    args.option("scale", "laptop", "laptop (the small preset, CPU-sized) or paper (the 60M model, for a GPU)", "SCALE");
    args.multi_option("only", "run only this row (a name or a run directory name; repeat for more); the table keeps every row", "ROW");
    args.flag("dry-run", "print the plan (rows, runs, their state and tokens) and change nothing");
    args.flag("print-commands", "print one `sinklab train` command per run, for a scheduler, and change nothing");
    args.option("collect", "", "build the table from run directories made elsewhere (DIR/RUN, as --print-commands "
                               "names them): measures their sinks, trains nothing", "DIR");
    args.option("data-dir", "data/cache/linux-doc-2048", "the prepared corpus: {data} in the experiment file", "DIR");
    args.option("runs", "", "where the runs go (default: runs/experiments/NAME/SCALE)", "DIR");
    args.option("results", "", "where the table and pictures go (default: results/NAME/SCALE)", "DIR");
    args.option("threads", "",
                "OpenMP threads of each run (default: all cores, fewer while other processes keep cores busy)", "N");
    args.flag("list", "list the experiments in experiments/");
    args.epilog(
        "NAME is a file in experiments/ (without .json) or a path. Rerunning skips finished runs and resumes\n"
        "interrupted ones; a run whose options changed is trained afresh. Each run's output is in RUN/train.log.\n"
        "Outputs in --results: table.md, table.json (one row per setting: measured Sink_k / Sink*, validation\n"
        "loss, tokens, the paper's figures), sink.svg and loss.svg. The file format: docs/experiments.md.\n"
        "examples:\n"
        "  sinklab experiment --list\n"
        "  sinklab experiment weight_decay --dry-run\n"
        "  sinklab experiment weight_decay --only 'wd 0.5'\n"
        "  sinklab experiment attention_ops --scale paper --print-commands --runs /scratch/sinks > jobs.txt\n"
        "  sinklab experiment attention_ops --scale paper --collect /scratch/sinks");
    // The experiment is the one positional argument; the rest goes to the parser.
    std::vector<std::string> names;
    std::vector<char*> options = {argv[0]};
    const std::vector<std::string> valued = {"--scale", "--only", "--collect", "--data-dir", "--runs", "--results", "--threads"};
    for (int i = 1; i < argc; i++) {
        const std::string arg = argv[i];
        if (arg.rfind("--", 0) != 0 && arg != "-h") {
            names.push_back(arg);
            continue;
        }
        options.push_back(argv[i]);
        if (std::find(valued.begin(), valued.end(), arg) != valued.end() && i + 1 < argc)
            options.push_back(argv[++i]);
    }
    if (!args.parse(int(options.size()), options.data())) return 0;
    if (args.get_flag("list")) {
        list_experiments();
        return 0;
    }
    if (names.size() != 1) fail("give one experiment NAME (sinklab experiment --list shows them)");
    const std::string scale = args.get("scale");
    const std::string path = experiment_path(names[0]);
    const Experiment e = load_experiment(path, scale, args.get("data-dir"));
    const std::vector<size_t> rows = select_rows(e, args.get_list("only"));
    const std::vector<size_t> runs = runs_of(e, rows);
    const bool collect = args.has("collect");
    const std::string runs_dir =
        collect ? args.get("collect") : args.has("runs") ? args.get("runs") : fmt::format("runs/experiments/{}/{}", e.name, scale);
    const std::string results_dir = args.has("results") ? args.get("results") : fmt::format("results/{}/{}", e.name, scale);
    const std::string bin = self_path();
    if (args.has("threads") && args.get_size("threads") == 0) fail("--threads must be positive");

    if (args.get_flag("print-commands")) {
        for (size_t r : runs) fmt::print("{}\n", shell_line(train_command(e.runs[r], bin, runs_dir + "/" + e.runs[r].slug)));
        return 0;
    }
    if (args.get_flag("dry-run")) {
        fmt::print("experiment {} ({}): {}, {} scale\n", e.name, path, e.title, scale);
        double tokens = 0;
        for (size_t r : runs) tokens += e.runs[r].planned_tokens;
        fmt::print("{} rows, {} runs, {} tokens; runs in {}, results in {}\n", rows.size(), runs.size(), millions(tokens),
                   runs_dir, results_dir);
        for (size_t r : rows) {
            const ExperimentRow& row = e.rows[r];
            const ExperimentRun& run = e.runs[row.run];
            fmt::print("  {:<28} run {:<24} {:>8} tokens  {}  (measured into {})\n", row.name, run.slug,
                       millions(run.planned_tokens), run_state_name(run_state(run, runs_dir + "/" + run.slug, !collect)),
                       row.sink_file);
        }
        for (size_t r : runs) fmt::print("  $ {}\n", shell_line(train_command(e.runs[r], "sinklab", runs_dir + "/" + e.runs[r].slug)));
        return 0;
    }

    fmt::print("experiment {}: {} ({} scale), {} rows, {} runs in {}\n", e.name, e.title, scale, rows.size(), runs.size(),
               runs_dir);
    if (!collect) {
        double planned = 0;
        for (size_t r : runs) planned += e.runs[r].planned_tokens;
        Progress progress(planned, runs.size());
        // The runs already done count as done from the start, wherever they are in the order, so
        // that the ETA of a resumed sweep is over the runs left to train.
        std::vector<size_t> to_train;
        for (size_t i = 0; i < runs.size(); i++) {
            const ExperimentRun& run = e.runs[runs[i]];
            const RunState state = run_state(run, runs_dir + "/" + run.slug, true);
            if (state == RunState::finished || state == RunState::diverged) progress.skip(run.planned_tokens);
            else to_train.push_back(i);
        }
        for (size_t i : to_train)
            train_run(e, runs[i], i, runs_dir + "/" + e.runs[runs[i]].slug, bin,
                      args.has("threads") ? args.get("threads") : "", progress);
    }
    for (size_t r : rows) {
        const ExperimentRow& row = e.rows[r];
        const std::string dir = runs_dir + "/" + e.runs[row.run].slug;
        const RunState state = run_state(e.runs[row.run], dir, !collect);
        if (state == RunState::finished) measure_row(e, row, dir, bin);
        else if (collect) fmt::print("{}: {} ({})\n", row.name, run_state_name(state), dir);
    }
    const Json table = experiment_table(e, runs_dir, !collect);
    fmt::print("\n{}\n", table_markdown(table));
    for (const std::string& p : write_experiment_results(e, table, runs_dir, results_dir)) fmt::print("wrote {}\n", p);
    return 0;
}

}  // namespace sinklab
