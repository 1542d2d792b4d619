// A RequestSink for tests: collects the streamed text and token ids, counts token and finish calls, and lets the
// test wait for the one terminal event. Thread-safe (the engine thread writes, the test thread reads).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "scheduler/request.h"

namespace llama::testing {

class TextSink : public RequestSink {
 public:
  void OnTokens(absl::Span<const int32_t> ids, std::string_view text) override {
    absl::MutexLock lock(&mu_);
    ++token_calls_;
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    text_ += text;
  }
  void OnFinish(const FinishInfo& info) override {
    absl::MutexLock lock(&mu_);
    ++finishes_;
    info_ = info;
    done_.Notify();
  }
  bool Wait() { return done_.WaitForNotificationWithTimeout(absl::Seconds(30)); }
  std::string text() const { absl::MutexLock lock(&mu_); return text_; }
  std::vector<int32_t> ids() const { absl::MutexLock lock(&mu_); return ids_; }
  FinishInfo info() const { absl::MutexLock lock(&mu_); return info_; }
  int token_calls() const { absl::MutexLock lock(&mu_); return token_calls_; }
  int finishes() const { absl::MutexLock lock(&mu_); return finishes_; }

 private:
  mutable absl::Mutex mu_;
  std::string text_;
  std::vector<int32_t> ids_;
  FinishInfo info_;
  int token_calls_ = 0;
  int finishes_ = 0;
  absl::Notification done_;
};

}  // namespace llama::testing
