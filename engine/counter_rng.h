// The counter-based uniform draw shared by every backend's sampler: one definition, compiled for the host and, in
// engine/cuda, for the device, so the CPU and CUDA backends draw the same u for a sequence's (seed, step).
// Plain integer arithmetic only (no library calls), so it is bit-identical on both.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define LLAMA_HOST_DEVICE __host__ __device__
#else
#define LLAMA_HOST_DEVICE
#endif

namespace llama {

// SplitMix64 finaliser.
LLAMA_HOST_DEVICE inline uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) from (seed, step). Two rounds so that nearby (seed, step) pairs give unrelated values; the top
// 24 bits make a float that is exactly representable and never rounds up to 1.
LLAMA_HOST_DEVICE inline float CounterUniformOf(uint64_t seed, int64_t step) {
  const uint64_t z = SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(step));
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

}  // namespace llama
