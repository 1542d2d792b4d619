// The paged KV cache is sized by KV heads: a GQA model with G KV heads stores G / n_heads of a multi-head one.
#include <memory>

#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

// 3 layers of 8 heads (head_dim 8): the byte counts below follow from these.
ModelConfig SmallConfig(int kv_heads) {
  return ::llama::testing::TinyConfig(
      {.hidden = 64, .intermediate = 96, .layers = 3, .heads = 8, .kv_heads = kv_heads, .vocab = 50, .context = 32});
}

TEST(KvCacheSpecTest, GqaBytesPerTokenScaleWithKvHeads) {
  CpuBackendOptions options;
  options.num_threads = 1;
  options.block_size = 4;
  options.kv_cache_bytes = 40 * (2 * 3 * 8 * 8 * 4) * 4;  // 40 multi-head blocks of 4 tokens
  auto mha = CpuBackend::Create(MakeRandomWeights(SmallConfig(8), 1), options);
  auto gqa = CpuBackend::Create(MakeRandomWeights(SmallConfig(2), 1), options);
  ASSERT_TRUE(mha.ok()) << mha.status();
  ASSERT_TRUE(gqa.ok()) << gqa.status();
  const KvCacheSpec& m = (*mha)->kv_cache();
  const KvCacheSpec& g = (*gqa)->kv_cache();
  // 2 (K and V) · 3 layers · kv_heads · head_dim 8 · 4 bytes.
  EXPECT_EQ(m.bytes_per_token(), 2 * 3 * 8 * 8 * 4);
  EXPECT_EQ(g.bytes_per_token() * 8, m.bytes_per_token() * 2);
  EXPECT_EQ(g.bytes_per_token(), SmallConfig(2).KvBytesPerToken(4));
  // The same byte budget holds n_heads / G times as many blocks.
  EXPECT_EQ(m.num_blocks, 40);
  EXPECT_EQ(g.num_blocks, 4 * m.num_blocks);
  EXPECT_LE(m.total_bytes(), options.kv_cache_bytes);
}

// A half-precision cache (f16 or bf16) stores 2 bytes per element: half the bytes per token, so the same byte budget
// holds twice the blocks.
TEST(KvCacheSpecTest, HalfDtypesHalveBytesPerTokenAndDoubleTheBlocks) {
  CpuBackendOptions options;
  options.num_threads = 1;
  options.block_size = 4;
  options.kv_cache_bytes = 40 * (2 * 3 * 2 * 8 * 4) * 4;  // 40 fp32 GQA blocks of 4 tokens
  auto f32 = CpuBackend::Create(MakeRandomWeights(SmallConfig(2), 1), options);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ((*f32)->kv_cache().dtype_bytes, 4);
  EXPECT_EQ((*f32)->kv_cache().num_blocks, 40);
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    options.kv_dtype = d;
    auto half = CpuBackend::Create(MakeRandomWeights(SmallConfig(2), 1), options);
    ASSERT_TRUE(half.ok()) << half.status();
    const KvCacheSpec& h = (*half)->kv_cache();
    EXPECT_EQ(h.dtype_bytes, 2) << KvDtypeName(d);
    EXPECT_EQ(h.bytes_per_token(), 2 * 3 * 2 * 8 * 2);  // K and V · 3 layers · 2 KV heads · head_dim 8 · 2 bytes
    EXPECT_EQ(h.bytes_per_token(), SmallConfig(2).KvBytesPerToken(2));
    EXPECT_EQ(h.num_blocks, 80);
    EXPECT_EQ(h.total_bytes(), (*f32)->kv_cache().total_bytes());
    EXPECT_EQ((*half)->kv_dtype(), d);
  }
  // A fixed num_blocks is kept whatever the dtype; only the bytes change.
  options.num_blocks = 10;
  options.kv_dtype = KvDtype::kBf16;
  auto fixed = CpuBackend::Create(MakeRandomWeights(SmallConfig(2), 1), options);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ((*fixed)->kv_cache().num_blocks, 10);
  EXPECT_EQ((*fixed)->kv_cache().total_bytes(), 10 * 4 * (2 * 3 * 2 * 8 * 2));
}

}  // namespace
}  // namespace llama
