#include "training/logistic_regression.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "training/newton.h"

namespace llama {

double Softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

double Sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

namespace {

// The problem with the bias folded in as a last weight: θ = [w; b], x̃ = [x; 1].
struct Problem {
  absl::Span<const float> x;  // [n, d]
  int d = 0;
  int n = 0;
  std::vector<double> y;      // [n] ±1
  double l2 = 0;

  double Margin(const std::vector<double>& theta, int i) const {
    const float* row = x.data() + static_cast<int64_t>(i) * d;
    double z = theta[d];
    for (int j = 0; j < d; ++j) z += theta[j] * row[j];
    return y[i] * z;
  }
  double Objective(const std::vector<double>& theta) const {
    double loss = 0;
    for (int i = 0; i < n; ++i) loss += Softplus(-Margin(theta, i));
    double reg = 0;
    for (int j = 0; j < d; ++j) reg += theta[j] * theta[j];
    return loss / n + 0.5 * l2 * reg;
  }
  // Gradient [d + 1] and Hessian [d + 1, d + 1] (row-major) at theta.
  void GradientHessian(const std::vector<double>& theta, std::vector<double>* g, std::vector<double>* h) const {
    const int m = d + 1;
    g->assign(m, 0.0);
    h->assign(static_cast<size_t>(m) * m, 0.0);
    std::vector<double> xt(m, 1.0);
    for (int i = 0; i < n; ++i) {
      const float* row = x.data() + static_cast<int64_t>(i) * d;
      for (int j = 0; j < d; ++j) xt[j] = row[j];
      const double margin = Margin(theta, i);
      const double s = Sigmoid(-margin);  // = 1 - p(correct)
      const double w = s * (1.0 - s);
      for (int a = 0; a < m; ++a) {
        (*g)[a] -= y[i] * s * xt[a];
        double* hrow = h->data() + static_cast<size_t>(a) * m;
        for (int b = 0; b <= a; ++b) hrow[b] += w * xt[a] * xt[b];
      }
    }
    for (int a = 0; a < m; ++a) {
      (*g)[a] /= n;
      for (int b = 0; b <= a; ++b) (*h)[a * m + b] /= n;
    }
    for (int j = 0; j < d; ++j) {
      (*g)[j] += l2 * theta[j];
      (*h)[j * m + j] += l2;
    }
    for (int a = 0; a < m; ++a)
      for (int b = a + 1; b < m; ++b) (*h)[a * m + b] = (*h)[b * m + a];
  }
};

}  // namespace

double LogisticModel::Logit(absl::Span<const float> x) const {
  double z = bias;
  for (size_t j = 0; j < weights.size() && j < x.size(); ++j) z += weights[j] * x[j];
  return z;
}

absl::StatusOr<LogisticModel> FitLogisticRegression(absl::Span<const float> features, int num_features,
                                                    absl::Span<const int> labels,
                                                    const LogisticRegressionOptions& options) {
  if (num_features <= 0 || labels.empty() || features.size() != labels.size() * num_features) {
    return absl::InvalidArgumentError(absl::StrFormat("features [%d] do not match %d labels × %d features",
                                                      features.size(), labels.size(), num_features));
  }
  if (!(options.l2 > 0)) return absl::InvalidArgumentError("l2 must be > 0 (it makes the optimum unique)");
  Problem p{features, num_features, static_cast<int>(labels.size()), {}, options.l2};
  for (int label : labels) {
    if (label != 0 && label != 1) return absl::InvalidArgumentError("labels must be 0 or 1");
    p.y.push_back(label == 1 ? 1.0 : -1.0);
  }
  ConvexObjective objective;
  objective.num_params = num_features + 1;
  objective.value = [&p](const std::vector<double>& theta) { return p.Objective(theta); };
  objective.gradient_hessian = [&p](const std::vector<double>& theta, std::vector<double>* g,
                                    std::vector<double>* h) { p.GradientHessian(theta, g, h); };
  NewtonOptions newton{options.max_iterations, options.tolerance};
  ASSIGN_OR_RETURN(NewtonResult result,
                   MinimizeNewton(objective, std::vector<double>(num_features + 1, 0.0), newton));
  const std::vector<double>& theta = result.theta;
  LogisticModel model;
  model.iterations = result.iterations;
  model.weights.assign(theta.begin(), theta.begin() + num_features);
  model.bias = theta[num_features];
  model.objective = result.objective;
  return model;
}

absl::StatusOr<double> FitLogisticIntercept(absl::Span<const double> scores, absl::Span<const int> labels) {
  if (scores.size() != labels.size()) return absl::InvalidArgumentError("scores and labels differ in length");
  int positives = 0;
  for (int label : labels) {
    if (label != 0 && label != 1) return absl::InvalidArgumentError("labels must be 0 or 1");
    positives += label;
  }
  if (positives == 0 || positives == static_cast<int>(labels.size())) {
    return absl::InvalidArgumentError("the intercept needs examples of both labels");
  }
  const double n = static_cast<double>(labels.size());
  auto y = [&](size_t i) { return labels[i] == 1 ? 1.0 : -1.0; };
  ConvexObjective f;
  f.num_params = 1;
  f.value = [&](const std::vector<double>& b) {
    double loss = 0;
    for (size_t i = 0; i < scores.size(); ++i) loss += Softplus(-y(i) * (scores[i] + b[0]));
    return loss / n;
  };
  f.gradient_hessian = [&](const std::vector<double>& b, std::vector<double>* g, std::vector<double>* h) {
    g->assign(1, 0.0);
    h->assign(1, 0.0);
    for (size_t i = 0; i < scores.size(); ++i) {
      const double s = Sigmoid(-y(i) * (scores[i] + b[0]));  // 1 − p(correct)
      (*g)[0] -= y(i) * s / n;
      (*h)[0] += s * (1.0 - s) / n;
    }
  };
  // Start where the mean score maps to the base rate, so Newton never begins on a flat tail of the sigmoid.
  double mean_score = 0;
  for (double s : scores) mean_score += s / n;
  const double start = std::log(positives / (n - positives)) - mean_score;
  NewtonOptions newton;
  newton.tolerance = 1e-24;  // one parameter: converging to float64 rounding costs a step or two
  ASSIGN_OR_RETURN(NewtonResult result, MinimizeNewton(f, {start}, newton));
  return result.theta[0];
}

double Accuracy(absl::Span<const double> scores, absl::Span<const int> labels, double threshold) {
  if (scores.empty()) return std::numeric_limits<double>::quiet_NaN();
  int correct = 0;
  for (size_t i = 0; i < scores.size(); ++i) correct += (scores[i] >= threshold) == (labels[i] == 1);
  return static_cast<double>(correct) / scores.size();
}

double RocAuc(absl::Span<const double> scores, absl::Span<const int> labels) {
  // Rank-sum form: sort, give tied scores their average rank, U = Σ ranks of positives - n_pos (n_pos + 1) / 2.
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] < scores[b]; });
  double rank_sum = 0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (i + 1 + j) / 2.0;  // ranks i+1 .. j
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] == 1) {
        rank_sum += avg_rank;
        ++n_pos;
      }
    }
    i = j;
  }
  const int64_t n_neg = static_cast<int64_t>(scores.size()) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (static_cast<double>(n_pos) * n_neg);
}

}  // namespace llama
