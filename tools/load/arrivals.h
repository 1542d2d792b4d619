// ArrivalProcess: the open loop's request arrival times. Inter-arrival gaps are gamma-distributed with shape B
// (`--burstiness`) and mean 1 / R (`--request_rate`), so the arrival rate is R whatever B is: B = 1 is a Poisson
// process (exponential gaps), B < 1 burstier (more short gaps and a few long ones; the coefficient of variation of
// a gap is 1 / sqrt(B)), B > 1 more regular. This is the arrival model of vLLM's `bench serve`. Deterministic for a
// given seed. Not thread-safe (one dispatcher draws them).
#pragma once

#include <cstdint>
#include <random>

namespace llama::load {

class ArrivalProcess {
 public:
  // rate_per_s > 0, burstiness > 0 (checked by LoadOptions::Validate; CHECKed here).
  ArrivalProcess(double rate_per_s, double burstiness, uint64_t seed);

  // Seconds from the previous arrival to the next one.
  double NextGapSeconds();

  double mean_gap_s() const { return 1.0 / rate_per_s_; }

 private:
  double rate_per_s_;
  std::mt19937_64 rng_;
  std::gamma_distribution<double> gap_;  // shape B, scale 1 / (R·B): mean 1 / R, variance 1 / (R²·B)
};

}  // namespace llama::load
