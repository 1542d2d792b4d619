// A Llama model's weights on the device. Matrices are stored in the backend dtype (bf16 by default; fp16 or fp32
// on request), norm weights in fp32 (they are tiny and feed fp32 math). Projections that read the same input are
// fused so one GEMM covers them: q/k/v rows in one matrix, gate/up rows in another.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/dtype.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"

namespace llama::cuda {

struct DeviceLayerWeights {
  DeviceBuffer attn_norm;  // [dim] fp32
  DeviceBuffer wqkv;       // [(n_heads + 2 * n_kv_heads) * head_dim, dim]: q_proj rows, then k_proj, then v_proj
  DeviceBuffer wo;         // [dim, n_heads * head_dim]
  DeviceBuffer ffn_norm;   // [dim] fp32
  DeviceBuffer w_gate_up;  // [2 * intermediate, dim]: gate_proj rows, then up_proj rows
  DeviceBuffer w_down;     // [dim, intermediate]
};

struct DeviceModelWeights {
  ModelConfig config;
  DType dtype = DType::kBF16;
  DeviceBuffer embed;                     // [vocab, dim]
  std::vector<DeviceLayerWeights> layers;  // [num_hidden_layers]
  DeviceBuffer final_norm;                // [dim] fp32
  DeviceBuffer output;                    // [output_rows, dim]; empty when tied to embed
  int output_rows = 0;                    // vocab_size, or num_labels for a reward model's score head
  std::vector<float> score_bias;          // [num_labels] host copy, reward models only (added on the host)
  bool reward = false;                    // score head instead of lm_head: rows are scores, not token logits

  const void* output_projection() const { return output.empty() ? embed.get() : output.get(); }
  // Bytes of every weight read once per decode step (the memory-bandwidth floor's numerator).
  int64_t bytes() const;
};

// Copies host fp32 weights to the device, converting to dtype there. Shapes are checked against the config.
absl::StatusOr<DeviceModelWeights> UploadWeights(const ModelWeights& weights, DType dtype, cudaStream_t stream);

// Random weights of the config's shape generated on the device (uniform, std 0.02 for matrices, norms near 1):
// no host copy, so a 13B shape needs no host memory. Deterministic in seed.
absl::StatusOr<DeviceModelWeights> MakeDummyDeviceWeights(const ModelConfig& config, DType dtype, uint64_t seed,
                                                          cudaStream_t stream);

}  // namespace llama::cuda
