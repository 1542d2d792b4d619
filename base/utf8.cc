#include "base/utf8.h"

#include <algorithm>
#include <cstdint>

namespace llama::utf8 {
namespace {

bool IsTrailByte(unsigned char c) { return (c & 0xC0) == 0x80; }

// The code point of the valid character at the start of `s` (and its length), or length 0.
char32_t DecodeChar(std::string_view s, int* length) {
  *length = ValidCharLength(s);
  if (*length == 0) return 0;
  const auto b = [&](int i) { return static_cast<char32_t>(static_cast<unsigned char>(s[i])); };
  switch (*length) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

// Allowed range of the second byte after `lead` (RFC 3629 table 3-7); false when `lead` starts nothing valid.
bool SecondByteRange(unsigned char lead, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xF4) {
    if (lead == 0xE0) *lo = 0xA0;  // no overlong 3-byte forms
    if (lead == 0xED) *hi = 0x9F;  // no surrogates
    if (lead == 0xF0) *lo = 0x90;  // no overlong 4-byte forms
    if (lead == 0xF4) *hi = 0x8F;  // nothing above U+10FFFF
    return true;
  }
  return false;
}

int ExpectedLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

}  // namespace

int ValidCharLength(std::string_view s) {
  if (s.empty()) return 0;
  const auto lead = static_cast<unsigned char>(s[0]);
  if (lead < 0x80) return 1;
  unsigned char lo, hi;
  if (!SecondByteRange(lead, &lo, &hi)) return 0;
  const int length = ExpectedLength(lead);
  if (static_cast<int>(s.size()) < length) return 0;
  const auto second = static_cast<unsigned char>(s[1]);
  if (second < lo || second > hi) return 0;
  for (int i = 2; i < length; ++i) {
    if (!IsTrailByte(static_cast<unsigned char>(s[i]))) return 0;
  }
  return length;
}

bool IsIncompletePrefix(std::string_view s) {
  if (s.empty()) return false;
  const auto lead = static_cast<unsigned char>(s[0]);
  unsigned char lo, hi;
  if (lead < 0x80 || !SecondByteRange(lead, &lo, &hi)) return false;
  if (static_cast<int>(s.size()) >= ExpectedLength(lead)) return false;
  if (s.size() >= 2) {
    const auto second = static_cast<unsigned char>(s[1]);
    if (second < lo || second > hi) return false;
  }
  for (size_t i = 2; i < s.size(); ++i) {
    if (!IsTrailByte(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

size_t IncompleteSuffixLength(std::string_view s) {
  for (size_t n = std::min<size_t>(3, s.size()); n > 0; --n) {
    if (IsIncompletePrefix(s.substr(s.size() - n))) return n;
  }
  return 0;
}

bool IsValid(std::string_view s) {
  while (!s.empty()) {
    const int length = ValidCharLength(s);
    if (length == 0) return false;
    s.remove_prefix(length);
  }
  return true;
}

std::string ReplaceEachInvalidByte(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const int length = ValidCharLength(s);
    if (length == 0) {
      out.append(kReplacementChar);
      s.remove_prefix(1);
    } else {
      out.append(s.substr(0, length));
      s.remove_prefix(length);
    }
  }
  return out;
}

std::string ReplaceEachInvalidRun(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool in_bad_run = false;
  while (!s.empty()) {
    const int length = ValidCharLength(s);
    if (length == 0) {
      if (!in_bad_run) out.append(kReplacementChar);
      in_bad_run = true;
      s.remove_prefix(1);
    } else {
      in_bad_run = false;
      out.append(s.substr(0, length));
      s.remove_prefix(length);
    }
  }
  return out;
}

bool IsPythonWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::string_view StripPythonWhitespace(std::string_view s) {
  int length = 0;
  while (!s.empty()) {
    const char32_t c = DecodeChar(s, &length);
    if (length == 0 || !IsPythonWhitespace(c)) break;
    s.remove_prefix(length);
  }
  while (!s.empty()) {
    // The last character starts at most 3 continuation bytes before the end.
    size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 && IsTrailByte(static_cast<unsigned char>(s[start]))) --start;
    const char32_t c = DecodeChar(s.substr(start), &length);
    if (length == 0 || start + length != s.size() || !IsPythonWhitespace(c)) break;
    s.remove_suffix(length);
  }
  return s;
}

}  // namespace llama::utf8
