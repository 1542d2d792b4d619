// The pairwise ranking fit (training/pairwise_ranking.h) and the pairwise head fit (training/pairwise_head_fit.h)
// against an independent numpy reference (tests/training/testdata/make_pairwise_golden.py), and what the margin
// does to the solution.
#include "training/pairwise_ranking.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "training/pairwise_head_fit.h"

namespace llama {
namespace {

nlohmann::json LoadGolden() {
  std::ifstream in(std::string(LLAMA_SOURCE_DIR) + "/tests/training/testdata/pairwise_golden.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::vector<double> ScoreDiffs(const PairwiseModel& model, const std::vector<float>& diffs, int d) {
  std::vector<double> out;
  for (size_t i = 0; i < diffs.size() / d; ++i) {
    out.push_back(model.ScoreDiff(absl::MakeConstSpan(diffs).subspan(i * d, d)));
  }
  return out;
}

TEST(PairwiseRankingTest, MatchesNumpyNewtonOnFixedProblem) {
  const nlohmann::json g = LoadGolden()["ranking"];
  const std::vector<float> diffs = g["diffs"].get<std::vector<float>>();
  const std::vector<double> margins = g["margins"].get<std::vector<double>>();
  const int d = g["d"].get<int>();
  PairwiseRankingOptions options;
  options.l2 = g["l2"].get<double>();
  auto model = FitPairwiseRanking(diffs, d, margins, options);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto want = g["weights"].get<std::vector<double>>();
  ASSERT_EQ(model->weights.size(), want.size());
  // Both converge (gradient norm < 1e-13 there, decrement < 1e-18 here) to the unique optimum of a strictly convex
  // objective in double precision from the same float32 inputs: agreement to 1e-10 (weights and losses of order 1)
  // leaves room only for summation-order rounding.
  for (size_t j = 0; j < want.size(); ++j) EXPECT_NEAR(model->weights[j], want[j], 1e-10) << j;
  EXPECT_NEAR(model->objective, g["objective"].get<double>(), 1e-12);
  EXPECT_LT(model->iterations, 30);
  const std::vector<double> score_diffs = ScoreDiffs(*model, diffs, d);
  EXPECT_DOUBLE_EQ(PairwiseAccuracy(score_diffs), g["accuracy"].get<double>());
  EXPECT_NEAR(PairwiseLoss(score_diffs, margins), g["loss"].get<double>(), 1e-10);
}

TEST(PairwiseHeadFitTest, MatchesNumpyCrossValidatedHeadWithCalibratedBias) {
  const nlohmann::json g = LoadGolden()["head"];
  const int d = g["d"].get<int>();
  const auto chosen = g["chosen"].get<std::vector<float>>(), rejected = g["rejected"].get<std::vector<float>>();
  const auto margins = g["margins"].get<std::vector<double>>();
  const auto groups = g["groups"].get<std::vector<uint64_t>>();
  const auto calibration = g["calibration"].get<std::vector<float>>();
  const auto labels = g["calibration_labels"].get<std::vector<int>>();
  RewardHeadFitOptions options;
  options.l2_grid = g["l2_grid"].get<std::vector<double>>();
  options.num_folds = g["num_folds"].get<int>();
  auto head = FitPairwiseRewardHead({chosen, rejected, margins, groups, calibration, labels}, d, options);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->l2, g["l2"].get<double>());
  for (const auto& cv : g["cv"]) {
    if (cv["l2"].get<double>() != head->l2) continue;
    // Standardised differences are rounded to float32 on our side (float64 in numpy): 1e-6 on losses of order 1.
    EXPECT_NEAR(head->cv_loss, cv["loss"].get<double>(), 1e-6);
    EXPECT_DOUBLE_EQ(head->cv_accuracy, cv["accuracy"].get<double>());
  }
  const auto want = g["weight"].get<std::vector<double>>(), sigma = g["sigma"].get<std::vector<double>>();
  ASSERT_EQ(head->weight.size(), want.size());
  // Compared in standardised units (w σ, of order 1), where the fit happens: our standardised differences and the
  // stored score.weight are float32 (float64 in numpy), relative rounding 6e-8 each, so 1e-6 absolute.
  for (int j = 0; j < d; ++j) EXPECT_NEAR(head->weight[j] * sigma[j], want[j] * sigma[j], 1e-6) << j;
  // The features sit up to 300 σ from 0, so the bias cancels logit terms of order 500: float32 weights alone move
  // it by ~5e-5. 3e-4 absolute on the bias and on the calibrated logits (of order 1-10).
  EXPECT_NEAR(head->bias, g["bias"].get<double>(), 3e-4);
  for (size_t i = 0; i < labels.size(); ++i) {
    double want_logit = g["bias"].get<double>();
    for (int j = 0; j < d; ++j) want_logit += want[j] * calibration[i * d + j];
    EXPECT_NEAR(head->Logit(absl::MakeConstSpan(calibration).subspan(i * d, d)), want_logit, 3e-4) << i;
  }
}

// One feature, every pair's difference positive: the stationarity condition (1/n) Σ δ_i σ(m − w δ_i) = λ w has a
// left side increasing in m, so the optimal w grows with a uniform margin.
TEST(PairwiseRankingTest, UniformMarginWidensTheScoreGap) {
  const std::vector<float> diffs = {0.5f, 1.0f, 1.5f, 2.0f, -0.3f, 0.8f};
  PairwiseRankingOptions options;
  options.l2 = 0.1;
  double previous_w = 0;
  for (double m : {0.0, 1.0 / 3.0, 1.0, 3.0}) {
    auto model = FitPairwiseRanking(diffs, 1, std::vector<double>(diffs.size(), m), options);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_GT(model->weights[0], previous_w + 0.01) << "margin " << m;
    previous_w = model->weights[0];
  }
}

// Pairs that differ along feature 0 and pairs that differ along feature 1, symmetric: without margins both weights
// are equal; a margin on the feature-1 pairs asks for a wider gap there, so w1 grows past w0.
TEST(PairwiseRankingTest, PerPairMarginMovesWeightToThoseFeatures) {
  std::vector<float> diffs;
  for (int i = 0; i < 6; ++i) {
    const float size = 0.5f + 0.25f * i, wrong = (i == 5) ? -1.0f : 1.0f;  // one misranked pair per half
    diffs.insert(diffs.end(), {wrong * size, 0.0f});
    diffs.insert(diffs.end(), {0.0f, wrong * size});
  }
  std::vector<double> none(12, 0.0), on_feature1(12, 0.0);
  for (size_t i = 1; i < 12; i += 2) on_feature1[i] = 1.0;
  PairwiseRankingOptions options;
  options.l2 = 0.05;
  auto a = FitPairwiseRanking(diffs, 2, none, options), b = FitPairwiseRanking(diffs, 2, on_feature1, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->weights[0], a->weights[1], 1e-9);
  EXPECT_GT(b->weights[1], b->weights[0] + 0.05);
  EXPECT_NEAR(b->weights[0], a->weights[0], 1e-9);  // the feature-0 pairs' problem is untouched (separable terms)
  EXPECT_GT(b->weights[1], a->weights[1]);
}

TEST(PairwiseRankingTest, MetricsCountTiesAsHalfAndUseTheMargin) {
  EXPECT_DOUBLE_EQ(PairwiseAccuracy({1.0, -1.0, 0.0, 2.0}), 0.625);  // (1 + 0 + ½ + 1) / 4
  EXPECT_TRUE(std::isnan(PairwiseAccuracy({})));
  EXPECT_NEAR(PairwiseLoss({0.0}, {0.0}), std::log(2.0), 1e-15);
  EXPECT_NEAR(PairwiseLoss({1.0}, {1.0}), std::log(2.0), 1e-15);  // Δ = m costs what Δ = 0 costs without margin
  EXPECT_NEAR(PairwiseLoss({2.0, 0.0}, {0.0, 1.0}), (std::log1p(std::exp(-2.0)) + std::log1p(std::exp(1.0))) / 2,
              1e-15);
}

TEST(PairwiseRankingTest, RejectsBadInput) {
  PairwiseRankingOptions options;
  EXPECT_EQ(FitPairwiseRanking({1.0f, 2.0f, 3.0f}, 2, {0.0, 0.0}, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FitPairwiseRanking({1.0f}, 1, {-1.0}, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.l2 = 0;
  EXPECT_EQ(FitPairwiseRanking({1.0f}, 1, {0.0}, options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PairwiseHeadFitTest, BiasNeedsBothLabelsAndShapesMustMatch) {
  const std::vector<float> chosen = {1, 2, 3, 4}, rejected = {0, 1, 1, 1};
  const std::vector<double> margins = {0, 0, 0, 0};
  const std::vector<float> cal = {1, 2};
  RewardHeadFitOptions options;
  options.l2_grid = {0.1};
  auto one_label = FitPairwiseRewardHead({chosen, rejected, margins, {}, cal, std::vector<int>{1, 1}}, 1, options);
  EXPECT_EQ(one_label.status().code(), absl::StatusCode::kInvalidArgument);
  auto shape = FitPairwiseRewardHead({chosen, rejected, {0.0, 0.0}, {}, cal, std::vector<int>{1, 0}}, 1, options);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
  auto ok = FitPairwiseRewardHead({chosen, rejected, margins, {}, cal, std::vector<int>{0, 1}}, 1, options);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_GT(ok->weight[0], 0);
  // One unsafe row at x = 1, one safe at x = 2: the likelihood is symmetric about the midpoint, so w·1.5 + b = 0.
  EXPECT_NEAR(ok->Logit(std::vector<float>{1.5f}), 0.0, 1e-6);
}

}  // namespace
}  // namespace llama
