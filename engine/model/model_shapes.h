// Named model shapes (--dummy_weights): benchmarks and smoke runs without a checkpoint, on any backend.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/model/config.h"

namespace llama {

// "llama-2-7b" (dim 4096, 32 layers, 32 heads, MHA), "llama-2-13b" (5120, 40, 40, MHA), "tiny" (dim 256, 4 layers,
// 8 heads, 2 KV heads: GQA group 4). All use the LLaMA 2 vocabulary size (32000) and rope_theta 10000.
absl::StatusOr<ModelConfig> NamedModelConfig(const std::string& name);

}  // namespace llama
