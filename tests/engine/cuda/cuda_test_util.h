// Shared helpers of the CUDA tests: a main that exits 77 (CTest: SKIPPED) without a device, random inputs,
// normalised mean squared error, and host <-> device copies in any storage dtype.
//
// Tolerances (normalised MSE = Σ(got - want)² / Σ want², against the fp32 CPU twin on the same inputs):
//   fp32 1e-9  — only summation order differs (TF32 is off);
//   fp16 1e-5  — one rounding to a 11-bit mantissa costs ~1e-7; margin for accumulated roundings;
//   bf16 1e-4  — one rounding to an 8-bit mantissa costs ~5e-6 (2^-18 / 3 per rounded operand).
// A wrong kernel (wrong index, wrong pair, wrong head) gives NMSE of order 1.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <random>
#include <vector>

#include "base/check.h"
#include "engine/cuda/cuda_backend_factory.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/dtype.h"
#include "engine/cuda/tensor_init.cuh"

namespace llama::cuda::testing {

inline double NmseThreshold(DType t) {
  switch (t) {
    case DType::kF32: return 1e-9;
    case DType::kF16: return 1e-5;
    case DType::kBF16: return 1e-4;
  }
  return 0.0;
}

inline double Nmse(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    err += d * d;
    ref += static_cast<double>(want[i]) * want[i];
  }
  if (!std::isfinite(err)) return INFINITY;
  return ref > 0.0 ? err / ref : err;
}

// Normal(mean, stddev) values; never all zero.
inline std::vector<float> RandomVector(size_t n, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Uploads fp32 host data into a fresh device tensor of `dtype`.
inline DeviceBuffer ToDevice(const std::vector<float>& host, DType dtype = DType::kF32) {
  auto staging = DeviceBuffer::Allocate(host.size() * sizeof(float));
  CHECK_OK(staging.status());
  CHECK_EQ(cudaMemcpy(staging->get(), host.data(), host.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  if (dtype == DType::kF32) return std::move(*staging);
  auto out = DeviceBuffer::Allocate(host.size() * DTypeBytes(dtype));
  CHECK_OK(out.status());
  CHECK_OK(ConvertFromF32(staging->as<float>(), host.size(), out->get(), dtype, nullptr));
  CHECK_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return std::move(*out);
}

inline DeviceBuffer ToDeviceInts(const std::vector<int32_t>& host) {
  auto out = DeviceBuffer::Allocate(host.size() * sizeof(int32_t));
  CHECK_OK(out.status());
  CHECK_EQ(cudaMemcpy(out->get(), host.data(), host.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  return std::move(*out);
}

// Reads n elements of a `dtype` device tensor back as fp32.
inline std::vector<float> ToHost(const DeviceBuffer& buf, int64_t n, DType dtype = DType::kF32) {
  std::vector<float> host(n);
  const float* src = buf.as<float>();
  DeviceBuffer widened;
  if (dtype != DType::kF32) {
    widened = std::move(*DeviceBuffer::Allocate(n * 4));
    CHECK_OK(ConvertToF32(buf.get(), dtype, n, widened.as<float>(), nullptr));
    src = widened.as<float>();
  }
  CHECK_EQ(cudaDeviceSynchronize(), cudaSuccess);
  CHECK_EQ(cudaMemcpy(host.data(), src, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

// Rounds host values through `dtype` (upload, convert, read back): the exact inputs a dtype kernel sees.
inline std::vector<float> RoundThrough(const std::vector<float>& host, DType dtype) {
  if (dtype == DType::kF32) return host;
  return ToHost(ToDevice(host, dtype), host.size(), dtype);
}

// Directory of the stories15M checkpoint: $LLAMA_TEST_MODEL_DIR when set (main reads it; the GPU bundle sets it),
// else the repository's models/stories15M.
inline std::string& ModelDir() {
  static std::string dir = std::string(LLAMA_SOURCE_DIR) + "/models/stories15M";
  return dir;
}

}  // namespace llama::cuda::testing

// main() of every CUDA test: exit code 77 without a device, which CTest (SKIP_RETURN_CODE 77) reports as skipped.
#define LLAMA_CUDA_TEST_MAIN()                                                             \
  int main(int argc, char** argv) {                                                       \
    ::testing::InitGoogleTest(&argc, argv);                                               \
    if (const char* dir = std::getenv("LLAMA_TEST_MODEL_DIR")) {                          \
      ::llama::cuda::testing::ModelDir() = dir;                                           \
    }                                                                                     \
    if (::llama::cuda::CudaDeviceCount() == 0) {                                          \
      std::printf("SKIPPED: no CUDA device visible; this test needs a GPU\n");            \
      return 77;                                                                          \
    }                                                                                     \
    return RUN_ALL_TESTS();                                                               \
  }
