#include "data/pretokenize.h"

#include <cstdint>

#include <array>

namespace sinklab {

namespace {

// Classes of the 128 ASCII characters.
constexpr std::array<CharClass, 128> make_ascii_classes() {
    std::array<CharClass, 128> t{};
    for (size_t c = 0; c < 128; c++) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            t[c] = CharClass::letter;
        else if (c >= '0' && c <= '9')
            t[c] = CharClass::number;
        else if (c == ' ' || (c >= 0x09 && c <= 0x0D))
            t[c] = CharClass::space;
        else
            t[c] = CharClass::other;
    }
    return t;
}
constexpr std::array<CharClass, 128> kAsciiClasses = make_ascii_classes();

struct Range {
    uint32_t first, last;
};

#include "data/unicode_tables.inc"

// Whether cp lies in one of the sorted ranges (binary search).
template <size_t N>
bool in_ranges(const Range (&ranges)[N], uint32_t cp) {
    size_t lo = 0, hi = N;  // the answer is the last range with first <= cp, if any
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (ranges[mid].first <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && cp <= ranges[lo - 1].last;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

CharClass classify_code_point(uint32_t cp) {
    if (cp < 128) return kAsciiClasses[cp];
    if (in_ranges(kLetterRanges, cp)) return CharClass::letter;
    if (in_ranges(kNumberRanges, cp)) return CharClass::number;
    if (in_ranges(kSpaceRanges, cp)) return CharClass::space;
    return CharClass::other;
}

DecodedChar decode_char(std::string_view text, size_t pos) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    const unsigned char b0 = s[pos];
    if (b0 < 0x80) return {b0, 1, kAsciiClasses[b0]};
    constexpr DecodedChar invalid{0xFFFFFFFFu, 1, CharClass::other};
    uint32_t cp = 0;
    uint32_t length = 0;
    uint32_t min_cp = 0;
    if ((b0 & 0xE0) == 0xC0) {
        cp = b0 & 0x1F, length = 2, min_cp = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        cp = b0 & 0x0F, length = 3, min_cp = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        cp = b0 & 0x07, length = 4, min_cp = 0x10000;
    } else {
        return invalid;  // a continuation byte or 0xF8..0xFF
    }
    if (pos + length > n) return invalid;
    for (size_t k = 1; k < length; k++) {
        if (!is_continuation(s[pos + k])) return invalid;
        cp = (cp << 6) | (s[pos + k] & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return invalid;
    return {cp, length, classify_code_point(cp)};
}

namespace {

// End of the run of characters of class `cls` that starts at pos, or a position >= limit when the
// run reaches it (the caller cuts the piece there anyway).
size_t run_end(std::string_view text, size_t pos, CharClass cls, size_t limit) {
    const size_t n = text.size();
    while (pos < n && pos < limit) {
        const unsigned char b = static_cast<unsigned char>(text[pos]);
        if (b < 0x80) {
            if (kAsciiClasses[b] != cls) break;
            pos++;
            continue;
        }
        const DecodedChar c = decode_char(text, pos);
        if (c.cls != cls) break;
        pos += c.length;
    }
    return pos;
}

// The end of the piece that starts at pos by the rules above, or any position beyond
// pos + kMaxPieceBytes when the piece is longer than that: the scan stops a few bytes past the cut
// (a character and the whitespace rule's look-back fit in the margin), so that a long run costs
// O(kMaxPieceBytes) per piece, not its whole length (which made a document without whitespace
// quadratic).
// max_bytes SIZE_MAX: no cap (the exact match of GPT-2's regex, for Hugging Face tokenizers).
size_t piece_end_scan(std::string_view text, size_t pos, size_t max_bytes = kMaxPieceBytes) {
    const size_t n = text.size();
    const size_t limit = max_bytes == SIZE_MAX ? SIZE_MAX : pos + max_bytes + 8;
    const char c0 = text[pos];
    // 1. contractions
    if (c0 == '\'' && pos + 1 < n) {
        const char c1 = text[pos + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
        if (pos + 2 < n) {
            const char c2 = text[pos + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return pos + 3;
        }
    }
    // 2.-4. an optional space, then a run of letters, numbers or other symbols
    if (c0 == ' ' && pos + 1 < n) {
        const DecodedChar next = decode_char(text, pos + 1);
        if (next.cls != CharClass::space) return run_end(text, pos + 1, next.cls, limit);
    }
    const DecodedChar first = decode_char(text, pos);
    if (first.cls != CharClass::space) return run_end(text, pos, first.cls, limit);
    // 5.-6. whitespace
    size_t end = pos;
    size_t last_start = pos;
    size_t count = 0;
    while (end < n && end < limit) {
        const DecodedChar c = decode_char(text, end);
        if (c.cls != CharClass::space) break;
        last_start = end;
        end += c.length;
        count++;
    }
    if (end < n && count > 1) return last_start;  // leave the last whitespace to the next piece
    return end;
}

}  // namespace

size_t next_piece_end(std::string_view text, size_t pos) {
    const size_t end = piece_end_scan(text, pos);
    return end - pos > kMaxPieceBytes ? pos + kMaxPieceBytes : end;
}

size_t gpt2_piece_end(std::string_view text, size_t pos) { return piece_end_scan(text, pos, SIZE_MAX); }

std::vector<std::string_view> pretokenize(std::string_view text) {
    std::vector<std::string_view> pieces;
    for (size_t pos = 0; pos < text.size();) {
        const size_t end = next_piece_end(text, pos);
        pieces.push_back(text.substr(pos, end - pos));
        pos = end;
    }
    return pieces;
}

}  // namespace sinklab
