// ForwardBatchBuilder: every field of a ForwardInput follows from (new tokens, start position, blocks) per sequence;
// what it builds passes ForwardInput::Validate; misuse is a CHECK failure.
#include "engine/forward_batch.h"

#include <vector>

#include "gtest/gtest.h"

namespace llama {
namespace {

using Ids = std::vector<int32_t>;

TEST(KvSlotTest, BlockTimesBlockSizePlusOffset) {
  const Ids blocks = {7, 2, 9};
  EXPECT_EQ(KvSlot(blocks, 0, 4), 28);
  EXPECT_EQ(KvSlot(blocks, 3, 4), 31);
  EXPECT_EQ(KvSlot(blocks, 4, 4), 8);
  EXPECT_EQ(KvSlot(blocks, 10, 4), 38);
}

TEST(ForwardBatchBuilderTest, PrefillChunkAndDecodeWithNonContiguousBlocks) {
  ForwardBatchBuilder batch(4);
  // Sequence 0: tokens 5..7 of its prompt (positions 5, 6, 7), blocks 3 and 0. Sequence 1: a decode at position 9.
  batch.AddSequence({50, 51, 52}, 5, {3, 0});
  batch.AddSequence({60}, 9, {6, 1, 4});
  OutputRow row;
  row.seed = 11;
  batch.AddOutput(row);
  batch.AddBlockCopy(4, 2);
  EXPECT_EQ(batch.num_seqs(), 2);
  EXPECT_EQ(batch.num_tokens(), 4);
  const ForwardInput in = std::move(batch).Build();
  EXPECT_EQ(in.token_ids, (Ids{50, 51, 52, 60}));
  EXPECT_EQ(in.positions, (Ids{5, 6, 7, 9}));
  EXPECT_EQ(in.query_start, (Ids{0, 3, 4}));
  EXPECT_EQ(in.context_lens, (Ids{8, 10}));
  EXPECT_EQ(in.max_blocks_per_seq, 3);
  EXPECT_EQ(in.block_tables, (Ids{3, 0, -1, 6, 1, 4}));
  // Position 5 is in block 1 of sequence 0 (block id 0), offset 1; position 9 in block 2 of sequence 1 (id 4).
  EXPECT_EQ(in.slot_mapping, (Ids{1, 2, 3, 17}));
  ASSERT_EQ(in.outputs.size(), 1u);
  EXPECT_EQ(in.outputs[0].token_index, 3);
  EXPECT_EQ(in.outputs[0].seed, 11u);
  EXPECT_EQ(in.block_copies, (std::vector<std::pair<int32_t, int32_t>>{{4, 2}}));

  ModelConfig config;
  config.vocab_size = 100;
  config.max_position_embeddings = 64;
  KvCacheSpec kv;
  kv.block_size = 4;
  kv.num_blocks = 8;
  EXPECT_TRUE(in.Validate(config, kv).ok()) << in.Validate(config, kv);
}

TEST(ForwardBatchBuilderTest, OutputRowsAtTheLastTokenOrInsideAChunk) {
  ForwardBatchBuilder batch(8);
  batch.AddSequence({1, 2, 3, 4}, 0, {0});
  batch.AddOutputAt(1, {});
  batch.AddOutput({});
  batch.AddOutput({});  // k rows from the same token
  batch.AddSequence({9}, 4, {0});
  batch.AddOutput({});
  const ForwardInput in = std::move(batch).Build();
  ASSERT_EQ(in.outputs.size(), 4u);
  EXPECT_EQ(in.outputs[0].token_index, 1);
  EXPECT_EQ(in.outputs[1].token_index, 3);
  EXPECT_EQ(in.outputs[2].token_index, 3);
  EXPECT_EQ(in.outputs[3].token_index, 4);
}

TEST(ForwardBatchBuilderTest, EmptyBatchIsValid) {
  const ForwardInput in = ForwardBatchBuilder(16).Build();
  EXPECT_EQ(in.num_seqs(), 0);
  EXPECT_EQ(in.num_tokens(), 0);
  EXPECT_TRUE(in.Validate(ModelConfig{}, KvCacheSpec{}).ok());
}

TEST(ForwardBatchBuilderDeathTest, BlocksMustCoverTheContext) {
  ForwardBatchBuilder batch(4);
  EXPECT_DEATH(batch.AddSequence({1, 2}, 3, {0}), "CHECK failed: .* \\(4 vs\\. 5\\)");
}

TEST(ForwardBatchBuilderDeathTest, OutputNeedsATokenOfTheLastSequence) {
  ForwardBatchBuilder batch(4);
  EXPECT_DEATH(batch.AddOutput({}), "CHECK failed");
  batch.AddSequence({1, 2}, 0, {0});
  EXPECT_DEATH(batch.AddOutputAt(2, {}), "CHECK failed");
}

}  // namespace
}  // namespace llama
