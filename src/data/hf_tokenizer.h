// Hugging Face tokenizer.json support (byte-level BPE): the ByteLevel byte <-> character map and
// LLaMA-3's pre-tokenizer. Tokenizer::load reads the files (tokenizer.h); docs/hf.md says what is
// read and what is refused.
//
// ByteLevel map: every byte b is written as one Unicode character so that tokens are printable
// strings: the bytes 33..126, 161..172 and 174..255 as the code point b itself, the other 68 bytes
// (0..32, 127..160, 173) as 256, 257, ... in increasing byte order (so ' ' (32) is U+0120 'Ġ' and
// '\n' (10) is U+010A 'Ċ').
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sinklab {

// The code point that stands for byte b.
uint32_t byte_level_char(uint8_t b);
// The UTF-8 text that stands for the bytes (each byte its character), and back. The way back
// returns false when a character is not one of the 256.
std::string bytes_to_byte_level(std::string_view bytes);
bool byte_level_to_bytes(std::string_view text, std::string& bytes);

// The exact regex string of LLaMA-3's Split pre-tokenizer, and where its match at pos ends:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// (the case-insensitive contractions fold ASCII letters only).
extern const char* const kLlama3SplitPattern;
// GPT-2's pattern, as a Split pre-tokenizer spells it.
extern const char* const kGpt2SplitPattern;
size_t llama3_piece_end(std::string_view text, size_t pos);

}  // namespace sinklab
