// BlockAllocator: host-only bookkeeping of the paged KV cache's blocks (which are free, how many sequences
// reference each). BlockTable: one sequence's list of blocks, which gives them back when it dies (RAII).
//
// The KV memory itself belongs to the backend; this only decides block ids. Blocks are shared between sequences
// by reference count (the k candidates of one request share their prompt's blocks); writing into a shared block
// first copies it (copy-on-write), which the backend performs from ForwardInput::block_copies.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace llama {

using BlockId = int32_t;
using BlockCopy = std::pair<BlockId, BlockId>;  // (src, dst)

class BlockAllocator {
 public:
  BlockAllocator(int num_blocks, int block_size);
  ~BlockAllocator();  // CHECKs that every block came back
  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // A fresh block with reference count 1, or nullopt when the pool is empty (an expected "no", not an error).
  std::optional<BlockId> Allocate();
  void AddRef(BlockId block);   // another owner shares `block`
  void Release(BlockId block);  // one owner lets go; the block returns to the pool when nobody holds it

  int ref_count(BlockId block) const;
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_used_; }
  int num_total() const { return static_cast<int>(ref_counts_.size()); }
  int block_size() const { return block_size_; }
  bool CanAllocate(int num_blocks) const { return num_blocks <= num_free(); }
  // free + used == total, and the free list and reference counts agree. Aborts otherwise.
  void CheckInvariants() const;

 private:
  int block_size_;
  std::vector<int> ref_counts_;  // [num_blocks]
  std::vector<BlockId> free_;    // stack of free block ids; low ids are handed out first
  int num_used_ = 0;
};

// The blocks holding one sequence's KV, in token order: token i lives in blocks()[i / block_size] at offset
// i % block_size (its slot is KvSlot(blocks(), i, block_size), engine/backend.h). Move-only; destruction releases
// every block.
class BlockTable {
 public:
  explicit BlockTable(BlockAllocator* allocator) : allocator_(allocator) {}
  ~BlockTable() { Clear(); }
  BlockTable(BlockTable&& other) noexcept;
  BlockTable& operator=(BlockTable&& other) noexcept;
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;

  // Blocks that appending tokens [num_tokens, num_tokens + num_new) needs from the pool: the new blocks, plus
  // one for a copy-on-write of a shared, partly filled last block.
  int NumBlocksNeeded(int num_tokens, int num_new) const;
  // Makes room for those tokens. All or nothing: nullopt (and no change) when the pool is short. On success
  // returns the copy-on-write copies the backend must do before writing (at most one).
  std::optional<std::vector<BlockCopy>> Append(int num_tokens, int num_new);
  // A second table sharing every block (reference counts +1).
  BlockTable Fork() const;
  // Releases every block.
  void Clear();

  const std::vector<BlockId>& blocks() const { return blocks_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  BlockAllocator* allocator() const { return allocator_; }

 private:
  BlockAllocator* allocator_;
  std::vector<BlockId> blocks_;
};

}  // namespace llama
