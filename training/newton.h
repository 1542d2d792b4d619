// Damped Newton minimisation of a smooth, strictly convex objective: the solver under both reward-head fits
// (pointwise logistic regression, pairwise ranking). Small dense problems only: the Hessian is [m, m] and is solved
// by Cholesky each step.
#pragma once

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace llama {

struct NewtonOptions {
  int max_iterations = 100;  // Newton steps at most
  double tolerance = 1e-10;  // stop when the Newton decrement gᵀH⁻¹g / 2 falls below this
};

struct ConvexObjective {
  int num_params = 0;  // m
  // f(θ), θ: [m].
  std::function<double(const std::vector<double>& theta)> value;
  // ∇f(θ) [m] and ∇²f(θ) [m, m] row-major, both overwritten.
  std::function<void(const std::vector<double>& theta, std::vector<double>* gradient, std::vector<double>* hessian)>
      gradient_hessian;
};

struct NewtonResult {
  std::vector<double> theta;  // [m] the minimiser found
  int iterations = 0;         // Newton steps taken (the last one may be the converged check alone)
  double objective = 0;       // f(theta)
};

// From theta0, Newton steps with a backtracking (Armijo) line search until the decrement is below tolerance. For a
// strictly convex f the minimiser is unique and the iteration converges to it quadratically near the end.
// INTERNAL when the Hessian is not positive definite even after a 1e-12 ridge.
absl::StatusOr<NewtonResult> MinimizeNewton(const ConvexObjective& f, std::vector<double> theta0,
                                            const NewtonOptions& options);

// Solves H s = g in place (g becomes s) for symmetric positive definite H [m, m] by Cholesky. False if H is not SPD.
bool CholeskySolve(std::vector<double> h, int m, std::vector<double>* g);

}  // namespace llama
