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

}  // namespace
}  // namespace llama
