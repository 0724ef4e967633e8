// Pre-tokenization: cuts text into the pieces that BPE merges never cross, in the manner of GPT-2's
// splitting rule, written by hand (no regex engine). At each position the first rule that applies
// takes the longest piece it can:
//
//   1. a contraction:           's 't 'm 'd 're 've 'll   (ASCII apostrophe, lower case)
//   2. letters:                 an optional single space, then a run of letters
//   3. numbers:                 an optional single space, then a run of digits/numerals
//   4. other symbols:           an optional single space, then a run of characters that are neither
//                               whitespace, letters nor numbers (punctuation, symbols, invalid bytes)
//   5. whitespace before text:  a whitespace run followed by non-whitespace gives up its last
//                               character (which then starts the next piece, e.g. " word"), unless
//                               the run is a single character
//   6. whitespace:              any other whitespace run (at the end of the text, or one character)
//
// Characters are decoded as UTF-8. A byte that does not start a valid UTF-8 sequence (stray
// continuation bytes, overlong forms, surrogates, truncated sequences) is one character of class
// "other" on its own, so every byte string splits, and the pieces concatenate back to the input.
// Letters and numbers outside ASCII are recognised by a table of the common Unicode blocks (Latin,
// Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic, CJK, kana, Hangul, ...); characters in blocks
// not listed count as "other". This only changes where pieces are cut, never the round trip.
//
// Pieces are at most kMaxPieceBytes long: a longer run is cut into chunks of that size, which keeps
// BPE's per-piece work bounded on pathological input (a megabyte without spaces).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sinklab {

constexpr size_t kMaxPieceBytes = 256;

enum class CharClass : uint8_t { letter, number, space, other };

// One decoded character at a byte position: its code point (0xFFFFFFFF for an invalid byte), its
// length in bytes (1..4) and its class.
struct DecodedChar {
    uint32_t code_point;
    uint32_t length;
    CharClass cls;
};

// Decodes the character starting at text[pos] (pos < text.size()).
DecodedChar decode_char(std::string_view text, size_t pos);

// The class of a valid code point.
CharClass classify_code_point(uint32_t cp);

// The end (exclusive byte offset) of the piece that starts at text[pos], pos < text.size().
size_t next_piece_end(std::string_view text, size_t pos);

// All pieces of text, in order; they concatenate to text.
std::vector<std::string_view> pretokenize(std::string_view text);

}  // namespace sinklab
