#include "training/standardizer.h"

#include <cmath>

namespace llama {

Standardizer Standardizer::Fit(absl::Span<const float> x, int dim) {
  const size_t n = x.size() / dim;
  Standardizer s{std::vector<double>(dim, 0.0), std::vector<double>(dim, 0.0)};
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) s.mean[j] += x[i * dim + j];
  for (int j = 0; j < dim; ++j) s.mean[j] /= n;
  for (size_t i = 0; i < n; ++i)
    for (int j = 0; j < dim; ++j) s.std[j] += (x[i * dim + j] - s.mean[j]) * (x[i * dim + j] - s.mean[j]);
  for (int j = 0; j < dim; ++j) {
    s.std[j] = std::sqrt(s.std[j] / n);
    if (!(s.std[j] > 1e-12)) s.std[j] = 1.0;
  }
  return s;
}

std::vector<float> Standardizer::Apply(absl::Span<const float> x, int dim) const {
  std::vector<float> z(x.size());
  for (size_t i = 0; i < x.size(); ++i) z[i] = static_cast<float>((x[i] - mean[i % dim]) / std[i % dim]);
  return z;
}

}  // namespace llama
