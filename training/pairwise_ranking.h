// The Llama 2 reward model's binary ranking loss for a linear head on frozen features, and its metrics.
//
// With r(x, y) = w · h(x, y) + b, a pair's score difference is r_chosen − r_rejected = w · δ, δ = h_chosen −
// h_rejected (b cancels), and the loss −log σ(w · δ − m) is logistic regression of "chosen wins" on δ with an
// offset −m and no intercept: convex in w, strictly so with the L2 term.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llama {

struct PairwiseRankingOptions {
  double l2 = 1e-2;          // λ in the objective below
  int max_iterations = 100;  // Newton steps at most
  // Stop when the Newton decrement (an estimate of f − f*) falls below this. Tight: with quadratic convergence the
  // one or two extra steps are cheap next to featurising, and they take w to the optimum within float64 rounding,
  // instead of the ~1e-5 relative error a 1e-10 stop leaves.
  double tolerance = 1e-18;
};

struct PairwiseModel {
  std::vector<double> weights;  // [num_features]
  int iterations = 0;           // Newton steps taken
  double objective = 0;         // final value of the objective

  // w · δ: the score difference r_chosen − r_rejected of a pair with feature difference δ [num_features].
  double ScoreDiff(absl::Span<const float> delta) const;
};

// Minimises (1/n) Σ_i log(1 + exp(−(w · δ_i − m_i))) + (λ / 2) ||w||² by damped Newton steps (Cholesky of the d²
// Hessian; a unique minimiser for λ > 0). diffs: [n, num_features] row-major δ_i; margins: [n] m_i ≥ 0.
absl::StatusOr<PairwiseModel> FitPairwiseRanking(absl::Span<const float> diffs, int num_features,
                                                 absl::Span<const double> margins,
                                                 const PairwiseRankingOptions& options);

// Fraction of pairs ranked right (score difference > 0), ties counting one half. NaN for no pairs.
double PairwiseAccuracy(absl::Span<const double> score_diffs);
// Mean ranking loss (1/n) Σ log(1 + exp(−(Δ_i − m_i))) of score differences Δ [n] with margins m [n]. NaN for none.
double PairwiseLoss(absl::Span<const double> score_diffs, absl::Span<const double> margins);

}  // namespace llama
