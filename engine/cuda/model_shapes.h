// Named model shapes for --dummy_weights: benchmarks and smoke runs without a checkpoint.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/config.h"

namespace llama::cuda {

// "llama-2-7b" (dim 4096, 32 layers, 32 heads, MHA), "llama-2-13b" (5120, 40, 40, MHA), "tiny" (dim 256, 4 layers,
// 8 heads, 2 KV heads: GQA group 4). All use the LLaMA 2 vocabulary size (32000) and rope_theta 10000.
absl::StatusOr<ModelConfig> DummyModelConfig(const std::string& name);

}  // namespace llama::cuda
