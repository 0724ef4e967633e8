#include "data/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <queue>

#include "data/pretokenize.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace {

uint64_t pair_key(int32_t left, int32_t right) { return uint64_t(uint32_t(left)) << 32 | uint32_t(right); }
int32_t key_left(uint64_t key) { return int32_t(key >> 32); }
int32_t key_right(uint64_t key) { return int32_t(key & 0xFFFFFFFFu); }

void put_u32(std::string& out, uint32_t v) {
    for (size_t b = 0; b < 4; b++) out += char((v >> (8 * b)) & 0xFF);
}

uint32_t get_u32(const std::string& bytes, size_t offset) {
    uint32_t v = 0;
    for (size_t b = 0; b < 4; b++) v |= uint32_t(static_cast<unsigned char>(bytes[offset + b])) << (8 * b);
    return v;
}

// Replaces every non-overlapping occurrence (left to right) of (left, right) in ids by result.
// Returns whether anything changed.
bool merge_pair_in(std::vector<int32_t>& ids, int32_t left, int32_t right, int32_t result) {
    size_t write = 0;
    bool changed = false;
    for (size_t read = 0; read < ids.size(); write++) {
        if (read + 1 < ids.size() && ids[read] == left && ids[read + 1] == right) {
            ids[write] = result;
            read += 2;
            changed = true;
        } else {
            ids[write] = ids[read];
            read++;
        }
    }
    ids.resize(write);
    return changed;
}

}  // namespace

// ---------------------------------------------------------------- word counts

void WordCounts::add_text(std::string_view text) {
    for (size_t pos = 0; pos < text.size();) {
        const size_t end = next_piece_end(text, pos);
        const std::string_view piece = text.substr(pos, end - pos);
        auto it = counts_.find(piece);
        if (it == counts_.end())
            counts_.emplace(std::string(piece), 1);
        else
            it->second++;
        total_++;
        pos = end;
    }
}

void WordCounts::merge_from(const WordCounts& other) {
    for (const auto& [word, count] : other.counts_) counts_[word] += count;
    total_ += other.total_;
}

std::vector<std::pair<std::string, uint64_t>> WordCounts::sorted() const {
    std::vector<std::pair<std::string, uint64_t>> out(counts_.begin(), counts_.end());
    std::sort(out.begin(), out.end());
    return out;
}

// ---------------------------------------------------------------- training

// Pieces as id sequences with counts; pair counts over them; for each pair, the pieces that
// (may) hold it; a max-heap of (count, pair) with stale entries skipped when popped.
Tokenizer Tokenizer::train(const WordCounts& word_counts, size_t vocab_size,
                           const std::function<void(size_t, size_t)>& progress) {
    if (vocab_size < 257) fail("vocabulary size {} is too small: it must hold the 256 bytes and <|endoftext|> (>= 257)", vocab_size);
    if (vocab_size > size_t(INT32_MAX)) fail("vocabulary size {} is too large", vocab_size);
    const size_t n_merges = vocab_size - 257;

    const auto sorted_words = word_counts.sorted();
    std::vector<std::vector<int32_t>> words(sorted_words.size());
    std::vector<int64_t> counts(sorted_words.size());
    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<uint32_t>> pair_words;
    for (size_t w = 0; w < sorted_words.size(); w++) {
        const std::string& bytes = sorted_words[w].first;
        counts[w] = int64_t(sorted_words[w].second);
        words[w].reserve(bytes.size());
        for (const char c : bytes) words[w].push_back(int32_t(static_cast<unsigned char>(c)));
        for (size_t i = 0; i + 1 < words[w].size(); i++) {
            const uint64_t key = pair_key(words[w][i], words[w][i + 1]);
            pair_count[key] += counts[w];
            std::vector<uint32_t>& list = pair_words[key];
            if (list.empty() || list.back() != uint32_t(w)) list.push_back(uint32_t(w));
        }
    }

    // Heap order: larger count first; on equal counts the smaller pair key (left id, then right id).
    struct Entry {
        int64_t count;
        uint64_t key;
    };
    auto lower_priority = [](const Entry& a, const Entry& b) {
        return a.count != b.count ? a.count < b.count : a.key > b.key;
    };
    std::priority_queue<Entry, std::vector<Entry>, decltype(lower_priority)> heap(lower_priority);
    {
        std::vector<Entry> initial;
        initial.reserve(pair_count.size());
        for (const auto& [key, count] : pair_count) initial.push_back({count, key});
        heap = decltype(heap)(lower_priority, std::move(initial));
    }

    Tokenizer tok;
    tok.merges_.reserve(n_merges);
    std::unordered_map<uint64_t, int64_t> delta;
    while (tok.merges_.size() < n_merges) {
        if (heap.empty())
            fail("the training text holds only enough distinct pairs for {} merges: use a vocabulary size of at most {} "
                 "or more text",
                 tok.merges_.size(), tok.merges_.size() + 257);
        const Entry top = heap.top();
        heap.pop();
        auto found = pair_count.find(top.key);
        if (found == pair_count.end() || found->second != top.count || top.count <= 0) continue;  // stale

        const int32_t left = key_left(top.key), right = key_right(top.key);
        const int32_t result = int32_t(256 + tok.merges_.size());
        tok.merges_.push_back({left, right, result});

        std::vector<uint32_t> holders = std::move(pair_words[top.key]);
        pair_words.erase(top.key);
        pair_count.erase(top.key);
        delta.clear();
        for (const uint32_t w : holders) {
            std::vector<int32_t>& ids = words[w];
            // Quick check: does the piece still hold the pair?
            bool holds = false;
            for (size_t i = 0; i + 1 < ids.size() && !holds; i++) holds = ids[i] == left && ids[i + 1] == right;
            if (!holds) continue;
            const int64_t c = counts[w];
            for (size_t i = 0; i + 1 < ids.size(); i++) delta[pair_key(ids[i], ids[i + 1])] -= c;
            merge_pair_in(ids, left, right, result);
            for (size_t i = 0; i + 1 < ids.size(); i++) {
                const uint64_t key = pair_key(ids[i], ids[i + 1]);
                delta[key] += c;
                if (ids[i] == result || ids[i + 1] == result) {
                    std::vector<uint32_t>& list = pair_words[key];
                    if (list.empty() || list.back() != w) list.push_back(w);
                }
            }
        }
        for (const auto& [key, d] : delta) {
            if (d == 0 || key == top.key) continue;
            int64_t& count = pair_count[key];
            count += d;
            if (count > 0) heap.push({count, key});
        }
        if (progress && (tok.merges_.size() % 256 == 0 || tok.merges_.size() == n_merges))
            progress(tok.merges_.size(), n_merges);
    }

    tok.vocab_.resize(vocab_size);
    for (size_t b = 0; b < 256; b++) {
        tok.vocab_[b] = std::string(1, char(b));
        tok.byte_ids_[b] = int32_t(b);
    }
    for (const Merge& m : tok.merges_) tok.vocab_[size_t(m.result)] = tok.vocab_[size_t(m.left)] + tok.vocab_[size_t(m.right)];
    tok.eot_id_ = int32_t(vocab_size - 1);
    tok.vocab_[vocab_size - 1] = kEndOfText;
    tok.build_merge_index();
    return tok;
}

void Tokenizer::build_merge_index() {
    merge_rank_.clear();
    merge_rank_.reserve(merges_.size() * 2);
    for (size_t r = 0; r < merges_.size(); r++) merge_rank_.emplace(pair_key(merges_[r].left, merges_[r].right), uint32_t(r));
    can_encode_ = true;
}

// ---------------------------------------------------------------- file IO

void Tokenizer::save(const std::string& path) const {
    if (format_ != "sinklab") fail("{}: only sinklab tokenizers can be saved (this one was read from an {} file)", path, format_);
    std::string bytes;
    put_u32(bytes, kTokenizerMagic);
    put_u32(bytes, kTokenizerVersion);
    put_u32(bytes, uint32_t(vocab_.size()));
    put_u32(bytes, uint32_t(merges_.size()));
    put_u32(bytes, uint32_t(eot_id_));
    put_u32(bytes, uint32_t(special_text().size()));
    for (const Merge& m : merges_) {
        put_u32(bytes, uint32_t(m.left));
        put_u32(bytes, uint32_t(m.right));
    }
    bytes += special_text();
    write_file_atomic(path, bytes);
}

Tokenizer Tokenizer::load(const std::string& path) {
    const std::string bytes = read_file(path);
    const size_t first = bytes.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && bytes[first] == '{') return load_hf_json(path, bytes);
    if (bytes.size() < 4) fail("{}: not a tokenizer file: only {} bytes", path, bytes.size());
    if (int32_t(get_u32(bytes, 0)) == kLlmcTokenizerMagic) return load_llmc(path, bytes);
    if (get_u32(bytes, 0) != kTokenizerMagic)
        fail("{}: not a tokenizer file: magic 0x{:08X} (expected 'SLTK' for sinklab or {} for llm.c)", path,
             get_u32(bytes, 0), kLlmcTokenizerMagic);
    constexpr size_t header_bytes = 6 * 4;
    if (bytes.size() < header_bytes) fail("{}: truncated tokenizer file: {} bytes, shorter than its header", path, bytes.size());
    const uint32_t version = get_u32(bytes, 4);
    if (version != kTokenizerVersion) fail("{}: unsupported tokenizer file version {} (this build reads {})", path, version, kTokenizerVersion);
    const uint32_t vocab_size = get_u32(bytes, 8), n_merges = get_u32(bytes, 12), eot = get_u32(bytes, 16),
                   special_len = get_u32(bytes, 20);
    if (vocab_size < 257 || vocab_size > uint32_t(INT32_MAX))
        fail("{}: corrupt tokenizer file: vocabulary size {} (must be >= 257)", path, vocab_size);
    if (n_merges != vocab_size - 257)
        fail("{}: corrupt tokenizer file: {} merges for a vocabulary of {} (expected {})", path, n_merges, vocab_size, vocab_size - 257);
    if (eot != vocab_size - 1) fail("{}: corrupt tokenizer file: special token id {} (expected {})", path, eot, vocab_size - 1);
    if (special_len == 0 || special_len > 255) fail("{}: corrupt tokenizer file: special token length {}", path, special_len);
    const size_t expected = header_bytes + size_t(n_merges) * 8 + special_len;
    if (bytes.size() < expected) fail("{}: truncated tokenizer file: {} bytes, expected {}", path, bytes.size(), expected);
    if (bytes.size() > expected) fail("{}: corrupt tokenizer file: {} unexpected bytes at the end", path, bytes.size() - expected);

    Tokenizer tok;
    tok.vocab_.resize(vocab_size);
    for (size_t b = 0; b < 256; b++) {
        tok.vocab_[b] = std::string(1, char(b));
        tok.byte_ids_[b] = int32_t(b);
    }
    tok.merges_.resize(n_merges);
    for (size_t i = 0; i < n_merges; i++) {
        const uint32_t left = get_u32(bytes, header_bytes + 8 * i), right = get_u32(bytes, header_bytes + 8 * i + 4);
        if (left >= 256 + i || right >= 256 + i)
            fail("{}: corrupt tokenizer file: merge {} joins ids {} and {}, but only ids below {} exist then", path, i, left,
                 right, 256 + i);
        tok.merges_[i] = {int32_t(left), int32_t(right), int32_t(256 + i)};
        tok.vocab_[256 + i] = tok.vocab_[left] + tok.vocab_[right];
    }
    tok.eot_id_ = int32_t(eot);
    tok.vocab_[eot] = bytes.substr(header_bytes + size_t(n_merges) * 8, special_len);
    tok.build_merge_index();
    return tok;
}

Tokenizer Tokenizer::load_llmc(const std::string& path, const std::string& bytes) {
    constexpr size_t header_bytes = 256 * 4;
    if (bytes.size() < header_bytes) fail("{}: truncated llm.c tokenizer file: {} bytes, shorter than its 1024-byte header", path, bytes.size());
    const uint32_t version = get_u32(bytes, 4), vocab_size = get_u32(bytes, 8);
    if (version != 1 && version != 2) fail("{}: unsupported llm.c tokenizer version {} (expected 1 or 2)", path, version);
    if (vocab_size == 0 || vocab_size > uint32_t(INT32_MAX)) fail("{}: corrupt llm.c tokenizer: vocabulary size {}", path, vocab_size);
    const uint32_t eot = version == 1 ? 50256 : get_u32(bytes, 12);
    if (eot >= vocab_size) fail("{}: corrupt llm.c tokenizer: <|endoftext|> id {} outside the vocabulary of {}", path, eot, vocab_size);

    // Each token takes at least 2 bytes (its length and one byte): check before allocating.
    if (double(vocab_size) * 2 > double(bytes.size() - header_bytes))
        fail("{}: corrupt llm.c tokenizer: its header claims {} ids, but the {} bytes after the header hold at most {}",
             path, vocab_size, bytes.size() - header_bytes, (bytes.size() - header_bytes) / 2);
    Tokenizer tok;
    tok.format_ = "llm.c";
    tok.vocab_.resize(vocab_size);
    size_t pos = header_bytes;
    for (size_t id = 0; id < vocab_size; id++) {
        if (pos >= bytes.size()) fail("{}: truncated llm.c tokenizer: ends at token {} of {}", path, id, vocab_size);
        const size_t length = static_cast<unsigned char>(bytes[pos++]);
        if (length == 0) fail("{}: corrupt llm.c tokenizer: token {} has length 0", path, id);
        if (pos + length > bytes.size()) fail("{}: truncated llm.c tokenizer: ends inside token {} of {}", path, id, vocab_size);
        tok.vocab_[id] = bytes.substr(pos, length);
        pos += length;
    }
    if (pos != bytes.size()) fail("{}: corrupt llm.c tokenizer: {} unexpected bytes at the end", path, bytes.size() - pos);
    tok.eot_id_ = int32_t(eot);

    // Reconstruct merges (see the header comment). Encoding needs an id for every byte value.
    std::unordered_map<std::string_view, int32_t> known;  // bytes -> id, for ids seen so far
    tok.byte_ids_.fill(-1);
    for (size_t id = 0; id < vocab_size; id++) {
        if (int32_t(id) == tok.eot_id_) continue;
        const std::string& t = tok.vocab_[id];
        if (known.count(t)) continue;  // a duplicate spelling: unreachable by encoding
        if (t.size() == 1) {
            tok.byte_ids_[static_cast<unsigned char>(t[0])] = int32_t(id);
            known.emplace(t, int32_t(id));
            continue;
        }
        int32_t best_left = -1, best_right = -1;
        for (size_t k = 1; k < t.size(); k++) {
            auto l = known.find(std::string_view(t).substr(0, k));
            auto r = known.find(std::string_view(t).substr(k));
            if (l == known.end() || r == known.end()) continue;
            if (best_left < 0 || std::max(l->second, r->second) < std::max(best_left, best_right))
                best_left = l->second, best_right = r->second;
        }
        if (best_left < 0) continue;  // not reachable from earlier tokens
        tok.merges_.push_back({best_left, best_right, int32_t(id)});
        known.emplace(t, int32_t(id));
    }
    const bool all_bytes = std::none_of(tok.byte_ids_.begin(), tok.byte_ids_.end(), [](int32_t v) { return v < 0; });
    if (all_bytes) tok.build_merge_index();
    return tok;
}

// ---------------------------------------------------------------- encode / decode

const std::string& Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || size_t(id) >= vocab_.size()) fail("token id {} is outside the vocabulary (size {})", id, vocab_.size());
    return vocab_[size_t(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (const int32_t id : ids) out += token_bytes(id);
    return out;
}

// BPE of one piece, with the result of the textbook loop (repeat: take the lowest-ranked adjacent
// pair, merge every occurrence of it left to right) in O(n log n) for a piece of n bytes, so that a
// long run without whitespace costs no more than its length: the symbols form a linked list, the
// candidate pairs a heap ordered by (rank, position). The occurrences of one rank are merged left to
// right (a "pass"); pairs that a merge creates wait in `pending` until the pass is over, as the
// textbook loop only sees them on its next scan. Candidates made stale by a merge are skipped.
void Tokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges_) {  // Hugging Face's ignore_merges: a piece that is a token is taken whole
        const auto it = piece_ids_.find(piece);
        if (it != piece_ids_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    const int32_t n = int32_t(piece.size());
    if (n < 2) {
        for (const char c : piece) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        return;
    }
    struct Symbol {
        int32_t id, prev, next;  // id -1: merged into its left neighbour; prev/next -1: none
    };
    struct Candidate {
        uint32_t rank;
        int32_t left, right;  // symbol indices
    };
    std::vector<Symbol> symbols(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; i++)
        symbols[size_t(i)] = {byte_ids_[static_cast<unsigned char>(piece[size_t(i)])], i - 1, i + 1 < n ? i + 1 : -1};
    auto later = [](const Candidate& a, const Candidate& b) { return a.rank != b.rank ? a.rank > b.rank : a.left > b.left; };
    std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
    std::vector<Candidate> pending;
    auto candidate = [&](int32_t left, std::vector<Candidate>* to) {  // the pair starting at symbol `left`, if it merges
        if (left < 0 || symbols[size_t(left)].next < 0) return;
        const int32_t right = symbols[size_t(left)].next;
        const auto it = merge_rank_.find(pair_key(symbols[size_t(left)].id, symbols[size_t(right)].id));
        if (it == merge_rank_.end()) return;
        if (to) to->push_back({it->second, left, right});
        else heap.push({it->second, left, right});
    };
    for (int32_t i = 0; i + 1 < n; i++) candidate(i, nullptr);
    uint32_t pass_rank = std::numeric_limits<uint32_t>::max();
    for (;;) {
        if (heap.empty() || heap.top().rank != pass_rank) {  // the pass is over: the pairs it made join
            for (const Candidate& c : pending) heap.push(c);
            pending.clear();
            if (heap.empty()) break;
            pass_rank = heap.top().rank;
        }
        const Candidate c = heap.top();
        heap.pop();
        Symbol& left = symbols[size_t(c.left)];
        const Merge& m = merges_[c.rank];
        if (left.id != m.left || left.next != c.right || symbols[size_t(c.right)].id != m.right) continue;  // stale
        Symbol& right = symbols[size_t(c.right)];
        left.id = m.result;
        left.next = right.next;
        if (right.next >= 0) symbols[size_t(right.next)].prev = c.left;
        right.id = -1;
        candidate(left.prev, &pending);
        candidate(c.left, &pending);
    }
    for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
    Encoder encoder(*this, 0);
    std::vector<int32_t> out;
    encoder.encode(text, out, allow_special);
    return out;
}

Encoder::Encoder(const Tokenizer& tokenizer, size_t max_cached_pieces) : tokenizer_(tokenizer), max_cached_(max_cached_pieces) {
    if (!tokenizer.can_encode())
        fail("this {} tokenizer cannot encode: its vocabulary lacks a token for every byte value", tokenizer.format());
}

void Encoder::encode(std::string_view text, std::vector<int32_t>& out, bool allow_special) {
    if (tokenizer_.format() == "hf") {
        encode_hf(text, out, allow_special);
        return;
    }
    if (!allow_special) {
        encode_ordinary(text, out);
        return;
    }
    const std::string& special = tokenizer_.special_text();
    size_t pos = 0;
    while (pos <= text.size()) {
        const size_t hit = text.find(special, pos);
        const size_t end = hit == std::string_view::npos ? text.size() : hit;
        encode_ordinary(text.substr(pos, end - pos), out);
        if (hit == std::string_view::npos) break;
        out.push_back(tokenizer_.eot_id());
        pos = hit + special.size();
    }
}

void Encoder::encode_ordinary(std::string_view text, std::vector<int32_t>& out) {
    for (size_t pos = 0; pos < text.size();) {
        const size_t end = tokenizer_.piece_end(text, pos);
        const std::string_view piece = text.substr(pos, end - pos);
        pos = end;
        if (piece.size() == 1) {  // a single byte is its own token
            tokenizer_.encode_piece(piece, out);
            continue;
        }
        if (max_cached_ == 0) {
            tokenizer_.encode_piece(piece, out);
            continue;
        }
        auto it = cache_.find(piece);
        if (it != cache_.end()) {
            out.insert(out.end(), pool_.begin() + it->second.offset, pool_.begin() + it->second.offset + it->second.length);
            continue;
        }
        scratch_.clear();
        tokenizer_.encode_piece(piece, scratch_);
        out.insert(out.end(), scratch_.begin(), scratch_.end());
        if (cache_.size() >= max_cached_ || pool_.size() + scratch_.size() > size_t(UINT32_MAX)) {
            cache_.clear();
            pool_.clear();
        }
        cache_.emplace(std::string(piece), Span{uint32_t(pool_.size()), uint32_t(scratch_.size())});
        pool_.insert(pool_.end(), scratch_.begin(), scratch_.end());
    }
}

}  // namespace sinklab
