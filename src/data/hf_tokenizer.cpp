// Hugging Face tokenizer.json (byte-level BPE): reading it into a Tokenizer, LLaMA-3's
// pre-tokenizer, and the encoder's handling of added tokens. The format, as documented by the
// `tokenizers` library, and what is refused: docs/hf.md.
#include "data/hf_tokenizer.h"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>

#include "data/pretokenize.h"
#include "data/tokenizer.h"
#include "util/error.h"
#include "util/json.h"
#include "util/utf8.h"

namespace sinklab {

const char* const kLlama3SplitPattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kGpt2SplitPattern = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";

// ---------------------------------------------------------------- the ByteLevel map

namespace {

struct ByteLevelTables {
    std::array<uint32_t, 256> char_of{};  // byte -> code point
    std::array<int, 324> byte_of{};       // code point -> byte, or -1 (the map's code points are below 324)
    ByteLevelTables() {
        byte_of.fill(-1);
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; b++) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            char_of[b] = printable ? b : next++;
            byte_of[char_of[b]] = int(b);
        }
    }
};

const ByteLevelTables& byte_level_tables() {
    static const ByteLevelTables tables;
    return tables;
}


}  // namespace

uint32_t byte_level_char(uint8_t b) { return byte_level_tables().char_of[b]; }

std::string bytes_to_byte_level(std::string_view bytes) {
    std::string out;
    for (const char c : bytes) append_utf8(out, byte_level_char(static_cast<uint8_t>(c)));
    return out;
}

bool byte_level_to_bytes(std::string_view text, std::string& bytes) {
    bytes.clear();
    const ByteLevelTables& t = byte_level_tables();
    for (size_t pos = 0; pos < text.size();) {
        const DecodedChar c = decode_char(text, pos);
        if (c.code_point == 0xFFFFFFFFu) return false;
        const int b = c.code_point < t.byte_of.size() ? t.byte_of[c.code_point] : -1;
        if (b < 0) return false;
        bytes += char(b);
        pos += c.length;
    }
    return true;
}

// ---------------------------------------------------------------- LLaMA-3's pre-tokenizer

size_t llama3_piece_end(std::string_view text, size_t pos) {
    const size_t n = text.size();
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    auto is_newline = [](uint32_t cp) { return cp == '\r' || cp == '\n'; };
    auto run_end = [&](size_t p, CharClass cls, size_t max_chars) {
        for (size_t count = 0; p < n && count < max_chars; count++) {
            const DecodedChar d = decode_char(text, p);
            if (d.cls != cls) break;
            p += d.length;
        }
        return p;
    };
    constexpr size_t unlimited = std::numeric_limits<size_t>::max();
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (text[pos] == '\'' && pos + 1 < n) {
        const char c1 = lower(text[pos + 1]);
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if (pos + 2 < n) {
            const char c2 = lower(text[pos + 2]);
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
        }
    }
    const DecodedChar c = decode_char(text, pos);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c.cls == CharClass::letter) return run_end(pos, CharClass::letter, unlimited);
    if (c.cls != CharClass::number && !is_newline(c.code_point) && pos + c.length < n &&
        decode_char(text, pos + c.length).cls == CharClass::letter)
        return run_end(pos + c.length, CharClass::letter, unlimited);
    // \p{N}{1,3}
    if (c.cls == CharClass::number) return run_end(pos, CharClass::number, 3);
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    size_t start = pos;
    if (c.code_point == ' ' && pos + 1 < n && decode_char(text, pos + 1).cls == CharClass::other) start = pos + 1;
    if (decode_char(text, start).cls == CharClass::other) {
        size_t end = run_end(start, CharClass::other, unlimited);
        while (end < n && (text[end] == '\r' || text[end] == '\n')) end++;
        return end;
    }
    // c is whitespace. \s*[\r\n]+ : up to the last newline of the whitespace run
    size_t end = pos, last_start = pos, after_newline = 0, count = 0;
    while (end < n) {
        const DecodedChar d = decode_char(text, end);
        if (d.cls != CharClass::space) break;
        last_start = end;
        end += d.length;
        count++;
        if (is_newline(d.code_point)) after_newline = end;
    }
    if (after_newline > 0) return after_newline;
    // \s+(?!\S) leaves the last whitespace to the next piece; \s+ otherwise
    if (end < n && count > 1) return last_start;
    return end;
}

size_t Tokenizer::piece_end(std::string_view text, size_t pos) const {
    switch (split_) {
        case Split::sinklab: return next_piece_end(text, pos);
        case Split::gpt2: return gpt2_piece_end(text, pos);
        case Split::llama3: return llama3_piece_end(text, pos);
        case Split::none: return text.size();
    }
    return text.size();
}

// ---------------------------------------------------------------- the encoder's added tokens

void Encoder::encode_hf(std::string_view text, std::vector<int32_t>& out, bool allow_special) {
    const std::vector<Tokenizer::AddedToken>& added = tokenizer_.added_tokens();
    constexpr size_t none = std::string_view::npos;
    // The next occurrence of each added token at or after pos, found again only once passed.
    std::vector<size_t> next(added.size(), 0);
    std::vector<bool> searched(added.size(), false);
    auto run = [&](std::string_view s) {  // text between added tokens
        if (s.empty()) return;
        if (tokenizer_.add_prefix_space() && s[0] != ' ') {
            std::string spaced(1, ' ');  // (not " " + std::string(s): GCC 12 warns -Wrestrict on it)
            spaced.append(s);
            encode_ordinary(spaced, out);
        } else {
            encode_ordinary(s, out);
        }
    };
    size_t pos = 0;
    for (;;) {
        size_t best = none, best_k = 0;
        for (size_t k = 0; k < added.size(); k++) {
            if (added[k].special && !allow_special) continue;
            if (!searched[k] || (next[k] != none && next[k] < pos)) {
                next[k] = text.find(added[k].content, pos);
                searched[k] = true;
            }
            if (next[k] < best) best = next[k], best_k = k;  // the leftmost; on a tie the longest (listed first)
        }
        if (best == none) {
            run(text.substr(pos));
            return;
        }
        run(text.substr(pos, best - pos));
        out.push_back(added[best_k].id);
        pos = best + added[best_k].content.size();
    }
}

// ---------------------------------------------------------------- reading tokenizer.json

Tokenizer Tokenizer::load_hf_json(const std::string& path, const std::string& bytes) {
    const Json j = Json::parse(bytes, path);
    if (!j.is_object()) fail("{}: not a JSON object", path);
    auto is_set = [](const Json& o, const char* key) { return o.is_object() && o.contains(key) && !o.at(key).is_null(); };
    auto type_of = [&](const Json& o) -> std::string {
        return is_set(o, "type") && o.at("type").is_string() ? o.at("type").as_string() : std::string("?");
    };
    auto flag = [&](const Json& o, const char* key, bool def, const std::string& where) {
        if (!is_set(o, key)) return def;
        if (!o.at(key).is_bool()) fail("{}: \"{}.{}\" must be true or false", path, where, key);
        return o.at(key).as_bool();
    };
    Tokenizer tok;
    tok.format_ = "hf";

    // ---- model: byte-level BPE only
    if (!is_set(j, "model") || !j.at("model").is_object()) fail("{}: no \"model\" object (not a tokenizer.json?)", path);
    const Json& m = j.at("model");
    if (type_of(m) != "BPE")
        fail("{}: \"model.type\" is {}: only byte-level BPE models are read (not SentencePiece Unigram, WordPiece or "
             "WordLevel)", path, type_of(m));
    if (flag(m, "byte_fallback", false, "model"))
        fail("{}: \"model.byte_fallback\" is true: a SentencePiece-style BPE (LLaMA-1/2, Mistral), not byte-level BPE",
             path);
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (is_set(m, key) && !(m.at(key).is_string() && m.at(key).as_string().empty()))
            fail("{}: \"model.{}\" is set: not supported by byte-level BPE here", path, key);
    if (is_set(m, "dropout") && !(m.at("dropout").is_number() && m.at("dropout").as_number() == 0.0))
        fail("{}: \"model.dropout\" is set: BPE dropout is not supported", path);
    tok.ignore_merges_ = flag(m, "ignore_merges", false, "model");

    // ---- normalizer: none (NFC accepted, applied as the identity: docs/hf.md)
    if (is_set(j, "normalizer")) {
        const Json& nm = j.at("normalizer");
        const std::string type = type_of(nm);
        const bool empty_sequence = type == "Sequence" && is_set(nm, "normalizers") && nm.at("normalizers").is_array() &&
                                    nm.at("normalizers").size() == 0;
        if (type != "NFC" && !empty_sequence)
            fail("{}: \"normalizer\" of type {} is not supported (none, or NFC on text already in NFC)", path, type);
    }

    // ---- pre_tokenizer: ByteLevel, or Sequence [Split (GPT-2 or LLaMA-3 regex), ByteLevel without regex]
    if (!is_set(j, "pre_tokenizer")) fail("{}: \"pre_tokenizer\" is null: not a byte-level tokenizer", path);
    const Json& pt = j.at("pre_tokenizer");
    auto byte_level = [&](const Json& b, const std::string& where) {
        tok.add_prefix_space_ = flag(b, "add_prefix_space", true, where);
        return flag(b, "use_regex", true, where);
    };
    if (type_of(pt) == "ByteLevel") {
        tok.split_ = byte_level(pt, "pre_tokenizer") ? Split::gpt2 : Split::none;
    } else if (type_of(pt) == "Sequence") {
        const Json* list = is_set(pt, "pretokenizers") && pt.at("pretokenizers").is_array() ? &pt.at("pretokenizers") : nullptr;
        if (!list || list->size() != 2 || type_of(list->as_array()[0]) != "Split" ||
            type_of(list->as_array()[1]) != "ByteLevel")
            fail("{}: \"pre_tokenizer\": a Sequence other than [Split, ByteLevel] is not supported", path);
        const Json& split = list->as_array()[0];
        const std::string pattern = is_set(split, "pattern") && is_set(split.at("pattern"), "Regex") &&
                                            split.at("pattern").at("Regex").is_string()
                                        ? split.at("pattern").at("Regex").as_string()
                                        : std::string();
        if (pattern == kLlama3SplitPattern) tok.split_ = Split::llama3;
        else if (pattern == kGpt2SplitPattern) tok.split_ = Split::gpt2;
        else fail("{}: \"pre_tokenizer.pretokenizers[0].pattern\": the regex {} is not one this reader knows (GPT-2's or "
                  "LLaMA-3's)", path, pattern.empty() ? split.dump() : "'" + pattern + "'");
        const std::string behavior = is_set(split, "behavior") && split.at("behavior").is_string()
                                         ? split.at("behavior").as_string() : std::string();
        if (behavior != "Isolated" || flag(split, "invert", false, "pre_tokenizer.pretokenizers[0]"))
            fail("{}: \"pre_tokenizer.pretokenizers[0]\": only behavior Isolated without invert is supported", path);
        if (byte_level(list->as_array()[1], "pre_tokenizer.pretokenizers[1]"))
            fail("{}: \"pre_tokenizer.pretokenizers[1].use_regex\" is true after a Split: not supported", path);
    } else {
        fail("{}: \"pre_tokenizer\" of type {} is not supported (ByteLevel only; Metaspace is SentencePiece's)", path,
             type_of(pt));
    }

    // ---- decoder: ByteLevel (or none)
    if (is_set(j, "decoder") && type_of(j.at("decoder")) != "ByteLevel")
        fail("{}: \"decoder\" of type {} is not supported (ByteLevel only)", path, type_of(j.at("decoder")));

    // ---- vocabulary: token text (ByteLevel characters) -> id
    if (!is_set(m, "vocab") || !m.at("vocab").is_object()) fail("{}: \"model.vocab\" is not an object", path);
    const Json::Object& vocab = m.at("vocab").as_object();
    auto valid_id = [&](const Json& v) {
        return v.is_number() && v.as_number() >= 0 && v.as_number() < 1e9 && v.as_number() == double(int64_t(v.as_number()));
    };
    size_t size = 0;
    for (const auto& [text, id] : vocab) {
        if (!valid_id(id)) fail("{}: \"model.vocab\": the id of '{}' is not a token id", path, text);
        size = std::max(size, size_t(id.as_int()) + 1);
    }
    std::vector<AddedToken> added;
    if (is_set(j, "added_tokens")) {
        if (!j.at("added_tokens").is_array()) fail("{}: \"added_tokens\" is not a list", path);
        for (const Json& a : j.at("added_tokens").as_array()) {
            if (!is_set(a, "id") || !valid_id(a.at("id")) || !is_set(a, "content") || !a.at("content").is_string())
                fail("{}: \"added_tokens\": an entry without an id and a content", path);
            const std::string& content = a.at("content").as_string();
            if (content.empty()) fail("{}: \"added_tokens\": token {} has an empty content", path, a.at("id").as_int());
            for (const char* key : {"single_word", "lstrip", "rstrip"})
                if (flag(a, key, false, "added_tokens"))
                    fail("{}: \"added_tokens\": '{}' has \"{}\" true, which is not supported", path, content, key);
            added.push_back({content, int32_t(a.at("id").as_int()), flag(a, "special", false, "added_tokens")});
            size = std::max(size, size_t(a.at("id").as_int()) + 1);
        }
    }
    if (size > size_t(INT32_MAX)) fail("{}: vocabulary too large", path);
    tok.vocab_.assign(size, std::string());
    std::vector<bool> known(size, false);
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> id_of_text;  // ByteLevel text -> id
    id_of_text.reserve(vocab.size() * 2);
    tok.byte_ids_.fill(-1);
    for (const auto& [text, id_json] : vocab) {
        const size_t id = size_t(id_json.as_int());
        if (known[id]) fail("{}: \"model.vocab\": id {} is given to two tokens", path, id);
        std::string token_bytes;
        if (!byte_level_to_bytes(text, token_bytes))
            fail("{}: \"model.vocab\": token '{}' (id {}) is not ByteLevel text (a byte-level BPE vocabulary spells "
                 "bytes with its 256 characters)", path, text, id);
        known[id] = true;
        tok.vocab_[id] = token_bytes;
        id_of_text.emplace(text, int32_t(id));
        if (token_bytes.size() == 1) tok.byte_ids_[static_cast<unsigned char>(token_bytes[0])] = int32_t(id);
        if (tok.ignore_merges_) tok.piece_ids_.emplace(token_bytes, int32_t(id));
    }
    for (const AddedToken& a : added) {
        if (known[size_t(a.id)] && tok.vocab_[size_t(a.id)] != a.content) {
            std::string spelled;
            if (!byte_level_to_bytes(a.content, spelled) || spelled != tok.vocab_[size_t(a.id)])
                fail("{}: \"added_tokens\": id {} is '{}', but the vocabulary spells it differently", path, a.id, a.content);
        }
        if (!known[size_t(a.id)]) tok.vocab_[size_t(a.id)] = a.content;  // decoded as written
        known[size_t(a.id)] = true;
    }
    for (size_t id = 0; id < size; id++)
        if (!known[id]) fail("{}: id {} is neither in \"model.vocab\" nor in \"added_tokens\"", path, id);
    std::stable_sort(added.begin(), added.end(),
                     [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
    tok.added_ = std::move(added);

    // ---- merges, in rank order: "left right" or ["left", "right"]
    if (!is_set(m, "merges") || !m.at("merges").is_array()) fail("{}: \"model.merges\" is not a list", path);
    const Json::Array& merges = m.at("merges").as_array();
    tok.merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); r++) {
        std::string left, right;
        const Json& e = merges[r];
        if (e.is_string()) {
            const std::string& s = e.as_string();
            const size_t space = s.find(' ');
            if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
                fail("{}: \"model.merges\"[{}]: '{}' is not two tokens separated by one space", path, r, s);
            left = s.substr(0, space), right = s.substr(space + 1);
        } else if (e.is_array() && e.size() == 2 && e.as_array()[0].is_string() && e.as_array()[1].is_string()) {
            left = e.as_array()[0].as_string(), right = e.as_array()[1].as_string();
        } else {
            fail("{}: \"model.merges\"[{}] is neither \"a b\" nor [\"a\", \"b\"]", path, r);
        }
        const auto l = id_of_text.find(left), rt = id_of_text.find(right), res = id_of_text.find(left + right);
        if (l == id_of_text.end() || rt == id_of_text.end() || res == id_of_text.end())
            fail("{}: \"model.merges\"[{}]: '{}' + '{}' -> '{}': a token that is not in the vocabulary", path, r, left,
                 right, left + right);
        tok.merges_.push_back({l->second, rt->second, res->second});
    }

    // ---- the document separator: the end-of-text special token
    tok.eot_id_ = -1;
    for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>"})
        for (const AddedToken& a : tok.added_)
            if (tok.eot_id_ < 0 && a.special && a.content == name) tok.eot_id_ = a.id;
    if (tok.eot_id_ < 0)
        for (const auto& a : j.contains("added_tokens") ? j.at("added_tokens").as_array() : Json::Array{})
            if (tok.eot_id_ < 0 && is_set(a, "special") && a.at("special").as_bool()) tok.eot_id_ = int32_t(a.at("id").as_int());
    if (tok.eot_id_ < 0)
        fail("{}: \"added_tokens\" holds no special token to end documents with (<|endoftext|>, <|end_of_text|>, </s>)",
             path);
    const bool all_bytes = std::none_of(tok.byte_ids_.begin(), tok.byte_ids_.end(), [](int32_t v) { return v < 0; });
    if (all_bytes) {
        tok.build_merge_index();
        tok.can_encode_ = true;
    }
    return tok;
}

}  // namespace sinklab
