// KV write and paged GQA attention against their CPU twins: a ragged batch mixing a prefill chunk that crosses a
// block boundary, a full prefill, decode tokens (one at an exact block boundary), non-contiguous block tables,
// GQA group sizes 1, 2, 4 and 8, and every cache dtype. Thresholds: cuda_test_util.h.
#include <algorithm>
#include <numeric>
#include <random>

#include "engine/cpu/paged_attention.h"
#include "engine/cuda/kv_write.cuh"
#include "engine/cuda/paged_attention.cuh"
#include "engine/forward_batch.h"
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

constexpr int kBlockSize = 16;
constexpr int kNumBlocks = 40;
constexpr int kNumHeads = 8;

// The kernels' view of a batch: per token its position, sequence and KV slot; per sequence its block-table row.
struct Batch {
  std::vector<int32_t> positions, token_seq, slots, block_tables;
  int max_blocks = 0;
  int num_tokens() const { return static_cast<int>(positions.size()); }
};

// (context length after the step, new tokens) per sequence; blocks drawn from a shuffled pool.
Batch MakeBatch() {
  const std::vector<std::pair<int, int>> seqs = {{37, 20}, {100, 1}, {5, 5}, {16, 1}};
  std::vector<int32_t> pool(kNumBlocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), std::mt19937(11));
  ForwardBatchBuilder builder(kBlockSize);
  int next = 0;
  for (const auto& [ctx, n] : seqs) {
    const int num_blocks = (ctx + kBlockSize - 1) / kBlockSize;
    builder.AddSequence(std::vector<int32_t>(n, 0), ctx - n, absl::MakeConstSpan(pool).subspan(next, num_blocks));
    next += num_blocks;
  }
  ForwardInput in = std::move(builder).Build();
  Batch b{std::move(in.positions), {}, std::move(in.slot_mapping), std::move(in.block_tables), in.max_blocks_per_seq};
  for (int s = 0; s < in.num_seqs(); ++s) b.token_seq.insert(b.token_seq.end(), in.query_start[s + 1] - in.query_start[s], s);
  return b;
}

// Columns [offset, offset + width) of every row of a [n, stride] matrix.
std::vector<float> Columns(const std::vector<float>& m, int n, int stride, int offset, int width) {
  std::vector<float> out;
  for (int t = 0; t < n; ++t) out.insert(out.end(), m.begin() + t * stride + offset, m.begin() + t * stride + offset + width);
  return out;
}

class AttentionTest : public ::testing::TestWithParam<std::tuple<DType, int, int>> {};

INSTANTIATE_TEST_SUITE_P(
    DTypesGroupsHeadDims, AttentionTest,
    ::testing::Combine(::testing::Values(DType::kF32, DType::kF16, DType::kBF16), ::testing::Values(1, 2, 4, 8),
                       ::testing::Values(48, 128)),
    [](const auto& info) {
      return DTypeName(std::get<0>(info.param)) + "_group" + std::to_string(std::get<1>(info.param)) + "_hd" +
             std::to_string(std::get<2>(info.param));
    });

TEST_P(AttentionTest, KvWriteAndPagedAttentionMatchCpu) {
  const auto [dt, group, head_dim] = GetParam();
  const int num_kv = kNumHeads / group;
  const Batch b = MakeBatch();
  const int n = b.num_tokens();
  const int q_dim = kNumHeads * head_dim, kv_dim = num_kv * head_dim, stride = q_dim + 2 * kv_dim;
  const int64_t cache_elems = int64_t{kNumBlocks} * num_kv * kBlockSize * head_dim;
  const std::vector<float> qkv = RandomVector(n * stride, 21);
  // Earlier tokens' K/V: random history already in the cache, rounded as the cache stores it.
  std::vector<float> k_cache = RoundThrough(RandomVector(cache_elems, 22), dt);
  std::vector<float> v_cache = RoundThrough(RandomVector(cache_elems, 23), dt);
  DeviceBuffer dk = ToDevice(k_cache, dt), dv = ToDevice(v_cache, dt), d_qkv = ToDevice(qkv);
  DeviceBuffer d_pos = ToDeviceInts(b.positions), d_seq = ToDeviceInts(b.token_seq), d_slots = ToDeviceInts(b.slots);
  DeviceBuffer d_tables = ToDeviceInts(b.block_tables);

  KvWriteArgs kw{d_qkv.as<float>(), stride, q_dim, q_dim + kv_dim, d_slots.as<int32_t>(), n, num_kv, head_dim,
                 kBlockSize, dk.get(), dv.get(), dt};
  ASSERT_TRUE(WriteKv(kw, nullptr).ok());
  const std::vector<float> k_new = RoundThrough(Columns(qkv, n, stride, q_dim, kv_dim), dt);
  const std::vector<float> v_new = RoundThrough(Columns(qkv, n, stride, q_dim + kv_dim, kv_dim), dt);
  WriteKvCache(k_new.data(), v_new.data(), b.slots.data(), n, num_kv, head_dim, kBlockSize, 0, num_kv, k_cache.data(),
               v_cache.data());
  // Rounding is deterministic (round to nearest even), so the caches agree exactly.
  ASSERT_EQ(ToHost(dk, cache_elems, dt), k_cache);
  ASSERT_EQ(ToHost(dv, cache_elems, dt), v_cache);

  const std::vector<float> q = Columns(qkv, n, stride, 0, q_dim);
  std::vector<float> want(n * q_dim), scratch(200);
  llama::PagedAttentionArgs ca;
  ca.q = q.data();
  ca.k_cache = k_cache.data();
  ca.v_cache = v_cache.data();
  ca.block_tables = b.block_tables.data();
  ca.token_seq = b.token_seq.data();
  ca.positions = b.positions.data();
  ca.out = want.data();
  ca.num_tokens = n;
  ca.num_heads = kNumHeads;
  ca.num_kv_heads = num_kv;
  ca.head_dim = head_dim;
  ca.block_size = kBlockSize;
  ca.max_blocks_per_seq = b.max_blocks;
  llama::PagedAttention(ca, 0, int64_t{n} * kNumHeads, scratch.data());

  DeviceBuffer out = std::move(*DeviceBuffer::Allocate(n * q_dim * DTypeBytes(dt)));
  PagedAttentionArgs ga;
  ga.q = d_qkv.as<float>();
  ga.q_row_stride = stride;
  ga.k_cache = dk.get();
  ga.v_cache = dv.get();
  ga.kv_dtype = dt;
  ga.positions = d_pos.as<int32_t>();
  ga.token_seq = d_seq.as<int32_t>();
  ga.block_tables = d_tables.as<int32_t>();
  ga.max_blocks_per_seq = b.max_blocks;
  ga.num_tokens = n;
  ga.num_heads = kNumHeads;
  ga.num_kv_heads = num_kv;
  ga.head_dim = head_dim;
  ga.block_size = kBlockSize;
  ga.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  ga.out = out.get();
  ga.out_dtype = dt;
  ASSERT_TRUE(PagedAttention(ga, nullptr).ok());
  EXPECT_LT(Nmse(ToHost(out, n * q_dim, dt), want), NmseThreshold(dt));
}

TEST(AttentionArgsTest, RejectsHeadDimBeyondLimitAndBadGroups) {
  PagedAttentionArgs a;
  a.num_heads = 8;
  a.num_kv_heads = 3;
  a.head_dim = 64;
  EXPECT_EQ(PagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
  a.num_kv_heads = 2;
  a.head_dim = kMaxAttentionHeadDim + 2;
  EXPECT_EQ(PagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llama::cuda

LLAMA_CUDA_TEST_MAIN();
