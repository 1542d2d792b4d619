#include "server/request_parsing.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace llama::server {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::internal::WireFormatLite;
using ::google::protobuf::io::CodedInputStream;

// Deeper than any message of the API; bounds the recursion on hostile input.
constexpr int kMaxDepth = 32;

absl::Status Malformed(const Descriptor& descriptor) {
  return absl::InvalidArgumentError(absl::StrCat("the request is not a well-formed ", descriptor.full_name()));
}

// Offset of the first byte of `s` that does not belong to a valid character; s.size() when there is none.
size_t FirstInvalidByte(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const int n = utf8::ValidCharLength(s.substr(i));
    if (n == 0) return i;
    i += n;
  }
  return i;
}

// Walks one message (the whole input, or a length-delimited submessage under a pushed limit).
absl::Status CheckMessage(CodedInputStream& in, const Descriptor& descriptor, const std::string& prefix, int depth,
                          const Descriptor& root) {
  if (depth > kMaxDepth) return Malformed(root);
  std::vector<int> seen(descriptor.field_count(), 0);  // occurrences so far: the index of a repeated element
  std::string value;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return in.ConsumedEntireMessage() ? absl::OkStatus() : Malformed(root);
    const FieldDescriptor* field = descriptor.FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag));
    const bool walk = field != nullptr &&
                      WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
                      (field->type() == FieldDescriptor::TYPE_STRING || field->type() == FieldDescriptor::TYPE_MESSAGE);
    if (!walk) {  // numbers, bytes, unknown fields: protobuf's parse judges them
      if (!WireFormatLite::SkipField(&in, tag)) return Malformed(root);
      continue;
    }
    std::string path = absl::StrCat(prefix, field->name());
    if (field->is_repeated()) absl::StrAppend(&path, "[", seen[field->index()], "]");
    ++seen[field->index()];
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return Malformed(root);
    if (field->type() == FieldDescriptor::TYPE_STRING) {
      if (!in.ReadString(&value, static_cast<int>(length))) return Malformed(root);
      const size_t bad = FirstInvalidByte(value);
      if (bad < value.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": is not valid UTF-8 (byte ", bad, " of ", value.size(), ")"));
      }
      continue;
    }
    const CodedInputStream::Limit limit = in.PushLimit(static_cast<int>(length));
    if (in.BytesUntilLimit() != static_cast<int>(length)) return Malformed(root);  // runs past the input
    const absl::Status nested = CheckMessage(in, *field->message_type(), path + ".", depth + 1, root);
    if (!nested.ok()) return nested;
    in.PopLimit(limit);
  }
}

}  // namespace

absl::Status CheckStringsAreUtf8(std::string_view wire, const Descriptor& descriptor) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(wire.data()), static_cast<int>(wire.size()));
  return CheckMessage(in, descriptor, "", 0, descriptor);
}

absl::Status ParseRequest(std::string_view wire, google::protobuf::Message* out) {
  if (absl::Status status = CheckStringsAreUtf8(wire, *out->GetDescriptor()); !status.ok()) return status;
  if (!out->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return Malformed(*out->GetDescriptor());
  return absl::OkStatus();
}

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* out) {
  std::vector<grpc::Slice> slices;
  if (!bytes.Dump(&slices).ok()) return Malformed(*out->GetDescriptor());
  if (slices.size() == 1) {
    return ParseRequest(std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()), out);
  }
  std::string wire;
  wire.reserve(bytes.Length());
  for (const grpc::Slice& slice : slices) wire.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return ParseRequest(wire, out);
}

}  // namespace llama::server
