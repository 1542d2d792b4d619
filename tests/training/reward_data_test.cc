// Reward data parsing, the fixed held-out rule (against the split the Python generator recorded), and the
// reward-head fit (standardisation folded back into raw-feature weights).
#include "training/reward_data.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "training/logistic_regression.h"
#include "training/reward_head_fit.h"

namespace llama {
namespace {

std::string ReadData() {
  std::ifstream in(std::string(LLAMA_SOURCE_DIR) + "/data/safety/safety_rm.jsonl");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RewardDataTest, ParsesTheSafetyDataAndItsSplitMatchesTheGenerator) {
  const std::string text = ReadData();
  auto examples = ParseRewardDataJsonl(text);
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_GE(examples->size(), 300u);
  std::istringstream lines(text);
  std::string line;
  int i = 0, heldout = 0, safe = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    const RewardExample& ex = (*examples)[i++];
    // make_safety_rm_data.py computed its own FNV-1a split in Python; the C++ rule must agree on every line.
    EXPECT_EQ(IsHeldOut(ex, 0.2), j["split"] == "heldout") << line;
    EXPECT_EQ(ex.label, j["label"] == "safe" ? 1 : 0);
    EXPECT_EQ(ex.response, j["response"].get<std::string>());
    heldout += IsHeldOut(ex, 0.2);
    safe += ex.label;
  }
  EXPECT_EQ(i, static_cast<int>(examples->size()));
  EXPECT_GT(heldout, 40);
  EXPECT_GT(safe, 100);
  EXPECT_LT(safe, static_cast<int>(examples->size()) - 100);
}

TEST(RewardDataTest, Fnv1a64KnownValues) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(RewardDataTest, RejectsMalformedLinesNamingThem) {
  auto bad_label = ParseRewardDataJsonl(
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"hi\"}],\"response\":\"x\",\"label\":\"ok\"}\n");
  EXPECT_EQ(bad_label.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_json = ParseRewardDataJsonl("\n{not json\n");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(std::string(bad_json.status().message()).find("line 2"), std::string::npos);
  auto last_not_user = ParseRewardDataJsonl(
      "{\"dialog\":[{\"role\":\"assistant\",\"content\":\"hi\"}],\"response\":\"x\",\"label\":\"safe\"}");
  EXPECT_FALSE(last_not_user.ok());
}

TEST(RewardHeadFitTest, FoldedHeadEqualsStandardisedFit) {
  // Features on very different scales and offsets; the folded raw-feature head must give the same logits as a
  // logistic regression fit directly on the standardised features.
  std::vector<float> x;
  std::vector<int> y;
  for (int i = 0; i < 40; ++i) {
    const float a = static_cast<float>((i * 37) % 17) - 8.0f, b = static_cast<float>((i * 11) % 13);
    x.push_back(1000.0f + 50.0f * a);
    x.push_back(0.01f * b);
    y.push_back((a + 0.3f * (b - 6.0f) + ((i % 5) == 0 ? 3.0f : 0.0f)) > 0 ? 1 : 0);
  }
  RewardHeadFitOptions options;
  options.l2_grid = {0.05};
  auto head = FitRewardHead(x, 2, y, {}, options);
  ASSERT_TRUE(head.ok()) << head.status();

  double mean[2] = {0, 0}, var[2] = {0, 0};
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 2; ++j) mean[j] += x[2 * i + j] / 40.0;
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 2; ++j) var[j] += (x[2 * i + j] - mean[j]) * (x[2 * i + j] - mean[j]) / 40.0;
  std::vector<float> z;
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 2; ++j) z.push_back(static_cast<float>((x[2 * i + j] - mean[j]) / std::sqrt(var[j])));
  LogisticRegressionOptions lr;
  lr.l2 = 0.05;
  auto direct = FitLogisticRegression(z, 2, y, lr);
  ASSERT_TRUE(direct.ok());
  for (int i = 0; i < 40; ++i) {
    // float32 weights on features near 1000: 1e-3 absolute on logits of order 1-10.
    EXPECT_NEAR(head->Logit(absl::MakeConstSpan(x).subspan(2 * i, 2)),
                direct->Logit(absl::MakeConstSpan(z).subspan(2 * i, 2)), 1e-3) << i;
  }
}

TEST(RewardHeadFitTest, CrossValidationPicksFromTheGrid) {
  std::vector<float> x;
  std::vector<int> y;
  for (int i = 0; i < 50; ++i) {
    x.push_back(static_cast<float>(i % 10) + (i % 3 == 0 ? 2.5f : 0.0f));
    y.push_back(i % 10 >= 5 ? 1 : 0);
  }
  RewardHeadFitOptions options;
  options.l2_grid = {1e-3, 1e-1, 10.0};
  auto head = FitRewardHead(x, 1, y, {}, options);
  ASSERT_TRUE(head.ok());
  EXPECT_TRUE(head->l2 == 1e-3 || head->l2 == 1e-1 || head->l2 == 10.0);
  EXPECT_GT(head->cv_accuracy, 0.6);
  EXPECT_LE(head->cv_accuracy, 1.0);
}

}  // namespace
}  // namespace llama
