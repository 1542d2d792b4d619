// StreamWriter: the thread that starts the writes of idle Chat streams, so the engine thread never calls into gRPC.
//
// When the engine hands a stream new text and that stream has no write in flight, something must call StartWrite
// (which serializes the message, allocates gRPC's byte buffer and may run the transport's write inline). Done on the
// engine thread, that is every stream's serialization and syscalls on the one serial resource of the server, with
// allocations per token. Instead the engine thread only queues the stream here (no allocation once the queue has
// grown to the number of streams); at the end of the engine step (StepObserver::OnStep) one wake-up hands the
// whole step's streams to this thread, which starts their writes. A finish (OnFinish can come outside a step:
// cancels, deadlines, shutdown) wakes the thread at once. Streams that already have a write in flight are not
// queued at all: their OnWriteDone, on a gRPC thread, writes what has accumulated. Text that arrives while a stream
// waits here or has a write in flight is coalesced into its next Delta.
//
// Threading: Schedule and OnStep from the engine thread (Schedule from any thread is safe); the callbacks run on
// this object's one thread, in scheduling order. A stream must be scheduled at most once at a time (ChatReactor's
// `scheduled_`) and stay alive until its callback ran. The destructor runs what is queued, then joins.
#pragma once

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/step_stats.h"

namespace llama::server {

class StreamWriter : public StepObserver {
 public:
  // What a queued stream does on the writer thread.
  class Stream {
   public:
    virtual void OnWriterTurn() = 0;

   protected:
    ~Stream() = default;
  };

  StreamWriter();
  ~StreamWriter() override;
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Queues the stream; wake_now: run it without waiting for the end of the step.
  void Schedule(Stream* stream, bool wake_now) ABSL_LOCKS_EXCLUDED(mu_);
  // The end of an engine step: one wake-up for everything the step queued.
  void OnStep(const StepStats& stats) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  bool HasTurns() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return (wake_ && !queued_.empty()) || stop_; }

  absl::Mutex mu_;
  std::vector<Stream*> queued_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // the queued streams may run
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Stream*> running_;  // writer thread only: the batch taken from queued_ (swapped, so capacity stays)
  std::thread thread_;
};

}  // namespace llama::server
