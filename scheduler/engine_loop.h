// EngineLoop: the one thread that owns the scheduler and the backend. Each step: schedule → forward → sample →
// update. Other threads talk to it only through Submit/Cancel (a bounded inbox) and read results through sinks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend.h"
#include "engine/text/tokenizer.h"
#include "scheduler/request.h"
#include "scheduler/scheduler_config.h"
#include "scheduler/step_stats.h"

namespace llama {

struct EngineLoopOptions {
  SchedulerConfig scheduler;
  int max_queued_requests = 256;  // waiting + inbox; Submit answers RESOURCE_EXHAUSTED beyond it
  // Names the policy's weights (the model directory; "dummy:<shape>:<seed>" for random weights): part of the
  // prefix cache's root key with the config and the KV format (scheduler/block_hash.h).
  std::string model_source;
  int prefix_cache_index_bits = 64;  // tests only: fewer bits force block-hash collisions (PrefixCacheOptions)
  absl::Status Validate() const;
};

// A consistent view for health/metrics/tests, readable from any thread.
struct EngineSnapshot {
  int num_running = 0;
  int num_waiting = 0;
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int kv_blocks_cached = 0;       // policy blocks held only by the prefix cache (evictable; not in used)
  int reward_kv_blocks_used = 0;  // the reward models' engine blocks held by requests waiting for scoring
  int num_scoring = 0;            // requests whose candidates finished and wait for (or are in) reward steps
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  // Prefix caches, cumulative since start: the policy's ("policy") first, then each reward model's (by name).
  // Empty entries' counts stay 0 when prefix caching is off.
  std::vector<PrefixCacheStats> prefix_caches;
  bool running = false;
};

class CandidateSelector;

// One sequence per reward model scored as prefill-only work of the loop's reward steps, batched with the
// candidates' scoring (the Score RPC): no model compute on the caller's thread.
struct ScoreJob {
  std::vector<std::vector<int32_t>> inputs;  // [model] token ids, in the selector's RewardModels() order
  absl::Time deadline = absl::InfiniteFuture();
  // Called exactly once, on the engine thread (must not block): the scores [model], or why there are none
  // (DEADLINE_EXCEEDED, CANCELLED at shutdown, INTERNAL when a reward Forward failed, RESOURCE_EXHAUSTED when an
  // input can never fit the reward model's engine blocks).
  std::function<void(absl::StatusOr<std::vector<float>>)> done;
};

class EngineLoop {
 public:
  // backend and tokenizer must outlive the loop. The tokenizer is used for stop strings and text deltas.
  EngineLoop(Backend* backend, const Tokenizer* tokenizer, EngineLoopOptions options);
  ~EngineLoop();  // Stop()s
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  void AddObserver(StepObserver* observer);  // before Start
  // Chooses among the k candidates of a request (the reward model's hook); before Start; must outlive the loop.
  // Default: candidate 0. When the selector names reward models (each with engine_kv_blocks > 0), the loop scores
  // finished requests itself: one prefill-only reward step per engine step, batched over requests and chunked
  // under max_num_batched_tokens (scheduler/reward_queue.h).
  void SetCandidateSelector(CandidateSelector* selector);
  void Start();
  // Ends every live request with CANCELLED ("server shutting down") and joins the thread.
  void Stop();

  // Thread-safe. INVALID_ARGUMENT (empty prompt, prompt + 1 beyond the context, k out of range, bad sampling),
  // RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (not running). On OK the sink gets exactly one OnFinish.
  absl::Status Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink);
  // Thread-safe. FAILED_PRECONDITION without reward models, UNAVAILABLE when not running, INVALID_ARGUMENT for a
  // wrong number of inputs; on OK job.done is called exactly once. Request ids in [2^62, 2^63) are the loop's own
  // (score jobs): Submit refuses them.
  absl::Status SubmitScore(ScoreJob job);
  // Thread-safe; takes effect within one step. reason: CANCELLED or DEADLINE_EXCEEDED. Unknown ids are ignored.
  void Cancel(uint64_t request_id, absl::Status reason);

  EngineSnapshot Snapshot() const;
  // The context limit this loop serves (prompt + generated tokens): SchedulerConfig::max_model_len (default: the
  // model's max_position_embeddings) clamped to the model's positions and to what the KV pool holds for one
  // sequence. Request validation, Tokenize and GetModelInfo use this one number. Fixed at construction; any thread.
  int max_model_len() const;
  bool prefix_caching() const;  // SchedulerConfig::enable_prefix_caching (policy and reward models alike)
  const KvCacheSpec& kv_cache() const { return backend_->kv_cache(); }
  const ModelConfig& model_config() const { return backend_->config(); }

 private:
  class Impl;
  Backend* backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llama
