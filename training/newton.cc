#include "training/newton.h"

#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "base/check.h"

namespace llama {

bool CholeskySolve(std::vector<double> h, int m, std::vector<double>* g) {
  for (int j = 0; j < m; ++j) {
    double diag = h[j * m + j];
    for (int k = 0; k < j; ++k) diag -= h[j * m + k] * h[j * m + k];
    if (!(diag > 0)) return false;
    const double l_jj = std::sqrt(diag);
    h[j * m + j] = l_jj;
    for (int i = j + 1; i < m; ++i) {
      double v = h[i * m + j];
      for (int k = 0; k < j; ++k) v -= h[i * m + k] * h[j * m + k];
      h[i * m + j] = v / l_jj;
    }
  }
  std::vector<double>& v = *g;
  for (int i = 0; i < m; ++i) {  // L z = g
    for (int k = 0; k < i; ++k) v[i] -= h[i * m + k] * v[k];
    v[i] /= h[i * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {  // Lᵀ s = z
    for (int k = i + 1; k < m; ++k) v[i] -= h[k * m + i] * v[k];
    v[i] /= h[i * m + i];
  }
  return true;
}

absl::StatusOr<NewtonResult> MinimizeNewton(const ConvexObjective& f, std::vector<double> theta0,
                                            const NewtonOptions& options) {
  const int m = f.num_params;
  CHECK(m > 0 && static_cast<int>(theta0.size()) == m);
  NewtonResult result;
  result.theta = std::move(theta0);
  std::vector<double>& theta = result.theta;
  double objective = f.value(theta);
  std::vector<double> g, h;
  for (int it = 0; it < options.max_iterations; ++it) {
    f.gradient_hessian(theta, &g, &h);
    std::vector<double> step = g;
    if (!CholeskySolve(h, m, &step)) {
      // A direction the data does not constrain (e.g. the unregularised bias when every example is fit perfectly):
      // a tiny ridge keeps Newton going.
      for (int a = 0; a < m; ++a) h[a * m + a] += 1e-12;
      step = g;
      if (!CholeskySolve(h, m, &step)) return absl::InternalError("Newton Hessian not positive definite");
    }
    const double decrement = std::inner_product(g.begin(), g.end(), step.begin(), 0.0);  // gᵀ H⁻¹ g
    result.iterations = it + 1;
    if (decrement / 2 < options.tolerance) break;
    double t = 1.0;
    std::vector<double> next(m);
    for (int tries = 0; tries < 50; ++tries, t *= 0.5) {
      for (int a = 0; a < m; ++a) next[a] = theta[a] - t * step[a];
      const double value = f.value(next);
      if (value <= objective - 0.25 * t * decrement) {
        objective = value;
        break;
      }
    }
    theta = next;
  }
  result.objective = f.value(theta);
  return result;
}

}  // namespace llama
