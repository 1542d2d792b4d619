// FitLogisticRegression, Accuracy and RocAuc against an independent numpy reference
// (tests/training/testdata/make_logreg_golden.py).
#include "training/logistic_regression.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

nlohmann::json LoadGolden() {
  std::ifstream in(std::string(LLAMA_SOURCE_DIR) + "/tests/training/testdata/logreg_golden.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(LogisticRegressionTest, MatchesNumpyNewtonOnFixedProblem) {
  const nlohmann::json golden = LoadGolden();
  const std::vector<float> x = golden["features"].get<std::vector<float>>();
  const std::vector<int> y = golden["labels"].get<std::vector<int>>();
  LogisticRegressionOptions options;
  options.l2 = golden["l2"].get<double>();
  auto model = FitLogisticRegression(x, golden["d"].get<int>(), y, options);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto want = golden["weights"].get<std::vector<double>>();
  ASSERT_EQ(model->weights.size(), want.size());
  // Both sides converge to the unique optimum of a strictly convex objective in double precision; 1e-6 leaves
  // room for the float32 features and different solvers, far below any meaningful change of the fit.
  for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(model->weights[j], want[j], 1e-6) << j;
  EXPECT_NEAR(model->bias, golden["bias"].get<double>(), 1e-6);
  EXPECT_NEAR(model->objective, golden["objective"].get<double>(), 1e-9);
  EXPECT_LT(model->iterations, 30);

  std::vector<double> scores;
  for (size_t i = 0; i < y.size(); ++i) {
    scores.push_back(model->Logit(absl::MakeConstSpan(x).subspan(i * want.size(), want.size())));
  }
  EXPECT_DOUBLE_EQ(RocAuc(scores, y), golden["auc"].get<double>());
  EXPECT_DOUBLE_EQ(Accuracy(scores, y, 0.0), golden["accuracy"].get<double>());
}

TEST(LogisticRegressionTest, RocAucCountsTiesAsHalf) {
  // Positives {0.9, 0.5}, negatives {0.5, 0.1}: pairs (0.9>0.5) (0.9>0.1) (0.5=0.5 → ½) (0.5>0.1) → 3.5 / 4.
  EXPECT_DOUBLE_EQ(RocAuc({0.9, 0.5, 0.5, 0.1}, {1, 1, 0, 0}), 0.875);
  EXPECT_DOUBLE_EQ(RocAuc({0.1, 0.2}, {0, 1}), 1.0);
  EXPECT_DOUBLE_EQ(RocAuc({0.1, 0.2}, {1, 0}), 0.0);
  EXPECT_TRUE(std::isnan(RocAuc({0.1, 0.2}, {1, 1})));
}

TEST(LogisticRegressionTest, RejectsBadInput) {
  LogisticRegressionOptions options;
  EXPECT_FALSE(FitLogisticRegression({1.0f, 2.0f, 3.0f}, 2, {1, 0}, options).ok());  // size mismatch
  EXPECT_FALSE(FitLogisticRegression({1.0f, 2.0f}, 1, {1, 2}, options).ok());         // label not 0/1
  options.l2 = 0;
  EXPECT_FALSE(FitLogisticRegression({1.0f, 2.0f}, 1, {1, 0}, options).ok());
}

TEST(LogisticRegressionTest, InterceptAloneMatchesTheClosedForm) {
  // Equal scores s: the optimum predicts the base rate, sigmoid(s + b) = 3/4, so b = log 3 − s.
  auto b = FitLogisticIntercept({2.0, 2.0, 2.0, 2.0}, {1, 1, 0, 1});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NEAR(*b, std::log(3.0) - 2.0, 1e-9);
  // Scores far out on the sigmoid's flat tail, not separable: at the optimum the derivative (1/n) Σ (σ(s + b) − y)
  // vanishes.
  const std::vector<double> far = {45.0, 50.0, 52.0, 58.0, 60.0};
  const std::vector<int> far_labels = {0, 0, 1, 0, 1};
  auto far_b = FitLogisticIntercept(far, far_labels);
  ASSERT_TRUE(far_b.ok()) << far_b.status();
  double derivative = 0;
  for (size_t i = 0; i < far.size(); ++i) derivative += (1.0 / (1.0 + std::exp(-(far[i] + *far_b))) - far_labels[i]);
  EXPECT_NEAR(derivative / far.size(), 0.0, 1e-10);
  EXPECT_LT(*far_b, -45.0);
  EXPECT_EQ(FitLogisticIntercept({1.0, 2.0}, {1, 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitLogisticIntercept({1.0, 2.0}, {1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LogisticRegressionTest, SeparableDataStaysFiniteWithL2) {
  LogisticRegressionOptions options;
  options.l2 = 1e-3;
  auto model = FitLogisticRegression({-2.0f, -1.0f, 1.0f, 2.0f}, 1, {0, 0, 1, 1}, options);
  ASSERT_TRUE(model.ok());
  EXPECT_GT(model->weights[0], 0);
  EXPECT_TRUE(std::isfinite(model->weights[0]));
  EXPECT_NEAR(model->bias, 0.0, 1e-9);  // symmetric data
}

}  // namespace
}  // namespace llama
