// ProgressBar: one line on a terminal, redrawn four times a second while a level runs:
//   concurrency 16  [##########..........]  120/240 requests  3 failed  12.3 s
// Progress is requests done over the level's num_requests, or elapsed over duration_s when only that is set. The
// command enables it only when stdout is a terminal, so logs and pipes get none. Start/Stop from one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "tools/load/load_client.h"

namespace llama::load {

class ProgressBar {
 public:
  explicit ProgressBar(FILE* out) : out_(out) {}
  ~ProgressBar() { Stop(); }

  // total_requests 0: progress by time over duration_s.
  void Start(std::string label, int64_t total_requests, double duration_s, const LoadClient::Counters* counters);
  // Clears the line and joins the drawing thread; a no-op when not started.
  void Stop();

  // The line for these numbers (tests call it directly).
  static std::string Line(const std::string& label, int64_t done, int64_t failed, int64_t total_requests,
                          double elapsed_s, double duration_s);

 private:
  FILE* out_;
  std::thread thread_;
  std::unique_ptr<absl::Notification> stop_;
};

}  // namespace llama::load
