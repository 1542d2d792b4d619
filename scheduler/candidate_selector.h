// CandidateSelector: the hook that picks which of a request's k candidates is answered (rejection sampling).
// The engine loop calls Select on its own thread once all k candidates have finished (k > 1, or any k when the
// selector has reward models), before anything of the answer is sent. The default takes candidate 0; the safety
// reward model (scheduler/reward_selector.h, DESIGN §7) plugs in here.
//
// A selector never scores by itself: when it names reward models (RewardModels() not empty) the engine loop turns
// each candidate's RewardInput into prefill-only work of its reward steps (scheduler/reward_queue.h), batched with
// other requests' scoring, and calls Select with the scores once the last one is in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/reward/reward_model.h"
#include "scheduler/request.h"

namespace llama {

struct CandidateOutput {
  int index = 0;
  std::vector<int32_t> token_ids;  // what would be emitted (stop strings applied, EOS dropped)
  std::string text;
  FinishReason reason = FinishReason::kStop;
};

struct CandidateChoice {
  int index = 0;
  float safety_score = -1.0f;       // -1 when no reward model scored it
  float helpfulness_score = -1.0f;  // -1 when no helpfulness reward model scored it
  // No candidate is acceptable: send refusal_text (token ids refusal_token_ids) instead, finish reason kSafety.
  bool refused = false;
  std::string refusal_text;
  std::vector<int32_t> refusal_token_ids;
};

// What the loop's reward steps measured for one request: scores[m][c] = reward model m's score of candidate c;
// latency_s[m] = from queueing to model m's last score. Both empty for a selector without reward models.
struct CandidateScores {
  std::vector<std::vector<float>> scores;
  std::vector<double> latency_s;
  int segment = -1;  // scored streaming: which segment of the answer (0-based); -1 = whole-answer mode
};

class CandidateSelector {
 public:
  virtual ~CandidateSelector() = default;
  // The reward models the loop must run for this selector (empty: Select decides from the outputs alone). Fixed
  // for its lifetime.
  virtual std::vector<RewardModel*> RewardModels() const { return {}; }
  // A selector with reward models judges every answer: then even k = 1 requests are not streamed but wait for
  // their scores. Without (the default selector) k = 1 streams as it generates.
  bool ScoresCandidates() const { return !RewardModels().empty(); }
  // What reward model `model` (an index into RewardModels()) scores for one candidate: its token ids.
  virtual absl::StatusOr<std::vector<int32_t>> RewardInput(int model, const GenerationRequest& request,
                                                           const CandidateOutput& candidate) const {
    return absl::UnimplementedError("this candidate selector has no reward models");
  }
  // The choice among the finished candidates, given the reward steps' scores. An error fails the request (nothing
  // unscored is ever sent).
  virtual absl::StatusOr<CandidateChoice> Select(const GenerationRequest& request,
                                                 absl::Span<const CandidateOutput> candidates,
                                                 const CandidateScores& scores) = 0;
};

// Picks candidate 0 (the server without a reward model, where k is always 1).
class FirstCandidateSelector : public CandidateSelector {
 public:
  absl::StatusOr<CandidateChoice> Select(const GenerationRequest&, absl::Span<const CandidateOutput>,
                                         const CandidateScores&) override {
    return CandidateChoice{};
  }
};

}  // namespace llama
