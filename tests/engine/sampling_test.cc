#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <map>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

using ::testing::HasSubstr;

SamplingParams Params(float temperature, float top_p = 1.0f, int top_k = 0, float penalty = 1.0f) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_p = top_p;
  p.top_k = top_k;
  p.repetition_penalty = penalty;
  return p;
}

int32_t Sample(std::vector<float> logits, const SamplingParams& p, uint64_t seed, int64_t step) {
  return SampleToken(absl::MakeSpan(logits), p, seed, step, {});
}

// Logits whose softmax at temperature 1 is exactly probs.
std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

TEST(SamplingTest, GreedyIsArgmaxWithLowestIdOnTies) {
  EXPECT_EQ(Sample({0.1f, 3.0f, -2.0f, 2.9f}, Params(0.0f), 1, 0), 1);
  EXPECT_EQ(Sample({1.0f, 5.0f, 5.0f, 4.0f}, Params(0.0f), 1, 0), 1);
  EXPECT_EQ(Sample({-1.0f, -1.0f}, Params(0.0f), 7, 3), 0);
}

TEST(SamplingTest, TopKOneIsGreedyAtAnyTemperature) {
  const std::vector<float> logits = {0.3f, 1.2f, 1.1f, -0.5f, 1.19f};
  for (uint64_t seed = 0; seed < 200; ++seed) EXPECT_EQ(Sample(logits, Params(1.5f, 1.0f, 1), seed, 0), 1);
}

TEST(SamplingTest, TopKNeverDrawsOutsideTheTopK) {
  const std::vector<float> logits = {0.0f, 2.0f, 0.5f, 1.9f, 1.8f, 0.1f, 1.0f};  // top 3: ids 1, 3, 4
  std::map<int32_t, int> counts;
  for (uint64_t seed = 0; seed < 3000; ++seed) counts[Sample(logits, Params(1.0f, 1.0f, 3), seed, seed % 7)]++;
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& [id, n] : counts) EXPECT_TRUE(id == 1 || id == 3 || id == 4) << id;
}

// probs 0.5, 0.3, 0.15, 0.05 and top_p 0.75: the nucleus is {0, 1} (0.8 >= 0.75), renormalised to 0.625 / 0.375.
// With N = 20000 draws the frequency's standard deviation is sqrt(0.625 · 0.375 / N) ≈ 0.0034; 0.02 is ~6 sigma.
TEST(SamplingTest, TopPKeepsTheNucleusWithRenormalisedFrequencies) {
  const std::vector<float> logits = LogitsOf({0.15, 0.5, 0.05, 0.3});  // shuffled ids: nucleus = {1, 3}
  const int n = 20000;
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) counts[Sample(logits, Params(1.0f, 0.75f), 42, i)]++;
  EXPECT_EQ(counts[0] + counts[2], 0);
  EXPECT_NEAR(counts[1] / static_cast<double>(n), 0.625, 0.02);
  EXPECT_NEAR(counts[3] / static_cast<double>(n), 0.375, 0.02);
}

// Without truncation the draws follow the softmax (same sigma argument as above: sd <= 0.0036 at N = 20000).
TEST(SamplingTest, PlainTemperatureSamplingFollowsTheSoftmax) {
  const std::vector<double> probs = {0.1, 0.2, 0.3, 0.4};
  const std::vector<float> logits = LogitsOf(probs);
  const int n = 20000;
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) counts[Sample(logits, Params(1.0f), 9, i)]++;
  for (int id = 0; id < 4; ++id) EXPECT_NEAR(counts[id] / static_cast<double>(n), probs[id], 0.02) << id;
}

// The nucleus search sorts only plausible candidates; a direct full-sort nucleus must pick the same token for
// every draw (same probabilities, same tie order, same inverse CDF).
int32_t DirectTopP(const std::vector<float>& logits, float top_p, uint64_t seed, int64_t step) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<std::pair<float, int32_t>> probs;
  for (int i = 0; i < static_cast<int>(logits.size()); ++i) probs.push_back({std::exp(logits[i] - max_logit), i});
  double sum = 0.0;
  for (const auto& p : probs) sum += p.first;
  std::sort(probs.begin(), probs.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  double acc = 0.0;
  size_t n = 0;
  while (n < probs.size()) {
    acc += probs[n++].first;
    if (acc >= top_p * sum) break;
  }
  const double u = CounterUniform(seed, step) * acc;
  double cdf = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cdf += probs[i].first;
    if (u < cdf) return probs[i].second;
  }
  return probs[n - 1].second;
}

TEST(SamplingTest, TopPMatchesAFullSortNucleus) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(2000);
    for (float& l : logits) l = std::round(d(rng) * 4) / 4;  // rounded: many exact ties
    const float top_p = 0.05f + 0.9f * (trial % 19) / 18.0f;
    EXPECT_EQ(Sample(logits, Params(1.0f, top_p), trial, trial * 3), DirectTopP(logits, top_p, trial, trial * 3))
        << "trial " << trial << " top_p " << top_p;
  }
}

TEST(SamplingTest, TopPAlwaysKeepsAtLeastOneToken) {
  const std::vector<float> logits = LogitsOf({0.9, 0.05, 0.05});
  for (int i = 0; i < 500; ++i) EXPECT_EQ(Sample(logits, Params(1.0f, 0.01f), 3, i), 0);
}

TEST(SamplingTest, SameSeedAndStepGiveTheSameTokenDifferentSeedsDiffer) {
  std::vector<float> logits(100, 0.0f);  // uniform over 100 ids
  for (int64_t step = 0; step < 20; ++step) {
    EXPECT_EQ(Sample(logits, Params(1.0f), 1234, step), Sample(logits, Params(1.0f), 1234, step));
  }
  std::set<int32_t> by_seed, by_step;
  for (uint64_t seed = 0; seed < 50; ++seed) by_seed.insert(Sample(logits, Params(1.0f), seed, 5));
  for (int64_t step = 0; step < 50; ++step) by_step.insert(Sample(logits, Params(1.0f), 77, step));
  // 50 uniform draws over 100 ids hit ~40 distinct ids; fewer than 25 means the hash ignores its input.
  EXPECT_GT(by_seed.size(), 25u);
  EXPECT_GT(by_step.size(), 25u);
}

TEST(SamplingTest, CounterUniformIsInUnitIntervalAndUniform) {
  double sum = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float u = CounterUniform(i % 13, i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);  // sd of the mean = sqrt(1/12 / n) ≈ 0.0009
  EXPECT_EQ(CounterUniform(5, 6), CounterUniform(5, 6));
  EXPECT_NE(CounterUniform(5, 6), CounterUniform(6, 5));
}

TEST(SamplingTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  std::vector<float> logits = {2.0f, -1.0f, 1.5f, 0.7f};
  const std::vector<int32_t> seen = {0, 1};
  EXPECT_EQ(SampleToken(absl::MakeSpan(logits), Params(0.0f, 1.0f, 0, 2.0f), 0, 0, seen), 2);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -2.0f, 1.5f, 0.7f}));
  std::vector<float> unpenalised = {2.0f, -1.0f, 1.5f, 0.7f};
  EXPECT_EQ(SampleToken(absl::MakeSpan(unpenalised), Params(0.0f), 0, 0, seen), 0);
}

TEST(SamplingTest, ValidateRejectsOutOfRangeValuesNamingTheField) {
  EXPECT_TRUE(Params(0.0f).Validate().ok());
  EXPECT_TRUE(Params(0.7f, 0.9f, 40, 1.1f).Validate().ok());
  EXPECT_THAT(Params(-0.1f).Validate().message(), HasSubstr("temperature"));
  EXPECT_THAT(Params(NAN).Validate().message(), HasSubstr("temperature"));
  EXPECT_THAT(Params(1.0f, 0.0f).Validate().message(), HasSubstr("top_p"));
  EXPECT_THAT(Params(1.0f, 1.01f).Validate().message(), HasSubstr("top_p"));
  EXPECT_THAT(Params(1.0f, NAN).Validate().message(), HasSubstr("top_p"));
  EXPECT_THAT(Params(1.0f, 1.0f, -1).Validate().message(), HasSubstr("top_k"));
  EXPECT_THAT(Params(1.0f, 1.0f, 0, 0.0f).Validate().message(), HasSubstr("repetition_penalty"));
  EXPECT_THAT(Params(1.0f, 1.0f, 0, INFINITY).Validate().message(), HasSubstr("repetition_penalty"));
  EXPECT_EQ(Params(-1.0f).Validate().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llama
