// Corpus preparation: text files, directories and JSONL files -> tokenizer + token shards + probe.
//
// A document is one text file, or one line of a JSONL file (its "text" field). Directories are
// walked recursively in sorted path order; files ending in .jsonl are JSONL, every other regular file
// is text. Paths containing an --exclude text are left out. Documents that are empty (or only
// whitespace) after cleanup are skipped and counted.
//
// `sinklab prepare --out DIR` writes (first into DIR.partial, renamed to DIR when complete, so an
// interrupted run never leaves a DIR that looks finished):
//   tokenizer.bin       the tokenizer (tokenizer.h), trained on the training documents or copied
//   train_000.bin ...   training shards (llm.c format, shard.h): each document's ids followed by
//                       <|endoftext|>, no BOS, concatenated; a shard holds at most --shard-tokens
//                       tokens, documents continue across shard boundaries
//   val_000.bin ...     the validation split: whole held-out documents, same layout
//   probe.bin           probe sequences for the sink analysis: the first --probe-length (64) tokens
//                       of --probe-docs (100) validation documents that have more than that many
//                       tokens; header[3] = the probe length
//   prepare.json        the summary (written last): documents, skipped, tokens, bytes per token,
//                       shard lists, vocabulary size, seed, inputs, options, and probe_sources:
//                       the file (and JSONL line, "file:line") of each probe sequence, in order
//
// The split: documents are permuted with the seed (Rng, Fisher-Yates); the first --val-docs of the
// permutation are the validation documents, the rest train. Training documents are written in the
// permuted order (or corpus order with --no-shuffle), validation documents in corpus order; probe
// documents are the first validation documents in permuted order that are long enough. So no
// validation or probe document appears in training, and the output depends only on the inputs,
// the options and the seed (not on the thread count).
//
// Memory: the corpus is streamed: a first pass indexes the documents (a few dozen bytes each), the
// tokenizer pass keeps only the table of distinct pieces, and the encoding pass holds one batch of
// documents and one shard of tokens.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "util/json.h"

namespace sinklab {

struct CorpusOptions {
    std::vector<std::string> inputs;    // files and directories
    std::vector<std::string> excludes;  // leave out paths containing any of these
    bool strip_rst_boilerplate = false; // see strip_rst_boilerplate()
    bool skip_bad_lines = false;        // malformed JSONL lines: skip with a warning (else stop)
    bool quiet = false;                 // no warnings on stderr
};

// Where one document lives: a whole text file, or one line of a JSONL file.
struct DocumentRef {
    uint32_t file = 0;     // index into Corpus::files()
    uint32_t line = 0;     // 1-based line number in a JSONL file, 0 for a text file
    uint64_t offset = 0;   // byte offset of the line (JSONL) or 0
    uint64_t length = 0;   // bytes of the line (JSONL) or of the file
    uint64_t text_bytes = 0;  // bytes of the document's text after cleanup
};

class Corpus {
public:
    explicit Corpus(CorpusOptions options);

    // First pass: lists the files, reads every document once to index it and to check it (JSON,
    // emptiness). Throws Error for unreadable inputs, and for malformed JSONL lines unless
    // skip_bad_lines.
    void scan();

    const std::vector<std::string>& files() const { return files_; }
    const std::vector<DocumentRef>& documents() const { return documents_; }
    size_t empty_documents() const { return empty_documents_; }
    size_t bad_lines() const { return bad_lines_; }
    uint64_t total_text_bytes() const { return total_text_bytes_; }
    const CorpusOptions& options() const { return options_; }

    // The text of a JSONL line or of a text file after cleanup (throws Error naming the location).
    std::string clean_text(std::string text) const;

private:
    void scan_text_file(uint32_t file);
    void scan_jsonl_file(uint32_t file);

    CorpusOptions options_;
    std::vector<std::string> files_;
    std::vector<bool> is_jsonl_;
    std::vector<DocumentRef> documents_;
    size_t empty_documents_ = 0;
    size_t bad_lines_ = 0;
    uint64_t total_text_bytes_ = 0;

    friend class DocumentReader;
};

// Reads documents back (after Corpus::scan), keeping the current file open. One per thread.
class DocumentReader {
public:
    explicit DocumentReader(const Corpus& corpus) : corpus_(corpus) {}
    std::string read(size_t document);

private:
    const Corpus& corpus_;
    std::ifstream stream_;
    uint32_t open_file_ = UINT32_MAX;
};

// Drops the leading lines that are reStructuredText boilerplate rather than text: blank lines,
// directives and comments ("..", e.g. ".. SPDX-License-Identifier: GPL-2.0", ".. include:: x",
// ".. _label:") with their indented continuation lines, field lines like ":orphan:", and section
// adornment lines (a single punctuation character repeated, "======"). Stops at the first other line.
std::string strip_rst_boilerplate(const std::string& text);

// Extracts the "text" string of one JSONL line. Returns false (and sets error) when the line is not
// a JSON object with a string "text" field.
bool jsonl_text(const std::string& line, std::string& text, std::string& error);

// Counts the pieces of the given documents (in parallel, deterministic) and trains a tokenizer.
// Reads documents in the given order until max_bytes of text have been counted.
Tokenizer train_tokenizer_on(const Corpus& corpus, const std::vector<size_t>& documents, size_t vocab_size,
                             uint64_t max_bytes, bool verbose = false);

struct PrepareOptions {
    CorpusOptions corpus;
    std::string out_dir;
    std::string tokenizer_path;   // reuse this tokenizer instead of training one
    size_t vocab_size = 8192;
    size_t val_docs = 200;
    size_t probe_docs = 100;
    size_t probe_length = 64;
    size_t shard_tokens = 100'000'000;
    uint64_t seed = 1337;
    uint64_t tokenizer_train_bytes = 1ull << 30;  // train the tokenizer on at most this much text
    bool shuffle = true;
    bool force = false;    // replace an existing --out
    bool verbose = true;   // progress on stdout
};

// Runs the whole preparation and returns the summary (also written to prepare.json).
Json prepare_corpus(const PrepareOptions& options);

}  // namespace sinklab
