// Parsing a request's raw bytes ourselves, so that ill-formed UTF-8 in client text is the client's INVALID_ARGUMENT
// naming the field, not a failed parse.
//
// Why: every text field of the API is a proto3 `string`, and protobuf refuses to parse a proto3 string that is not
// valid UTF-8 (bytes fields are not checked). With the generated handlers, gRPC's deserializer would fail the call
// before our validation ran, and the client would get a bare gRPC error with an empty message. ChatServiceImpl
// therefore registers the methods that carry client text with a raw (grpc::ByteBuffer) request and parses here: one
// walk over the wire format, guided by the message's descriptor, checks every string field (nested and repeated
// ones included) and names the first bad one ("messages[1].content: is not valid UTF-8 (byte 17 of 20)"); only then
// is the real message parsed. The public API (the .proto, reflection, clients) is unchanged.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace llama::server {

// OK when every `string` field of the serialized `descriptor` message in `wire` is valid UTF-8 (base/utf8.h: no
// overlongs, surrogates or code points above U+10FFFF). INVALID_ARGUMENT naming the field path (proto field names,
// "[i]" for the i-th element of a repeated field) and the offset of the first bad byte, or saying the bytes are not
// a well-formed message.
absl::Status CheckStringsAreUtf8(std::string_view wire, const google::protobuf::Descriptor& descriptor);

// CheckStringsAreUtf8, then parses `wire` into `out` (INVALID_ARGUMENT when protobuf refuses it).
absl::Status ParseRequest(std::string_view wire, google::protobuf::Message* out);
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* out);

}  // namespace llama::server
