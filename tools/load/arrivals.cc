#include "tools/load/arrivals.h"

#include <cmath>

#include "base/check.h"

namespace llama::load {

ArrivalProcess::ArrivalProcess(double rate_per_s, double burstiness, uint64_t seed)
    : rate_per_s_(rate_per_s), rng_(seed), gap_(burstiness, 1.0 / (rate_per_s * burstiness)) {
  CHECK(std::isfinite(rate_per_s) && rate_per_s > 0);
  CHECK(std::isfinite(burstiness) && burstiness > 0);
}

double ArrivalProcess::NextGapSeconds() { return gap_(rng_); }

}  // namespace llama::load
