// Fitting a reward model's scalar head on frozen features: standardise, choose λ by k-fold cross-validation on the
// training set only, fit L2 logistic regression, fold the standardisation back into (score.weight, score.bias).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llama {

struct RewardHeadFitOptions {
  std::vector<double> l2_grid = {1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0};  // λ candidates; one value = no CV
  int num_folds = 5;  // fold of example i: groups[i] % num_folds (i % num_folds without groups)
};

struct RewardHead {
  std::vector<float> weight;  // [dim]  score.weight row, on raw (unstandardised) features
  float bias = 0;             // score.bias
  double l2 = 0;              // the λ chosen
  double cv_accuracy = 0;     // mean held-in-fold accuracy of that λ (pairwise fit: ranking accuracy; NaN without CV)
  double cv_loss = 0;         // pairwise fit: mean held-in-fold ranking loss of that λ (NaN without CV or pointwise)

  double Logit(absl::Span<const float> x) const;  // weight · x + bias
};

// features: [n, dim] row-major; labels: [n] in {0, 1}; groups: [n] or empty. Examples sharing a group (e.g. the
// answers to one ask) share a fold, so cross-validation measures unseen asks as the held-out split does.
absl::StatusOr<RewardHead> FitRewardHead(absl::Span<const float> features, int dim, absl::Span<const int> labels,
                                         absl::Span<const uint64_t> groups, const RewardHeadFitOptions& options);

}  // namespace llama
