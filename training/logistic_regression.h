// L2-regularised logistic regression (the reward-model head fit on frozen backbone features) and the metrics
// reported for it (accuracy, ROC AUC).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llama {

// log(1 + exp(x)) without overflow, and 1 / (1 + exp(-x)) without overflow.
double Softplus(double x);
double Sigmoid(double x);

struct LogisticRegressionOptions {
  double l2 = 1e-2;            // λ in the objective below; the bias is not regularised
  int max_iterations = 100;    // Newton steps at most
  double tolerance = 1e-10;    // stop when the Newton decrement λ² / 2 falls below this
};

struct LogisticModel {
  std::vector<double> weights;  // [num_features]
  double bias = 0;
  int iterations = 0;           // Newton steps taken
  double objective = 0;         // final value of the objective

  // P(label = 1 | x) = sigmoid(w · x + b).
  double Logit(absl::Span<const float> x) const;
};

// Minimises (1/n) Σ_i log(1 + exp(-y_i (w · x_i + b))) + (λ / 2) ||w||² with y_i ∈ {-1, +1} (label 1 → +1) by
// damped Newton steps (Cholesky of the (d + 1)² Hessian; the objective is strictly convex for λ > 0, so the
// minimiser is unique and Newton converges to it quadratically). features: [n, num_features] row-major.
absl::StatusOr<LogisticModel> FitLogisticRegression(absl::Span<const float> features, int num_features,
                                                    absl::Span<const int> labels,
                                                    const LogisticRegressionOptions& options);

// The intercept alone: argmin_b (1/n) Σ_i log(1 + exp(-y_i (s_i + b))) for fixed scores s [n] (e.g. w · x of a head
// whose w was fitted by another objective) and labels [n] in {0, 1}. Strictly convex in b, with a finite minimiser
// whenever both labels occur (INVALID_ARGUMENT otherwise): shifting every score by one b keeps their order.
absl::StatusOr<double> FitLogisticIntercept(absl::Span<const double> scores, absl::Span<const int> labels);

// Fraction of examples where (score >= threshold) == (label == 1).
double Accuracy(absl::Span<const double> scores, absl::Span<const int> labels, double threshold);
// Area under the ROC curve: the probability that a random positive scores above a random negative, ties counting
// one half (Mann–Whitney U / (n_pos · n_neg)). NaN when one class is absent.
double RocAuc(absl::Span<const double> scores, absl::Span<const int> labels);

}  // namespace llama
