// llama-chat-cuda-bench: decode speed of the CUDA backend on dummy weights against the memory-bandwidth floor.
//
//   1. Device bandwidth: cudaMemcpy device-to-device of a 1 GiB buffer (each byte read once and written once).
//   2. Batch-1 decode ms/token vs the floor weight_bytes / bandwidth (a decode step must read every weight once).
//   3. Decode throughput (tokens/s) at 16 and 64 concurrent sequences.
// Each batch first prefills --context tokens per sequence, then times --steps greedy decode steps.
//
// Usage: llama-chat-cuda-bench [--dummy_weights llama-2-7b] [--dtype bf16] [--context 128] [--steps 64]
//                              [--batches 1,16,64]      (absl flags; --help lists them)
// Exits 77 without a device.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_check.h"
#include "engine/forward_batch.h"

ABSL_FLAG(std::string, dummy_weights, "llama-2-7b", "named model shape (engine/model/model_shapes.h)");
ABSL_FLAG(std::string, dtype, llama::cuda::CudaBackendOptions().dtype, "weights and KV cache: bf16, fp16 or fp32");
ABSL_FLAG(int, context, 128, "tokens prefilled per sequence before the timed decode steps");
ABSL_FLAG(int, steps, 64, "timed decode steps per batch");
ABSL_FLAG(std::vector<std::string>, batches, std::vector<std::string>({"1", "16", "64"}),
          "concurrent sequences of each run, comma-separated");

namespace llama::cuda {
namespace {

struct BenchOptions {
  std::string dummy_weights;
  std::string dtype;
  int context = 0;
  int steps = 0;
  std::vector<int> batches;
};

// Bytes moved per second by a device-to-device copy (read + write).
absl::StatusOr<double> MeasureBandwidth() {
  const int64_t bytes = int64_t{1} << 30;
  ASSIGN_OR_RETURN(DeviceBuffer src, DeviceBuffer::Allocate(bytes));
  ASSIGN_OR_RETURN(DeviceBuffer dst, DeviceBuffer::Allocate(bytes));
  CUDA_RETURN_IF_ERROR(cudaMemset(src.get(), 1, bytes));
  cudaEvent_t start, stop;
  CUDA_RETURN_IF_ERROR(cudaEventCreate(&start));
  CUDA_RETURN_IF_ERROR(cudaEventCreate(&stop));
  CUDA_RETURN_IF_ERROR(cudaMemcpy(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice));  // warm-up
  const int reps = 10;
  CUDA_RETURN_IF_ERROR(cudaEventRecord(start));
  for (int i = 0; i < reps; ++i) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice));
  }
  CUDA_RETURN_IF_ERROR(cudaEventRecord(stop));
  CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start, stop));
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return 2.0 * bytes * reps / (ms / 1e3);
}

// batch sequences, each in its own contiguous run of blocks; prefill `context` tokens, then decode.
struct Batch {
  int num_seqs;
  int max_blocks;
  int block_size;
  std::vector<int> lens;  // tokens in the cache per sequence

  ForwardInput Next(int new_tokens) {
    ForwardBatchBuilder batch(block_size);
    std::vector<int32_t> tokens(new_tokens), blocks(max_blocks);
    for (int s = 0; s < num_seqs; ++s) {
      for (int i = 0; i < new_tokens; ++i) tokens[i] = 1 + ((lens[s] + i) * 7919 + s * 104729) % 31999;
      std::iota(blocks.begin(), blocks.end(), s * max_blocks);
      batch.AddSequence(tokens, lens[s], blocks);
      lens[s] += new_tokens;
      OutputRow row;
      row.params.temperature = 0.0f;
      batch.AddOutput(std::move(row));
    }
    return std::move(batch).Build();
  }
};

absl::Status RunBatch(Backend* backend, const BenchOptions& o, int batch, double floor_ms) {
  const KvCacheSpec& kv = backend->kv_cache();
  const int warmup = 3;
  const int max_blocks = (o.context + warmup + o.steps + kv.block_size - 1) / kv.block_size;
  if (int64_t{batch} * max_blocks > kv.num_blocks) {
    return absl::ResourceExhaustedError(absl::StrCat("batch ", batch, " needs ", batch * max_blocks,
                                                     " KV blocks, the pool has ", kv.num_blocks));
  }
  Batch b{batch, max_blocks, kv.block_size, std::vector<int>(batch, 0)};
  ForwardOutput out;
  const auto p0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(backend->Forward(b.Next(o.context), &out));
  const double prefill_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p0).count();
  for (int i = 0; i < warmup; ++i) RETURN_IF_ERROR(backend->Forward(b.Next(1), &out));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.steps; ++i) RETURN_IF_ERROR(backend->Forward(b.Next(1), &out));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const double step_ms = ms / o.steps;
  std::printf("| %d | %d | %.1f | %.3f | %.0f | %.2fx |\n", batch, o.context, prefill_ms, step_ms,
              batch * 1e3 / step_ms, step_ms / floor_ms);
  return absl::OkStatus();
}

absl::Status Run(const BenchOptions& o) {
  cudaDeviceProp prop;
  CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, 0));
  ASSIGN_OR_RETURN(const double bandwidth, MeasureBandwidth());
  CudaBackendOptions bo;
  bo.dummy_weights = o.dummy_weights;
  bo.dtype = o.dtype;
  bo.kv_cache_memory_fraction = 0.5;
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(bo));
  const double floor_ms = backend->weight_bytes() / bandwidth * 1e3;
  std::printf("device: %s (%.1f GiB)\n", prop.name, prop.totalGlobalMem / double(1 << 30));
  std::printf("model: %s dummy weights, %s, %.2f GB of weights; KV pool %d blocks of %d tokens\n",
              o.dummy_weights.c_str(), backend->name().c_str(), backend->weight_bytes() / 1e9,
              backend->kv_cache().num_blocks, backend->kv_cache().block_size);
  std::printf("measured D2D bandwidth: %.0f GB/s -> batch-1 decode floor %.2f ms/token\n\n", bandwidth / 1e9,
              floor_ms);
  std::printf("| batch | context | prefill ms | decode ms/step | decode tokens/s | step / floor |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (int batch : o.batches) RETURN_IF_ERROR(RunBatch(backend.get(), o, batch, floor_ms));
  return absl::OkStatus();
}

absl::StatusOr<BenchOptions> OptionsFromFlags() {
  BenchOptions o{absl::GetFlag(FLAGS_dummy_weights), absl::GetFlag(FLAGS_dtype), absl::GetFlag(FLAGS_context),
                 absl::GetFlag(FLAGS_steps), {}};
  if (o.context < 1 || o.steps < 1) return absl::InvalidArgumentError("--context and --steps must be >= 1");
  for (const std::string& part : absl::GetFlag(FLAGS_batches)) {
    int b = 0;
    if (!absl::SimpleAtoi(part, &b) || b < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--batches: '", part, "' is not a positive integer"));
    }
    o.batches.push_back(b);
  }
  return o;
}

}  // namespace
}  // namespace llama::cuda

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("llama-chat-cuda-bench [--dummy_weights llama-2-7b] [--dtype bf16] [...]");
  absl::ParseCommandLine(argc, argv);
  auto options = llama::cuda::OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "llama-chat-cuda-bench: %s\n", options.status().ToString().c_str());
    return 2;
  }
  if (llama::cuda::CudaDeviceCount() == 0) {
    std::printf("SKIPPED: no CUDA device visible\n");
    return 77;
  }
  const absl::Status st = llama::cuda::Run(*options);
  if (!st.ok()) {
    std::fprintf(stderr, "llama-chat-cuda-bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
