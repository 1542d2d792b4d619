#include "server/request_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/utf8.h"

namespace llama::server {

std::string EscapeJsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  while (!s.empty()) {
    const unsigned char c = static_cast<unsigned char>(s.front());
    if (c >= 0x80) {
      const int length = utf8::ValidCharLength(s);
      if (length == 0) {
        out.append(utf8::kReplacementChar);
        s.remove_prefix(1);
      } else {
        out.append(s.substr(0, length));
        s.remove_prefix(length);
      }
      continue;
    }
    s.remove_prefix(1);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out.append(absl::StrFormat("\\u%04x", c));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

std::string FormatRequestLogLine(const RequestLogEntry& e) {
  auto quoted = [](std::string_view s) { return absl::StrCat("\"", EscapeJsonString(s), "\""); };
  return absl::StrCat(
      "{\"time\":", quoted(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.time, absl::UTCTimeZone())),
      ",\"event\":\"chat\",\"id\":", e.id, ",\"request_id\":", quoted(e.request_id), ",\"peer\":", quoted(e.peer),
      ",\"code\":", quoted(e.code), ",\"message\":", quoted(e.message), ",\"finish_reason\":", quoted(e.finish_reason),
      ",\"prompt_tokens\":", e.prompt_tokens, ",\"completion_tokens\":", e.completion_tokens,
      ",\"cached_prompt_tokens\":", e.cached_prompt_tokens, ",\"num_candidates\":", e.num_candidates,
      ",\"queue_time_s\":", absl::StrFormat("%.6f", e.queue_time_s),
      ",\"time_to_first_token_s\":", absl::StrFormat("%.6f", e.time_to_first_token_s),
      ",\"total_time_s\":", absl::StrFormat("%.6f", e.total_time_s), "}");
}

void RequestLog::Write(const RequestLogEntry& entry) {
  if (out_ == nullptr) return;
  const std::string line = FormatRequestLogLine(entry) + "\n";
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace llama::server
