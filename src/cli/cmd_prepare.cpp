// sinklab prepare: text files, directories and JSONL files -> tokenizer, token shards, probe file.
#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/prepare.h"
#include "util/error.h"

namespace sinklab {

int cmd_prepare(int argc, char** argv) {
    ArgParser args("prepare",
                   "Tokenize a corpus into llm.c-format shards: train and validation splits of whole documents, "
                   "a tokenizer, a probe file for the sink analysis and a summary (prepare.json).");
    args.multi_option("input", "text files, directories of text files (recursive), JSONL files (.jsonl, a 'text' field per line)",
                      "PATH");
    args.option("out", "", "output directory (written as DIR.partial, renamed when complete)", "DIR");
    args.option("vocab-size", "8192", "tokenizer vocabulary when training one: 256 bytes + merges + <|endoftext|>", "N");
    args.option("tokenizer", "", "reuse this tokenizer file instead of training one", "FILE");
    args.option("val-docs", "200", "number of whole documents held out for validation", "N");
    args.option("probe-docs", "100", "probe sequences, taken from validation documents long enough", "N");
    args.option("probe-length", "64", "tokens per probe sequence (documents need at least one more)", "T");
    args.option("shard-tokens", "100000000", "most tokens per shard", "N");
    args.option("seed", "1337", "seed of the split and the training order", "S");
    args.option("tokenizer-train-mb", "1024", "train the tokenizer on at most this many MB of training text", "MB");
    args.multi_option("exclude", "leave out paths containing this text (e.g. translations/)", "TEXT");
    args.flag("strip-rst-boilerplate", "drop leading reStructuredText boilerplate of each document (SPDX lines, .. include::, "
                                       "other leading directives and comments, :field: lines, title adornments)");
    args.flag("skip-bad-lines", "skip malformed JSONL lines with a warning (default: stop at the first)");
    args.flag("no-shuffle", "write training documents in corpus order (default: seeded random order)");
    args.flag("force", "replace --out if it exists");
    args.flag("quiet", "no progress output");
    args.epilog(
        "Output (DIR): tokenizer.bin, train_000.bin..., val_000.bin..., probe.bin, prepare.json\n"
        "Example (the default corpus, what `make data` runs):\n"
        "  sinklab prepare --input /usr/share/doc/linux-doc-6.1/html/_sources --exclude translations/ \\\n"
        "      --strip-rst-boilerplate --vocab-size 8192 --out data/cache/linux-doc\n");
    if (!args.parse(argc, argv)) return 0;
    if (!args.given("input")) fail("--input is required");
    if (!args.has("out")) fail("--out is required");

    PrepareOptions o;
    o.corpus.inputs = args.get_list("input");
    o.corpus.excludes = args.get_list("exclude");
    o.corpus.strip_rst_boilerplate = args.get_flag("strip-rst-boilerplate");
    o.corpus.skip_bad_lines = args.get_flag("skip-bad-lines");
    o.corpus.quiet = args.get_flag("quiet");
    o.out_dir = args.get("out");
    o.tokenizer_path = args.get("tokenizer");
    o.vocab_size = args.get_size("vocab-size");
    o.val_docs = args.get_size("val-docs");
    o.probe_docs = args.get_size("probe-docs");
    o.probe_length = args.get_size("probe-length");
    o.shard_tokens = args.get_size("shard-tokens");
    o.seed = uint64_t(args.get_int("seed"));
    o.tokenizer_train_bytes = uint64_t(args.get_size("tokenizer-train-mb")) << 20;
    o.shuffle = !args.get_flag("no-shuffle");
    o.force = args.get_flag("force");
    o.verbose = !args.get_flag("quiet");
    prepare_corpus(o);
    return 0;
}

}  // namespace sinklab
