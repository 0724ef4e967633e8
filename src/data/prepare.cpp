#include "data/prepare.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "data/shard.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/rng.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; });
}

// "=====", "-----", "~~~~" ...: one punctuation character repeated (at least twice), nothing else.
bool is_adornment(std::string_view line) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.size() < 2) return false;
    static const char* const kAdornment = "=-~^*#+\"'`:._";
    if (!std::strchr(kAdornment, line[0])) return false;
    return std::all_of(line.begin(), line.end(), [&](char c) { return c == line[0]; });
}

// ":orphan:", ":tocdepth: 2": a field line.
bool is_field_line(std::string_view line) {
    if (line.size() < 3 || line[0] != ':') return false;
    const size_t close = line.find(':', 1);
    return close != std::string_view::npos && close > 1 && line.substr(1, close - 1).find(' ') == std::string_view::npos;
}

// Runs body(i) for i in [0, n) on the OpenMP threads with one State per thread, in chunks handed
// out dynamically. The first exception thrown by any body is rethrown after the loop.
template <typename State, typename MakeState, typename Body>
std::vector<State> parallel_for_with_state(size_t n, MakeState make_state, Body body) {
    const size_t threads = size_t(std::max(1, omp_get_max_threads()));
    std::vector<State> states;
    states.reserve(threads);
    for (size_t t = 0; t < threads; t++) states.push_back(make_state());
    std::exception_ptr error;
    std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 4) num_threads(int(threads))
    for (size_t i = 0; i < n; i++) {
        {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (error) continue;
        }
        try {
            body(states[size_t(omp_get_thread_num())], i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    return states;
}

// Collects tokens and writes them as numbered shards of at most `cap` tokens: DIR/PREFIX_000.bin, ...
class ShardWriter {
public:
    ShardWriter(std::string dir, std::string prefix, size_t cap) : dir_(std::move(dir)), prefix_(std::move(prefix)), cap_(cap) {}

    void append(const std::vector<int32_t>& ids) {
        for (size_t i = 0; i < ids.size();) {
            const size_t take = std::min(ids.size() - i, cap_ - buffer_.size());
            buffer_.insert(buffer_.end(), ids.begin() + std::ptrdiff_t(i), ids.begin() + std::ptrdiff_t(i + take));
            i += take;
            total_ += take;
            if (buffer_.size() == cap_) flush();
        }
    }
    void finish() {
        if (!buffer_.empty()) flush();
    }
    const std::vector<std::string>& names() const { return names_; }
    uint64_t total() const { return total_; }

private:
    void flush() {
        const std::string name = fmt::format("{}_{:03d}.bin", prefix_, names_.size());
        write_shard(dir_ + "/" + name, buffer_);
        names_.push_back(name);
        buffer_.clear();
    }
    std::string dir_, prefix_;
    size_t cap_;
    std::vector<int32_t> buffer_;
    std::vector<std::string> names_;
    uint64_t total_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

// ---------------------------------------------------------------- cleanup and JSONL

std::string strip_rst_boilerplate(const std::string& text) {
    size_t pos = 0;
    bool in_directive = false;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string_view line(text.data() + pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool drop = false;
        if (is_blank(line)) {
            drop = true;
        } else if (line == ".." || line.substr(0, 3) == ".. ") {  // a directive or comment
            drop = in_directive = true;
        } else if (in_directive && (line[0] == ' ' || line[0] == '\t')) {
            drop = true;
        } else if (is_field_line(line) || is_adornment(line)) {
            drop = true;
            in_directive = false;
        }
        if (!drop) break;
        pos = end + 1;
    }
    return pos >= text.size() ? std::string() : text.substr(pos);
}

bool jsonl_text(const std::string& line, std::string& text, std::string& error) {
    try {
        const Json value = Json::parse(line, "line");
        if (!value.is_object()) {
            error = "not a JSON object";
            return false;
        }
        if (!value.contains("text")) {
            error = "no \"text\" field";
            return false;
        }
        const Json& field = value.at("text");
        if (!field.is_string()) {
            error = "the \"text\" field is not a string";
            return false;
        }
        text = field.as_string();
        return true;
    } catch (const Error& e) {
        error = e.what();
        return false;
    }
}

// ---------------------------------------------------------------- corpus

Corpus::Corpus(CorpusOptions options) : options_(std::move(options)) {}

std::string Corpus::clean_text(std::string text) const {
    if (options_.strip_rst_boilerplate) return strip_rst_boilerplate(text);
    return text;
}

void Corpus::scan() {
    if (options_.inputs.empty()) fail("no input given (--input PATH...)");
    auto excluded = [&](const std::string& path) {
        return std::any_of(options_.excludes.begin(), options_.excludes.end(),
                           [&](const std::string& e) { return !e.empty() && path.find(e) != std::string::npos; });
    };
    files_.clear();
    for (const std::string& input : options_.inputs) {
        std::error_code ec;
        const fs::file_status status = fs::status(input, ec);
        if (ec || !fs::exists(status)) fail("{}: no such file or directory", input);
        if (fs::is_directory(status)) {
            std::vector<std::string> found;
            fs::recursive_directory_iterator it(input, fs::directory_options::follow_directory_symlink, ec);
            if (ec) fail("{}: cannot read directory ({})", input, ec.message());
            for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
                if (ec) fail("{}: cannot read directory ({})", input, ec.message());
                if (it->is_regular_file() && !excluded(it->path().string())) found.push_back(it->path().string());
            }
            if (ec) fail("{}: cannot read directory ({})", input, ec.message());
            std::sort(found.begin(), found.end());
            files_.insert(files_.end(), found.begin(), found.end());
        } else if (!excluded(input)) {
            files_.push_back(input);
        }
    }
    if (files_.empty()) fail("no input files found in {}", fmt::join(options_.inputs, ", "));
    if (files_.size() > size_t(UINT32_MAX)) fail("too many input files ({})", files_.size());
    is_jsonl_.resize(files_.size());
    for (size_t f = 0; f < files_.size(); f++) {
        is_jsonl_[f] = ends_with(files_[f], ".jsonl");
        if (is_jsonl_[f])
            scan_jsonl_file(uint32_t(f));
        else
            scan_text_file(uint32_t(f));
    }
}

void Corpus::scan_text_file(uint32_t file) {
    const std::string text = clean_text(read_file(files_[file]));
    if (is_blank(text)) {
        empty_documents_++;
        return;
    }
    DocumentRef doc;
    doc.file = file;
    doc.length = fs::file_size(files_[file]);
    doc.text_bytes = text.size();
    documents_.push_back(doc);
    total_text_bytes_ += text.size();
}

void Corpus::scan_jsonl_file(uint32_t file) {
    const std::string& path = files_[file];
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open ({})", path, std::strerror(errno));
    std::string line, text, error;
    uint64_t offset = 0;
    for (uint32_t number = 1; std::getline(in, line); number++) {
        const uint64_t line_offset = offset;
        offset += line.size() + (in.eof() ? 0 : 1);
        if (is_blank(line)) continue;
        if (!jsonl_text(line, text, error)) {
            if (!options_.skip_bad_lines)
                fail("{}:{}: malformed JSONL line: {} (use --skip-bad-lines to skip such lines)", path, number, error);
            if (!options_.quiet) fmt::print(stderr, "warning: {}:{}: malformed JSONL line skipped: {}\n", path, number, error);
            bad_lines_++;
            continue;
        }
        text = clean_text(std::move(text));
        if (is_blank(text)) {
            empty_documents_++;
            continue;
        }
        DocumentRef doc;
        doc.file = file;
        doc.line = number;
        doc.offset = line_offset;
        doc.length = line.size();
        doc.text_bytes = text.size();
        documents_.push_back(doc);
        total_text_bytes_ += text.size();
    }
    if (in.bad()) fail("{}: read error", path);
}

std::string DocumentReader::read(size_t document) {
    const DocumentRef& doc = corpus_.documents_.at(document);
    const std::string& path = corpus_.files_[doc.file];
    if (!corpus_.is_jsonl_[doc.file]) return corpus_.clean_text(read_file(path));
    if (open_file_ != doc.file) {
        stream_.close();
        stream_.clear();
        stream_.open(path, std::ios::binary);
        if (!stream_) fail("{}: cannot open ({})", path, std::strerror(errno));
        open_file_ = doc.file;
    }
    std::string line(doc.length, '\0');
    stream_.seekg(std::streamoff(doc.offset));
    stream_.read(line.data(), std::streamsize(doc.length));
    if (size_t(stream_.gcount()) != doc.length) fail("{}:{}: the file changed while it was being prepared", path, doc.line);
    std::string text, error;
    if (!jsonl_text(line, text, error)) fail("{}:{}: the file changed while it was being prepared ({})", path, doc.line, error);
    return corpus_.clean_text(std::move(text));
}

// ---------------------------------------------------------------- tokenizer training

Tokenizer train_tokenizer_on(const Corpus& corpus, const std::vector<size_t>& documents, size_t vocab_size,
                             uint64_t max_bytes, bool verbose) {
    const auto start = std::chrono::steady_clock::now();
    size_t n = 0;
    uint64_t bytes = 0;
    while (n < documents.size() && bytes < max_bytes) bytes += corpus.documents()[documents[n++]].text_bytes;
    struct State {
        DocumentReader reader;
        WordCounts counts;
    };
    auto states = parallel_for_with_state<State>(
        n, [&] { return State{DocumentReader(corpus), WordCounts()}; },
        [&](State& s, size_t i) { s.counts.add_text(s.reader.read(documents[i])); });
    WordCounts counts = std::move(states[0].counts);
    for (size_t t = 1; t < states.size(); t++) counts.merge_from(states[t].counts);
    if (verbose)
        fmt::print("tokenizer: counted {} pieces ({} distinct) in {} documents, {:.1f} MB, {:.1f} s\n", counts.total_words(),
                   counts.unique_words(), n, double(bytes) / 1e6, seconds_since(start));
    const auto merge_start = std::chrono::steady_clock::now();
    Tokenizer tok = Tokenizer::train(counts, vocab_size);
    if (verbose) fmt::print("tokenizer: learned {} merges in {:.1f} s\n", tok.merges().size(), seconds_since(merge_start));
    return tok;
}

// ---------------------------------------------------------------- prepare

namespace {

// Encodes documents[first, last) in parallel, in batches, and hands each document's ids (without
// the end-of-text token) to consume(position, ids) in order.
template <typename Consume>
void encode_in_order(const Corpus& corpus, const Tokenizer& tok, const std::vector<size_t>& documents, Consume consume) {
    constexpr uint64_t kBatchBytes = 64ull << 20;
    const size_t threads = size_t(std::max(1, omp_get_max_threads()));
    std::vector<Encoder> encoders;
    std::vector<DocumentReader> readers;
    for (size_t t = 0; t < threads; t++) {
        encoders.emplace_back(tok);
        readers.emplace_back(corpus);
    }
    std::vector<std::vector<int32_t>> ids;
    for (size_t first = 0; first < documents.size();) {
        size_t last = first;
        uint64_t bytes = 0;
        while (last < documents.size() && (last == first || bytes < kBatchBytes) && last - first < 65536)
            bytes += corpus.documents()[documents[last++]].text_bytes;
        ids.assign(last - first, {});
        std::exception_ptr error;
        std::mutex error_mutex;
#pragma omp parallel for schedule(dynamic, 4) num_threads(int(threads))
        for (size_t i = first; i < last; i++) {
            try {
                const size_t t = size_t(omp_get_thread_num());
                encoders[t].encode(readers[t].read(documents[i]), ids[i - first]);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
            }
        }
        if (error) std::rethrow_exception(error);
        for (size_t i = first; i < last; i++) consume(i, ids[i - first]);
        first = last;
    }
}

}  // namespace

Json prepare_corpus(const PrepareOptions& o) {
    const auto start = std::chrono::steady_clock::now();
    if (o.out_dir.empty()) fail("--out is required");
    if (o.shard_tokens == 0 || o.shard_tokens > size_t(INT32_MAX)) fail("--shard-tokens must be in 1..{}", INT32_MAX);
    if (o.probe_docs > 0 && o.probe_length == 0) fail("--probe-length must be positive");
    if (o.probe_docs > o.val_docs)
        fail("--probe-docs {} is more than --val-docs {}: probe documents are taken from the validation documents", o.probe_docs,
             o.val_docs);
    std::string out = o.out_dir;
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    if (fs::exists(out) && !o.force) fail("{}: already exists (use --force to replace it)", out);

    // Pass 1: index the corpus.
    Corpus corpus(o.corpus);
    corpus.scan();
    const size_t n_docs = corpus.documents().size();
    if (o.verbose)
        fmt::print("corpus: {} files, {} documents, {:.1f} MB of text ({} empty skipped, {} bad lines skipped), {:.1f} s\n",
                   corpus.files().size(), n_docs, double(corpus.total_text_bytes()) / 1e6, corpus.empty_documents(),
                   corpus.bad_lines(), seconds_since(start));
    if (n_docs < o.val_docs + 1)
        fail("the corpus has {} usable documents ({} empty, {} bad lines skipped): too few to hold out --val-docs {} and keep "
             "any for training",
             n_docs, corpus.empty_documents(), corpus.bad_lines(), o.val_docs);

    // The split.
    std::vector<size_t> order(n_docs);
    for (size_t i = 0; i < n_docs; i++) order[i] = i;
    Rng rng(o.seed);
    for (size_t i = n_docs; i > 1; i--) std::swap(order[i - 1], order[size_t(rng.below(i))]);
    std::vector<size_t> val_by_order(order.begin(), order.begin() + std::ptrdiff_t(o.val_docs));
    std::vector<size_t> val_docs = val_by_order;
    std::sort(val_docs.begin(), val_docs.end());
    std::vector<size_t> train_docs(order.begin() + std::ptrdiff_t(o.val_docs), order.end());
    if (!o.shuffle) std::sort(train_docs.begin(), train_docs.end());

    // The output goes to DIR.partial first.
    const std::string tmp = out + ".partial";
    std::error_code ec;
    fs::remove_all(tmp, ec);  // left over from an interrupted run
    if (ec) fail("{}: cannot remove the leftover of an earlier run ({})", tmp, ec.message());
    make_dirs(tmp);
    try {
        // Pass 2: the tokenizer.
        const auto tok_start = std::chrono::steady_clock::now();
        Tokenizer tok;
        if (!o.tokenizer_path.empty()) {
            tok = Tokenizer::load(o.tokenizer_path);
            if (!tok.can_encode()) fail("{}: this tokenizer cannot encode (no token for every byte)", o.tokenizer_path);
            if (o.verbose) fmt::print("tokenizer: {} ({} ids)\n", o.tokenizer_path, tok.vocab_size());
        } else {
            tok = train_tokenizer_on(corpus, train_docs, o.vocab_size, o.tokenizer_train_bytes, o.verbose);
        }
        const double tokenizer_seconds = seconds_since(tok_start);
        if (tok.format() == "sinklab")
            tok.save(tmp + "/tokenizer.bin");
        else
            fs::copy_file(o.tokenizer_path, tmp + "/tokenizer.bin");
        const int32_t eot = tok.eot_id();

        // Pass 3a: validation documents and the probe.
        const auto encode_start = std::chrono::steady_clock::now();
        uint64_t text_tokens = 0, text_bytes = 0;
        ShardWriter val_writer(tmp, "val", o.shard_tokens);
        std::vector<std::vector<int32_t>> probe_candidates(o.val_docs);
        encode_in_order(corpus, tok, val_docs, [&](size_t i, std::vector<int32_t>& ids) {
            text_tokens += ids.size();
            text_bytes += corpus.documents()[val_docs[i]].text_bytes;
            if (ids.size() >= o.probe_length + 1) probe_candidates[i].assign(ids.begin(), ids.begin() + std::ptrdiff_t(o.probe_length));
            ids.push_back(eot);
            val_writer.append(ids);
        });
        val_writer.finish();
        std::vector<int32_t> probe;
        size_t probe_count = 0;
        Json probe_sources = Json::array();  // where each probe sequence comes from
        for (const size_t doc : val_by_order) {
            if (probe_count == o.probe_docs) break;
            const size_t i = size_t(std::lower_bound(val_docs.begin(), val_docs.end(), doc) - val_docs.begin());
            if (probe_candidates[i].empty()) continue;
            probe.insert(probe.end(), probe_candidates[i].begin(), probe_candidates[i].end());
            probe_count++;
            const DocumentRef& ref = corpus.documents()[doc];
            probe_sources.push_back(ref.line ? fmt::format("{}:{}", corpus.files()[ref.file], ref.line) : corpus.files()[ref.file]);
        }
        if (probe_count < o.probe_docs)
            fail("only {} of the {} validation documents have at least {} tokens, but --probe-docs {} asks for more: raise "
                 "--val-docs or lower --probe-docs",
                 probe_count, o.val_docs, o.probe_length + 1, o.probe_docs);
        if (o.probe_docs > 0) write_shard(tmp + "/probe.bin", probe, false, o.probe_length);

        // Pass 3b: training documents.
        ShardWriter train_writer(tmp, "train", o.shard_tokens);
        size_t done = 0;
        encode_in_order(corpus, tok, train_docs, [&](size_t i, std::vector<int32_t>& ids) {
            text_tokens += ids.size();
            text_bytes += corpus.documents()[train_docs[i]].text_bytes;
            ids.push_back(eot);
            train_writer.append(ids);
            if (o.verbose && ++done % 100000 == 0) fmt::print("encode: {} / {} training documents\n", done, train_docs.size());
        });
        train_writer.finish();
        const double encode_seconds = seconds_since(encode_start);

        Json summary = Json::object();
        summary["documents"] = n_docs;
        summary["train_documents"] = train_docs.size();
        summary["val_documents"] = val_docs.size();
        summary["probe_documents"] = probe_count;
        summary["probe_length"] = o.probe_length;
        summary["probe_sources"] = probe_sources;
        summary["empty_documents_skipped"] = corpus.empty_documents();
        summary["bad_lines_skipped"] = corpus.bad_lines();
        summary["files"] = corpus.files().size();
        summary["train_tokens"] = train_writer.total();
        summary["val_tokens"] = val_writer.total();
        summary["tokens"] = train_writer.total() + val_writer.total();
        summary["text_bytes"] = text_bytes;
        summary["bytes_per_token"] = text_tokens ? double(text_bytes) / double(text_tokens) : 0.0;
        summary["train_shards"] = train_writer.names();
        summary["val_shards"] = val_writer.names();
        summary["shard_count"] = train_writer.names().size() + val_writer.names().size();
        summary["tokenizer"] = "tokenizer.bin";
        summary["tokenizer_source"] = o.tokenizer_path.empty() ? std::string("trained") : o.tokenizer_path;
        summary["vocab_size"] = tok.vocab_size();
        summary["eot_id"] = tok.eot_id();
        summary["seed"] = double(o.seed);
        summary["inputs"] = o.corpus.inputs;
        summary["exclude"] = o.corpus.excludes;
        summary["strip_rst_boilerplate"] = o.corpus.strip_rst_boilerplate;
        summary["shuffle"] = o.shuffle;
        summary["shard_tokens"] = o.shard_tokens;
        summary["tokenizer_seconds"] = tokenizer_seconds;
        summary["encode_seconds"] = encode_seconds;
        summary["seconds"] = seconds_since(start);
        write_file_atomic(tmp + "/prepare.json", summary.dump(2) + "\n");

        // Into place: an existing DIR (only with --force) is moved aside first.
        const std::string old = out + ".old";
        if (fs::exists(out)) {
            fs::remove_all(old, ec);
            fs::rename(out, old, ec);
            if (ec) fail("{}: cannot move the old output aside ({})", out, ec.message());
        }
        fs::rename(tmp, out, ec);
        if (ec) fail("{}: cannot rename {} into place ({})", out, tmp, ec.message());
        fs::remove_all(old, ec);
        if (o.verbose)
            fmt::print("prepared {}: {} documents ({} train, {} val, {} probe), {} tokens, {:.3f} bytes/token, {} shards, "
                       "{:.1f} s\n",
                       out, n_docs, train_docs.size(), val_docs.size(), probe_count, train_writer.total() + val_writer.total(),
                       summary["bytes_per_token"].as_number(), train_writer.names().size() + val_writer.names().size(),
                       seconds_since(start));
        return summary;
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

}  // namespace sinklab
