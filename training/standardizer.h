// Per-feature standardisation z = (x − μ) / σ of frozen reward-model features, so one L2 strength means the same
// for every feature whatever its scale; the fitted head is folded back onto raw features afterwards.
#pragma once

#include <vector>

#include "absl/types/span.h"

namespace llama {

struct Standardizer {
  std::vector<double> mean;  // [dim] μ
  std::vector<double> std;   // [dim] σ (population); constant features get 1 so they stay 0

  // μ and σ of the rows of x [n, dim].
  static Standardizer Fit(absl::Span<const float> x, int dim);
  // (x − μ) / σ of every row of x [n, dim].
  std::vector<float> Apply(absl::Span<const float> x, int dim) const;
};

}  // namespace llama
