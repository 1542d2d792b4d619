#include "scheduler/block_table.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace llama {

BlockTable::BlockTable(BlockTable&& other) noexcept
    : allocator_(other.allocator_), blocks_(std::move(other.blocks_)), num_registered_(other.num_registered_) {
  other.blocks_.clear();
  other.num_registered_ = 0;
}

BlockTable& BlockTable::operator=(BlockTable&& other) noexcept {
  if (this != &other) {
    Clear();
    allocator_ = other.allocator_;
    blocks_ = std::move(other.blocks_);
    num_registered_ = other.num_registered_;
    other.blocks_.clear();
    other.num_registered_ = 0;
  }
  return *this;
}

void BlockTable::AdoptPrefix(const PrefixMatch& match) {
  CHECK(blocks_.empty());
  for (BlockId block : match.blocks) {
    allocator_->Acquire(block);
    blocks_.push_back(block);
  }
  num_registered_ = num_blocks();
}

int BlockTable::NumBlocksNeeded(int num_tokens, int num_new) const {
  const int block_size = allocator_->block_size();
  CHECK_LE(num_tokens, num_blocks() * block_size);  // the table covers every token already written
  const int blocks_after = (num_tokens + num_new + block_size - 1) / block_size;
  int needed = blocks_after > num_blocks() ? blocks_after - num_blocks() : 0;
  if (WritesIntoImmutableBlock(num_tokens, num_new)) ++needed;
  return needed;
}

std::optional<std::vector<BlockCopy>> BlockTable::Append(int num_tokens, int num_new) {
  if (!allocator_->CanAllocate(NumBlocksNeeded(num_tokens, num_new))) return std::nullopt;
  const int block_size = allocator_->block_size();
  std::vector<BlockCopy> copies;
  if (WritesIntoImmutableBlock(num_tokens, num_new)) {
    // Another sequence still reads this block, or the prefix cache keeps it as it is: write into a copy.
    const int index = num_tokens / block_size;
    BlockId& last = blocks_[index];
    const BlockId copy = *allocator_->Allocate();
    copies.emplace_back(last, copy);
    allocator_->Release(last);
    last = copy;
    num_registered_ = std::min(num_registered_, index);
  }
  const int blocks_after = (num_tokens + num_new + block_size - 1) / block_size;
  while (num_blocks() < blocks_after) blocks_.push_back(*allocator_->Allocate());
  return copies;
}

bool BlockTable::WritesIntoImmutableBlock(int num_tokens, int num_new) const {
  // The block token num_tokens goes into, when the table has it already: the partly written last block, or (a
  // sequence matched whole in the prefix cache, blocks of one token) a full matched block.
  const int index = num_tokens / allocator_->block_size();
  if (num_new == 0 || index >= num_blocks()) return false;
  return allocator_->ref_count(blocks_[index]) > 1 || allocator_->is_registered(blocks_[index]);
}

void BlockTable::CacheFullBlocks(absl::Span<const int32_t> tokens, absl::Span<const BlockHash> hashes,
                                 int num_computed) {
  if (!allocator_->caching()) return;
  const int block_size = allocator_->block_size();
  const int num_full = std::min({num_computed / block_size, static_cast<int>(hashes.size()), num_blocks()});
  for (int i = num_registered_; i < num_full; ++i) {
    blocks_[i] = allocator_->Register(blocks_[i], i == 0 ? -1 : blocks_[i - 1], hashes[i],
                                      tokens.subspan(int64_t{i} * block_size, block_size));
  }
  num_registered_ = std::max(num_registered_, num_full);
}

BlockTable BlockTable::Fork() const {
  BlockTable fork(allocator_);
  fork.blocks_ = blocks_;
  fork.num_registered_ = num_registered_;
  for (BlockId block : blocks_) allocator_->AddRef(block);
  return fork;
}

void BlockTable::Clear() {
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) allocator_->Release(*it);
  blocks_.clear();
  num_registered_ = 0;
}

}  // namespace llama
