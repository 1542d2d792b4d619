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

void StreamWriter::Schedule(Stream* stream, bool wake_now) {
  absl::MutexLock lock(&mu_);
  queued_.push_back(stream);
  if (wake_now) wake_ = true;
}

void StreamWriter::OnStep(const StepStats&) {
  absl::MutexLock lock(&mu_);
  if (!queued_.empty()) wake_ = true;
}

void StreamWriter::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &StreamWriter::HasTurns));
      if (queued_.empty()) return;  // stop_, and nothing left to run
      running_.swap(queued_);
      wake_ = false;
    }
    for (Stream* stream : running_) stream->OnWriterTurn();
    running_.clear();
  }
}

}  // namespace llama::server
