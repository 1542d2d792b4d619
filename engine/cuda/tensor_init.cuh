// Fills device tensors: converting uploaded fp32 data into the storage dtype, and random values generated on the
// device itself (dummy weights for benchmarks never touch host memory).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

// out[i] = (dtype) in[i] for i < n. in: fp32 [n] (device); out: [n] in dtype.
absl::Status ConvertFromF32(const float* in, int64_t n, void* out, DType dtype, cudaStream_t stream);

// out[i] = (float) in[i] for i < n: reads a dtype tensor back as fp32 (tests, debugging).
absl::Status ConvertToF32(const void* in, DType dtype, int64_t n, float* out, cudaStream_t stream);

// out[i] = center + uniform(-half_width, half_width), drawn from a counter hash of (seed, i): deterministic and
// independent of launch shape. A uniform of half-width s·√3 has standard deviation s.
absl::Status FillUniform(void* out, DType dtype, int64_t n, float center, float half_width, uint64_t seed,
                         cudaStream_t stream);

}  // namespace llama::cuda
