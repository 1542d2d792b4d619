// Host-side parts of the CUDA backend that run without a device (so CI exercises them): option validation, dtype
// names, and failing cleanly — a Status, never an abort — when no device is visible.
// Uses gtest_main: it never exits 77, so it runs (and must pass) on every build machine.
#include <gtest/gtest.h>

#include "engine/cuda/cuda_backend_factory.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/dtype.h"
#include "engine/cuda/kv_cache_pool.h"

namespace llama::cuda {
namespace {

TEST(DTypeTest, ParsesTheThreeNamesAndRefusesOthers) {
  EXPECT_EQ(*ParseDType("bf16"), DType::kBF16);
  EXPECT_EQ(*ParseDType("fp16"), DType::kF16);
  EXPECT_EQ(*ParseDType("fp32"), DType::kF32);
  EXPECT_EQ(DTypeBytes(DType::kBF16), 2);
  EXPECT_EQ(DTypeBytes(DType::kF32), 4);
  const auto bad = ParseDType("int8");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--dtype"), std::string::npos);
}

TEST(CudaBackendOptionsTest, NeedsExactlyOneWeightSourceAndValidKvSettings) {
  CudaBackendOptions o;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);  // neither
  o.model_dir = "/m";
  o.dummy_weights = "tiny";
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);  // both
  o.model_dir.clear();
  EXPECT_TRUE(o.Validate().ok());
  o.kv_cache_memory_fraction = 0.0;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.kv_cache_memory_fraction = 0.5;
  o.block_size = 0;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.block_size = 16;
  o.dtype = "fp8";
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NoDeviceTest, CreatingABackendWithoutADeviceIsAStatusNotACrash) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a device is visible; the device tests cover creation";
  CudaBackendOptions o;
  o.dummy_weights = "tiny";
  const auto backend = CreateCudaBackend(o);
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kFailedPrecondition) << backend.status();
  // Allocation without a device fails with a status too.
  const auto buffer = DeviceBuffer::Allocate(1024);
  EXPECT_FALSE(buffer.ok());
  // An empty buffer needs no device.
  EXPECT_TRUE(DeviceBuffer::Allocate(0).ok());
}

}  // namespace
}  // namespace llama::cuda
