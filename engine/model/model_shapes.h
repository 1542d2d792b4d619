// Named model shapes (--dummy_weights): benchmarks and smoke runs without a checkpoint, on any backend.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/model/config.h"

namespace llama {

// The one table of named shapes both backends use (--dummy_weights): "llama-2-7b" (dim 4096, 32 layers, 32 heads,
// MHA), "llama-2-13b" (5120, 40, 40, MHA), "tinyllama-1.1b" (2048, 22 layers, 32 heads, 4 KV heads, 2048
// positions), "stories15M" (288, 6 layers, 6 heads, MHA, 256 positions, tied embeddings), "tiny" (dim 256, 4
// layers, 8 heads, 2 KV heads: GQA group 4). All use the LLaMA 2 vocabulary size (32000) and rope_theta 10000.
absl::StatusOr<ModelConfig> NamedModelConfig(const std::string& name);

}  // namespace llama
