// BlockTable: the blocks holding one sequence's KV, in token order, which it gives back when it dies (RAII).
//
// Token i lives in blocks()[i / block_size] at offset i % block_size (its slot is KvSlot(blocks(), i, block_size),
// engine/backend.h). The table's first num_registered_blocks() blocks are in the allocator's prefix cache
// (block_allocator.h): full, computed and immutable. Writing into a block that another table shares or that is
// registered copies it first (copy-on-write).
#pragma once

#include <optional>
#include <vector>

#include "absl/types/span.h"
#include "scheduler/block_allocator.h"
#include "scheduler/block_hash.h"

namespace llama {

// Move-only; destruction releases every block.
class BlockTable {
 public:
  explicit BlockTable(BlockAllocator* allocator) : allocator_(allocator) {}
  ~BlockTable() { Clear(); }
  BlockTable(BlockTable&& other) noexcept;
  BlockTable& operator=(BlockTable&& other) noexcept;
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;

  // Takes a prefix-cache match as the table's first blocks (acquiring them). The table must be empty.
  void AdoptPrefix(const PrefixMatch& match);
  // Blocks that appending tokens [num_tokens, num_tokens + num_new) needs from the pool: the new blocks, plus
  // one for a copy-on-write when the first of them goes into a block of the table that is shared or registered.
  int NumBlocksNeeded(int num_tokens, int num_new) const;
  // Makes room for those tokens. All or nothing: nullopt (and no change) when the pool is short. On success
  // returns the copy-on-write copies the backend must do before writing (at most one).
  std::optional<std::vector<BlockCopy>> Append(int num_tokens, int num_new);
  // Registers in the prefix cache the full blocks among the first num_computed tokens that are not registered yet
  // (tokens and hashes: the sequence's, hashes from the allocator's root). Where an equal block is registered
  // already, the table takes that one and lets its own copy go. Nothing happens when the allocator does not cache.
  void CacheFullBlocks(absl::Span<const int32_t> tokens, absl::Span<const BlockHash> hashes, int num_computed);
  // A second table sharing every block (reference counts +1).
  BlockTable Fork() const;
  // Releases every block, the last first: the LRU list then evicts a sequence's tail before its head, which other
  // sequences are likelier to share.
  void Clear();

  const std::vector<BlockId>& blocks() const { return blocks_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int num_registered_blocks() const { return num_registered_; }
  BlockAllocator* allocator() const { return allocator_; }

 private:
  // Whether appending at num_tokens writes into a block of the table that is shared or registered (copy it first).
  bool WritesIntoImmutableBlock(int num_tokens, int num_new) const;

  BlockAllocator* allocator_;
  std::vector<BlockId> blocks_;
  int num_registered_ = 0;  // blocks_[0, num_registered_) are registered in the prefix cache
};

}  // namespace llama
