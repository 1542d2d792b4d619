// Per-step statistics, for metrics (the server wires them to Prometheus) and tests.
#pragma once

#include <cstdint>

namespace llama {

struct StepStats {
  int64_t step = 0;
  int num_seqs = 0;             // sequences in this step's batch
  int num_prefill_tokens = 0;   // prompt tokens computed this step
  int num_decode_tokens = 0;    // generated tokens this step
  int kv_blocks_used = 0;
  int kv_blocks_free = 0;
  int num_preemptions = 0;      // preemptions during this step's scheduling
  int num_running = 0;
  int num_waiting = 0;
  int num_reward_seqs = 0;      // reward-model sequences (prefill chunks) in this step's reward Forward
  int num_reward_tokens = 0;    // reward-model tokens prefilled this step (0: no reward step)
  double step_time_s = 0;       // wall time of schedule + forward + update (+ the reward step)
};

// Called on the engine thread after every step; must be cheap and must not block.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void OnStep(const StepStats& stats) = 0;
};

}  // namespace llama
