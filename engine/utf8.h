// UTF-8 helpers shared by the detokenizer and the chat prompt: character validity exactly as SentencePiece's
// decoder judges it, and Python's str.strip() whitespace.
#pragma once

#include <string_view>

namespace llama::utf8 {

// U+FFFD, what SentencePiece prints for each byte it cannot decode.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length (1..4) of the valid character at the start of `s`, or 0 when `s` does not start with one (empty, stray
// continuation byte, truncated, overlong, surrogate or above U+10FFFF). Same rule as SentencePiece's DecodeUTF8.
int ValidCharLength(std::string_view s);

// True when `s` is non-empty and a proper prefix of some valid multi-byte character, i.e. more bytes could still
// complete it. Bytes that can never become valid give false.
bool IsIncompletePrefix(std::string_view s);

// True when every byte of `s` belongs to a valid character.
bool IsValid(std::string_view s);

// Python's str.isspace() for one code point (Unicode White_Space minus U+180E, plus U+001C..U+001F).
bool IsPythonWhitespace(char32_t code_point);

// Python's str.strip() with no arguments: removes leading and trailing IsPythonWhitespace characters. Invalid bytes
// count as non-whitespace.
std::string_view StripPythonWhitespace(std::string_view s);

}  // namespace llama::utf8
