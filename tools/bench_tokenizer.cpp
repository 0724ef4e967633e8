// Tokenizer benchmark on the default corpus (or any corpus): BPE training time for a vocabulary of
// 8192, and encoding throughput in MB/s (one thread with a fresh cache, then all threads).
//
//   build/bench_tokenizer [--input DIR] [--vocab-size N] [--repeat R] [--json]
//
// The corpus is read into memory first so that only the tokenizer is timed. The last line with
// --json is one JSON object: {"bench": "tokenizer", "train_seconds": ..., "encode_mb_per_s": ...}.
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "util/error.h"
#include "util/json.h"

using namespace sinklab;

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU time of the calling thread: on a shared, loaded machine this measures the work itself.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::string default_corpus() {
    std::FILE* p = ::popen("ls -d /usr/share/doc/linux-doc-*/html/_sources 2>/dev/null | sort -V | tail -n 1", "r");
    if (!p) return "";
    char buffer[4096] = {};
    const size_t n = std::fread(buffer, 1, sizeof(buffer) - 1, p);
    ::pclose(p);
    std::string path(buffer, n);
    while (!path.empty() && path.back() == '\n') path.pop_back();
    return path;
}

// The 1-minute load average: benchmarks on a shared machine are read with it in mind.
double load_average() {
    double load[1] = {0};
    return ::getloadavg(load, 1) == 1 ? load[0] : -1.0;
}

int run(int argc, char** argv) {
    ArgParser args("bench_tokenizer", "Time BPE training and encoding on a corpus (default: the linux-doc corpus).");
    args.option("input", "", "corpus directory or file (default: /usr/share/doc/linux-doc-*/html/_sources)", "PATH");
    args.option("vocab-size", "8192", "vocabulary size to train", "N");
    args.option("repeat", "3", "encoding passes per measurement (the best is reported)", "R");
    args.flag("json", "end with one JSON line of the results");
    if (!args.parse(argc, argv)) return 0;
    CorpusOptions options;
    options.inputs = {args.has("input") ? args.get("input") : default_corpus()};
    if (options.inputs[0].empty()) fail("no corpus: install linux-doc (tools/setup.sh --data) or pass --input");
    options.excludes = {"translations/"};
    options.strip_rst_boilerplate = true;
    options.quiet = true;

    // Load the documents.
    Corpus corpus(options);
    corpus.scan();
    std::vector<std::string> docs;
    {
        DocumentReader reader(corpus);
        for (size_t i = 0; i < corpus.documents().size(); i++) docs.push_back(reader.read(i));
    }
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();
    const double mb = double(bytes) / 1e6;
    const int threads = omp_get_max_threads();
    fmt::print("corpus: {} documents, {:.1f} MB, {} threads, load average {:.1f}\n", docs.size(), mb, threads, load_average());

    // Training: counting pieces (parallel over documents) + merges.
    double t0 = now_seconds();
    std::vector<WordCounts> partial(static_cast<size_t>(threads));
#pragma omp parallel for schedule(dynamic, 8)
    for (size_t i = 0; i < docs.size(); i++) partial[size_t(omp_get_thread_num())].add_text(docs[i]);
    WordCounts counts = std::move(partial[0]);
    for (size_t t = 1; t < partial.size(); t++) counts.merge_from(partial[t]);
    const double count_seconds = now_seconds() - t0;
    t0 = now_seconds();
    double c0 = thread_cpu_seconds();
    const Tokenizer tok = Tokenizer::train(counts, args.get_size("vocab-size"));
    const double merge_seconds = now_seconds() - t0;
    const double merge_cpu_seconds = thread_cpu_seconds() - c0;
    const double train_seconds = count_seconds + merge_seconds;
    fmt::print("train: vocabulary {} in {:.2f} s (counting {} pieces, {} distinct: {:.2f} s; {} merges: {:.2f} s, {:.2f} s of CPU)\n",
               tok.vocab_size(), train_seconds, counts.total_words(), counts.unique_words(), count_seconds,
               tok.merges().size(), merge_seconds, merge_cpu_seconds);

    // Encoding.
    const size_t repeat = std::max<size_t>(1, args.get_size("repeat"));
    size_t n_tokens = 0;
    double best_single = 1e30, best_single_cold = 1e30, best_parallel = 1e30, best_single_cpu = 1e30;
    for (size_t r = 0; r < repeat; r++) {
        Encoder encoder(tok);  // fresh cache: includes the cost of encoding every distinct piece once
        std::vector<int32_t> ids;
        t0 = now_seconds();
        c0 = thread_cpu_seconds();
        for (const auto& d : docs) {
            ids.clear();
            encoder.encode(d, ids);
            n_tokens += ids.size();
        }
        best_single_cold = std::min(best_single_cold, now_seconds() - t0);
        best_single_cpu = std::min(best_single_cpu, thread_cpu_seconds() - c0);
        t0 = now_seconds();
        for (const auto& d : docs) {
            ids.clear();
            encoder.encode(d, ids);
        }
        best_single = std::min(best_single, now_seconds() - t0);

        std::vector<Encoder> encoders;
        for (int t = 0; t < threads; t++) encoders.emplace_back(tok);
        t0 = now_seconds();
#pragma omp parallel
        {
            std::vector<int32_t> local;
            Encoder& e = encoders[size_t(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 8)
            for (size_t i = 0; i < docs.size(); i++) {
                local.clear();
                e.encode(docs[i], local);
            }
        }
        best_parallel = std::min(best_parallel, now_seconds() - t0);
    }
    n_tokens /= repeat;
    const double single_cold = mb / best_single_cold, single_warm = mb / best_single, parallel = mb / best_parallel;
    fmt::print("encode: {} tokens, {:.3f} bytes/token\n", n_tokens, double(bytes) / double(n_tokens));
    fmt::print("encode: {:.1f} MB/s on 1 thread (fresh cache; {:.1f} MB per CPU second), {:.1f} MB/s (warm cache), "
               "{:.1f} MB/s on {} threads (fresh caches)\n",
               single_cold, mb / best_single_cpu, single_warm, parallel, threads);

    if (args.get_flag("json")) {
        Json j = Json::object();
        j["bench"] = "tokenizer";
        j["corpus_mb"] = mb;
        j["documents"] = docs.size();
        j["threads"] = threads;
        j["vocab_size"] = tok.vocab_size();
        j["train_seconds"] = train_seconds;
        j["train_count_seconds"] = count_seconds;
        j["train_merge_seconds"] = merge_seconds;
        j["tokens"] = n_tokens;
        j["bytes_per_token"] = double(bytes) / double(n_tokens);
        j["encode_mb_per_s_1thread"] = single_cold;
        j["encode_mb_per_s_1thread_warm"] = single_warm;
        j["encode_mb_per_s"] = parallel;
        j["encode_mb_per_cpu_s"] = mb / best_single_cpu;
        j["train_merge_cpu_seconds"] = merge_cpu_seconds;
        j["load_average"] = load_average();
        fmt::print("{}\n", j.dump());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const Error& e) {
        fmt::print(stderr, "bench_tokenizer: error: {}\n", e.what());
        return 1;
    }
}
