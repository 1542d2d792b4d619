// UTF-8, one table for the whole project (RFC 3629 / Unicode table 3-7: no overlongs, no surrogates, nothing above
// U+10FFFF): character validity exactly as SentencePiece's decoder judges it, the two ways ill-formed bytes are
// replaced (SentencePiece's decoder: one U+FFFD per byte; the server's wire repair: one U+FFFD per run), and
// Python's str.strip() whitespace (the chat prompt's .strip()).
#pragma once

#include <cstddef>
#include <string>
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

// Length (0..3) of the longest suffix of `s` that IsIncompletePrefix: the bytes a stream must hold back until more
// arrive.
size_t IncompleteSuffixLength(std::string_view s);

// True when every byte of `s` belongs to a valid character.
bool IsValid(std::string_view s);

// SentencePiece's decoder policy: valid characters are kept and every byte that does not start one becomes one
// U+FFFD ("a\x80\x80b" -> "a\uFFFD\uFFFDb").
std::string ReplaceEachInvalidByte(std::string_view s);

// The wire repair policy (text that goes into a proto3 string): valid characters are kept and each maximal run of
// bytes that do not start one becomes a single U+FFFD ("a\x80\x80b" -> "a\uFFFDb").
std::string ReplaceEachInvalidRun(std::string_view s);

// Python's str.isspace() for one code point (Unicode White_Space minus U+180E, plus U+001C..U+001F).
bool IsPythonWhitespace(char32_t code_point);

// Python's str.strip() with no arguments: removes leading and trailing IsPythonWhitespace characters. Invalid bytes
// count as non-whitespace.
std::string_view StripPythonWhitespace(std::string_view s);

}  // namespace llama::utf8
