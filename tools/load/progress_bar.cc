#include "tools/load/progress_bar.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace llama::load {

std::string ProgressBar::Line(const std::string& label, int64_t done, int64_t failed, int64_t total_requests,
                              double elapsed_s, double duration_s) {
  constexpr int kBarWidth = 24;
  double fraction = 0;
  if (total_requests > 0) {
    fraction = static_cast<double>(done) / static_cast<double>(total_requests);
  } else if (duration_s > 0) {
    fraction = elapsed_s / duration_s;
  }
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kBarWidth + 0.5);
  const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '.');
  const std::string count = total_requests > 0 ? absl::StrFormat("%d/%d requests", done, total_requests)
                                               : absl::StrFormat("%d requests", done);
  return absl::StrFormat("%s  [%s]  %s  %d failed  %.1f s", label, bar, count, failed, elapsed_s);
}

void ProgressBar::Start(std::string label, int64_t total_requests, double duration_s,
                        const LoadClient::Counters* counters) {
  Stop();
  stop_ = std::make_unique<absl::Notification>();
  thread_ = std::thread([this, label = std::move(label), total_requests, duration_s, counters,
                         stop = stop_.get()] {
    const auto start = std::chrono::steady_clock::now();
    do {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const std::string line = Line(label, counters->done.load(), counters->failed.load(), total_requests, elapsed,
                                    duration_s);
      std::fprintf(out_, "\r%s\033[K", line.c_str());  // \033[K clears what a longer previous line left
      std::fflush(out_);
    } while (!stop->WaitForNotificationWithTimeout(absl::Milliseconds(250)));
  });
}

void ProgressBar::Stop() {
  if (!thread_.joinable()) return;
  stop_->Notify();
  thread_.join();
  std::fprintf(out_, "\r\033[K");
  std::fflush(out_);
}

}  // namespace llama::load
