// sinklab tokenizer train|encode|decode|info: the byte-level BPE tokenizer on the command line.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace {

// Reads all of standard input as bytes.
std::string read_stdin() {
    std::string data;
    char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(0, buffer, sizeof(buffer));
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("standard input: read error ({})", std::strerror(errno));
        }
        if (n == 0) break;
        data.append(buffer, size_t(n));
    }
    return data;
}

int tokenizer_train(int argc, char** argv) {
    ArgParser args("tokenizer train", "Train a byte-level BPE tokenizer on text files, directories and JSONL files.");
    args.multi_option("input", "text files, directories of text files, JSONL files (a 'text' field per line)", "PATH");
    args.option("out", "", "where to write the tokenizer file", "FILE");
    args.option("vocab-size", "8192", "number of ids in total: 256 bytes + merges + <|endoftext|>", "N");
    args.multi_option("exclude", "skip paths containing this text (e.g. translations/)", "TEXT");
    args.flag("strip-rst-boilerplate", "drop leading SPDX/include/directive lines of each document");
    args.epilog("Example:\n  sinklab tokenizer train --input corpus/ --vocab-size 4096 --out tok.bin\n");
    if (!args.parse(argc, argv)) return 0;
    if (!args.given("input")) fail("--input is required");
    if (!args.has("out")) fail("--out is required");

    CorpusOptions options;
    options.inputs = args.get_list("input");
    options.excludes = args.get_list("exclude");
    options.strip_rst_boilerplate = args.get_flag("strip-rst-boilerplate");
    const auto start = std::chrono::steady_clock::now();
    Corpus corpus(options);
    corpus.scan();
    std::vector<size_t> all(corpus.documents().size());
    for (size_t i = 0; i < all.size(); i++) all[i] = i;
    const Tokenizer tok = train_tokenizer_on(corpus, all, args.get_size("vocab-size"), SIZE_MAX);
    tok.save(args.get("out"));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print("wrote {} (vocabulary {}) from {} documents in {:.1f} s\n", args.get("out"), tok.vocab_size(),
               corpus.documents().size(), seconds);
    return 0;
}

int tokenizer_encode(int argc, char** argv) {
    ArgParser args("tokenizer encode", "Read bytes on standard input, write token ids, one per line.");
    args.option("tokenizer", "", "tokenizer file (sinklab or llm.c)", "FILE");
    args.flag("allow-special", "turn the text <|endoftext|> into its id (else it is ordinary text)");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("tokenizer")) fail("--tokenizer is required");
    const Tokenizer tok = Tokenizer::load(args.get("tokenizer"));
    Encoder encoder(tok);
    const std::string text = read_stdin();
    std::vector<int32_t> ids;
    encoder.encode(text, ids, args.get_flag("allow-special"));
    std::string out;
    out.reserve(ids.size() * 5);
    for (const int32_t id : ids) fmt::format_to(std::back_inserter(out), "{}\n", id);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

int tokenizer_decode(int argc, char** argv) {
    ArgParser args("tokenizer decode",
                   "Read token ids (whitespace separated) on standard input, or from a shard, write the bytes.");
    args.option("tokenizer", "", "tokenizer file (sinklab or llm.c)", "FILE");
    args.option("shard", "", "decode tokens of this shard (llm.c format, e.g. train_000.bin or probe.bin) instead", "FILE");
    args.option("offset", "0", "with --shard: the first token to decode", "N");
    args.option("count", "", "with --shard: how many tokens (default: to the end)", "N");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("tokenizer")) fail("--tokenizer is required");
    const Tokenizer tok = Tokenizer::load(args.get("tokenizer"));
    if (args.has("shard")) {
        const ShardInfo info = read_shard_header(args.get("shard"));
        const size_t offset = args.get_size("offset");
        if (offset > info.n_tokens) fail("--offset {} is past the end of {} ({} tokens)", offset, info.path, info.n_tokens);
        const size_t count = args.has("count") ? std::min(args.get_size("count"), info.n_tokens - offset) : info.n_tokens - offset;
        std::vector<int32_t> ids(count);
        if (count) read_shard_tokens(info, offset, count, ids.data());
        for (size_t i = 0; i < ids.size(); i++)
            if (ids[i] < 0 || size_t(ids[i]) >= tok.vocab_size())
                fail("{}: token id {} at position {} is outside the vocabulary of {} (size {})", info.path, ids[i], offset + i,
                     args.get("tokenizer"), tok.vocab_size());
        const std::string bytes = tok.decode(ids);
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
        return 0;
    }
    const std::string text = read_stdin();
    std::vector<int32_t> ids;
    size_t line = 1;
    for (size_t pos = 0; pos < text.size();) {
        const char c = text[pos];
        if (c == '\n') line++;
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            pos++;
            continue;
        }
        size_t end = pos;
        int64_t value = 0;
        while (end < text.size() && text[end] >= '0' && text[end] <= '9' && value <= INT32_MAX) value = value * 10 + (text[end++] - '0');
        if (end == pos || (end < text.size() && !std::strchr(" \n\t\r", text[end]))) {
            size_t word_end = pos;  // quote the offending word alone (at most 20 bytes), not the rest of the line
            while (word_end < text.size() && word_end - pos < 20 && !std::strchr(" \n\t\r", text[word_end])) word_end++;
            fail("standard input, line {}: not a token id: '{}'", line, text.substr(pos, word_end - pos));
        }
        if (value >= int64_t(tok.vocab_size()))
            fail("standard input, line {}: token id {} is outside the vocabulary (size {})", line, value, tok.vocab_size());
        ids.push_back(int32_t(value));
        pos = end;
    }
    const std::string bytes = tok.decode(ids);
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return 0;
}

int tokenizer_info(int argc, char** argv) {
    ArgParser args("tokenizer info", "Describe a tokenizer file; optionally list every token.");
    args.option("tokenizer", "", "tokenizer file (sinklab or llm.c)", "FILE");
    args.flag("dump", "print every id with its bytes (non-printable bytes as \\xHH)");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("tokenizer")) fail("--tokenizer is required");
    const Tokenizer tok = Tokenizer::load(args.get("tokenizer"));
    fmt::print("format        {}\nvocab size    {}\nmerges        {}\nend of text   {} ({})\ncan encode    {}\n", tok.format(),
               tok.vocab_size(), tok.merges().size(), tok.eot_id(), tok.special_text(), tok.can_encode() ? "yes" : "no");
    if (args.get_flag("dump")) {
        for (size_t id = 0; id < tok.vocab_size(); id++) {
            std::string shown;
            for (const char c : tok.token_bytes(int32_t(id))) {
                const auto b = static_cast<unsigned char>(c);
                if (b >= 0x20 && b < 0x7F && b != '\\')
                    shown += c;
                else
                    shown += fmt::format("\\x{:02X}", b);
            }
            fmt::print("{}\t{}\n", id, shown);
        }
    }
    return 0;
}

}  // namespace

int cmd_tokenizer(int argc, char** argv) {
    const char* usage =
        "usage: sinklab tokenizer <train|encode|decode|info> [options]   (--help after a sub-command for its options)\n"
        "  train   learn a byte-level BPE vocabulary from text\n"
        "  encode  bytes on standard input -> token ids, one per line\n"
        "  decode  token ids on standard input -> bytes\n"
        "  info    describe a tokenizer file\n";
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        fmt::print("{}", usage);
        return argc < 2 ? 2 : 0;
    }
    const std::string sub = argv[1];
    if (sub == "train") return tokenizer_train(argc - 1, argv + 1);
    if (sub == "encode") return tokenizer_encode(argc - 1, argv + 1);
    if (sub == "decode") return tokenizer_decode(argc - 1, argv + 1);
    if (sub == "info") return tokenizer_info(argc - 1, argv + 1);
    fail("unknown tokenizer sub-command '{}' (train, encode, decode or info)", sub);
}

}  // namespace sinklab
