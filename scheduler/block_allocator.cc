#include "scheduler/block_allocator.h"

#include <algorithm>

#include "base/check.h"

namespace llama {

BlockAllocator::BlockAllocator(int num_blocks, int block_size, PrefixCacheOptions cache)
    : block_size_(block_size), cache_(cache) {
  CHECK_GT(num_blocks, 0);
  CHECK_GT(block_size, 0);
  CHECK_GE(cache_.index_bits, 1);
  CHECK_LE(cache_.index_bits, 64);
  ref_counts_.assign(num_blocks, 0);
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
  lru_prev_.assign(num_blocks, -1);
  lru_next_.assign(num_blocks, -1);
  serial_.assign(num_blocks, 0);
  parent_serial_.assign(num_blocks, 0);
  hash_.assign(num_blocks, 0);
  if (cache_.enabled) tokens_.assign(int64_t{num_blocks} * block_size, -1);
}

BlockAllocator::~BlockAllocator() {
  CheckInvariants();
  CHECK_EQ(num_used_, 0);  // a leaked block outlived its allocator
}

std::optional<BlockId> BlockAllocator::Allocate() {
  BlockId block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else if (lru_head_ >= 0) {
    // No free block left: the least recently used cached block gives up its prefix.
    block = lru_head_;
    LruRemove(block);
    Unregister(block);
    ++num_evictions_;
  } else {
    return std::nullopt;
  }
  CHECK_EQ(ref_counts_[block], 0);
  ref_counts_[block] = 1;
  ++num_used_;
  return block;
}

void BlockAllocator::AddRef(BlockId block) {
  CHECK_GE(block, 0);
  CHECK_LT(block, num_total());
  CHECK_GT(ref_counts_[block], 0);  // only a held block can be shared
  ++ref_counts_[block];
}

void BlockAllocator::Release(BlockId block) {
  CHECK_GE(block, 0);
  CHECK_LT(block, num_total());
  CHECK_GT(ref_counts_[block], 0);  // double free
  if (--ref_counts_[block] > 0) return;
  --num_used_;
  if (serial_[block] != 0) {
    LruAppend(block);
  } else {
    free_.push_back(block);
  }
}

BlockHash BlockAllocator::IndexKey(BlockHash hash) const {
  return cache_.index_bits == 64 ? hash : hash & ((BlockHash{1} << cache_.index_bits) - 1);
}

BlockId BlockAllocator::Find(BlockHash hash, uint64_t parent_serial, absl::Span<const int32_t> tokens) const {
  auto it = index_.find(IndexKey(hash));
  if (it == index_.end()) return -1;
  for (BlockId block : it->second) {
    // The key only points here; the block's own tokens and parent decide (see the header).
    if (parent_serial_[block] != parent_serial) continue;
    const int32_t* stored = &tokens_[int64_t{block} * block_size_];
    if (std::equal(tokens.begin(), tokens.end(), stored)) return block;
  }
  return -1;
}

PrefixMatch BlockAllocator::Match(absl::Span<const int32_t> tokens, absl::Span<const BlockHash> hashes) const {
  PrefixMatch match;
  if (!cache_.enabled) return match;
  CHECK_LE(hashes.size() * block_size_, tokens.size());
  uint64_t parent_serial = 0;
  for (size_t i = 0; i < hashes.size(); ++i) {
    const BlockId block = Find(hashes[i], parent_serial, tokens.subspan(i * block_size_, block_size_));
    if (block < 0) break;
    match.blocks.push_back(block);
    if (ref_counts_[block] == 0) ++match.num_evictable;
    parent_serial = serial_[block];
  }
  return match;
}

void BlockAllocator::Acquire(BlockId block) {
  CHECK(is_registered(block));
  if (ref_counts_[block] == 0) {
    LruRemove(block);
    ++num_used_;
  }
  ++ref_counts_[block];
}

BlockId BlockAllocator::Register(BlockId block, BlockId parent, BlockHash hash, absl::Span<const int32_t> tokens) {
  CHECK(cache_.enabled);
  CHECK_GT(ref_count(block), 0);
  CHECK(!is_registered(block));
  CHECK_EQ(static_cast<int>(tokens.size()), block_size_);
  const uint64_t parent_serial = parent < 0 ? 0 : serial_[parent];
  CHECK(parent < 0 || parent_serial != 0);  // a chain is registered from its first block on
  if (const BlockId same = Find(hash, parent_serial, tokens); same >= 0) {
    // Computed twice (e.g. the copy of a matched last block, or identical candidates): keep the registered one.
    Acquire(same);
    Release(block);
    return same;
  }
  serial_[block] = next_serial_++;
  parent_serial_[block] = parent_serial;
  hash_[block] = hash;
  std::copy(tokens.begin(), tokens.end(), &tokens_[int64_t{block} * block_size_]);
  index_[IndexKey(hash)].push_back(block);
  return block;
}

void BlockAllocator::Unregister(BlockId block) {
  auto it = index_.find(IndexKey(hash_[block]));
  CHECK(it != index_.end());
  auto& blocks = it->second;
  auto pos = std::find(blocks.begin(), blocks.end(), block);
  CHECK(pos != blocks.end());
  blocks.erase(pos);
  if (blocks.empty()) index_.erase(it);
  serial_[block] = 0;
  parent_serial_[block] = 0;
}

bool BlockAllocator::is_registered(BlockId block) const {
  CHECK_GE(block, 0);
  CHECK_LT(block, num_total());
  return serial_[block] != 0;
}

int BlockAllocator::ref_count(BlockId block) const {
  CHECK_GE(block, 0);
  CHECK_LT(block, num_total());
  return ref_counts_[block];
}

void BlockAllocator::LruAppend(BlockId block) {
  lru_prev_[block] = lru_tail_;
  lru_next_[block] = -1;
  (lru_tail_ >= 0 ? lru_next_[lru_tail_] : lru_head_) = block;
  lru_tail_ = block;
  ++num_cached_;
}

void BlockAllocator::LruRemove(BlockId block) {
  const BlockId prev = lru_prev_[block];
  const BlockId next = lru_next_[block];
  (prev >= 0 ? lru_next_[prev] : lru_head_) = next;
  (next >= 0 ? lru_prev_[next] : lru_tail_) = prev;
  lru_prev_[block] = lru_next_[block] = -1;
  --num_cached_;
}

void BlockAllocator::CheckInvariants() const {
  CHECK_EQ(num_free() + num_cached() + num_used(), num_total());
  int held = 0;
  int registered = 0;
  for (BlockId b = 0; b < num_total(); ++b) {
    CHECK_GE(ref_counts_[b], 0);
    held += ref_counts_[b] > 0;
    registered += serial_[b] != 0;
  }
  CHECK_EQ(held, num_used_);
  for (BlockId b : free_) CHECK(ref_counts_[b] == 0 && serial_[b] == 0);
  // The LRU list holds exactly the cached blocks: registered, nobody holds them.
  int listed = 0;
  for (BlockId b = lru_head_, prev = -1; b >= 0; prev = b, b = lru_next_[b]) {
    CHECK_EQ(lru_prev_[b], prev);
    CHECK(ref_counts_[b] == 0 && serial_[b] != 0);
    CHECK_LE(++listed, num_total());  // no cycle
  }
  CHECK_EQ(listed, num_cached_);
  int indexed = 0;
  for (const auto& [key, blocks] : index_) {
    for (BlockId b : blocks) {
      CHECK(serial_[b] != 0);
      CHECK_EQ(IndexKey(hash_[b]), key);
      ++indexed;
    }
  }
  CHECK_EQ(indexed, registered);
}

}  // namespace llama
