// ParseRequest's UTF-8 walk against protobuf's own parser: it must accept whatever protobuf accepts (every prefix of
// a real request, every single-byte corruption of it), refuse with INVALID_ARGUMENT otherwise, and name the field
// and byte of the first ill-formed string.
#include "server/request_parsing.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/stubs/logging.h"
#include "gtest/gtest.h"
#include "llamachat/v1/chat.pb.h"

namespace llama::server {
namespace {

namespace v1 = ::llamachat::v1;

v1::ChatRequest SampleRequest() {
  v1::ChatRequest request;
  v1::Message* system = request.add_messages();
  system->set_role(v1::ROLE_SYSTEM);
  system->set_content("Be brief. \xE2\x98\x95");
  v1::Message* user = request.add_messages();
  user->set_role(v1::ROLE_USER);
  user->set_content("caf\xC3\xA9 \xF0\x9D\x84\x9E?");
  request.mutable_sampling()->set_temperature(0.7f);
  request.mutable_sampling()->set_max_tokens(12);
  request.mutable_sampling()->add_stop("END");
  request.set_request_id("req-1");
  request.set_num_candidates(2);
  return request;
}

TEST(RequestParsingTest, ParsesWhatProtobufParses) {
  const std::string wire = SampleRequest().SerializeAsString();
  v1::ChatRequest parsed;
  ASSERT_TRUE(ParseRequest(wire, &parsed).ok());
  EXPECT_EQ(parsed.SerializeAsString(), wire);
}

TEST(RequestParsingTest, AgreesWithProtobufOnEveryPrefix) {
  const std::string wire = SampleRequest().SerializeAsString();
  for (size_t n = 0; n <= wire.size(); ++n) {
    const std::string prefix = wire.substr(0, n);
    v1::ChatRequest ours, theirs;
    const absl::Status status = ParseRequest(prefix, &ours);
    // Cutting inside a multi-byte character leaves valid text truncated: protobuf refuses it as a parse failure
    // only when the length prefix runs past the end, which both detect; the UTF-8 check sees complete values only.
    EXPECT_EQ(status.ok(), theirs.ParseFromString(prefix)) << "prefix of " << n << " bytes: " << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(RequestParsingTest, NeverRefusesWhatProtobufAcceptsUnderSingleByteCorruption) {
  const std::string wire = SampleRequest().SerializeAsString();
  google::protobuf::LogSilencer quiet;  // protobuf logs each ill-formed string it refuses
  for (size_t i = 0; i < wire.size(); ++i) {
    for (int value : {0x00, 0x0A, 0x7F, 0x80, 0xC3, 0xED, 0xFF}) {
      std::string corrupt = wire;
      corrupt[i] = static_cast<char>(value);
      v1::ChatRequest ours, theirs;
      const absl::Status status = ParseRequest(corrupt, &ours);
      const bool protobuf_ok = theirs.ParseFromString(corrupt);
      if (status.ok()) {
        EXPECT_TRUE(protobuf_ok) << "byte " << i << " = " << value;
      } else {
        EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
        // Protobuf refuses exactly what we refuse, except that it accepts nothing with bad UTF-8 in a string
        // either: whenever protobuf accepts, so do we.
        EXPECT_FALSE(protobuf_ok) << "byte " << i << " = " << value << ": " << status;
      }
    }
  }
}

TEST(RequestParsingTest, NamesTheFirstIllFormedField) {
  v1::ChatRequest request = SampleRequest();
  request.mutable_messages(1)->set_content("0123456789abcdefX##");
  // Our serializer would not write ill-formed UTF-8: the bytes are swapped in after (same length).
  std::string wire = request.SerializeAsString();
  wire.replace(wire.find("##"), 2, "\xC3(");
  v1::ChatRequest parsed;
  const absl::Status status = ParseRequest(wire, &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "messages[1].content: is not valid UTF-8 (byte 17 of 19)");
}

}  // namespace
}  // namespace llama::server
