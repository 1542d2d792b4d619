// RequestLog's line format (server/request_log.h): one JSON object per line that a JSON parser (nlohmann, not our
// code) reads back to the exact fields, whatever bytes the client put in its strings.
#include "server/request_log.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace llama::server {
namespace {

TEST(EscapeJsonString, EscapesWhatCouldEndALineOrAString) {
  EXPECT_EQ(EscapeJsonString("plain id-1"), "plain id-1");
  EXPECT_EQ(EscapeJsonString("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(EscapeJsonString("x\ny\rz\t"), "x\\ny\\rz\\t");
  EXPECT_EQ(EscapeJsonString(std::string("\0\x01\x1b\x7f", 4)), "\\u0000\\u0001\\u001b\\u007f");
  EXPECT_EQ(EscapeJsonString("caf\xC3\xA9"), "caf\xC3\xA9");         // valid UTF-8 kept
  EXPECT_EQ(EscapeJsonString("a\xFF" "b"), "a\xEF\xBF\xBD" "b");   // invalid byte → U+FFFD
  EXPECT_EQ(EscapeJsonString("\xE2\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated character
}

TEST(FormatRequestLogLine, IsOneJsonLineThatRoundTripsHostileStrings) {
  RequestLogEntry entry;
  entry.time = absl::FromUnixSeconds(1700000000);
  entry.id = 42;
  entry.request_id = "evil\"}\n{\"event\":\"chat\",\"code\":\"OK\"\r\x1b[2J";
  entry.peer = "ipv4:127.0.0.1:5555";
  entry.code = "INVALID_ARGUMENT";
  entry.message = "request_id: must be printable ASCII without spaces\n";
  entry.finish_reason = "stop";
  entry.prompt_tokens = 7;
  entry.completion_tokens = 3;
  entry.num_candidates = 4;
  entry.total_time_s = 0.25;
  const std::string line = FormatRequestLogLine(entry);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  for (char c : line) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "a raw control byte in the line";
  const nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["request_id"], entry.request_id);
  EXPECT_EQ(parsed["message"], entry.message);
  EXPECT_EQ(parsed["event"], "chat");
  EXPECT_EQ(parsed["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(parsed["id"], 42);
  EXPECT_EQ(parsed["prompt_tokens"], 7);
  EXPECT_EQ(parsed["completion_tokens"], 3);
  EXPECT_EQ(parsed["num_candidates"], 4);
  EXPECT_DOUBLE_EQ(parsed["total_time_s"].get<double>(), 0.25);
  EXPECT_EQ(parsed["time"], "2023-11-14T22:13:20.000Z");
}

}  // namespace
}  // namespace llama::server
