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
// Stalled writes: with a stall timeout, the same thread also watches the writes in flight (WriteStarted /
// WriteEnded, an intrusive list in start order: no allocation per write) and calls OnWriteStalled for one that has
// been outstanding longer than the timeout (a client whose window is full and that never reads), which cancels it.
// The stream is alive while its write is in flight; WriteEnded from another thread waits while the writer is in
// that stream's OnWriteStalled, so the stream (and its gRPC call) outlives the call. From the writer thread itself
// (gRPC may run the cancelled write's reactions inline in TryCancel) it does not wait.
//
// Threading: Schedule and OnStep from the engine thread (Schedule from any thread is safe); the callbacks run on
// this object's one thread, in scheduling order. A stream must be scheduled at most once at a time (ChatReactor's
// `scheduled_`) and stay alive until its callback ran. The destructor runs what is queued, then joins.
#pragma once

#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/step_stats.h"

namespace llama::server {

class StreamWriter : public StepObserver {
 public:
  // What a queued stream does on the writer thread.
  class Stream {
   public:
    virtual void OnWriterTurn() = 0;
    // The writer thread: this stream's write has been in flight longer than the stall timeout (it is no longer
    // watched). The stream must end its call (TryCancel) and touch nothing of itself afterwards.
    virtual void OnWriteStalled() {}

   protected:
    ~Stream() = default;

   private:
    friend class StreamWriter;
    // The writes in flight, oldest first (guarded by the writer's mu_).
    Stream* in_flight_prev_ = nullptr;
    Stream* in_flight_next_ = nullptr;
    bool in_flight_ = false;
    absl::Time write_started_;
  };

  // stall_timeout: a write in flight longer than this is cancelled (OnWriteStalled); zero: never.
  explicit StreamWriter(absl::Duration stall_timeout = absl::ZeroDuration());
  ~StreamWriter() override;
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Queues the stream; wake_now: run it without waiting for the end of the step.
  void Schedule(Stream* stream, bool wake_now) ABSL_LOCKS_EXCLUDED(mu_);
  // The end of an engine step: one wake-up for everything the step queued.
  void OnStep(const StepStats& stats) override ABSL_LOCKS_EXCLUDED(mu_);

  // A write of this stream is handed to gRPC (call just before StartWrite / StartWriteAndFinish); no-op without a
  // stall timeout.
  void WriteStarted(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Its write completed (OnWriteDone) or the call is done (OnDone); idempotent. See the header comment for the wait.
  void WriteEnded(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  absl::Duration stall_timeout() const { return stall_timeout_; }

 private:
  void Run();
  bool HasTurns() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return (wake_ && !queued_.empty()) || stop_; }
  void Unlink(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writer thread: OnWriteStalled for every write in flight since before now - stall_timeout_.
  void CancelStalledWrites() ABSL_LOCKS_EXCLUDED(mu_);

  const absl::Duration stall_timeout_;
  absl::Mutex mu_;
  std::vector<Stream*> queued_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // the queued streams may run
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Stream* in_flight_head_ ABSL_GUARDED_BY(mu_) = nullptr;  // oldest write
  Stream* in_flight_tail_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stalling_ ABSL_GUARDED_BY(mu_) = nullptr;  // in OnWriteStalled on the writer thread
  std::vector<Stream*> running_;  // writer thread only: the batch taken from queued_ (swapped, so capacity stays)
  std::thread thread_;
};

}  // namespace llama::server
