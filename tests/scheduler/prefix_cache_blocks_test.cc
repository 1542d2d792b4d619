// The prefix cache of BlockAllocator and BlockTable: registered blocks outlive their owners as cached blocks, are
// matched again, evicted in LRU order only when no free block is left (never a used one), verified by token ids
// and parent on every match (tiny keys force collisions), deduplicated on registration, and copied before a
// write. free + cached + used == total after every test.
#include <gtest/gtest.h>

#include <numeric>
#include <optional>
#include <vector>

#include "scheduler/block_allocator.h"
#include "scheduler/block_hash.h"
#include "scheduler/block_table.h"

namespace llama {
namespace {

constexpr int kBlockSize = 4;
constexpr BlockHash kRoot = 0x5eed;

// A sequence's tokens and the keys of its full blocks.
struct Tokens {
  std::vector<int32_t> ids;
  std::vector<BlockHash> hashes;
};

Tokens MakeTokens(std::vector<int32_t> ids) {
  Tokens t{std::move(ids), {}};
  ExtendBlockHashes(kRoot, t.ids, kBlockSize, &t.hashes);
  return t;
}

Tokens Iota(int n, int32_t first) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return MakeTokens(std::move(ids));
}

class PrefixCacheBlocksTest : public ::testing::Test {
 protected:
  void Make(int num_blocks, int index_bits = 64) {
    allocator_.emplace(num_blocks, kBlockSize, PrefixCacheOptions{true, kRoot, index_bits});
  }
  void TearDown() override {
    allocator_->CheckInvariants();
    EXPECT_EQ(allocator_->num_free() + allocator_->num_cached() + allocator_->num_used(), allocator_->num_total());
  }
  // A table holding t's tokens with every full block computed and registered.
  BlockTable Computed(const Tokens& t) {
    BlockTable table(&*allocator_);
    EXPECT_TRUE(table.Append(0, static_cast<int>(t.ids.size())).has_value());
    table.CacheFullBlocks(t.ids, t.hashes, static_cast<int>(t.ids.size()));
    return table;
  }
  PrefixMatch Match(const Tokens& t) const { return allocator_->Match(t.ids, t.hashes); }

  std::optional<BlockAllocator> allocator_;
};

TEST_F(PrefixCacheBlocksTest, FullComputedBlocksOutliveTheirTableAndAreMatchedAgain) {
  Make(4);
  const Tokens t = Iota(10, 100);  // 2 full blocks + 2 tokens
  std::vector<BlockId> blocks;
  {
    BlockTable table = Computed(t);
    EXPECT_EQ(table.num_registered_blocks(), 2);
    blocks = table.blocks();
  }
  EXPECT_EQ(allocator_->num_used(), 0);
  EXPECT_EQ(allocator_->num_cached(), 2);  // the partial block went back free
  EXPECT_EQ(allocator_->num_free(), 2);
  EXPECT_TRUE(allocator_->CanAllocate(4));  // cached blocks are available

  PrefixMatch match = Match(t);
  ASSERT_EQ(match.num_blocks(), 2);
  EXPECT_EQ(match.blocks, std::vector<BlockId>(blocks.begin(), blocks.begin() + 2));
  EXPECT_EQ(match.num_evictable, 2);
  BlockTable again(&*allocator_);
  again.AdoptPrefix(match);
  EXPECT_EQ(allocator_->num_cached(), 0);
  EXPECT_EQ(allocator_->num_used(), 2);
  EXPECT_EQ(allocator_->ref_count(blocks[0]), 1);
  EXPECT_EQ(Match(t).num_evictable, 0);  // held now: matching it takes nothing from the pool
}

TEST_F(PrefixCacheBlocksTest, MatchStopsAtTheFirstBlockThatDiffersAndAtADifferentParent) {
  Make(8);
  const Tokens t = Iota(12, 100);
  BlockTable held = Computed(t);
  Tokens second_differs = t;
  second_differs.ids[5] = 1;
  second_differs = MakeTokens(second_differs.ids);
  EXPECT_EQ(Match(second_differs).num_blocks(), 1);
  // Same blocks 1 and 2, different block 0: the chain starts elsewhere, nothing matches.
  Tokens first_differs = t;
  first_differs.ids[0] = 1;
  first_differs = MakeTokens(first_differs.ids);
  EXPECT_EQ(Match(first_differs).num_blocks(), 0);
  EXPECT_EQ(Match(Iota(12, 100)).num_blocks(), 3);
  EXPECT_EQ(Match(Iota(7, 100)).num_blocks(), 1);  // only full blocks are matched
}

TEST_F(PrefixCacheBlocksTest, EvictionTakesTheOldestCachedBlockOnlyWhenNoFreeBlockIsLeft) {
  Make(4);
  const Tokens a = Iota(4, 100), b = Iota(4, 200), c = Iota(4, 300);
  { BlockTable t = Computed(a); }  // cached first: the oldest
  { BlockTable t = Computed(b); }
  BlockTable in_use = Computed(c);  // registered and held: never evicted
  ASSERT_EQ(allocator_->num_cached(), 2);
  ASSERT_EQ(allocator_->num_free(), 1);

  const BlockId fresh = *allocator_->Allocate();  // the free block first
  EXPECT_EQ(allocator_->num_evictions(), 0);
  EXPECT_EQ(Match(a).num_blocks(), 1);
  EXPECT_EQ(Match(b).num_blocks(), 1);
  const BlockId evicted_a = *allocator_->Allocate();  // no free block left: a, the least recently used, goes
  EXPECT_EQ(allocator_->num_evictions(), 1);
  EXPECT_EQ(Match(a).num_blocks(), 0);
  EXPECT_EQ(Match(b).num_blocks(), 1);
  const BlockId evicted_b = *allocator_->Allocate();
  EXPECT_EQ(Match(b).num_blocks(), 0);
  EXPECT_EQ(allocator_->Allocate(), std::nullopt);  // only the used (registered) block is left
  EXPECT_EQ(Match(c).num_blocks(), 1);
  for (BlockId block : {fresh, evicted_a, evicted_b}) allocator_->Release(block);
  EXPECT_EQ(allocator_->num_free(), 3);  // unregistered when evicted: they come back free
}

TEST_F(PrefixCacheBlocksTest, AMatchedBlockBecomesTheMostRecentlyUsed) {
  Make(3);
  const Tokens a = Iota(4, 100), b = Iota(4, 200);
  { BlockTable t = Computed(a); }
  { BlockTable t = Computed(b); }
  { BlockTable reuse(&*allocator_); reuse.AdoptPrefix(Match(a)); }  // a is used again, then released: newest
  const BlockId x = *allocator_->Allocate();  // the free one
  const BlockId y = *allocator_->Allocate();  // evicts b, now the oldest
  EXPECT_EQ(Match(a).num_blocks(), 1);
  EXPECT_EQ(Match(b).num_blocks(), 0);
  allocator_->Release(x);
  allocator_->Release(y);
}

TEST_F(PrefixCacheBlocksTest, ATableReleasesItsTailFirstSoItsHeadStaysCachedLonger) {
  Make(4);
  const Tokens t = Iota(12, 100);
  { BlockTable table = Computed(t); }  // 3 cached blocks, 1 free
  const BlockId free_block = *allocator_->Allocate();
  const BlockId evicted = *allocator_->Allocate();  // the sequence's last block
  EXPECT_EQ(Match(t).num_blocks(), 2);
  allocator_->Release(free_block);
  allocator_->Release(evicted);
}

TEST_F(PrefixCacheBlocksTest, CollidingKeysNeverMatchOtherTokens) {
  // One index bit: every key lands in one of two buckets, so nearly every lookup meets blocks of other tokens.
  Make(32, /*index_bits=*/1);
  std::vector<Tokens> seqs;
  std::vector<BlockTable> held;
  for (int i = 0; i < 8; ++i) {
    seqs.push_back(Iota(8, 100 * (i + 1)));
    held.push_back(Computed(seqs.back()));
  }
  // Same second block after a different first block: the lookup of block 1 finds the other chain's block 1 in
  // its bucket (same tokens), which its parent rules out.
  Tokens same_tail = seqs[0];
  same_tail.ids[0] = 1;
  same_tail = MakeTokens(same_tail.ids);
  for (int i = 0; i < 8; ++i) {
    const PrefixMatch m = Match(seqs[i]);
    ASSERT_EQ(m.num_blocks(), 2) << i;
    EXPECT_EQ(m.blocks, std::vector<BlockId>(held[i].blocks().begin(), held[i].blocks().begin() + 2)) << i;
  }
  EXPECT_EQ(Match(same_tail).num_blocks(), 0);
  EXPECT_EQ(Match(Iota(8, 5000)).num_blocks(), 0);
  BlockTable tail_owner = Computed(same_tail);
  EXPECT_EQ(Match(same_tail).blocks, tail_owner.blocks());
  EXPECT_EQ(Match(seqs[0]).blocks, held[0].blocks());
}

TEST_F(PrefixCacheBlocksTest, AnEvictedParentReusedForOtherTokensDoesNotVouchForItsOldChild) {
  // Parent identity is the registration serial, not the block id: block ids are reused after eviction.
  Make(3, /*index_bits=*/1);
  const Tokens ab = Iota(8, 100);  // blocks A (100..103), B (104..107)
  BlockId block_a, block_b;
  {
    BlockTable t = Computed(ab);
    block_a = t.blocks()[0];
    block_b = t.blocks()[1];
  }
  allocator_->Acquire(block_b);  // B stays (held); A is the only cached block
  const BlockId spare = *allocator_->Allocate();  // the free block
  ASSERT_EQ(allocator_->Allocate(), block_a);     // evicts A
  // A's id now holds other tokens, registered as the first block of another chain whose block 1 has B's tokens
  // and a key in B's bucket (chosen so): only the parent check can refuse B.
  Tokens other;
  for (int32_t first = 900; other.hashes.empty() || (other.hashes[1] & 1) != (ab.hashes[1] & 1); ++first) {
    other = MakeTokens({first, 901, 902, 903, 104, 105, 106, 107});
  }
  EXPECT_EQ(allocator_->Register(block_a, -1, other.hashes[0], absl::MakeConstSpan(other.ids).subspan(0, 4)),
            block_a);
  const PrefixMatch m = Match(other);
  ASSERT_EQ(m.num_blocks(), 1);
  EXPECT_EQ(m.blocks[0], block_a);
  EXPECT_EQ(Match(ab).num_blocks(), 0);  // and ab's first block is gone
  allocator_->Release(block_a);
  allocator_->Release(block_b);
  allocator_->Release(spare);
}

TEST_F(PrefixCacheBlocksTest, RegisteringAnEqualBlockKeepsTheRegisteredOne) {
  Make(8);
  const Tokens t = Iota(8, 100);
  BlockTable first = Computed(t);
  BlockTable second = Computed(t);  // computed again (two sequences admitted before either was cached)
  EXPECT_EQ(second.blocks(), first.blocks());
  EXPECT_EQ(allocator_->ref_count(first.blocks()[0]), 2);
  EXPECT_EQ(allocator_->num_used(), 2);  // the duplicates went back free
}

TEST_F(PrefixCacheBlocksTest, WritingIntoAMatchedLastBlockCopiesItAndTheCopyIsSwappedBack) {
  // A sequence matched whole computes its last token again (its logits are needed) without writing the cached block.
  Make(4);
  const Tokens t = Iota(8, 100);
  BlockId cached_last;
  {
    BlockTable table = Computed(t);
    cached_last = table.blocks()[1];
  }
  BlockTable table(&*allocator_);
  table.AdoptPrefix(Match(t));
  EXPECT_EQ(table.NumBlocksNeeded(7, 1), 1);  // the copy
  std::optional<std::vector<BlockCopy>> copies = table.Append(7, 1);
  ASSERT_TRUE(copies.has_value());
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].first, cached_last);
  EXPECT_EQ((*copies)[0].second, table.blocks()[1]);
  EXPECT_EQ(allocator_->num_cached(), 1);  // the original is still cached, untouched
  EXPECT_EQ(table.num_registered_blocks(), 1);
  table.CacheFullBlocks(t.ids, t.hashes, 8);  // token 7 computed: the copy equals the cached block
  EXPECT_EQ(table.blocks()[1], cached_last);
  EXPECT_EQ(table.num_registered_blocks(), 2);
  EXPECT_EQ(allocator_->num_used(), 2);
  EXPECT_EQ(allocator_->num_free(), 2);
}

TEST(PrefixCacheOneTokenBlocksTest, AMatchedWholeSequenceCopiesItsLastBlockEvenAtABlockBoundary) {
  // With one-token blocks the recomputed last token starts a block boundary, yet its block is a cached one.
  BlockAllocator allocator(8, 1, PrefixCacheOptions{true, kRoot, 64});
  const std::vector<int32_t> ids = {5, 6, 7};
  std::vector<BlockHash> hashes;
  ExtendBlockHashes(kRoot, ids, 1, &hashes);
  {
    BlockTable table(&allocator);
    ASSERT_TRUE(table.Append(0, 3).has_value());
    table.CacheFullBlocks(ids, hashes, 3);
  }
  const PrefixMatch match = allocator.Match(ids, hashes);
  ASSERT_EQ(match.num_blocks(), 3);
  BlockTable table(&allocator);
  table.AdoptPrefix(match);
  EXPECT_EQ(table.NumBlocksNeeded(2, 1), 1);
  std::optional<std::vector<BlockCopy>> copies = table.Append(2, 1);
  ASSERT_TRUE(copies.has_value());
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].first, match.blocks[2]);
  EXPECT_NE(table.blocks()[2], match.blocks[2]);
  EXPECT_TRUE(allocator.is_registered(match.blocks[2]));  // untouched, still cached
}

TEST_F(PrefixCacheBlocksTest, WithoutCachingNothingIsKept) {
  allocator_.emplace(4, kBlockSize);  // caching off
  const Tokens t = Iota(8, 100);
  {
    BlockTable table(&*allocator_);
    ASSERT_TRUE(table.Append(0, 8).has_value());
    table.CacheFullBlocks(t.ids, t.hashes, 8);
    EXPECT_EQ(table.num_registered_blocks(), 0);
  }
  EXPECT_EQ(allocator_->num_cached(), 0);
  EXPECT_EQ(allocator_->num_free(), 4);
  EXPECT_EQ(Match(t).num_blocks(), 0);
}

TEST_F(PrefixCacheBlocksTest, RegisteringABlockNobodyHoldsAborts) {
  Make(4);
  EXPECT_DEATH(
      {
        const Tokens t = Iota(4, 100);
        const BlockId b = *allocator_->Allocate();
        allocator_->Release(b);
        allocator_->Register(b, -1, t.hashes[0], t.ids);
      },
      "CHECK failed");
}

TEST(BlockHashTest, KeysChainThePrefixAndTheRootSeparatesModels) {
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<BlockHash> a, b, other_root;
  ExtendBlockHashes(kRoot, ids, 4, &a);
  ExtendBlockHashes(kRoot + 1, ids, 4, &other_root);
  std::vector<int32_t> changed = ids;
  changed[0] = 9;
  ExtendBlockHashes(kRoot, changed, 4, &b);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_NE(a[0], other_root[0]);
  EXPECT_NE(a[1], b[1]);  // block 1's tokens are the same; its prefix is not
  std::vector<BlockHash> grown(a.begin(), a.begin() + 1);
  ExtendBlockHashes(kRoot, ids, 4, &grown);  // extending where it left off gives the same keys
  EXPECT_EQ(grown, a);
  ModelConfig config;
  config.hidden_size = 8;
  KvCacheSpec kv;
  EXPECT_NE(PrefixCacheRoot("policy-dir", "cpu", config, kv), PrefixCacheRoot("rm-dir", "cpu", config, kv));
  KvCacheSpec half = kv;
  half.dtype_bytes = 2;
  EXPECT_NE(PrefixCacheRoot("dir", "cpu", config, kv), PrefixCacheRoot("dir", "cpu", config, half));
}

}  // namespace
}  // namespace llama
