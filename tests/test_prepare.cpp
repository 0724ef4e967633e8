// Preparation tests: boilerplate stripping, JSONL lines, shard round trips, the split and probe
// properties (no validation or probe document in training), determinism, bad input (broken JSONL,
// empty documents, a corpus too small, an existing output), and the command line end to end:
// prepare a small corpus, train a few steps on it.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_helpers.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/rng.h"

using namespace sinklab;
using testing::TempDir;

namespace {

const char* const kWords[] = {"the",  "kernel", "driver", "memory", "page",   "lock",    "device", "interrupt", "queue",
                              "file", "system", "user",   "space",  "buffer", "thread", "process", "network", "packet",
                              "and",  "of",     "to",     "is",     "a",      "in",     "for",     "with",    "on"};

// Document i: a unique marker first, then 30..130 words with some punctuation.
std::string make_document(size_t i, Rng& rng) {
    std::string text = "Document " + std::to_string(i) + " says:";
    const size_t n = 30 + rng.below(100);
    for (size_t w = 0; w < n; w++) {
        text += ' ';
        text += kWords[rng.below(sizeof(kWords) / sizeof(kWords[0]))];
        if (rng.below(10) == 0) text += rng.below(2) ? "." : ",\n";
    }
    return text + "\n";
}

// A corpus: DIR/docs/ with text files (two of them empty), DIR/extra.jsonl with JSON lines.
// Returns the texts of the non-empty documents.
std::vector<std::string> write_corpus(const std::string& dir, size_t n_files, size_t n_lines, uint64_t seed = 5) {
    Rng rng(seed);
    std::vector<std::string> docs;
    std::filesystem::create_directories(dir + "/docs/sub");
    for (size_t i = 0; i < n_files; i++) {
        const std::string text = make_document(i, rng);
        write_file_atomic(fmt::format("{}/docs/{}doc{:03d}.txt", dir, i % 3 == 0 ? "sub/" : "", i), text);
        docs.push_back(text);
    }
    write_file_atomic(dir + "/docs/empty.txt", "");
    write_file_atomic(dir + "/docs/blank.txt", "  \n\n");
    std::string jsonl;
    for (size_t i = 0; i < n_lines; i++) {
        const std::string text = make_document(1000 + i, rng);
        Json line = Json::object();
        line["text"] = text;
        line["id"] = double(i);
        jsonl += line.dump() + "\n";
        docs.push_back(text);
        if (i == 2) jsonl += "\n";  // a blank line: ignored
    }
    jsonl += "{\"text\": \"\"}\n";  // an empty document
    write_file_atomic(dir + "/extra.jsonl", jsonl);
    return docs;
}

PrepareOptions small_options(const std::string& corpus_dir, const std::string& out) {
    PrepareOptions o;
    o.corpus.inputs = {corpus_dir + "/docs", corpus_dir + "/extra.jsonl"};
    o.corpus.quiet = true;
    o.out_dir = out;
    o.vocab_size = 300;
    o.val_docs = 8;
    o.probe_docs = 5;
    o.probe_length = 16;
    o.shard_tokens = 2000;
    o.verbose = false;
    return o;
}

// Splits a token stream at <|endoftext|> into documents (each without the separator).
std::vector<std::vector<int32_t>> split_documents(const std::vector<int32_t>& tokens, int32_t eot) {
    std::vector<std::vector<int32_t>> docs(1);
    for (const int32_t t : tokens) {
        if (t == eot)
            docs.emplace_back();
        else
            docs.back().push_back(t);
    }
    CHECK(docs.back().empty());  // the stream ends with a separator
    docs.pop_back();
    return docs;
}

std::vector<int32_t> read_all(const std::string& dir, const std::string& prefix) {
    std::vector<int32_t> all;
    for (const std::string& path : expand_shard_paths(dir + "/" + prefix + "_*.bin")) {
        const std::vector<int32_t> t = read_shard(path);
        all.insert(all.end(), t.begin(), t.end());
    }
    return all;
}

std::string error_of(const PrepareOptions& o) {
    try {
        prepare_corpus(o);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("leading reStructuredText boilerplate is stripped") {
    CHECK(strip_rst_boilerplate(".. SPDX-License-Identifier: GPL-2.0\n\n=====\nTitle\n=====\n\nText.\n") == "Title\n=====\n\nText.\n");
    CHECK(strip_rst_boilerplate(".. include:: <isonum.txt>\n.. _label:\n\nHello\n") == "Hello\n");
    CHECK(strip_rst_boilerplate(".. note::\n   indented comment\n\n   more\n\nBody\n") == "Body\n");
    CHECK(strip_rst_boilerplate(":orphan:\n\nBody text\n") == "Body text\n");
    CHECK(strip_rst_boilerplate("Plain text\n.. SPDX later is kept\n") == "Plain text\n.. SPDX later is kept\n");
    CHECK(strip_rst_boilerplate("    indented first line\n") == "    indented first line\n");
    CHECK(strip_rst_boilerplate(".. SPDX-License-Identifier: GPL-2.0\r\n\r\nWindows\r\n") == "Windows\r\n");
    CHECK(strip_rst_boilerplate("...and so it begins\n") == "...and so it begins\n");
    CHECK(strip_rst_boilerplate("..\n   a comment block\n\nText\n") == "Text\n");
    CHECK(strip_rst_boilerplate(".. toctree::\n   :maxdepth: 1\n\n   a\n   b\n").empty());
}

TEST_CASE("JSONL lines") {
    std::string text, error;
    CHECK(jsonl_text("{\"text\": \"hi\\nthere\", \"x\": 1}", text, error));
    CHECK(text == "hi\nthere");
    CHECK_FALSE(jsonl_text("{\"text\": \"unterminated}", text, error));
    CHECK_FALSE(error.empty());
    CHECK_FALSE(jsonl_text("{\"body\": \"no text field\"}", text, error));
    CHECK(error.find("text") != std::string::npos);
    CHECK_FALSE(jsonl_text("{\"text\": 42}", text, error));
    CHECK_FALSE(jsonl_text("[1, 2]", text, error));
}

TEST_CASE("shards: write/read round trips, narrow and wide, probe header") {
    TempDir dir("prep_shard");
    const std::vector<int32_t> narrow = {0, 1, 65535, 7, 8191};
    write_shard(dir / "a.bin", narrow);
    ShardInfo info;
    CHECK(read_shard(dir / "a.bin", &info) == narrow);
    CHECK_FALSE(info.wide);
    CHECK(info.sequence_length == 0);
    const std::vector<int32_t> wide = {0, 65536, 100000};
    write_shard(dir / "b.bin", wide);
    CHECK(read_shard(dir / "b.bin", &info) == wide);
    CHECK(info.wide);
    const std::vector<int32_t> probe = testing::patterned_tokens(3 * 64, 8192, 1);
    write_shard(dir / "probe.bin", probe, false, 64);
    CHECK(read_shard(dir / "probe.bin", &info) == probe);
    CHECK(info.sequence_length == 64);
}

TEST_CASE("prepare: split, shards, probe and summary") {
    TempDir dir("prep_split");
    const std::vector<std::string> docs = write_corpus(dir.path, 40, 12);
    PrepareOptions o = small_options(dir.path, dir / "out");
    const Json summary = prepare_corpus(o);
    const std::string out = dir / "out";
    CHECK_FALSE(std::filesystem::exists(out + ".partial"));
    CHECK(summary.at("documents").as_int() == 52);
    CHECK(summary.at("empty_documents_skipped").as_int() == 3);
    CHECK(summary.at("bad_lines_skipped").as_int() == 0);
    CHECK(summary.at("val_documents").as_int() == 8);
    CHECK(summary.at("train_documents").as_int() == 44);
    CHECK(summary.at("probe_documents").as_int() == 5);
    CHECK(summary.at("vocab_size").as_int() == 300);
    CHECK(summary.at("bytes_per_token").as_number() > 1.5);
    CHECK(Json::parse(read_file(out + "/prepare.json")).at("tokens").as_int() == summary.at("tokens").as_int());

    const Tokenizer tok = Tokenizer::load(out + "/tokenizer.bin");
    CHECK(tok.vocab_size() == 300);
    const std::vector<int32_t> train_tokens = read_all(out, "train");
    const std::vector<int32_t> val_tokens = read_all(out, "val");
    CHECK(train_tokens.size() == size_t(summary.at("train_tokens").as_int()));
    CHECK(val_tokens.size() == size_t(summary.at("val_tokens").as_int()));
    CHECK(summary.at("train_shards").size() == (train_tokens.size() + 1999) / 2000);  // capped at --shard-tokens
    check_token_range(train_tokens, tok.vocab_size(), "train");

    // Every document is in exactly one split, whole, followed by <|endoftext|>.
    std::multiset<std::string> train_texts, val_texts;
    const auto train_docs = split_documents(train_tokens, tok.eot_id());
    const auto val_docs = split_documents(val_tokens, tok.eot_id());
    for (const auto& d : train_docs) train_texts.insert(tok.decode(d));
    for (const auto& d : val_docs) val_texts.insert(tok.decode(d));
    CHECK(val_texts.size() == 8);
    CHECK(train_texts.size() == 44);
    std::multiset<std::string> all(train_texts);
    all.insert(val_texts.begin(), val_texts.end());
    CHECK(all == std::multiset<std::string>(docs.begin(), docs.end()));
    for (const std::string& v : val_texts) CHECK(train_texts.count(v) == 0);
    // Each document is encoded exactly as the tokenizer encodes its text.
    for (const auto& d : val_docs) CHECK(tok.encode(tok.decode(d)) == d);

    // The probe: 5 sequences of 16 tokens, each the start of a validation document with > 16
    // tokens, none the start of a training document.
    ShardInfo info;
    const std::vector<int32_t> probe = read_shard(out + "/probe.bin", &info);
    CHECK(info.sequence_length == 16);
    REQUIRE(probe.size() == 5 * 16);
    std::set<std::vector<int32_t>> probe_seqs;
    for (size_t s = 0; s < 5; s++) {
        const std::vector<int32_t> seq(probe.begin() + std::ptrdiff_t(s * 16), probe.begin() + std::ptrdiff_t(s * 16 + 16));
        probe_seqs.insert(seq);
        const bool in_val = std::any_of(val_docs.begin(), val_docs.end(), [&](const auto& d) {
            return d.size() >= 17 && std::equal(seq.begin(), seq.end(), d.begin());
        });
        const bool in_train = std::any_of(train_docs.begin(), train_docs.end(), [&](const auto& d) {
            return d.size() >= 16 && std::equal(seq.begin(), seq.end(), d.begin());
        });
        CHECK(in_val);
        CHECK_FALSE(in_train);
    }
    CHECK(probe_seqs.size() == 5);  // five different documents
    REQUIRE(summary.at("probe_sources").size() == 5);
    for (const Json& source : summary.at("probe_sources").as_array()) {
        const std::string& where = source.as_string();
        // A text file of the corpus, or a line of the JSONL file: its first tokens are a probe.
        std::string text;
        if (where.find(".jsonl:") != std::string::npos) {
            const size_t line = std::stoul(where.substr(where.rfind(':') + 1));
            std::istringstream in(read_file(dir / "extra.jsonl"));
            std::string row, error;
            for (size_t k = 0; k < line; k++) std::getline(in, row);
            REQUIRE(jsonl_text(row, text, error));
        } else {
            text = read_file(where);
        }
        const std::vector<int32_t> ids = tok.encode(text);
        CHECK(probe_seqs.count(std::vector<int32_t>(ids.begin(), ids.begin() + 16)) == 1);
    }
}

TEST_CASE("prepare is deterministic for a seed, whatever the thread count") {
    TempDir dir("prep_det");
    write_corpus(dir.path, 30, 6);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    prepare_corpus(small_options(dir.path, dir / "a"));
    omp_set_num_threads(2);
    prepare_corpus(small_options(dir.path, dir / "b"));
    omp_set_num_threads(threads);
    PrepareOptions other = small_options(dir.path, dir / "c");
    other.seed = 99;
    prepare_corpus(other);
    for (const char* name : {"tokenizer.bin", "train_000.bin", "val_000.bin", "probe.bin"})
        CHECK_MESSAGE(read_file(dir / "a/" + name) == read_file(dir / "b/" + name), name);
    CHECK(read_file(dir / "a/val_000.bin") != read_file(dir / "c/val_000.bin"));
}

TEST_CASE("prepare: a JSONL file with a broken line stops or is skipped, naming file and line") {
    TempDir dir("prep_bad");
    write_corpus(dir.path, 20, 6);
    std::string jsonl = read_file(dir / "extra.jsonl");
    // Insert a broken line as line 4 (before the blank line written after the third document).
    size_t pos = 0;
    for (size_t line = 1; line < 4; line++) pos = jsonl.find('\n', pos) + 1;
    jsonl.insert(pos, "{\"text\": \"broken\n");
    write_file_atomic(dir / "extra.jsonl", jsonl);
    PrepareOptions o = small_options(dir.path, dir / "out");
    const std::string message = error_of(o);
    CHECK_MESSAGE(message.find("extra.jsonl:4") != std::string::npos, message);
    CHECK_FALSE(std::filesystem::exists(dir / "out"));
    CHECK_FALSE(std::filesystem::exists(dir / "out.partial"));
    o.corpus.skip_bad_lines = true;
    const Json summary = prepare_corpus(o);
    CHECK(summary.at("bad_lines_skipped").as_int() == 1);
    CHECK(summary.at("documents").as_int() == 26);
}

TEST_CASE("prepare: clear errors, nothing half-written") {
    TempDir dir("prep_err");
    write_corpus(dir.path, 5, 0);
    PrepareOptions o = small_options(dir.path, dir / "out");
    o.val_docs = 8;
    std::string message = error_of(o);  // 5 documents: too few for 8 validation documents
    CHECK_MESSAGE(message.find("too few") != std::string::npos, message);
    CHECK_FALSE(std::filesystem::exists(dir / "out"));
    o.val_docs = 3;
    o.probe_docs = 3;
    o.probe_length = 1000;  // no document is that long
    message = error_of(o);
    CHECK_MESSAGE(message.find("--probe-docs") != std::string::npos, message);
    CHECK_FALSE(std::filesystem::exists(dir / "out"));
    CHECK_FALSE(std::filesystem::exists(dir / "out.partial"));
    o.probe_length = 8;
    o.corpus.inputs.push_back(dir / "missing.txt");
    message = error_of(o);
    CHECK_MESSAGE(message.find("missing.txt") != std::string::npos, message);
    o.corpus.inputs.pop_back();
    prepare_corpus(o);
    message = error_of(o);  // exists now
    CHECK_MESSAGE(message.find("--force") != std::string::npos, message);
    o.force = true;
    o.tokenizer_path = dir / "out/tokenizer.bin";  // reuse the tokenizer
    std::filesystem::copy_file(dir / "out/tokenizer.bin", dir / "tok.bin");
    o.tokenizer_path = dir / "tok.bin";
    const Json summary = prepare_corpus(o);
    CHECK(summary.at("tokenizer_source").as_string() == dir / "tok.bin");
    CHECK(read_file(dir / "out/tokenizer.bin") == read_file(dir / "tok.bin"));
}

TEST_CASE("command line: tokenizer and prepare end to end, then a few training steps") {
    TempDir dir("prep_cli");
    write_corpus(dir.path, 40, 10);
    const std::string bin = testing::sinklab_bin();
    const std::string log = dir / "log.txt";
    const std::string inputs = "--input " + dir / "docs" + " " + dir / "extra.jsonl";
    REQUIRE_MESSAGE(testing::run(bin + " prepare " + inputs + " --out " + dir / "data" +
                                     " --vocab-size 320 --val-docs 6 --probe-docs 4 --probe-length 16 --quiet",
                                 log) == 0,
                    testing::slurp(log));
    const Json summary = Json::parse(read_file(dir / "data/prepare.json"));
    CHECK(summary.at("probe_documents").as_int() == 4);

    // encode | decode gives back arbitrary bytes, invalid UTF-8 included.
    std::string bytes = read_file(dir / "docs/doc001.txt") + "\xFF\xC3(\x80 <|endoftext|> \t\n";
    bytes.push_back('\0');
    write_file_atomic(dir / "in.bin", bytes);
    const std::string tok = " --tokenizer " + dir / "data/tokenizer.bin";
    // (testing::run sends standard output to the log: wrap each command so that its output goes to a file.)
    REQUIRE(testing::run("sh -c '" + bin + " tokenizer encode" + tok + " < " + dir / "in.bin" + " > " + dir / "ids.txt'") == 0);
    REQUIRE(testing::run("sh -c '" + bin + " tokenizer decode" + tok + " < " + dir / "ids.txt" + " > " + dir / "out.bin'") == 0);
    CHECK(read_file(dir / "out.bin") == bytes);
    // Decoding a shard directly: the probe's first sequence is the start of a document.
    REQUIRE(testing::run("sh -c '" + bin + " tokenizer decode" + tok + " --shard " + dir / "data/probe.bin" +
                         " --count 16 > " + dir / "probe.txt'") == 0);
    CHECK(testing::slurp(dir / "probe.txt").rfind("Document ", 0) == 0);
    CHECK(testing::run("echo '1 2 99999' | " + bin + " tokenizer decode" + tok, log) == 1);
    CHECK(testing::slurp(log).find("outside the vocabulary") != std::string::npos);
    CHECK(testing::run("echo '12 abc 7' | " + bin + " tokenizer decode" + tok, log) == 1);
    CHECK(testing::slurp(log).find("line 1: not a token id: 'abc'\n") != std::string::npos);  // the word alone

    // A broken JSONL line: exit code 1 and a message naming file and line.
    write_file_atomic(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": oops}\n");
    CHECK(testing::run(bin + " prepare --input " + dir / "bad.jsonl" + " --out " + dir / "bad --val-docs 0 --probe-docs 0", log) == 1);
    CHECK_MESSAGE(testing::slurp(log).find("bad.jsonl:2") != std::string::npos, testing::slurp(log));
    CHECK_FALSE(std::filesystem::exists(dir / "bad"));

    // A few training steps on the prepared shards (vocabulary from prepare.json).
    const int rc = testing::run(bin + " train --data '" + dir / "data/train_*.bin" + "' --val " + dir / "data/val_000.bin" +
                                    " --out " + dir / "run" +
                                    " --preset tiny --steps 3 --batch 2 --seq 16 --warmup 1 --eval-every 3 --val-batches 1 --threads 2",
                                log);
    REQUIRE_MESSAGE(rc == 0, testing::slurp(log));

    // Sampling from the checkpoint: the tokenizer is found through the run's config.json.
    const std::string sampled = dir / "sample.txt";
    REQUIRE_MESSAGE(testing::run("sh -c '" + bin + " sample --checkpoint " + dir / "run" +
                                     " --prompt Document --tokens 8 --seed 3 --threads 1 > " + sampled + "'") == 0,
                    testing::slurp(sampled));
    const std::string text = testing::slurp(sampled);
    CHECK(text.rfind("Document", 0) == 0);
    CHECK(text.size() > std::string("Document\n").size() - 1);
    // The same seed gives the same text.
    REQUIRE(testing::run("sh -c '" + bin + " sample --checkpoint " + dir / "run" +
                         " --prompt Document --tokens 8 --seed 3 --threads 1 > " + sampled + ".2'") == 0);
    CHECK(testing::slurp(sampled + ".2") == text);
    // A tokenizer with more ids than the model: a clear error.
    REQUIRE(testing::run(bin + " tokenizer train --input " + dir / "docs" + " --vocab-size 330 --out " + dir / "big.bin") == 0);
    CHECK(testing::run(bin + " sample --checkpoint " + dir / "run" + " --tokenizer " + dir / "big.bin", log) == 1);
    CHECK_MESSAGE(testing::slurp(log).find("not the tokenizer") != std::string::npos, testing::slurp(log));
}
