#include "scheduler/block_allocator.h"

#include "base/check.h"

namespace llama {

BlockAllocator::BlockAllocator(int num_blocks, int block_size) : block_size_(block_size) {
  CHECK_GT(num_blocks, 0);
  CHECK_GT(block_size, 0);
  ref_counts_.assign(num_blocks, 0);
  free_.reserve(num_blocks);
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

BlockAllocator::~BlockAllocator() {
  CheckInvariants();
  CHECK_EQ(num_used_, 0);  // a leaked block outlived its allocator
}

std::optional<BlockId> BlockAllocator::Allocate() {
  if (free_.empty()) return std::nullopt;
  const BlockId block = free_.back();
  free_.pop_back();
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
  if (--ref_counts_[block] == 0) {
    free_.push_back(block);
    --num_used_;
  }
}

int BlockAllocator::ref_count(BlockId block) const {
  CHECK_GE(block, 0);
  CHECK_LT(block, num_total());
  return ref_counts_[block];
}

void BlockAllocator::CheckInvariants() const {
  CHECK_EQ(num_free() + num_used(), num_total());
  int held = 0;
  for (int count : ref_counts_) {
    CHECK_GE(count, 0);
    held += count > 0;
  }
  CHECK_EQ(held, num_used_);
}

BlockTable::BlockTable(BlockTable&& other) noexcept
    : allocator_(other.allocator_), blocks_(std::move(other.blocks_)) {
  other.blocks_.clear();
}

BlockTable& BlockTable::operator=(BlockTable&& other) noexcept {
  if (this != &other) {
    Clear();
    allocator_ = other.allocator_;
    blocks_ = std::move(other.blocks_);
    other.blocks_.clear();
  }
  return *this;
}

int BlockTable::NumBlocksNeeded(int num_tokens, int num_new) const {
  const int block_size = allocator_->block_size();
  CHECK_LE(num_tokens, num_blocks() * block_size);  // the table covers every token already written
  const int blocks_after = (num_tokens + num_new + block_size - 1) / block_size;
  int needed = blocks_after > num_blocks() ? blocks_after - num_blocks() : 0;
  const bool writes_into_last = num_new > 0 && num_tokens % block_size != 0;
  if (writes_into_last && allocator_->ref_count(blocks_[num_tokens / block_size]) > 1) ++needed;
  return needed;
}

std::optional<std::vector<BlockCopy>> BlockTable::Append(int num_tokens, int num_new) {
  if (!allocator_->CanAllocate(NumBlocksNeeded(num_tokens, num_new))) return std::nullopt;
  const int block_size = allocator_->block_size();
  std::vector<BlockCopy> copies;
  if (num_new > 0 && num_tokens % block_size != 0) {
    BlockId& last = blocks_[num_tokens / block_size];
    if (allocator_->ref_count(last) > 1) {
      // Another sequence still reads this block: write into a private copy of it.
      const BlockId copy = *allocator_->Allocate();
      copies.emplace_back(last, copy);
      allocator_->Release(last);
      last = copy;
    }
  }
  const int blocks_after = (num_tokens + num_new + block_size - 1) / block_size;
  while (num_blocks() < blocks_after) blocks_.push_back(*allocator_->Allocate());
  return copies;
}

BlockTable BlockTable::Fork() const {
  BlockTable fork(allocator_);
  fork.blocks_ = blocks_;
  for (BlockId block : blocks_) allocator_->AddRef(block);
  return fork;
}

void BlockTable::Clear() {
  for (BlockId block : blocks_) allocator_->Release(block);
  blocks_.clear();
}

}  // namespace llama
