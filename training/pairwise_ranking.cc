#include "training/pairwise_ranking.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "training/logistic_regression.h"
#include "training/newton.h"

namespace llama {
namespace {

struct RankingProblem {
  absl::Span<const float> diffs;    // [n, d]
  absl::Span<const double> margins;  // [n]
  int d = 0;
  int n = 0;
  double l2 = 0;

  double Diff(const std::vector<double>& w, int i) const {
    const float* row = diffs.data() + static_cast<int64_t>(i) * d;
    double z = 0;
    for (int j = 0; j < d; ++j) z += w[j] * row[j];
    return z;
  }
  double Objective(const std::vector<double>& w) const {
    double loss = 0;
    for (int i = 0; i < n; ++i) loss += Softplus(-(Diff(w, i) - margins[i]));
    double reg = 0;
    for (int j = 0; j < d; ++j) reg += w[j] * w[j];
    return loss / n + 0.5 * l2 * reg;
  }
  // Gradient −(1/n) Σ s_i δ_i + λ w and Hessian (1/n) Σ s_i (1 − s_i) δ_i δ_iᵀ + λ I, s_i = σ(m_i − w · δ_i).
  void GradientHessian(const std::vector<double>& w, std::vector<double>* g, std::vector<double>* h) const {
    g->assign(d, 0.0);
    h->assign(static_cast<size_t>(d) * d, 0.0);
    for (int i = 0; i < n; ++i) {
      const float* row = diffs.data() + static_cast<int64_t>(i) * d;
      const double s = Sigmoid(margins[i] - Diff(w, i));
      const double c = s * (1.0 - s);
      for (int a = 0; a < d; ++a) {
        (*g)[a] -= s * row[a];
        double* hrow = h->data() + static_cast<size_t>(a) * d;
        const double ca = c * row[a];
        for (int b = 0; b <= a; ++b) hrow[b] += ca * row[b];
      }
    }
    for (int a = 0; a < d; ++a) {
      (*g)[a] = (*g)[a] / n + l2 * w[a];
      for (int b = 0; b <= a; ++b) (*h)[a * d + b] /= n;
      (*h)[a * d + a] += l2;
    }
    for (int a = 0; a < d; ++a)
      for (int b = a + 1; b < d; ++b) (*h)[a * d + b] = (*h)[b * d + a];
  }
};

}  // namespace

double PairwiseModel::ScoreDiff(absl::Span<const float> delta) const {
  double z = 0;
  for (size_t j = 0; j < weights.size() && j < delta.size(); ++j) z += weights[j] * delta[j];
  return z;
}

absl::StatusOr<PairwiseModel> FitPairwiseRanking(absl::Span<const float> diffs, int num_features,
                                                 absl::Span<const double> margins,
                                                 const PairwiseRankingOptions& options) {
  if (num_features <= 0 || margins.empty() || diffs.size() != margins.size() * num_features) {
    return absl::InvalidArgumentError(absl::StrFormat("pair differences [%d] do not match %d pairs × %d features",
                                                      diffs.size(), margins.size(), num_features));
  }
  if (!(options.l2 > 0)) return absl::InvalidArgumentError("l2 must be > 0 (it makes the optimum unique)");
  for (double m : margins) {
    if (!std::isfinite(m) || m < 0) return absl::InvalidArgumentError("margins must be finite and >= 0");
  }
  const RankingProblem p{diffs, margins, num_features, static_cast<int>(margins.size()), options.l2};
  ConvexObjective objective;
  objective.num_params = num_features;
  objective.value = [&p](const std::vector<double>& w) { return p.Objective(w); };
  objective.gradient_hessian = [&p](const std::vector<double>& w, std::vector<double>* g, std::vector<double>* h) {
    p.GradientHessian(w, g, h);
  };
  ASSIGN_OR_RETURN(NewtonResult result, MinimizeNewton(objective, std::vector<double>(num_features, 0.0),
                                                       NewtonOptions{options.max_iterations, options.tolerance}));
  PairwiseModel model;
  model.weights = std::move(result.theta);
  model.iterations = result.iterations;
  model.objective = result.objective;
  return model;
}

double PairwiseAccuracy(absl::Span<const double> score_diffs) {
  if (score_diffs.empty()) return std::numeric_limits<double>::quiet_NaN();
  double right = 0;
  for (double diff : score_diffs) right += diff > 0 ? 1.0 : diff == 0 ? 0.5 : 0.0;
  return right / score_diffs.size();
}

double PairwiseLoss(absl::Span<const double> score_diffs, absl::Span<const double> margins) {
  if (score_diffs.empty() || margins.size() != score_diffs.size()) return std::numeric_limits<double>::quiet_NaN();
  double loss = 0;
  for (size_t i = 0; i < score_diffs.size(); ++i) loss += Softplus(-(score_diffs[i] - margins[i]));
  return loss / score_diffs.size();
}

}  // namespace llama
