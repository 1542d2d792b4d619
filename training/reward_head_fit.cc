#include "training/reward_head_fit.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "base/status_macros.h"
#include "training/logistic_regression.h"
#include "training/standardizer.h"

namespace llama {
namespace {

// Accuracy of λ averaged over folds: fit on the other folds, count correct signs on this one.
absl::StatusOr<double> CrossValidate(absl::Span<const float> z, int dim, absl::Span<const int> labels,
                                     absl::Span<const int> folds, double l2, int num_folds) {
  double correct = 0;
  const size_t n = labels.size();
  for (int f = 0; f < num_folds; ++f) {
    std::vector<float> train_x;
    std::vector<int> train_y;
    for (size_t i = 0; i < n; ++i) {
      if (folds[i] == f) continue;
      train_x.insert(train_x.end(), z.begin() + i * dim, z.begin() + (i + 1) * dim);
      train_y.push_back(labels[i]);
    }
    LogisticRegressionOptions options;
    options.l2 = l2;
    ASSIGN_OR_RETURN(LogisticModel model, FitLogisticRegression(train_x, dim, train_y, options));
    for (size_t i = 0; i < n; ++i) {
      if (folds[i] != f) continue;
      correct += (model.Logit(z.subspan(i * dim, dim)) >= 0) == (labels[i] == 1);
    }
  }
  return correct / n;
}

}  // namespace

double RewardHead::Logit(absl::Span<const float> x) const {
  double z = bias;
  for (size_t j = 0; j < weight.size(); ++j) z += static_cast<double>(weight[j]) * x[j];
  return z;
}

absl::StatusOr<RewardHead> FitRewardHead(absl::Span<const float> features, int dim, absl::Span<const int> labels,
                                         absl::Span<const uint64_t> groups, const RewardHeadFitOptions& options) {
  if (options.l2_grid.empty()) return absl::InvalidArgumentError("empty l2 grid");
  if (dim <= 0 || features.size() != labels.size() * dim) return absl::InvalidArgumentError("features/labels size");
  if (!groups.empty() && groups.size() != labels.size()) return absl::InvalidArgumentError("groups/labels size");
  const Standardizer s = Standardizer::Fit(features, dim);
  const std::vector<float> z = s.Apply(features, dim);  // [n, dim] standardised
  RewardHead head;
  head.l2 = options.l2_grid[0];
  head.cv_accuracy = std::numeric_limits<double>::quiet_NaN();
  head.cv_loss = std::numeric_limits<double>::quiet_NaN();
  if (options.l2_grid.size() > 1) {
    if (options.num_folds < 2 || labels.size() < static_cast<size_t>(options.num_folds)) {
      return absl::InvalidArgumentError("cross-validation needs num_folds >= 2 and at least that many examples");
    }
    std::vector<int> folds(labels.size());  // [n]
    for (size_t i = 0; i < folds.size(); ++i) folds[i] = (groups.empty() ? i : groups[i]) % options.num_folds;
    head.cv_accuracy = -1;
    for (double l2 : options.l2_grid) {
      ASSIGN_OR_RETURN(double accuracy, CrossValidate(z, dim, labels, folds, l2, options.num_folds));
      if (accuracy > head.cv_accuracy) {  // ties keep the smaller λ (the grid is ascending)
        head.cv_accuracy = accuracy;
        head.l2 = l2;
      }
    }
  }
  LogisticRegressionOptions lr;
  lr.l2 = head.l2;
  ASSIGN_OR_RETURN(LogisticModel model, FitLogisticRegression(z, dim, labels, lr));
  // w·((x - μ)/σ) + b = (w/σ)·x + (b - Σ w μ/σ).
  double bias = model.bias;
  head.weight.resize(dim);
  for (int j = 0; j < dim; ++j) {
    head.weight[j] = static_cast<float>(model.weights[j] / s.std[j]);
    bias -= model.weights[j] * s.mean[j] / s.std[j];
  }
  head.bias = static_cast<float>(bias);
  return head;
}

}  // namespace llama
