// Inputs the CPU kernel tests share: random normal data and the instruction sets this machine can run.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

#include "engine/cpu/cpu_isa.h"

namespace llama {

// n values from N(0, 1).
inline std::vector<float> Random(size_t n, std::mt19937* rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(*rng);
  return v;
}

// Scalar, then AVX2 and AVX-512 where the CPU has them (the paths a bit-equality test compares).
inline std::vector<CpuIsa> SupportedIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuSupports(isa)) isas.push_back(isa);
  }
  return isas;
}

}  // namespace llama
