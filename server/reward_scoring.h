// RewardScoring: the server's co-hosted reward models (DESIGN §7): the safety model and the optional helpfulness
// model, each on its own backend (same kind and device as the policy, its own KV pool sized for max_candidates
// full-context sequences; on the CPU backend its own weights and KV storage types, loaded panel by panel from the
// mapped checkpoint so no fp32 copy of it exists), the RewardSelector the engine loop calls, the reward metrics,
// and the Score RPC.
//
// The Score RPC and candidate selection share one input format (engine/reward/reward_model.h), so Score on
// (dialog, streamed answer) returns the safety score the selection used.
//
// Each reward model's KV pool: max_candidates full-context sequences lent to the engine loop's reward steps
// (engine_kv_blocks; scoring there is chunked, batched over requests, scheduler/reward_queue.h) plus one
// full-context sequence for the direct path (the warm-up; the Score RPC is engine-loop work, SubmitScore).
//
// Threading: Score runs on a gRPC thread and the engine's reward steps on the engine thread; each RewardModel
// serialises its own forwards and the two use disjoint blocks, so they may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/reward/reward_model.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/tokenizer.h"
#include "prometheus/registry.h"
#include "scheduler/reward_selector.h"
#include "scheduler/scheduler_config.h"
#include "server/reward_metrics.h"

namespace llama::server {

struct RewardScoringOptions {
  std::string safety_model_dir;       // required
  std::string helpfulness_model_dir;  // optional
  RewardSelectorOptions selector;     // threshold, refusal text
  std::string backend = "cpu";        // "cpu" or "cuda", as the policy
  int num_threads = CpuBackendOptions{}.num_threads;      // CPU backend threads
  // The CPU backends' storage: matrices (--reward_weights_dtype, default --weights_dtype) and KV cache elements
  // (--kv_dtype). Ignored by CUDA (bf16 weights and KV); the server refuses a non-f32 weights type there.
  WeightsDtype weights_dtype = CpuBackendOptions{}.weights_dtype;
  KvDtype kv_dtype = CpuBackendOptions{}.kv_dtype;
  int max_candidates = SchedulerConfig{}.max_num_candidates;  // sizes each reward model's KV pool
  absl::Status Validate() const;
};

struct RewardModelDescription {
  std::string kind;       // "safety" or "helpfulness"
  std::string model_dir;
  ModelConfig config;
  std::string weights_dtype;  // the CPU backend's weight storage type (empty for other backends)
  int64_t weight_bytes = 0;   // bytes of its stored matrices (0: not known)
};

struct RewardScores {
  float safety = -1.0f;
  float helpfulness = -1.0f;  // -1 without a helpfulness model
};

class RewardScoring {
 public:
  // policy_tokenizer: the served model's tokenizer; each reward model must share its vocabulary (prompt ids are
  // reused as they are). registry: where the reward metrics go.
  static absl::StatusOr<std::unique_ptr<RewardScoring>> Load(const RewardScoringOptions& options,
                                                             const Tokenizer* policy_tokenizer,
                                                             prometheus::Registry& registry);

  CandidateSelector* selector() { return selector_.get(); }
  const std::vector<RewardModelDescription>& models() const { return models_; }  // for GetModelInfo
  // One scoring call per model (health turns SERVING only after the reward models ran a forward).
  absl::Status Warmup();
  // The direct path (warm-up, before the engine loop serves): the dialog and a response, scored by every loaded
  // model on the calling thread.
  absl::StatusOr<RewardScores> Score(const std::vector<Message>& dialog, const std::string& response);
  // What each model (the selector's RewardModels() order) scores for (dialog, response): the Score RPC hands these
  // to the engine loop (EngineLoop::SubmitScore), so its compute is prefill-only work of the reward steps.
  // INVALID_ARGUMENT when it cannot fit a model's context.
  absl::StatusOr<std::vector<std::vector<int32_t>>> ScoreInputs(const std::vector<Message>& dialog,
                                                                const std::string& response) const;

 private:
  RewardScoring() = default;

  const Tokenizer* tokenizer_ = nullptr;
  std::unique_ptr<RewardModel> safety_;
  std::unique_ptr<RewardModel> helpfulness_;
  std::unique_ptr<RewardMetrics> metrics_;
  std::unique_ptr<RewardSelector> selector_;
  std::vector<RewardModelDescription> models_;
};

}  // namespace llama::server
