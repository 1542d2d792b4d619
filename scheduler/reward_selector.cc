#include "scheduler/reward_selector.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace llama {

absl::Status RewardSelectorOptions::Validate() const {
  if (!(safety_threshold >= 0.0f && safety_threshold <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("safety_threshold must be in [0, 1], got ", safety_threshold));
  }
  if (refusal_text.empty()) return absl::InvalidArgumentError("refusal_text must not be empty");
  return absl::OkStatus();
}

std::optional<int> SelectByRewards(absl::Span<const float> safety, absl::Span<const float> helpfulness,
                                   float safety_threshold) {
  std::optional<int> best;
  for (int i = 0; i < static_cast<int>(safety.size()); ++i) {
    if (!(safety[i] >= safety_threshold)) continue;  // NaN never passes
    const float key = helpfulness.empty() ? safety[i] : helpfulness[i];
    const float best_key = best ? (helpfulness.empty() ? safety[*best] : helpfulness[*best]) : 0.0f;
    if (!best || key > best_key) best = i;
  }
  return best;
}

RewardSelector::RewardSelector(RewardModel* safety, RewardModel* helpfulness, const Tokenizer* tokenizer,
                               RewardSelectorOptions options)
    : safety_(safety),
      helpfulness_(helpfulness),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      refusal_token_ids_(tokenizer->Encode(options_.refusal_text)) {
  CHECK(safety_ != nullptr);
}

void RewardSelector::AddObserver(RewardObserver* observer) { observers_.push_back(observer); }

std::vector<RewardModel*> RewardSelector::RewardModels() const {
  std::vector<RewardModel*> models = {safety_};
  if (helpfulness_ != nullptr) models.push_back(helpfulness_);
  return models;
}

absl::StatusOr<std::vector<int32_t>> RewardSelector::RewardInput(int model, const GenerationRequest& request,
                                                                 const CandidateOutput& candidate) const {
  const int max_tokens = RewardModels().at(model)->max_tokens();
  ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                   AppendRewardResponse(*tokenizer_, request.prompt_tokens, candidate.text, 0));
  if (static_cast<int>(ids.size()) > max_tokens) {
    // Re-encoding made prompt + answer longer than the reward model's context: keep BOS and the newest tokens, so
    // every token of the answer is still scored (only the oldest dialog context is lost).
    ids.erase(ids.begin() + 1, ids.begin() + 1 + (ids.size() - max_tokens));
  }
  return ids;
}

absl::StatusOr<CandidateChoice> RewardSelector::Select(const GenerationRequest& request,
                                                       absl::Span<const CandidateOutput> candidates,
                                                       const CandidateScores& scores) {
  const std::vector<RewardModel*> models = RewardModels();
  if (candidates.empty()) return absl::InternalError("no candidates to select from");
  if (scores.scores.size() != models.size() || scores.latency_s.size() != models.size()) {
    return absl::InternalError(absl::StrCat("expected scores of ", models.size(), " reward models, got ",
                                            scores.scores.size()));
  }
  for (size_t m = 0; m < models.size(); ++m) {
    if (scores.scores[m].size() != candidates.size()) {
      return absl::InternalError(absl::StrCat("reward model '", models[m]->name(), "' scored ",
                                              scores.scores[m].size(), " of ", candidates.size(), " candidates"));
    }
    for (RewardObserver* o : observers_) o->OnScored(models[m]->name(), scores.scores[m], scores.latency_s[m]);
  }
  return Choose(scores.scores, static_cast<int>(candidates.size()), scores.segment);
}

CandidateChoice RewardSelector::Choose(const std::vector<std::vector<float>>& scores, int num_candidates,
                                       int segment) {
  const std::vector<float>& safety = scores[0];
  const std::vector<float> helpfulness = scores.size() > 1 ? scores[1] : std::vector<float>();
  const std::optional<int> chosen = SelectByRewards(safety, helpfulness, options_.safety_threshold);
  const float reported = chosen ? safety[*chosen] : *std::max_element(safety.begin(), safety.end());
  for (RewardObserver* o : observers_) {
    if (segment <= 0) o->OnSelected(num_candidates, !chosen.has_value());
    if (segment >= 0) o->OnSegmentChosen(segment, reported, !chosen.has_value());
  }
  CandidateChoice choice;
  if (chosen) {
    choice.index = *chosen;
    choice.safety_score = safety[*chosen];
    if (!helpfulness.empty()) choice.helpfulness_score = helpfulness[*chosen];
    return choice;
  }
  // Refusal: report the safest candidate's scores (all are below the threshold).
  const int safest = static_cast<int>(std::max_element(safety.begin(), safety.end()) - safety.begin());
  choice.index = safest;
  choice.safety_score = safety[safest];
  if (!helpfulness.empty()) choice.helpfulness_score = helpfulness[safest];
  choice.refused = true;
  choice.refusal_text = options_.refusal_text;
  choice.refusal_token_ids = refusal_token_ids_;
  return choice;
}

}  // namespace llama
