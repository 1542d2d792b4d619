// Per-step statistics, for metrics (the server wires them to Prometheus) and tests.
#pragma once

#include <cstdint>
#include <string>

namespace llama {

struct StepStats {
  int64_t step = 0;
  int num_seqs = 0;             // sequences in this step's batch
  int num_prefill_tokens = 0;   // prompt tokens computed this step
  int num_decode_tokens = 0;    // generated tokens this step
  int kv_blocks_used = 0;
  int kv_blocks_free = 0;       // hold nothing (used + free + cached = the pool)
  int kv_blocks_cached = 0;     // held only by the prefix cache (reference count 0, evictable)
  int prefix_cache_queries = 0;  // tokens of the sequences admitted this step, looked up in the prefix cache
  int prefix_cache_hits = 0;     // of them found cached (prompt tokens not computed)
  int num_preemptions = 0;      // preemptions during this step's scheduling
  int num_running = 0;
  int num_waiting = 0;
  int num_reward_seqs = 0;      // reward-model sequences (prefill chunks) in this step's reward Forward
  int num_reward_tokens = 0;    // reward-model tokens prefilled this step (0: no reward step)
  int reward_model = -1;        // which reward model that was (index into the selector's RewardModels())
  int reward_prefix_cache_queries = 0;  // tokens of the reward sequences started this step
  int reward_prefix_cache_hits = 0;     // of them found in that reward model's prefix cache
  double step_time_s = 0;       // wall time of schedule + forward + update (+ the reward step)
};

// One KV pool's prefix cache (EngineSnapshot::prefix_caches).
struct PrefixCacheStats {
  std::string model;      // "policy", or the reward model's name
  int64_t queries = 0;    // tokens looked up (every sequence when it is admitted), since start
  int64_t hits = 0;       // of them found cached, since start
  int cached_blocks = 0;  // blocks held only by the cache now
};

// Called on the engine thread after every step; must be cheap and must not block.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void OnStep(const StepStats& stats) = 0;
};

}  // namespace llama
