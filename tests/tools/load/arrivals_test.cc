// The open loop's arrival process: gamma gaps with mean 1 / rate and shape `burstiness` (vLLM's model).
//
// Statistical checks, fixed seeds: with n gaps the sample mean's standard error is mean / sqrt(B · n) (a gamma gap
// has variance mean² / B), and the bound is 5 standard errors, so a correct process fails with probability
// ~6e-7 per check while a rate off by 5% (n = 40000, B = 1: SE = 0.5%) fails every time. The squared coefficient of
// variation (variance / mean², 1 / B for gamma) is checked within 10%: its relative standard error at n = 40000 is
// 0.8-1.3% for the shapes here (numpy: 100 runs of rng.gamma(B, 1/B, 40000)), so 10% is more than 7 SE.
#include "tools/load/arrivals.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace llama::load {
namespace {

struct Moments {
  double mean = 0;
  double variance = 0;
};

Moments Sample(double rate, double burstiness, uint64_t seed, int n) {
  ArrivalProcess arrivals(rate, burstiness, seed);
  std::vector<double> gaps(n);
  double sum = 0;
  for (double& g : gaps) {
    g = arrivals.NextGapSeconds();
    EXPECT_GE(g, 0.0);
    sum += g;
  }
  Moments m;
  m.mean = sum / n;
  for (double g : gaps) m.variance += (g - m.mean) * (g - m.mean) / (n - 1);
  return m;
}

class ArrivalMomentsTest : public ::testing::TestWithParam<std::pair<double, double>> {};

TEST_P(ArrivalMomentsTest, MeanIsOneOverRateWithinFiveStandardErrors) {
  const auto [rate, burstiness] = GetParam();
  constexpr int kGaps = 40000;
  const Moments m = Sample(rate, burstiness, /*seed=*/7, kGaps);
  const double expected_mean = 1.0 / rate;
  const double standard_error = expected_mean / std::sqrt(burstiness * kGaps);
  EXPECT_NEAR(m.mean, expected_mean, 5 * standard_error) << "rate " << rate << " burstiness " << burstiness;
  const double cv2 = m.variance / (m.mean * m.mean);
  EXPECT_NEAR(cv2, 1.0 / burstiness, 0.10 / burstiness) << "squared coefficient of variation";
}

INSTANTIATE_TEST_SUITE_P(RatesAndShapes, ArrivalMomentsTest,
                         ::testing::Values(std::make_pair(1.0, 1.0), std::make_pair(20.0, 1.0),
                                           std::make_pair(5.0, 0.5), std::make_pair(100.0, 4.0)));

TEST(ArrivalProcessTest, SameSeedSameArrivalsOtherSeedOthers) {
  ArrivalProcess a(10, 1, 42), b(10, 1, 42), c(10, 1, 43);
  bool any_differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.NextGapSeconds();
    EXPECT_EQ(x, b.NextGapSeconds());
    any_differs = any_differs || x != c.NextGapSeconds();
  }
  EXPECT_TRUE(any_differs);
}

TEST(ArrivalProcessTest, BurstierShapeHasMoreVeryShortGaps) {
  // With the same mean, B = 0.25 puts far more gaps below a tenth of the mean than Poisson does
  // (P = 0.436 vs 1 - e^-0.1 = 0.095; the first from a numpy simulation of 1e6 gaps). Bound: 5 SE of a proportion.
  ArrivalProcess poisson(1, 1, 3), bursty(1, 0.25, 3);
  int poisson_short = 0, bursty_short = 0;
  for (int i = 0; i < 10000; ++i) {
    poisson_short += poisson.NextGapSeconds() < 0.1 ? 1 : 0;
    bursty_short += bursty.NextGapSeconds() < 0.1 ? 1 : 0;
  }
  EXPECT_NEAR(poisson_short / 10000.0, 0.095, 0.015);
  EXPECT_GT(bursty_short / 10000.0, 0.35);
}

}  // namespace
}  // namespace llama::load
