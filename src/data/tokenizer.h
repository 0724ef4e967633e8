// A byte-level BPE tokenizer: training, encoding, decoding, and its file format.
//
// Token ids: 0..255 are the 256 byte values (id b decodes to the byte b), merge i (0-based, in the
// order training found them) creates id 256 + i, and the special token `<|endoftext|>` is the last
// id, vocab_size - 1. So a vocabulary of N ids holds N - 257 merges. The special token separates
// documents and ends text; ordinary text that happens to contain the characters "<|endoftext|>" is
// encoded as ordinary text unless the caller allows special tokens.
//
// Encoding: the text is cut into pieces (pretokenize.h); each piece starts as its byte ids and the
// merge with the lowest rank among its adjacent pairs is applied everywhere in the piece, repeatedly,
// until no adjacent pair has a merge. decode(encode(x)) == x for every byte string x.
//
// Training: pieces of the training text are counted (unique piece -> count); then, repeatedly, the
// most frequent adjacent pair over all pieces (weighted by count) becomes the next merge. Ties are
// broken by the smallest pair (left id, then right id), so training is deterministic. Pair counts
// are updated incrementally, touching only the pieces that contain the merged pair.
//
// ---- tokenizer file format (sinklab, version 1), all integers little-endian uint32 ----
//   [0]  magic: the bytes 'S' 'L' 'T' 'K' (0x4B544C53 as a uint32)
//   [1]  version: 1
//   [2]  vocab_size N (>= 257)
//   [3]  number of merges M = N - 257
//   [4]  id of the special token = N - 1
//   [5]  length in bytes of the special token's text, 1..255
//   then M pairs (left id, right id): merge i joins the two and creates id 256 + i
//        (both ids < 256 + i)
//   then the special token's text ("<|endoftext|>")
//   and nothing after it. Every field is checked on reading; a file that is truncated, too long,
//   has the wrong magic, an unknown version or an impossible id is rejected, naming the file.
//
// ---- llm.c tokenizer files (read only) ----
//   header 256 x uint32: [0] magic 20240328, [1] version 1 or 2, [2] vocab size, [3] id of
//   <|endoftext|> (version 2; 50256 in version 1); then for each id: uint8 length, the bytes.
//   These files hold the vocabulary but no merges. Decoding is exact. For encoding (a prompt for
//   sampling) the merges are reconstructed from the vocabulary: each multi-byte token, in id order,
//   becomes the merge of the split into two earlier tokens whose later part is oldest. This encodes
//   every string exactly (round trip holds) but may differ from GPT-2's own encoder in rare cases.
//
// ---- Hugging Face tokenizer.json files (read only; hf_tokenizer.cpp, docs/hf.md) ----
//   Byte-level BPE (GPT-2, GPT-NeoX, LLaMA-3 style): "model" {"type": "BPE", "vocab", "merges",
//   "ignore_merges"}, "added_tokens", "normalizer" null (or NFC, see docs/hf.md), "pre_tokenizer"
//   ByteLevel (GPT-2's split, add_prefix_space) or a Sequence of LLaMA-3's Split regex and ByteLevel,
//   "decoder" ByteLevel. Ids keep the file's numbering; the separator of documents (eot_id) is the
//   special added token <|endoftext|>, <|end_of_text|> or </s>, else the first special one. Added
//   tokens that are not special are matched in any text, as Hugging Face does; special ones only
//   with allow_special. Anything else (SentencePiece/Metaspace models, byte_fallback, other
//   normalizers, pre-tokenizers or decoders) is refused, naming the key.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sinklab {

constexpr uint32_t kTokenizerMagic = 0x4B544C53;  // "SLTK"
constexpr uint32_t kTokenizerVersion = 1;
constexpr int32_t kLlmcTokenizerMagic = 20240328;
constexpr const char* kEndOfText = "<|endoftext|>";

// Hashing for string-keyed maps that can be looked up by string_view without a copy.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringCountMap = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

// Counts of the unique pieces of a text, the input of BPE training.
class WordCounts {
public:
    // Cuts text into pieces and counts each.
    void add_text(std::string_view text);
    // Adds another table's counts into this one.
    void merge_from(const WordCounts& other);
    size_t unique_words() const { return counts_.size(); }
    uint64_t total_words() const { return total_; }
    // The table sorted by piece bytes (a deterministic order, whatever the insertion order).
    std::vector<std::pair<std::string, uint64_t>> sorted() const;

private:
    StringCountMap counts_;
    uint64_t total_ = 0;
};

struct Merge {
    int32_t left, right, result;
};

class Tokenizer {
public:
    Tokenizer() = default;

    // Learns vocab_size - 257 merges from the counted pieces. Throws Error when the text does not
    // hold enough distinct pairs for that many merges (the message says how many it holds).
    // progress (optional) is called now and then with (merges done, merges wanted).
    static Tokenizer train(const WordCounts& words, size_t vocab_size,
                           const std::function<void(size_t, size_t)>& progress = {});

    // Reads a sinklab tokenizer file, an llm.c tokenizer file (told apart by the magic) or a Hugging
    // Face tokenizer.json (a file that starts with '{').
    static Tokenizer load(const std::string& path);
    // Writes the sinklab format (atomically). Only for tokenizers in the sinklab id layout.
    void save(const std::string& path) const;

    size_t vocab_size() const { return vocab_.size(); }
    int32_t eot_id() const { return eot_id_; }
    const std::string& special_text() const { return vocab_[size_t(eot_id_)]; }
    // "sinklab", "llm.c" or "hf"
    const std::string& format() const { return format_; }
    bool can_encode() const { return can_encode_; }
    const std::vector<Merge>& merges() const { return merges_; }

    // The bytes of one token; throws Error for an id outside the vocabulary.
    const std::string& token_bytes(int32_t id) const;
    // The concatenated bytes of the tokens; throws Error naming an id outside the vocabulary.
    std::string decode(const std::vector<int32_t>& ids) const;
    // Encodes text (no cache; see Encoder for bulk work). With allow_special, each occurrence of the
    // special token's text becomes its id; otherwise it is ordinary text.
    std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;

    // Appends the ids of one piece (the output of pretokenize) by applying merges by rank.
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

    // How text is cut into pieces: sinklab's rules (pretokenize.h, pieces capped at kMaxPieceBytes);
    // GPT-2's regex exactly (no cap); LLaMA-3's regex; or no cut (ByteLevel with use_regex false).
    enum class Split { sinklab, gpt2, llama3, none };
    Split split() const { return split_; }
    // The end of the piece that starts at text[pos] under split().
    size_t piece_end(std::string_view text, size_t pos) const;
    // Hugging Face: ByteLevel's add_prefix_space (a space before each run of text not starting with one).
    bool add_prefix_space() const { return add_prefix_space_; }
    struct AddedToken {
        std::string content;
        int32_t id;
        bool special;
    };
    // Hugging Face added tokens, longest first (empty for the other formats).
    const std::vector<AddedToken>& added_tokens() const { return added_; }

private:
    static Tokenizer load_llmc(const std::string& path, const std::string& bytes);
    static Tokenizer load_hf_json(const std::string& path, const std::string& bytes);  // hf_tokenizer.cpp
    void build_merge_index();

    Split split_ = Split::sinklab;
    bool add_prefix_space_ = false;
    bool ignore_merges_ = false;                         // a piece that is a token is that token
    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> piece_ids_;  // bytes -> id (ignore_merges)
    std::vector<AddedToken> added_;

    std::vector<std::string> vocab_;          // id -> bytes
    std::array<int32_t, 256> byte_ids_{};     // byte value -> id
    std::vector<Merge> merges_;               // in rank order
    std::unordered_map<uint64_t, uint32_t> merge_rank_;  // (left << 32 | right) -> rank
    int32_t eot_id_ = -1;
    bool can_encode_ = false;
    std::string format_ = "sinklab";
};

// Encodes with a cache of the pieces it has seen: much faster on real text. Not thread safe: use
// one Encoder per thread. The tokenizer must outlive it.
class Encoder {
public:
    explicit Encoder(const Tokenizer& tokenizer, size_t max_cached_pieces = 1 << 20);
    // Appends the ids of text to out (see Tokenizer::encode for allow_special).
    void encode(std::string_view text, std::vector<int32_t>& out, bool allow_special = false);

private:
    void encode_ordinary(std::string_view text, std::vector<int32_t>& out);
    // Hugging Face: the text cut at its added tokens, each run between them encoded on its own.
    void encode_hf(std::string_view text, std::vector<int32_t>& out, bool allow_special);

    struct Span {
        uint32_t offset, length;
    };
    const Tokenizer& tokenizer_;
    size_t max_cached_;
    std::unordered_map<std::string, Span, StringHash, std::equal_to<>> cache_;
    std::vector<int32_t> pool_;  // the cached ids, back to back
    std::vector<int32_t> scratch_;
};

}  // namespace sinklab
