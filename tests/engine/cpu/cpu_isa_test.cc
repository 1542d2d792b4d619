// The run-time ISA dispatch (engine/cpu/cpu_isa.h): every ISA build this CPU can run, side by side in one process,
// against the scalar build. The packed matmul is one fused multiply-add chain per output element in k order on
// every path, so its results must be equal bit for bit; the row-major matmul and paged attention reduce in
// ISA-specific trees (8 or 16 lanes, then a horizontal sum), so those agree within fp32 rounding of the sums.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/cpu_isa.h"
#include "engine/cpu/packed_matmul.h"
#include "gtest/gtest.h"
#include "tests/support/cpu_kernel_inputs.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

TEST(CpuIsaTest, NamesRoundTripAndUnknownNamesAreErrors) {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    auto parsed = ParseCpuIsa(CpuIsaName(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
  auto bad = ParseCpuIsa("sse9");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("sse9"), std::string::npos);
}

// Run under LLAMA_CPU_ISA=avx2 and =scalar too (tests/CMakeLists.txt): the forced ISA is the active one.
TEST(CpuIsaTest, ActiveIsaFollowsEnvironmentOrCpuid) {
  EXPECT_TRUE(CpuSupports(DetectCpuIsa()));
  const char* forced = std::getenv("LLAMA_CPU_ISA");
  if (forced == nullptr || *forced == '\0') {
    EXPECT_EQ(ActiveCpuIsa(), DetectCpuIsa());
  } else {
    EXPECT_STREQ(CpuIsaName(ActiveCpuIsa()), forced);
  }
}

// A bad LLAMA_CPU_ISA is a clear error from backend creation, never a crash.
TEST(CpuIsaTest, BackendCreationRejectsAnUnknownForcedIsa) {
  const ModelConfig config = testing::TinyConfig();
  CpuBackendOptions options;
  options.num_threads = 1;
  options.num_blocks = 4;
  ActiveCpuIsa();  // the process's ISA is decided before the variable changes
  const char* saved = std::getenv("LLAMA_CPU_ISA");
  const std::string restore = saved == nullptr ? "" : saved;
  setenv("LLAMA_CPU_ISA", "avx9000", 1);
  auto backend = CpuBackend::Create(MakeRandomWeights(config, 1), options);
  if (saved == nullptr) {
    unsetenv("LLAMA_CPU_ISA");
  } else {
    setenv("LLAMA_CPU_ISA", restore.c_str(), 1);
  }
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(backend.status().message().find("avx9000"), std::string::npos) << backend.status();
  EXPECT_TRUE(CpuBackend::Create(MakeRandomWeights(config, 1), options).ok());
}

TEST(CpuIsaTest, PackedMatMulIsBitIdenticalOnEveryPath) {
  std::mt19937 rng(7);
  for (int n : {1, 3, 4, 9}) {
    for (int in : {1, 17, 64, 130}) {
      for (int out : {5, 16, 64, 100, 200}) {
        const auto x = Random(n * in, &rng), w = Random(out * in, &rng), y0 = Random(n * out, &rng);
        std::vector<float> packed(PackedSize(out, in));
        PackWeights(w.data(), out, in, packed.data());
        for (bool acc : {false, true}) {
          std::vector<float> want = y0;
          KernelsFor(CpuIsa::kScalar)
              .packed_matmul_rows(x.data(), packed.data(), want.data(), n, in, out, 0, out, acc);
          for (CpuIsa isa : SupportedIsas()) {
            std::vector<float> got = y0;
            KernelsFor(isa).packed_matmul_rows(x.data(), packed.data(), got.data(), n, in, out, 0, out, acc);
            EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
                << CpuIsaName(isa) << " n=" << n << " in=" << in << " out=" << out << " acc=" << acc;
          }
        }
      }
    }
  }
}

// Sums of <= 130 unit-variance products: reordering changes them by a few ulp of the partial sums (~1e-5).
TEST(CpuIsaTest, MatMulRowsAgreesWithScalarOnEveryPath) {
  std::mt19937 rng(8);
  for (int n : {1, 5}) {
    for (int in : {1, 15, 16, 33, 130}) {
      for (int out : {1, 7, 13}) {
        const auto x = Random(n * in, &rng), w = Random(out * in, &rng);
        std::vector<float> want(n * out);
        KernelsFor(CpuIsa::kScalar).matmul_rows(x.data(), w.data(), want.data(), n, in, out, 0, out, false);
        for (CpuIsa isa : SupportedIsas()) {
          std::vector<float> got(n * out);
          KernelsFor(isa).matmul_rows(x.data(), w.data(), got.data(), n, in, out, 0, out, false);
          for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_NEAR(got[i], want[i], 2e-5f * std::sqrt(static_cast<float>(in))) << CpuIsaName(isa);
          }
        }
      }
    }
  }
}

// One decode query per head over 37 keys in 4 blocks of 16 (a partial last block), head_dim 72 (a tail past 64).
TEST(CpuIsaTest, PagedAttentionAgreesWithScalarOnEveryPath) {
  const int hd = 72, nh = 4, nkv = 2, bs = 16, num_blocks = 4;
  std::mt19937 rng(9);
  const auto k_cache = Random(num_blocks * nkv * bs * hd, &rng), v_cache = Random(k_cache.size(), &rng);
  const auto q = Random(nh * hd, &rng);
  const std::vector<int32_t> table = {2, 0, 3, 1}, token_seq = {0}, positions = {36};
  PagedAttentionArgs a;
  a.q = q.data();
  a.k_cache = k_cache.data();
  a.v_cache = v_cache.data();
  a.block_tables = table.data();
  a.token_seq = token_seq.data();
  a.positions = positions.data();
  a.num_tokens = 1;
  a.num_heads = nh;
  a.num_kv_heads = nkv;
  a.head_dim = hd;
  a.block_size = bs;
  a.max_blocks_per_seq = num_blocks;
  std::vector<float> want(nh * hd), scratch(64);
  a.out = want.data();
  KernelsFor(CpuIsa::kScalar).paged_attention(a, 0, nh, scratch.data());
  for (CpuIsa isa : SupportedIsas()) {
    std::vector<float> got(nh * hd);
    a.out = got.data();
    KernelsFor(isa).paged_attention(a, 0, nh, scratch.data());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << CpuIsaName(isa) << " " << i;
  }
}

}  // namespace
}  // namespace llama
