#include "training/pairwise_head_fit.h"

#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "training/logistic_regression.h"
#include "training/pairwise_ranking.h"
#include "training/standardizer.h"

namespace llama {
namespace {

struct CvResult {
  double loss = 0, accuracy = 0;
};

// Held-in-fold ranking loss and accuracy of λ over all pairs: fit on the other folds, score this one.
absl::StatusOr<CvResult> CrossValidate(absl::Span<const float> diffs, int dim, absl::Span<const double> margins,
                                       absl::Span<const int> folds, double l2, int num_folds) {
  const size_t n = margins.size();
  std::vector<double> held_diffs, held_margins;
  for (int f = 0; f < num_folds; ++f) {
    std::vector<float> train_x;
    std::vector<double> train_m;
    for (size_t i = 0; i < n; ++i) {
      if (folds[i] == f) continue;
      train_x.insert(train_x.end(), diffs.begin() + i * dim, diffs.begin() + (i + 1) * dim);
      train_m.push_back(margins[i]);
    }
    if (train_m.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("cross-validation fold ", f, " holds every pair"));
    }
    PairwiseRankingOptions options;
    options.l2 = l2;
    ASSIGN_OR_RETURN(PairwiseModel model, FitPairwiseRanking(train_x, dim, train_m, options));
    for (size_t i = 0; i < n; ++i) {
      if (folds[i] != f) continue;
      held_diffs.push_back(model.ScoreDiff(diffs.subspan(i * dim, dim)));
      held_margins.push_back(margins[i]);
    }
  }
  return CvResult{PairwiseLoss(held_diffs, held_margins), PairwiseAccuracy(held_diffs)};
}

// λ of the grid with the smallest cross-validated loss (head->l2, cv_loss, cv_accuracy).
absl::Status ChooseL2(absl::Span<const float> diffs, int dim, const PairwiseHeadData& data,
                      const RewardHeadFitOptions& options, RewardHead* head) {
  const size_t n = data.margins.size();
  if (options.num_folds < 2 || n < static_cast<size_t>(options.num_folds)) {
    return absl::InvalidArgumentError("cross-validation needs num_folds >= 2 and at least that many pairs");
  }
  std::vector<int> folds(n);  // [n]
  for (size_t i = 0; i < n; ++i) folds[i] = (data.groups.empty() ? i : data.groups[i]) % options.num_folds;
  head->cv_loss = std::numeric_limits<double>::infinity();
  for (double l2 : options.l2_grid) {
    ASSIGN_OR_RETURN(const CvResult cv, CrossValidate(diffs, dim, data.margins, folds, l2, options.num_folds));
    if (cv.loss < head->cv_loss) {
      head->cv_loss = cv.loss;
      head->cv_accuracy = cv.accuracy;
      head->l2 = l2;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckShapes(const PairwiseHeadData& data, int dim, const RewardHeadFitOptions& options) {
  const size_t n = data.margins.size();
  if (options.l2_grid.empty()) return absl::InvalidArgumentError("empty l2 grid");
  if (dim <= 0 || n == 0 || data.chosen.size() != n * dim || data.rejected.size() != n * dim) {
    return absl::InvalidArgumentError("pairwise fit: chosen/rejected features do not match the pairs");
  }
  if (!data.groups.empty() && data.groups.size() != n) return absl::InvalidArgumentError("groups/pairs size");
  if (data.calibration.size() != data.calibration_labels.size() * dim) {
    return absl::InvalidArgumentError("pairwise fit: calibration features do not match their labels");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RewardHead> FitPairwiseRewardHead(const PairwiseHeadData& data, int dim,
                                                 const RewardHeadFitOptions& options) {
  RETURN_IF_ERROR(CheckShapes(data, dim, options));
  const size_t n = data.margins.size();
  std::vector<float> rows(data.chosen.begin(), data.chosen.end());  // [2n, dim] every answer of every pair
  rows.insert(rows.end(), data.rejected.begin(), data.rejected.end());
  const Standardizer s = Standardizer::Fit(rows, dim);
  std::vector<float> diffs(n * dim);  // [n, dim] standardised chosen − rejected (μ cancels)
  for (size_t i = 0; i < n * dim; ++i) {
    diffs[i] = static_cast<float>((static_cast<double>(data.chosen[i]) - data.rejected[i]) / s.std[i % dim]);
  }

  RewardHead head;
  head.l2 = options.l2_grid[0];
  head.cv_accuracy = head.cv_loss = std::numeric_limits<double>::quiet_NaN();
  if (options.l2_grid.size() > 1) RETURN_IF_ERROR(ChooseL2(diffs, dim, data, options, &head));
  PairwiseRankingOptions ranking;
  ranking.l2 = head.l2;
  ASSIGN_OR_RETURN(const PairwiseModel model, FitPairwiseRanking(diffs, dim, data.margins, ranking));
  head.weight.resize(dim);
  for (int j = 0; j < dim; ++j) head.weight[j] = static_cast<float>(model.weights[j] / s.std[j]);

  // The bias on the served (float) weights: scores w · x of the calibration rows, then b alone.
  std::vector<double> scores;  // [m]
  for (size_t i = 0; i < data.calibration_labels.size(); ++i) {
    scores.push_back(head.Logit(data.calibration.subspan(i * dim, dim)));  // bias still 0
  }
  absl::StatusOr<double> bias = FitLogisticIntercept(scores, data.calibration_labels);
  if (!bias.ok()) return absl::InvalidArgumentError(absl::StrCat("pairwise fit bias: ", bias.status().message()));
  head.bias = static_cast<float>(*bias);
  return head;
}

}  // namespace llama
