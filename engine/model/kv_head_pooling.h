// Grouped-query attention from a multi-head checkpoint (Ainslie et al. 2023, "GQA"): each new key/value head is
// the mean of the original key/value heads in its group. Works on weights in any layout whose RoPE permutation is
// the same within every head (as HF's is), because a mean over heads commutes with a within-head row reordering.
#pragma once

#include "absl/status/status.h"
#include "engine/model/weights.h"

namespace llama {

// Replaces k_proj and v_proj of every layer by group means: new head g = mean of source kv heads
// g*r .. (g+1)*r - 1 with r = num_key_value_heads / kv_heads, and sets config.num_key_value_heads = kv_heads.
// kv_heads must be positive and divide the source num_key_value_heads (INVALID_ARGUMENT otherwise).
absl::Status MeanPoolKvHeads(int kv_heads, ModelWeights* weights);

}  // namespace llama
