// UTF-8 checks for text that goes on the wire. The engine already emits whole characters (IncrementalDetokenizer);
// the server checks again because a proto3 string with invalid UTF-8 fails to parse on the client.
#pragma once

#include <string>
#include <string_view>

namespace llama::server {

// True when text is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view text);

// Returns text with each run of ill-formed bytes replaced by one U+FFFD.
std::string ToValidUtf8(std::string_view text);

}  // namespace llama::server
