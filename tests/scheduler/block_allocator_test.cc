#include "scheduler/block_allocator.h"
#include "scheduler/block_table.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "engine/backend.h"

namespace llama {
namespace {

class BlockAllocatorTest : public ::testing::Test {
 protected:
  // free + used == total after every test (the destructor also CHECKs that nothing leaked).
  void TearDown() override {
    allocator_.CheckInvariants();
    EXPECT_EQ(allocator_.num_free() + allocator_.num_used(), allocator_.num_total());
  }
  BlockAllocator allocator_{4, /*block_size=*/4};
};

TEST_F(BlockAllocatorTest, ExhaustionIsAValue) {
  std::vector<BlockId> blocks;
  for (int i = 0; i < 4; ++i) {
    std::optional<BlockId> block = allocator_.Allocate();
    ASSERT_TRUE(block.has_value());
    blocks.push_back(*block);
  }
  EXPECT_EQ(allocator_.num_free(), 0);
  EXPECT_EQ(allocator_.Allocate(), std::nullopt);
  allocator_.Release(blocks[2]);
  EXPECT_EQ(allocator_.Allocate(), blocks[2]);
  for (BlockId b : blocks) allocator_.Release(b);
  EXPECT_EQ(allocator_.num_used(), 0);
}

TEST_F(BlockAllocatorTest, RefCountsKeepSharedBlocksUntilTheLastOwnerReleases) {
  const BlockId b = *allocator_.Allocate();
  allocator_.AddRef(b);
  EXPECT_EQ(allocator_.ref_count(b), 2);
  allocator_.Release(b);
  EXPECT_EQ(allocator_.ref_count(b), 1);
  EXPECT_EQ(allocator_.num_used(), 1);
  allocator_.Release(b);
  EXPECT_EQ(allocator_.ref_count(b), 0);
  EXPECT_EQ(allocator_.num_used(), 0);
}

TEST_F(BlockAllocatorTest, DoubleFreeAborts) {
  EXPECT_DEATH(
      {
        BlockAllocator a(2, 4);
        const BlockId b = *a.Allocate();
        a.Release(b);
        a.Release(b);
      },
      "CHECK failed");
}

TEST_F(BlockAllocatorTest, LeakAbortsWhenTheAllocatorDies) {
  EXPECT_DEATH(
      {
        BlockAllocator a(2, 4);
        a.Allocate();
      },
      "CHECK failed");
}

TEST_F(BlockAllocatorTest, TableAppendAllocatesWholeBlocksAndMapsSlots) {
  BlockTable table(&allocator_);
  EXPECT_EQ(table.NumBlocksNeeded(0, 5), 2);
  auto copies = table.Append(0, 5);  // tokens 0..4
  ASSERT_TRUE(copies.has_value());
  EXPECT_TRUE(copies->empty());
  ASSERT_EQ(table.num_blocks(), 2);
  EXPECT_EQ(table.NumBlocksNeeded(5, 3), 0);  // 5..7 fit in the second block
  EXPECT_EQ(table.NumBlocksNeeded(5, 4), 1);
  EXPECT_EQ(KvSlot(table.blocks(), 0, 4), table.blocks()[0] * 4);
  EXPECT_EQ(KvSlot(table.blocks(), 6, 4), table.blocks()[1] * 4 + 2);
}

TEST_F(BlockAllocatorTest, TableAppendIsAllOrNothing) {
  BlockTable a(&allocator_);
  ASSERT_TRUE(a.Append(0, 12).has_value());  // 3 of 4 blocks
  BlockTable b(&allocator_);
  EXPECT_EQ(b.Append(0, 5), std::nullopt);    // needs 2, 1 free
  EXPECT_EQ(b.num_blocks(), 0);
  EXPECT_EQ(allocator_.num_free(), 1);
  EXPECT_TRUE(b.Append(0, 4).has_value());
}

TEST_F(BlockAllocatorTest, TableGivesBlocksBackWhenItDies) {
  {
    BlockTable table(&allocator_);
    ASSERT_TRUE(table.Append(0, 9).has_value());
    EXPECT_EQ(allocator_.num_used(), 3);
    BlockTable moved = std::move(table);
    EXPECT_EQ(allocator_.num_used(), 3);
  }
  EXPECT_EQ(allocator_.num_used(), 0);
}

TEST_F(BlockAllocatorTest, ForkSharesBlocksAndCopiesOnWriteIntoASharedPartialBlock) {
  BlockTable parent(&allocator_);
  ASSERT_TRUE(parent.Append(0, 6).has_value());  // blocks [p0: 0-3, p1: 4-5 of 4]
  const BlockId p0 = parent.blocks()[0];
  const BlockId p1 = parent.blocks()[1];
  BlockTable child = parent.Fork();
  EXPECT_EQ(child.blocks(), parent.blocks());
  EXPECT_EQ(allocator_.ref_count(p0), 2);
  EXPECT_EQ(allocator_.ref_count(p1), 2);
  EXPECT_EQ(allocator_.num_used(), 2);

  // The child writes token 6 into the shared block p1: it needs a private copy first.
  EXPECT_EQ(child.NumBlocksNeeded(6, 1), 1);
  auto copies = child.Append(6, 1);
  ASSERT_TRUE(copies.has_value());
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].first, p1);
  EXPECT_EQ((*copies)[0].second, child.blocks()[1]);
  EXPECT_NE(child.blocks()[1], p1);
  EXPECT_EQ(child.blocks()[0], p0);  // the full block stays shared
  EXPECT_EQ(allocator_.ref_count(p1), 1);
  EXPECT_EQ(allocator_.ref_count(p0), 2);

  // The parent is now p1's only owner: it writes in place.
  EXPECT_EQ(parent.NumBlocksNeeded(6, 1), 0);
  copies = parent.Append(6, 1);
  ASSERT_TRUE(copies.has_value());
  EXPECT_TRUE(copies->empty());
  EXPECT_EQ(allocator_.num_used(), 3);
}

TEST_F(BlockAllocatorTest, AppendAtABlockBoundaryOfASharedTableNeedsNoCopy) {
  BlockTable parent(&allocator_);
  ASSERT_TRUE(parent.Append(0, 4).has_value());
  BlockTable child = parent.Fork();
  auto copies = child.Append(4, 1);  // a fresh block; the shared one is only read
  ASSERT_TRUE(copies.has_value());
  EXPECT_TRUE(copies->empty());
  EXPECT_EQ(allocator_.ref_count(parent.blocks()[0]), 2);
  EXPECT_EQ(allocator_.num_used(), 2);
}

TEST_F(BlockAllocatorTest, CopyOnWriteWhenThePoolIsEmptyIsAValue) {
  BlockTable parent(&allocator_);
  ASSERT_TRUE(parent.Append(0, 14).has_value());  // all 4 blocks, last one partial
  BlockTable child = parent.Fork();
  EXPECT_EQ(child.Append(14, 1), std::nullopt);
  EXPECT_EQ(allocator_.ref_count(child.blocks()[3]), 2);  // unchanged
}

}  // namespace
}  // namespace llama
