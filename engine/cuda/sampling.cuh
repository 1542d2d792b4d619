// Sampling on the device: repetition penalty, greedy, temperature, top-k, top-p, with the same counter-based
// uniform (CounterUniform(seed, step)) and the same candidate order as the CPU SampleToken, so both backends draw
// the same token from the same logits. Only the token ids leave the device. CPU twin: engine/sampling.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/backend.h"
#include "engine/cuda/device_buffer.h"

namespace llama::cuda {

// One output row's sampling settings as the kernels read them.
struct DeviceSampleRow {
  float temperature = 1.0f;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  int64_t step = 0;
  int32_t penalty_begin = 0;  // [penalty_begin, penalty_end) in the flat penalty-token list
  int32_t penalty_end = 0;
  int32_t active = 0;         // 0: no token wanted (OutputRow::sample == false); the row's token is -1
  int32_t sorted = 0;         // 1: top-k or top-p truncates, so candidates go in (probability desc, id asc) order
};

// Owns the sampler's scratch space; one per backend (single-threaded use, like the backend).
class DeviceSampler {
 public:
  // logits: [num_rows, vocab] fp32 (device; left unchanged). tokens: [num_rows] int32 (device) receives one id per
  // row, -1 where rows[r].sample is false. rows: the step's OutputRows (params already validated).
  absl::Status Sample(const float* logits, int vocab, absl::Span<const OutputRow> rows, int32_t* tokens,
                      cudaStream_t stream);

 private:
  absl::Status Upload(absl::Span<const OutputRow> rows, int vocab, cudaStream_t stream);
  absl::Status SortCandidates(int num_rows, int vocab, cudaStream_t stream);

  std::vector<DeviceSampleRow> host_rows_;
  std::vector<int32_t> host_penalty_tokens_;
  std::vector<int32_t> host_offsets_;
  DeviceBuffer rows_;            // [num_rows] DeviceSampleRow
  DeviceBuffer penalty_tokens_;  // [total penalty tokens] int32
  DeviceBuffer offsets_;         // [num_rows + 1] int32 segment offsets (r * vocab) for the segmented sort
  DeviceBuffer probs_;           // [num_rows, vocab] fp32 unnormalised probabilities, in id order
  DeviceBuffer keys_;            // [num_rows, vocab] uint64 (probability bits << 32 | ~id)
  DeviceBuffer sorted_keys_;     // [num_rows, vocab] uint64, descending per row
  DeviceBuffer sort_temp_;       // CUB temporary storage
};

}  // namespace llama::cuda
