#include "pretokenize.h"

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

// Unicode whitespace beyond ASCII.
constexpr Range kSpaceRanges[] = {{0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
                                  {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};

// Numerals beyond ASCII: superscripts, fractions, Arabic-Indic and Devanagari digits, number forms,
// circled numbers, full-width digits.
constexpr Range kNumberRanges[] = {{0xB2, 0xB3},     {0xB9, 0xB9},     {0xBC, 0xBE},     {0x660, 0x669},
                                   {0x6F0, 0x6F9},   {0x966, 0x96F},   {0x9E6, 0x9EF},   {0xE50, 0xE59},
                                   {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2189},
                                   {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x3007, 0x3007},
                                   {0x3021, 0x3029}, {0xFF10, 0xFF19}};

// Letter blocks beyond ASCII (sorted). Punctuation and symbols inside Latin-1 and Greek are
// excluded by the explicit checks in classify_code_point.
constexpr Range kLetterRanges[] = {
    {0xAA, 0xAA},     {0xB5, 0xB5},     {0xBA, 0xBA},     {0xC0, 0x2C1},    {0x2C6, 0x2D1},   {0x2E0, 0x2E4},
    {0x370, 0x3FF},   {0x400, 0x481},   {0x48A, 0x52F},   {0x531, 0x587},   {0x5D0, 0x5F2},   {0x620, 0x64A},
    {0x671, 0x6D3},   {0x904, 0x939},   {0x93D, 0x93D},   {0x950, 0x961},   {0x985, 0x9B9},   {0xA05, 0xA39},
    {0xA85, 0xAB9},   {0xB05, 0xB39},   {0xB85, 0xBB9},   {0xC05, 0xC39},   {0xC85, 0xCB9},   {0xD05, 0xD3A},
    {0xE01, 0xE30},   {0xE40, 0xE46},   {0x10A0, 0x10FF}, {0x1100, 0x11FF}, {0x1E00, 0x1FBC}, {0x1FC2, 0x1FCC},
    {0x1FD0, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FFC}, {0x2C00, 0x2CE4}, {0x3041, 0x3096}, {0x30A1, 0x30FA},
    {0x3105, 0x312F}, {0x3131, 0x318E}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xA000, 0xA48C}, {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFDC}, {0x20000, 0x2FA1F}};

template <size_t N>
bool in_ranges(const Range (&ranges)[N], uint32_t cp) {
    for (const Range& r : ranges) {
        if (cp < r.first) return false;  // sorted: no later range can hold cp
        if (cp <= r.last) return true;
    }
    return false;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

CharClass classify_code_point(uint32_t cp) {
    if (cp < 128) return kAsciiClasses[cp];
    if (in_ranges(kSpaceRanges, cp)) return CharClass::space;
    if (in_ranges(kNumberRanges, cp)) return CharClass::number;
    if (cp == 0xD7 || cp == 0xF7) return CharClass::other;                               // multiplication, division
    if (cp == 0x375 || cp == 0x37E || cp == 0x384 || cp == 0x385 || cp == 0x387) return CharClass::other;  // Greek marks
    if (in_ranges(kLetterRanges, cp)) return CharClass::letter;
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

// End of the run of characters of class `cls` that starts at pos.
size_t run_end(std::string_view text, size_t pos, CharClass cls) {
    const size_t n = text.size();
    while (pos < n) {
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

size_t piece_end_unbounded(std::string_view text, size_t pos) {
    const size_t n = text.size();
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
        if (next.cls != CharClass::space) return run_end(text, pos + 1, next.cls);
    }
    const DecodedChar first = decode_char(text, pos);
    if (first.cls != CharClass::space) return run_end(text, pos, first.cls);
    // 5.-6. whitespace
    size_t end = pos;
    size_t last_start = pos;
    size_t count = 0;
    while (end < n) {
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
    const size_t end = piece_end_unbounded(text, pos);
    return end - pos > kMaxPieceBytes ? pos + kMaxPieceBytes : end;
}

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
