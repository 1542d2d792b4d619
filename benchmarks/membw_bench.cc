// membw_bench: the machine's sustained memory read bandwidth, the ceiling of memory-bound decode.
//
// Single-stream decode reads every weight once per token, so tokens/s × weight bytes / this figure is the share of
// the bandwidth a decode reaches (docs/benchmarks.md). Each thread sums its own contiguous slice of a buffer much
// larger than the caches (default 2 GiB, touched first so its pages exist); a pass is timed from the moment all
// threads start to the moment the last one ends. Prints the median and best of --repeats passes in GB/s (1e9 B/s).
//
// Usage: membw_bench [--threads 2] [--mb 2048] [--repeats 7]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "engine/cpu/huge_page_buffer.h"

ABSL_FLAG(int, threads, 2, "reader threads");
ABSL_FLAG(int64_t, mb, 2048, "buffer size in MiB (much larger than the last-level cache)");
ABSL_FLAG(int, repeats, 7, "timed passes");

namespace llama {
namespace {

// Sums the words [begin, end) as wrapping integers: integer addition is associative, so the compiler vectorizes
// the loop (a float sum would stay a scalar chain and measure the adder, not memory).
uint32_t SumSlice(const uint32_t* begin, const uint32_t* end) {
  uint32_t s = 0;
  for (const uint32_t* p = begin; p < end; ++p) s += *p;
  return s;
}

int Main() {
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  const size_t floats = static_cast<size_t>(absl::GetFlag(FLAGS_mb)) << 18;  // MiB / 4 bytes
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  HugePageBuffer buffer(floats);
  if (buffer.data() == nullptr) {
    std::fprintf(stderr, "membw_bench: cannot allocate %zu bytes\n", floats * 4);
    return 1;
  }
  uint32_t* words = reinterpret_cast<uint32_t*>(buffer.data());
  for (size_t i = 0; i < floats; ++i) words[i] = static_cast<uint32_t>(i);

  std::vector<double> gbps;
  volatile uint32_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<uint32_t> sums(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = floats * t / threads, end = floats * (t + 1) / threads;
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        sums[t] = SumSlice(words + begin, words + end);
      });
    }
    while (ready.load() < threads) {
    }
    const auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (uint32_t v : sums) sink = sink + v;
    gbps.push_back(static_cast<double>(floats) * 4 / s / 1e9);
  }
  std::vector<double> sorted = gbps;
  std::sort(sorted.begin(), sorted.end());
  std::printf("membw_bench: %d threads, %.0f MiB read per pass, %d passes\n", threads, floats * 4.0 / (1 << 20),
              repeats);
  std::printf("read bandwidth: median %.2f GB/s, best %.2f GB/s\n", sorted[sorted.size() / 2], sorted.back());
  return 0;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("membw_bench [--threads 2] [--mb 2048] [--repeats 7]");
  absl::ParseCommandLine(argc, argv);
  return llama::Main();
}
