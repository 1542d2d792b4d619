#include "server/stream_writer.h"

#include <algorithm>

namespace llama::server {

StreamWriter::StreamWriter(absl::Duration stall_timeout) : stall_timeout_(stall_timeout) {
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

void StreamWriter::WriteStarted(Stream* stream) {
  if (stall_timeout_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (stream->in_flight_) Unlink(stream);  // never expected: one write in flight per stream
  stream->in_flight_ = true;
  stream->write_started_ = absl::Now();
  stream->in_flight_prev_ = in_flight_tail_;
  stream->in_flight_next_ = nullptr;
  (in_flight_tail_ != nullptr ? in_flight_tail_->in_flight_next_ : in_flight_head_) = stream;
  in_flight_tail_ = stream;
}

void StreamWriter::WriteEnded(Stream* stream) {
  if (stall_timeout_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (std::this_thread::get_id() != thread_.get_id()) {
    // The writer may be cancelling this stream right now: it must stay alive until OnWriteStalled returns.
    auto not_stalling = [this, stream]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stalling_ != stream; };
    mu_.Await(absl::Condition(&not_stalling));
  }
  if (stream->in_flight_) Unlink(stream);
}

void StreamWriter::Unlink(Stream* stream) {
  (stream->in_flight_prev_ != nullptr ? stream->in_flight_prev_->in_flight_next_ : in_flight_head_) =
      stream->in_flight_next_;
  (stream->in_flight_next_ != nullptr ? stream->in_flight_next_->in_flight_prev_ : in_flight_tail_) =
      stream->in_flight_prev_;
  stream->in_flight_prev_ = stream->in_flight_next_ = nullptr;
  stream->in_flight_ = false;
}

void StreamWriter::CancelStalledWrites() {
  for (;;) {
    Stream* stalled = nullptr;
    {
      absl::MutexLock lock(&mu_);
      stalling_ = nullptr;
      // Oldest first: the first write that is young enough ends the scan.
      if (in_flight_head_ == nullptr || absl::Now() - in_flight_head_->write_started_ < stall_timeout_) return;
      stalled = in_flight_head_;
      Unlink(stalled);
      stalling_ = stalled;
    }
    stalled->OnWriteStalled();
  }
}

void StreamWriter::Run() {
  // How often the writes in flight are checked: a stall is caught between stall_timeout and 1.25x of it (+1 s).
  const bool watch = stall_timeout_ > absl::ZeroDuration();
  const absl::Duration scan = std::min(stall_timeout_ / 4, absl::Seconds(1));
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (watch) {
        mu_.AwaitWithTimeout(absl::Condition(this, &StreamWriter::HasTurns), scan);
      } else {
        mu_.Await(absl::Condition(this, &StreamWriter::HasTurns));
      }
      if (stop_ && queued_.empty()) return;  // nothing left to run
      if (HasTurns()) {
        running_.swap(queued_);
        wake_ = false;
      }
    }
    for (Stream* stream : running_) stream->OnWriterTurn();
    running_.clear();
    if (watch) CancelStalledWrites();
  }
}

}  // namespace llama::server
