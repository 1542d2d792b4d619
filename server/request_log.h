// RequestLog: one structured line per Chat call (docs/reliability.md, "Request logs"): a JSON object on one line
// with the server's request id, the client's request_id, the outcome (gRPC code name and message, finish reason),
// token counts and times. Written once per call, when the call is finished (refusals before admission included;
// calls gRPC itself refuses, such as a message over --max_message_bytes, never reach the service and are not
// logged).
//
// Client-supplied strings (request_id, peer, status messages that quote a request) are escaped as JSON strings:
// quotes, backslashes, every control character (newline and carriage return included) and DEL become escapes, and
// bytes that are not valid UTF-8 become U+FFFD, so no request can end a line early or forge another entry.
//
// Threading: Write from any thread; each line goes out in one locked fwrite + fflush.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace llama::server {

struct RequestLogEntry {
  absl::Time time;               // when the call finished
  uint64_t id = 0;               // the server's engine id
  std::string request_id;        // the client's, as sent (untrusted)
  std::string peer;              // the client's address as gRPC reports it
  std::string code;              // "OK", "INVALID_ARGUMENT", ... (GrpcCodeName)
  std::string message;           // the status message (untrusted: may quote the request)
  std::string finish_reason;     // "stop", "length", "safety", "cancelled", "deadline", "error"; "" when refused
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;
  int num_candidates = 0;
  double queue_time_s = 0;
  double time_to_first_token_s = 0;
  double total_time_s = 0;
};

// `s` as the body of a JSON string (no surrounding quotes), safe to put on one line.
std::string EscapeJsonString(std::string_view s);

// The entry as one JSON object, without the newline.
std::string FormatRequestLogLine(const RequestLogEntry& entry);

class RequestLog {
 public:
  // out: where lines go (stderr, a file); null: nothing is written. Not owned; must outlive this object.
  explicit RequestLog(std::FILE* out) : out_(out) {}

  void Write(const RequestLogEntry& entry) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::FILE* const out_;
};

}  // namespace llama::server
