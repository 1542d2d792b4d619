#pragma once

#include "absl/status/status.h"

namespace llama {

struct SchedulerConfig {
  int max_num_seqs = 64;               // sequences in one step at most
  int max_num_batched_tokens = 512;    // tokens (prefill chunks + decodes) in one step at most
  int max_model_len = 0;               // context limit; 0 = the model's max_position_embeddings
  int max_num_candidates = 8;          // k cap per request
  // Keep full computed KV blocks (after their last owner is done, until evicted) and reuse them for sequences
  // with the same prefix: multi-turn chat and shared system prompts are not recomputed.
  bool enable_prefix_caching = true;
  absl::Status Validate() const;
};

}  // namespace llama
