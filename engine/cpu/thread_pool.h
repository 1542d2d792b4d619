// ThreadPool: a persistent pool for the CPU backend's parallel regions.
//
// A decode step of a small model is ~2 ms and holds ~30 parallel regions, so a region must start and finish in a
// few microseconds: idle workers spin on a generation counter for a while after each region (no mutex, no
// condvar) and only then sleep on a futex. The calling thread takes part.
//
// Work is a set of tasks claimed one at a time from a shared counter, and the caller waits only for tasks that
// were claimed. The cores are shared with other processes: a worker that is descheduled simply claims nothing,
// and the caller finishes the region alone instead of waiting for a time slice. Which thread runs a task never
// changes its result.
//
// Threading: one thread at a time may call ParallelFor (the backend's Forward is single-caller).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace llama {

class ThreadPool {
 public:
  // num_threads counts the caller; num_threads - 1 workers are started. num_threads <= 0 means
  // std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(task, thread_index) for every task in [0, num_tasks) and returns when all are done. thread_index is
  // in [0, num_threads) (0 = the caller), for per-thread scratch buffers.
  template <typename Fn>
  void ParallelFor(int num_tasks, const Fn& fn) {
    if (num_tasks <= 0) return;
    if (num_threads_ == 1 || num_tasks == 1) {
      for (int t = 0; t < num_tasks; ++t) fn(t, 0);
      return;
    }
    RunImpl(num_tasks, &fn, [](const void* ctx, int task, int tid) { (*static_cast<const Fn*>(ctx))(task, tid); });
  }

  // Splits [0, n) into chunks that are multiples of grain (a few per thread, for balance) and calls
  // fn(begin, end, thread_index) for each.
  template <typename Fn>
  void ParallelForRange(int64_t n, int64_t grain, const Fn& fn) {
    const int64_t chunk = ChunkSize(n, grain);
    const int num_tasks = static_cast<int>((n + chunk - 1) / chunk);
    ParallelFor(num_tasks, [&](int task, int tid) {
      const int64_t begin = task * chunk;
      fn(begin, std::min(n, begin + chunk), tid);
    });
  }

  // Chunk of ParallelForRange: about kTasksPerThread chunks per thread, rounded up to a multiple of grain.
  int64_t ChunkSize(int64_t n, int64_t grain) const;

 private:
  using Trampoline = void (*)(const void* ctx, int task, int tid);
  static constexpr int kTasksPerThread = 4;
  static constexpr uint32_t kClosed = 0xFFFFFFFFu;  // next-task value of a finished region

  void RunImpl(int num_tasks, const void* ctx, Trampoline call);
  // Claims and runs tasks of region `gen` until none is left or the region changed.
  void RunTasks(uint32_t gen, int tid);
  void WorkerLoop(int tid);

  int num_threads_;
  std::vector<std::thread> workers_;
  // The current region: (generation << 32) | next unclaimed task. Workers claim tasks with a compare-and-swap that
  // also checks the generation, so a late worker never runs a task of a region it did not read the job of.
  alignas(64) std::atomic<uint64_t> state_{uint64_t{kClosed}};
  std::atomic<const void*> job_ctx_{nullptr};
  std::atomic<Trampoline> job_call_{nullptr};
  std::atomic<int> job_tasks_{0};
  alignas(64) std::atomic<int> done_{0};             // finished tasks of the current region
  alignas(64) std::atomic<uint32_t> generation_{0};  // futex word: bumped once per region
  alignas(64) std::atomic<int> sleepers_{0};         // workers blocked in futex wait
  std::atomic<bool> stop_{false};
};

}  // namespace llama
