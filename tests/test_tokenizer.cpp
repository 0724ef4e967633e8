// Tokenizer tests: the pre-tokenizer's cuts, BPE merges on a hand-worked example, exact round trips
// for arbitrary bytes (invalid UTF-8 included), the special token, the file format and its checks,
// and reading llm.c tokenizer files.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/rng.h"

using namespace sinklab;

namespace {

std::vector<std::string> pieces_of(std::string_view text) {
    std::vector<std::string> out;
    for (const std::string_view p : pretokenize(text)) out.emplace_back(p);
    return out;
}

std::string random_bytes(Rng& rng, size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = char(rng.below(256));
    return s;
}

// A small English-like training text with some repetition.
std::string sample_text() {
    std::string text;
    const char* lines[] = {"The quick brown fox jumps over the lazy dog.\n",
                           "It's 2024 and the kernel's scheduler isn't simple; we'll see.\n",
                           "    int main(void) { return 0; }\n",
                           "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xE2\x80\x94 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E text.\n",
                           "====================\n\n"};
    for (size_t r = 0; r < 20; r++)
        for (const char* line : lines) text += line;
    return text;
}

Tokenizer train_on(const std::string& text, size_t vocab) {
    WordCounts counts;
    counts.add_text(text);
    return Tokenizer::train(counts, vocab);
}

std::string temp_dir(const std::string& name) {
    const std::string dir = (std::filesystem::temp_directory_path() / ("sinklab_test_tok_" + name)).string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

void put_u32(std::string& out, uint32_t v) {
    for (size_t b = 0; b < 4; b++) out += char((v >> (8 * b)) & 0xFF);
}

}  // namespace

TEST_CASE("pre-tokenizer cuts like GPT-2's rule") {
    CHECK(pieces_of("Hello world") == std::vector<std::string>{"Hello", " world"});
    CHECK(pieces_of("I'm here, they'll go") == std::vector<std::string>{"I", "'m", " here", ",", " they", "'ll", " go"});
    CHECK(pieces_of("a   b") == std::vector<std::string>{"a", "  ", " b"});
    CHECK(pieces_of("x\n\ny") == std::vector<std::string>{"x", "\n", "\n", "y"});
    CHECK(pieces_of("123 4567 ab12") == std::vector<std::string>{"123", " 4567", " ab", "12"});
    CHECK(pieces_of("wait!!! ok?") == std::vector<std::string>{"wait", "!!!", " ok", "?"});
    CHECK(pieces_of("end  ") == std::vector<std::string>{"end", "  "});
    CHECK(pieces_of(" ") == std::vector<std::string>{" "});
    CHECK(pieces_of("  (x)") == std::vector<std::string>{" ", " (", "x", ")"});
    CHECK(pieces_of("\tfoo") == std::vector<std::string>{"\t", "foo"});
    // Non-ASCII letters stay inside words; a non-breaking space is whitespace.
    CHECK(pieces_of("caf\xC3\xA9 \xC3\xBC" "ber") == std::vector<std::string>{"caf\xC3\xA9", " \xC3\xBC" "ber"});
    CHECK(pieces_of("a\xC2\xA0" "b") == std::vector<std::string>{"a", "\xC2\xA0", "b"});
    // Invalid UTF-8 bytes are "other" characters, one byte each.
    CHECK(pieces_of("\xFF\xFE" "ab") == std::vector<std::string>{"\xFF\xFE", "ab"});
    CHECK(pieces_of("ab\xC3") == std::vector<std::string>{"ab", "\xC3"});
    CHECK(pieces_of("").empty());
}

TEST_CASE("pre-tokenizer pieces concatenate back to any byte string") {
    Rng rng(7);
    for (size_t trial = 0; trial < 200; trial++) {
        const std::string s = random_bytes(rng, rng.below(300));
        std::string joined;
        for (const auto& p : pretokenize(s)) {
            CHECK(!p.empty());
            CHECK(p.size() <= kMaxPieceBytes);
            joined += p;
        }
        CHECK(joined == s);
    }
    const std::string long_word(1000, 'a');
    CHECK(pretokenize(long_word).size() == (1000 + kMaxPieceBytes - 1) / kMaxPieceBytes);
}

// The textbook BPE loop, the reference for encode_piece: repeat { the lowest-ranked adjacent pair;
// merge each occurrence, left to right } (sinklab's layout: byte b is id b).
std::vector<int32_t> textbook_bpe(const Tokenizer& tok, std::string_view piece) {
    std::map<std::pair<int32_t, int32_t>, size_t> rank;
    for (size_t r = 0; r < tok.merges().size(); r++) rank.emplace(std::make_pair(tok.merges()[r].left, tok.merges()[r].right), r);
    std::vector<int32_t> ids;
    for (const char c : piece) ids.push_back(int32_t(static_cast<unsigned char>(c)));
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i + 1 < ids.size(); i++) {
            const auto it = rank.find({ids[i], ids[i + 1]});
            if (it != rank.end()) best = std::min(best, it->second);
        }
        if (best == SIZE_MAX) return ids;
        const Merge& m = tok.merges()[best];
        std::vector<int32_t> next;
        for (size_t i = 0; i < ids.size(); i++) {
            if (i + 1 < ids.size() && ids[i] == m.left && ids[i + 1] == m.right) {
                next.push_back(m.result);
                i++;
            } else {
                next.push_back(ids[i]);
            }
        }
        ids = next;
    }
}

TEST_CASE("BPE of a piece gives the textbook loop's result, and a 5 MB piece without whitespace encodes") {
    // Runs of one letter and of two alternating letters, so that merges of equal symbols (aa, aaaa)
    // and overlapping occurrences are exercised.
    std::string text = sample_text();
    for (size_t r = 0; r < 30; r++) text += " aaaaaaaaaaaaaaaaa abababababababa abcabcabcabcab xxxyxxxyxxxy\n";
    const Tokenizer tok = train_on(text, 400);
    Rng rng(17);
    const std::string alphabet = "aabbcxy.=";
    for (size_t n = 0; n < 400; n++) {
        std::string piece(1 + rng.below(200), ' ');
        for (char& c : piece) c = alphabet[rng.below(alphabet.size())];
        std::vector<int32_t> got;
        tok.encode_piece(piece, got);
        CHECK_MESSAGE(got == textbook_bpe(tok, piece), piece);
    }
    for (const std::string& piece : pieces_of(text)) {
        std::vector<int32_t> got;
        tok.encode_piece(piece, got);
        CHECK(got == textbook_bpe(tok, piece));
    }
    // A 5 MB document of letters without whitespace, through the pre-tokenizer as `prepare` runs it:
    // cut into pieces of kMaxPieceBytes, each found in O(kMaxPieceBytes) (finding each piece's end by
    // scanning the whole run made it quadratic) and merged in O(n log n) by the heap.
    std::string run(5000000, ' ');
    for (char& c : run) c = "aabbcxy"[rng.below(7)];
    const std::vector<std::string> pieces = pieces_of(run);
    CHECK(pieces.size() == (run.size() + kMaxPieceBytes - 1) / kMaxPieceBytes);
    const std::vector<int32_t> ids = tok.encode(run);
    CHECK(ids.size() < run.size());
    CHECK(tok.decode(ids) == run);
}

TEST_CASE("BPE training finds the expected merges, ties broken by the smallest pair") {
    // "aaabdaaabac": (a,a) is most frequent; then (a,b) and (aa,a) tie at 2 and (a,b) has the
    // smaller ids; then (aa,ab) occurs twice.
    const Tokenizer tok = train_on("aaabdaaabac", 260);
    REQUIRE(tok.merges().size() == 3);
    CHECK(tok.merges()[0].left == 'a');
    CHECK(tok.merges()[0].right == 'a');
    CHECK(tok.merges()[1].left == 'a');
    CHECK(tok.merges()[1].right == 'b');
    CHECK(tok.merges()[2].left == 256);
    CHECK(tok.merges()[2].right == 257);
    CHECK(tok.vocab_size() == 260);
    CHECK(tok.eot_id() == 259);
    CHECK(tok.token_bytes(258) == "aaab");
    CHECK(tok.encode("aaabdaaabac") == std::vector<int32_t>{258, 'd', 258, 'a', 'c'});
    // More merges than the text holds pairs for: a clear error.
    CHECK_THROWS_AS(train_on("abc", 300), Error);
    CHECK_THROWS_AS(train_on("abc", 100), Error);
}

TEST_CASE("training is deterministic and independent of the order documents are counted in") {
    const std::vector<std::string> docs = {sample_text(), "Another document, with other words.\n", "x = y + 42;\n"};
    WordCounts forward, backward;
    for (size_t i = 0; i < docs.size(); i++) forward.add_text(docs[i]);
    for (size_t i = docs.size(); i-- > 0;) backward.add_text(docs[i]);
    const Tokenizer a = Tokenizer::train(forward, 400), b = Tokenizer::train(backward, 400), c = Tokenizer::train(forward, 400);
    REQUIRE(a.merges().size() == 400 - 257);
    for (size_t i = 0; i < a.merges().size(); i++) {
        CHECK(a.merges()[i].left == b.merges()[i].left);
        CHECK(a.merges()[i].right == b.merges()[i].right);
        CHECK(a.merges()[i].left == c.merges()[i].left);
        CHECK(a.merges()[i].right == c.merges()[i].right);
    }
}

TEST_CASE("decode(encode(x)) == x for every byte string, invalid UTF-8 included") {
    const Tokenizer tok = train_on(sample_text(), 370);
    Encoder encoder(tok);
    Rng rng(11);
    std::vector<std::string> cases = {"", "a", "\x00\x01\x02", "\xFF\xFE\xFD", "\xC3", "\xED\xA0\x80 surrogate",
                                      "\xC0\xAF overlong", sample_text(), "  \n\n\t  trailing   "};
    cases.push_back(std::string("nul\0inside", 10));
    for (size_t trial = 0; trial < 300; trial++) cases.push_back(random_bytes(rng, rng.below(200)));
    // Random mixes of text fragments and bytes exercise the merges more than pure noise does.
    for (size_t trial = 0; trial < 100; trial++) {
        std::string s;
        for (size_t k = 0; k < 20; k++) s += rng.below(3) ? sample_text().substr(rng.below(200), rng.below(20)) : random_bytes(rng, 2);
        cases.push_back(s);
    }
    for (const std::string& s : cases) {
        const std::vector<int32_t> ids = tok.encode(s);
        CHECK(tok.decode(ids) == s);
        std::vector<int32_t> cached;
        encoder.encode(s, cached);
        CHECK(cached == ids);
        for (const int32_t id : ids) CHECK(id != tok.eot_id());
    }
    // Real text compresses.
    CHECK(tok.encode(sample_text()).size() * 2 < sample_text().size());
}

TEST_CASE("the special token inside text") {
    const Tokenizer tok = train_on(sample_text(), 360);
    const std::string text = "before<|endoftext|>after <|endoftext|>";
    const std::vector<int32_t> plain = tok.encode(text);
    CHECK(std::count(plain.begin(), plain.end(), tok.eot_id()) == 0);  // ordinary text by default
    CHECK(tok.decode(plain) == text);
    const std::vector<int32_t> special = tok.encode(text, true);
    CHECK(std::count(special.begin(), special.end(), tok.eot_id()) == 2);
    CHECK(tok.decode(special) == text);
    CHECK(special.back() == tok.eot_id());
    CHECK(tok.token_bytes(tok.eot_id()) == "<|endoftext|>");
    CHECK(tok.decode({tok.eot_id()}) == "<|endoftext|>");
    CHECK_THROWS_AS(tok.decode({int32_t(tok.vocab_size())}), Error);
    CHECK_THROWS_AS(tok.decode({-1}), Error);
}

TEST_CASE("tokenizer file: round trip and validation") {
    const std::string dir = temp_dir("file");
    const Tokenizer tok = train_on(sample_text(), 380);
    const std::string path = dir + "/tok.bin";
    tok.save(path);
    const Tokenizer back = Tokenizer::load(path);
    CHECK(back.vocab_size() == 380);
    CHECK(back.eot_id() == 379);
    CHECK(back.format() == "sinklab");
    CHECK(back.encode(sample_text()) == tok.encode(sample_text()));
    for (size_t id = 0; id < 380; id++) CHECK(back.token_bytes(int32_t(id)) == tok.token_bytes(int32_t(id)));

    const std::string bytes = read_file(path);
    auto expect_failure = [&](const std::string& corrupt, const std::string& what) {
        write_file_atomic(dir + "/bad.bin", corrupt);
        try {
            Tokenizer::load(dir + "/bad.bin");
            FAIL("no error for " << what);
        } catch (const Error& e) {
            const std::string message = e.what();
            CHECK_MESSAGE(message.find("bad.bin") != std::string::npos, message);
            CHECK_MESSAGE(message.find(what) != std::string::npos, message);
        }
    };
    expect_failure(bytes.substr(0, bytes.size() - 1), "truncated");
    expect_failure(bytes.substr(0, 10), "truncated");
    expect_failure(bytes + "x", "unexpected bytes");
    expect_failure("XXXX" + bytes.substr(4), "magic");
    std::string wrong_version = bytes;
    wrong_version[4] = 9;
    expect_failure(wrong_version, "version");
    std::string bad_merge = bytes;
    bad_merge[24] = char(0xFF);  // first merge's left id -> 255 + 0xFF00.. : an id that does not exist yet
    bad_merge[25] = char(0x01);
    expect_failure(bad_merge, "merge 0");
    CHECK_THROWS_AS(Tokenizer::load(dir + "/missing.bin"), Error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("an llm.c tokenizer header claiming more ids than its file holds is refused before allocating") {
    const std::string dir = temp_dir("llmc_huge");
    std::string file;
    std::vector<uint32_t> header(256, 0);
    header[0] = uint32_t(kLlmcTokenizerMagic);
    header[1] = 2;
    header[2] = 50000000;  // 50M ids in a file of about 1 KB
    header[3] = 0;
    for (const uint32_t h : header) put_u32(file, h);
    for (const char c : {'\x01', 'a', '\x01', 'b'}) file += c;  // two one-byte tokens
    write_file_atomic(dir + "/huge.bin", file);
    std::string message;
    try {
        Tokenizer::load(dir + "/huge.bin");
    } catch (const Error& e) {
        message = e.what();
    }
    CHECK(message.find("huge.bin: corrupt llm.c tokenizer: its header claims 50000000 ids, but the 4 bytes after the "
                       "header hold at most 2") != std::string::npos);
}

TEST_CASE("llm.c tokenizer files: decode exactly, encode through reconstructed merges") {
    const std::string dir = temp_dir("llmc");
    // A GPT-2-like layout: the 256 bytes in a permuted order, then "ab", "abc", " ab", then <|endoftext|>.
    std::vector<std::string> vocab;
    for (size_t i = 0; i < 256; i++) vocab.emplace_back(1, char((i * 7 + 3) % 256));
    vocab.push_back("ab");
    vocab.push_back("abc");
    vocab.push_back(" ab");
    vocab.push_back("<|endoftext|>");
    std::string file;
    std::vector<uint32_t> header(256, 0);
    header[0] = uint32_t(kLlmcTokenizerMagic);
    header[1] = 2;
    header[2] = uint32_t(vocab.size());
    header[3] = uint32_t(vocab.size() - 1);
    for (const uint32_t h : header) put_u32(file, h);
    for (const std::string& t : vocab) {
        file += char(t.size());
        file += t;
    }
    write_file_atomic(dir + "/gpt2_tokenizer.bin", file);
    const Tokenizer tok = Tokenizer::load(dir + "/gpt2_tokenizer.bin");
    CHECK(tok.format() == "llm.c");
    CHECK(tok.vocab_size() == 260);
    CHECK(tok.eot_id() == 259);
    CHECK(tok.decode({256, 257, 259}) == "ababc<|endoftext|>");
    REQUIRE(tok.can_encode());
    CHECK(tok.encode("abc ab") == std::vector<int32_t>{257, 258});
    Rng rng(3);
    for (size_t trial = 0; trial < 50; trial++) {
        const std::string s = random_bytes(rng, 50) + "abc ab";
        CHECK(tok.decode(tok.encode(s)) == s);
    }
    CHECK_THROWS_AS(tok.save(dir + "/x.bin"), Error);  // only sinklab files are written
    write_file_atomic(dir + "/truncated.bin", file.substr(0, file.size() - 3));
    CHECK_THROWS_AS(Tokenizer::load(dir + "/truncated.bin"), Error);
    write_file_atomic(dir + "/short.bin", file.substr(0, 100));
    CHECK_THROWS_AS(Tokenizer::load(dir + "/short.bin"), Error);
    std::filesystem::remove_all(dir);
}

TEST_CASE("incremental BPE training agrees with a from-scratch recount at every merge") {
    // A text with many overlapping pairs (runs like "aaaa", repeated words, digits).
    Rng rng(21);
    std::string text = sample_text();
    const char* parts[] = {"aa", "aaa", "ab", "ba", "abab", "the", "then", "there", " ", "  ", "\n", "12", "121", "!!", "zz"};
    for (size_t i = 0; i < 3000; i++) text += parts[rng.below(sizeof(parts) / sizeof(parts[0]))];
    WordCounts counts;
    counts.add_text(text);
    const size_t vocab = 257 + 150;
    const Tokenizer tok = Tokenizer::train(counts, vocab);

    // Reference: recount every pair over every piece before each merge.
    std::vector<std::pair<std::vector<int32_t>, uint64_t>> words;
    for (const auto& [w, c] : counts.sorted()) {
        std::vector<int32_t> ids;
        for (const char ch : w) ids.push_back(int32_t(static_cast<unsigned char>(ch)));
        words.push_back({ids, c});
    }
    for (size_t m = 0; m < vocab - 257; m++) {
        std::map<std::pair<int32_t, int32_t>, uint64_t> pairs;  // ordered: ties go to the smallest pair
        for (const auto& [ids, c] : words)
            for (size_t i = 0; i + 1 < ids.size(); i++) pairs[{ids[i], ids[i + 1]}] += c;
        REQUIRE(!pairs.empty());
        auto best = pairs.begin();
        for (auto it = pairs.begin(); it != pairs.end(); ++it)
            if (it->second > best->second) best = it;
        REQUIRE_MESSAGE(tok.merges()[m].left == best->first.first, "merge " << m);
        REQUIRE_MESSAGE(tok.merges()[m].right == best->first.second, "merge " << m);
        const int32_t result = int32_t(256 + m);
        for (auto& [ids, c] : words) {
            std::vector<int32_t> merged;
            for (size_t i = 0; i < ids.size(); i++) {
                if (i + 1 < ids.size() && ids[i] == best->first.first && ids[i + 1] == best->first.second) {
                    merged.push_back(result);
                    i++;
                } else {
                    merged.push_back(ids[i]);
                }
            }
            ids = merged;
        }
    }
}
