// Each CUDA kernel against its CPU twin (engine/cpu) on random inputs, for every storage dtype. The CPU twin gets
// the inputs already rounded through the dtype, so the comparison measures the kernel, not the rounding of its
// inputs; thresholds are in cuda_test_util.h.
#include <algorithm>
#include <numeric>

#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/cuda/embedding.cuh"
#include "engine/cuda/gemm.h"
#include "engine/cuda/rms_norm.cuh"
#include "engine/cuda/rope.cuh"
#include "engine/cuda/swiglu.cuh"
#include "tests/engine/cuda/cuda_test_util.h"

namespace llama::cuda {
namespace {

using testing::Nmse;
using testing::NmseThreshold;
using testing::RandomVector;
using testing::RoundThrough;
using testing::ToDevice;
using testing::ToDeviceInts;
using testing::ToHost;

class DTypeTest : public ::testing::TestWithParam<DType> {};

INSTANTIATE_TEST_SUITE_P(AllDTypes, DTypeTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& info) { return DTypeName(info.param); });

TEST_P(DTypeTest, EmbeddingMatchesRowCopy) {
  const DType dt = GetParam();
  const int vocab = 1000, dim = 288;
  const std::vector<float> table = RoundThrough(RandomVector(vocab * dim, 1), dt);
  const std::vector<int32_t> ids = {5, 999, 0, 5, 421, 17, 3};
  DeviceBuffer d_table = ToDevice(table, dt), d_ids = ToDeviceInts(ids);
  DeviceBuffer out = std::move(*DeviceBuffer::Allocate(ids.size() * dim * 4));
  ASSERT_TRUE(EmbeddingLookup(d_table.get(), dt, d_ids.as<int32_t>(), ids.size(), dim, out.as<float>(), nullptr).ok());
  std::vector<float> want;
  for (int id : ids) want.insert(want.end(), table.begin() + id * dim, table.begin() + (id + 1) * dim);
  EXPECT_EQ(ToHost(out, want.size()), want);  // a pure copy: exact
}

TEST_P(DTypeTest, RmsNormMatchesCpu) {
  const DType dt = GetParam();
  for (int dim : {288, 4096, 5120}) {
    const int rows = 9;
    const std::vector<float> x = RandomVector(rows * dim, 2, 3.0f, 0.5f);
    const std::vector<float> w = RandomVector(dim, 3, 0.2f, 1.0f);
    std::vector<float> want(rows * dim);
    llama::RmsNorm(x.data(), w.data(), rows, dim, 1e-5f, want.data());
    DeviceBuffer dx = ToDevice(x), dw = ToDevice(w);
    DeviceBuffer out = std::move(*DeviceBuffer::Allocate(rows * dim * DTypeBytes(dt)));
    ASSERT_TRUE(RmsNorm(dx.as<float>(), dw.as<float>(), nullptr, rows, dim, 1e-5f, out.get(), dt, nullptr).ok());
    EXPECT_LT(Nmse(ToHost(out, rows * dim, dt), want), NmseThreshold(dt)) << "dim " << dim;

    // Gathered rows (the final norm of the output rows only).
    const std::vector<int32_t> pick = {8, 0, 3};
    DeviceBuffer d_pick = ToDeviceInts(pick);
    ASSERT_TRUE(RmsNorm(dx.as<float>(), dw.as<float>(), d_pick.as<int32_t>(), pick.size(), dim, 1e-5f, out.get(), dt,
                        nullptr).ok());
    std::vector<float> want_pick;
    for (int r : pick) want_pick.insert(want_pick.end(), want.begin() + r * dim, want.begin() + (r + 1) * dim);
    EXPECT_LT(Nmse(ToHost(out, pick.size() * dim, dt), want_pick), NmseThreshold(dt)) << "gathered, dim " << dim;
  }
}

TEST_P(DTypeTest, SiluMulMatchesCpu) {
  const DType dt = GetParam();
  const int n = 5, inter = 11008;
  const std::vector<float> gate_up = RandomVector(n * 2 * inter, 4, 2.0f);
  std::vector<float> want(n * inter);
  for (int t = 0; t < n; ++t) {
    llama::SiluMul(gate_up.data() + t * 2 * inter, gate_up.data() + t * 2 * inter + inter, inter,
                   want.data() + t * inter);
  }
  DeviceBuffer d_in = ToDevice(gate_up);
  DeviceBuffer out = std::move(*DeviceBuffer::Allocate(n * inter * DTypeBytes(dt)));
  ASSERT_TRUE(SiluMul(d_in.as<float>(), n, inter, out.get(), dt, nullptr).ok());
  EXPECT_LT(Nmse(ToHost(out, n * inter, dt), want), NmseThreshold(dt));
}

TEST_P(DTypeTest, GemmMatchesCpuMatMulOverRaggedRowCounts) {
  const DType dt = GetParam();
  auto handle = CublasHandle::Create(nullptr, /*allow_tf32=*/false);
  ASSERT_TRUE(handle.ok()) << handle.status();
  for (const auto& [m, n, k] : std::vector<std::tuple<int, int, int>>{{1, 768, 288}, {7, 864, 288}, {33, 4096, 1024},
                                                                      {64, 1000, 688}}) {
    const std::vector<float> x = RoundThrough(RandomVector(m * k, 5), dt);
    const std::vector<float> w = RoundThrough(RandomVector(n * k, 6, 0.05f), dt);
    const std::vector<float> y0 = RandomVector(m * n, 7);
    DeviceBuffer dx = ToDevice(x, dt), dw = ToDevice(w, dt), dy = ToDevice(y0);
    // Overwrite: y = x · wᵀ.
    std::vector<float> want(m * n);
    MatMul(x.data(), w.data(), want.data(), m, k, n, /*accumulate=*/false, nullptr);
    ASSERT_TRUE(Gemm(*handle, dx.get(), dw.get(), dt, dy.as<float>(), m, n, k, 0.0f).ok());
    // fp32 accumulation of exactly rounded inputs: fp32 tolerance whatever the storage type.
    EXPECT_LT(Nmse(ToHost(dy, m * n), want), NmseThreshold(DType::kF32)) << m << "x" << n << "x" << k;
    // Accumulate: y += x · wᵀ (the residual connections).
    std::vector<float> want_acc = y0;
    MatMul(x.data(), w.data(), want_acc.data(), m, k, n, /*accumulate=*/true, nullptr);
    DeviceBuffer dy2 = ToDevice(y0);
    ASSERT_TRUE(Gemm(*handle, dx.get(), dw.get(), dt, dy2.as<float>(), m, n, k, 1.0f).ok());
    EXPECT_LT(Nmse(ToHost(dy2, m * n), want_acc), NmseThreshold(DType::kF32)) << "accumulate " << m;
  }
}

TEST(RopeTest, MatchesCpuWithAndWithoutLinearScaling) {
  for (float factor : {1.0f, 4.0f}) {
    for (int head_dim : {48, 128}) {
      const int n = 6, num_q = 4, num_kv = 2, stride = (num_q + 2 * num_kv) * head_dim;
      const std::vector<int32_t> positions = {0, 1, 17, 255, 1024, 4095};
      std::vector<float> qkv = RandomVector(n * stride, 8);
      const RopeTable table = BuildRopeTable(4096, head_dim, 10000.0f, factor);
      // The CPU twin rotates [n, heads, head_dim]; the fused row's first num_q + num_kv heads are exactly that
      // with a row stride, so rotate each row on its own.
      std::vector<float> want = qkv;
      for (int t = 0; t < n; ++t) {
        ApplyRope(want.data() + t * stride, positions.data() + t, 1, num_q + num_kv, 0, num_q + num_kv, table);
      }
      DeviceBuffer d_qkv = ToDevice(qkv), d_pos = ToDeviceInts(positions);
      ASSERT_TRUE(llama::cuda::ApplyRope(d_qkv.as<float>(), stride, num_q + num_kv, head_dim, d_pos.as<int32_t>(), n,
                                         10000.0f, factor, nullptr).ok());
      const std::vector<float> got = ToHost(d_qkv, n * stride);
      // Angles up to 4095 rad in fp32: sincosf vs std::sin/cos differ by ~1e-4 absolute at worst.
      EXPECT_LT(Nmse(got, want), 1e-6) << "factor " << factor << " head_dim " << head_dim;
      // V heads untouched.
      for (int t = 0; t < n; ++t) {
        for (int i = (num_q + num_kv) * head_dim; i < stride; ++i) ASSERT_EQ(got[t * stride + i], qkv[t * stride + i]);
      }
    }
  }
}

}  // namespace
}  // namespace llama::cuda

LLAMA_CUDA_TEST_MAIN();
