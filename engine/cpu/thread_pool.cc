#include "engine/cpu/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace llama {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

// How long an idle worker spins before sleeping. Long enough to bridge the host-side gaps inside and between
// decode steps (sampling, batch building), short enough not to burn a shared core when the engine is idle.
constexpr auto kSpinTime = std::chrono::microseconds(2000);

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&generation_);
  for (auto& w : workers_) w.join();
}

int64_t ThreadPool::ChunkSize(int64_t n, int64_t grain) const {
  grain = std::max<int64_t>(grain, 1);
  const int64_t target_tasks = static_cast<int64_t>(num_threads_) * kTasksPerThread;
  const int64_t chunk = (n + target_tasks - 1) / target_tasks;
  return std::max<int64_t>(grain, (chunk + grain - 1) / grain * grain);
}

void ThreadPool::RunTasks(uint32_t gen, int tid) {
  // Read the job, then claim: a successful claim proves the region was still `gen` (it cannot finish, and the
  // job cannot be replaced, while a claimed task is unfinished). All seq_cst, so the job read here precedes the
  // claim, which precedes the caller's kClosed store, which precedes any write of the next job.
  const void* ctx = job_ctx_.load(std::memory_order_seq_cst);
  const Trampoline call = job_call_.load(std::memory_order_seq_cst);
  const uint32_t num_tasks = static_cast<uint32_t>(job_tasks_.load(std::memory_order_seq_cst));
  uint64_t s = state_.load(std::memory_order_seq_cst);
  while (static_cast<uint32_t>(s >> 32) == gen) {
    const uint32_t task = static_cast<uint32_t>(s);
    if (task >= num_tasks) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_seq_cst)) continue;
    call(ctx, static_cast<int>(task), tid);
    done_.fetch_add(1, std::memory_order_acq_rel);
    s = state_.load(std::memory_order_seq_cst);
  }
}

void ThreadPool::RunImpl(int num_tasks, const void* ctx, Trampoline call) {
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  job_ctx_.store(ctx, std::memory_order_seq_cst);
  job_call_.store(call, std::memory_order_seq_cst);
  job_tasks_.store(num_tasks, std::memory_order_seq_cst);
  done_.store(0, std::memory_order_seq_cst);
  state_.store(uint64_t{gen} << 32, std::memory_order_seq_cst);
  // seq_cst pairs with the worker's sleepers_ increment: either the worker sees the new generation before it
  // sleeps, or we see it registered as a sleeper and wake it.
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&generation_);
  RunTasks(gen, 0);
  // Every task is claimed now; wait for those claimed by workers.
  int spins = 0;
  while (done_.load(std::memory_order_acquire) != num_tasks) {
    CpuRelax();
    // A worker was descheduled inside a task (cores are shared): stop hogging the core it needs.
    if (++spins > 20000) std::this_thread::yield();
  }
  state_.store((uint64_t{gen} << 32) | kClosed, std::memory_order_seq_cst);
}

void ThreadPool::WorkerLoop(int tid) {
  // Generation 0 is the value before any region; reading the counter here instead could miss a region that
  // started before this thread did.
  uint32_t seen = 0;
  while (true) {
    auto spin_start = std::chrono::steady_clock::now();
    int iter = 0;
    uint32_t gen;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
      CpuRelax();
      if ((++iter & 1023) == 0 && std::chrono::steady_clock::now() - spin_start > kSpinTime) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (generation_.load(std::memory_order_seq_cst) == seen) FutexWait(&generation_, seen);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        spin_start = std::chrono::steady_clock::now();
      }
    }
    seen = gen;
    if (stop_.load(std::memory_order_seq_cst)) return;
    RunTasks(gen, tid);
  }
}

}  // namespace llama
