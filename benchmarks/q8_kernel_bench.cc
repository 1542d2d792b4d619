// q8_kernel_bench: the q8_0 weight kernel (engine/cpu/packed_q8.h) against the fp32 packed kernel
// (packed_matmul.h) on LLaMA-2-7B matrix shapes, for single-token decode (n = 1) and a small batch (n = 16), on
// 1 and 2 threads (the backend's ThreadPool, rows split in 64-row chunks). Prints, per case, the median of
// --reps timings of --calls calls each: µs per call, weight GB/s (bytes of the packed matrix per call / time),
// GMAC/s (n · out · in / time) and the process CPU µs per call (spinning pool workers included). The q8 time includes
// quantizing the activations (on the calling thread, as a backend would). Weights live on huge pages
// (huge_page_buffer.h) as in the backend. The ISA is the process's (LLAMA_CPU_ISA=scalar|avx2|avx512 forces one;
// LLAMA_CPU_VNNI=0 turns AVX-512 VNNI off). Not part of `make test`.
//   q8_kernel_bench [--reps 5] [--calls 0 (auto: ~40 ms per timing)] [--threads 1,2] [--n 1,16]
//                   [--shapes 4096x4096,11008x4096]
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "engine/cpu/cpu_isa.h"
#include "engine/cpu/huge_page_buffer.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/packed_q8.h"
#include "engine/cpu/thread_pool.h"

ABSL_FLAG(int, reps, 5, "timings per case (the median is printed)");
ABSL_FLAG(int, calls, 0, "calls per timing (0: enough for ~40 ms)");
ABSL_FLAG(std::vector<std::string>, threads, std::vector<std::string>({"1", "2"}), "thread counts");
ABSL_FLAG(std::vector<std::string>, shapes, std::vector<std::string>({"4096x4096", "11008x4096"}),
          "matrices OUTxIN (a small one, e.g. 512x512, stays in cache: the compute ceiling)");
ABSL_FLAG(std::vector<std::string>, n, std::vector<std::string>({"1", "16"}), "tokens per call");

namespace llama {
namespace {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Timing {
  double wall;  // median seconds per call
  double cpu;   // median process CPU seconds per call (with 1 thread: the time the kernel had a core, what a
                // loaded shared machine does not distort as much)
};

// Medians over reps of the seconds per call of fn.
template <typename Fn>
Timing Median(const Fn& fn) {
  fn();  // warm up (pages, caches)
  int calls = absl::GetFlag(FLAGS_calls);
  if (calls <= 0) {
    const auto t0 = Clock::now();
    fn();
    const double once = std::chrono::duration<double>(Clock::now() - t0).count();
    calls = std::max(1, static_cast<int>(0.04 / std::max(once, 1e-7)));
  }
  std::vector<double> wall, cpu;
  for (int r = 0; r < absl::GetFlag(FLAGS_reps); ++r) {
    const auto t0 = Clock::now();
    const double c0 = ProcessCpuSeconds();
    for (int c = 0; c < calls; ++c) fn();
    cpu.push_back((ProcessCpuSeconds() - c0) / calls);
    wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / calls);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void Report(const char* kernel, int out, int in, int n, int threads, size_t bytes, Timing t) {
  std::printf("%-4s [%5d x %4d] n=%-2d threads=%d  %9.1f us  %7.2f GB/s  %7.2f GMAC/s   cpu %9.1f us\n", kernel, out,
              in, n, threads, t.wall * 1e6, bytes / t.wall / 1e9, static_cast<double>(n) * out * in / t.wall / 1e9,
              t.cpu * 1e6);
  std::fflush(stdout);
}

void Run() {
  std::printf("isa %s%s\n", CpuIsaName(ActiveCpuIsa()),
              ActiveCpuIsa() == CpuIsa::kAvx512 ? (UseAvx512Vnni() ? " (vnni)" : " (no vnni)") : "");
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  struct Shape {
    int out, in;
  };
  std::vector<Shape> shapes;
  for (const std::string& spec : absl::GetFlag(FLAGS_shapes)) {
    const size_t x = spec.find('x');
    shapes.push_back({std::stoi(spec.substr(0, x)), std::stoi(spec.substr(x + 1))});
  }
  for (const Shape& s : shapes) {
    std::vector<float> w(static_cast<size_t>(s.out) * s.in);
    for (float& v : w) v = dist(rng);
    HugePageBuffer f32(PackedSize(s.out, s.in));
    PackWeights(w.data(), s.out, s.in, f32.data());
    const size_t q8_bytes = PackedQ8Bytes(s.out, s.in);
    HugePageBuffer q8_store((q8_bytes + 3) / 4);
    uint8_t* q8 = reinterpret_cast<uint8_t*>(q8_store.data());
    for (int p = 0; p * kPanelRows < s.out; ++p) {
      PackPanelQ8(&w[static_cast<size_t>(p) * kPanelRows * s.in], std::min(kPanelRows, s.out - p * kPanelRows), s.in,
                  q8 + PackedQ8PanelOffset(s.out, s.in, p));
    }
    w = {};
    for (const std::string& ts : absl::GetFlag(FLAGS_threads)) {
      const int threads = std::stoi(ts);
      ThreadPool pool(threads);
      for (const std::string& ns : absl::GetFlag(FLAGS_n)) {
        const int n = std::stoi(ns);
        std::vector<float> x(static_cast<size_t>(n) * s.in), y(static_cast<size_t>(n) * s.out);
        for (float& v : x) v = dist(rng);
        std::vector<uint8_t> xq(QuantizedActivationBytes(n, s.in));
        const Timing q8_sec = Median([&] {
          QuantizeActivations(x.data(), n, s.in, xq.data());
          pool.ParallelForRange(s.out, kPanelRows, [&](int64_t begin, int64_t end, int) {
            PackedQ8MatMulRows(xq.data(), q8, y.data(), n, s.in, s.out, begin, end, false);
          });
        });
        Report("q8", s.out, s.in, n, threads, q8_bytes, q8_sec);
        const Timing f32_sec = Median([&] {
          pool.ParallelForRange(s.out, kPanelRows, [&](int64_t begin, int64_t end, int) {
            PackedMatMulRows(x.data(), f32.data(), y.data(), n, s.in, s.out, begin, end, false);
          });
        });
        Report("f32", s.out, s.in, n, threads, PackedSize(s.out, s.in) * sizeof(float), f32_sec);
      }
    }
  }
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("q8_0 vs fp32 packed matmul kernels: GB/s and GMAC/s (see the file comment)");
  absl::ParseCommandLine(argc, argv);
  llama::Run();
  return 0;
}
