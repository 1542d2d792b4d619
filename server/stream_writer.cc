#include "server/stream_writer.h"

namespace llama::server {

StreamWriter::StreamWriter() {
  queued_.reserve(64);
  running_.reserve(64);
  thread_ = std::thread([this] { Run(); });
}

StreamWriter::~StreamWriter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void StreamWriter::Schedule(Stream* stream) {
  absl::MutexLock lock(&mu_);
  queued_.push_back(stream);
}

void StreamWriter::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](StreamWriter* w) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !w->queued_.empty() || w->stop_; }, this));
      if (queued_.empty()) return;  // stop_, and nothing left to run
      running_.swap(queued_);
    }
    for (Stream* stream : running_) stream->OnWriterTurn();
    running_.clear();
  }
}

}  // namespace llama::server
