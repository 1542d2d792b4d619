// What the CPU kernel and storage-type tests share: random normal data, the instruction sets this machine can run,
// the RMS their tolerances are stated in, and the q8_0 layout's byte count.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
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

// sqrt(mean(v²)).
inline double Rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / v.size());
}

// Bytes of one [rows, cols] matrix in the CPU backend's q8_0 arena, from the layout's definition
// (engine/cpu/packed_q8.h), not from the backend: 36 bytes (32 int8 + an fp32 scale) per 32 values of a row, rows
// padded to a multiple of 16, each matrix at a 64-byte offset.
inline int64_t Q8PackedBytes(int64_t rows, int64_t cols) {
  return ((rows + 15) / 16 * 16 * (cols / 32) * 36 + 63) / 64 * 64;
}

}  // namespace llama
