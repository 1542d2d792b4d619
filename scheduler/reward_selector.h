// RewardSelector: the CandidateSelector of rejection sampling (DESIGN §7). It names the co-hosted safety reward
// model (and the optional helpfulness one), formats what they score for each candidate (RewardInput: the one
// format of engine/reward/reward_model.h, so a Score RPC on (dialog, streamed text) reproduces the score used
// here), and picks by the Llama 2 rule once the engine loop's reward steps (scheduler/reward_queue.h) have scored
// every candidate:
//   a candidate passes when its safety score is >= safety_threshold; among passing candidates the best
//   helpfulness score wins (the best safety score with no helpfulness model); if none passes, the answer is the
//   configured refusal with finish reason SAFETY.
// It runs no model itself. A reward model failure (or the request's deadline passing) fails the request in the
// engine loop, and nothing of any candidate is sent.
//
// Threading: called on the engine thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/reward/reward_model.h"
#include "engine/text/tokenizer.h"
#include "scheduler/candidate_selector.h"

namespace llama {

struct RewardSelectorOptions {
  // The Llama 2 paper's threshold: below it the safety score decides, and a candidate does not pass.
  float safety_threshold = 0.15f;
  std::string refusal_text = "I'm sorry, but I can't help with that.";
  absl::Status Validate() const;
};

// The pure selection rule. safety: [k]; helpfulness: [k] or empty. nullopt = no candidate passes (refuse).
// Ties go to the lowest index, so the choice is a function of the scores alone.
std::optional<int> SelectByRewards(absl::Span<const float> safety, absl::Span<const float> helpfulness,
                                   float safety_threshold);

// Told about every scoring and every choice, for metrics. Called on the engine thread; must not block.
class RewardObserver {
 public:
  virtual ~RewardObserver() = default;
  virtual void OnScored(const std::string& model, absl::Span<const float> scores, double latency_s) = 0;
  // Once per request: its whole-answer choice, or the first segment's in scored streaming (so k is counted once).
  virtual void OnSelected(int num_candidates, bool refused) = 0;
  // Scored streaming: every segment's choice (segment 0-based), with the chosen (or, refused, the best) safety score.
  virtual void OnSegmentChosen(int segment, float safety_score, bool refused) {}
};

class RewardSelector : public CandidateSelector {
 public:
  // safety must not be null; helpfulness may be. All must outlive the selector. The reward models must share the
  // policy's vocabulary (prompt ids are reused as they are).
  RewardSelector(RewardModel* safety, RewardModel* helpfulness, const Tokenizer* tokenizer,
                 RewardSelectorOptions options);
  void AddObserver(RewardObserver* observer);  // before the engine loop starts

  std::vector<RewardModel*> RewardModels() const override;
  absl::StatusOr<std::vector<int32_t>> RewardInput(int model, const GenerationRequest& request,
                                                   const CandidateOutput& candidate) const override;
  absl::StatusOr<CandidateChoice> Select(const GenerationRequest& request,
                                         absl::Span<const CandidateOutput> candidates,
                                         const CandidateScores& scores) override;

 private:
  // The Llama 2 rule on scores [models][k] (safety first), reported to the observers.
  CandidateChoice Choose(const std::vector<std::vector<float>>& scores, int num_candidates, int segment);

  RewardModel* const safety_;
  RewardModel* const helpfulness_;
  const Tokenizer* const tokenizer_;
  const RewardSelectorOptions options_;
  const std::vector<int32_t> refusal_token_ids_;
  std::vector<RewardObserver*> observers_;
};

}  // namespace llama
