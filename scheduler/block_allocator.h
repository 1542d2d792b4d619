// BlockAllocator: host-only bookkeeping of the paged KV cache's blocks (which are free, how many sequences
// reference each) and the prefix cache over them. BlockTable (block_table.h) is one sequence's list of blocks.
//
// The KV memory itself belongs to the backend; this only decides block ids. Blocks are shared between sequences
// by reference count (the k candidates of one request share their prompt's blocks; sequences with a common
// prefix share its cached blocks); writing into a shared or cached block first copies it (copy-on-write), which
// the backend performs from ForwardInput::block_copies.
//
// Every block is in exactly one of three states, and free + cached + used == total (CheckInvariants):
//   free    holds nothing anyone can use; handed out first
//   cached  reference count 0, but registered in the prefix cache (a full block whose K/V is computed): a later
//           sequence with the same prefix takes it back (Acquire). Cached blocks are evicted in LRU order, only
//           when a block is needed and no free one is left
//   used    reference count > 0; it may be registered too (then everyone who matches it shares it)
// Cached blocks count as available: CanAllocate(n) asks free + cached >= n.
//
// Prefix cache. A registered block is keyed by its block hash (block_hash.h) and is immutable. Match trusts a
// key only after checking the candidate: its token ids must equal the asked-for block's, and its parent must be
// the block matched just before it, compared by registration serial (a number never reused, so a parent that was
// evicted and reused for other tokens never passes). By induction over the blocks, a match holds exactly the K/V of
// the asked-for prefix whatever the hash does; a collision only costs a miss (tests shrink keys to 2 bits to show
// it: PrefixCacheOptions::index_bits). One allocator is one model's pool, so its root key
// (PrefixCacheOptions::root) is the same for every block and need not be compared.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "scheduler/block_hash.h"

namespace llama {

using BlockId = int32_t;
using BlockCopy = std::pair<BlockId, BlockId>;  // (src, dst)

struct PrefixCacheOptions {
  bool enabled = false;
  BlockHash root = 0;   // PrefixCacheRoot of the model whose K/V the pool holds; sequences hash their blocks from it
  int index_bits = 64;  // bits of a block hash the index keys on (64 in production); tests lower it to collide
};

// The blocks of a sequence's prefix found in the prefix cache: blocks[i] holds tokens [i·block_size, (i+1)·block_size).
struct PrefixMatch {
  std::vector<BlockId> blocks;
  int num_evictable = 0;  // of them cached with reference count 0: taking them uses up available blocks
  int num_blocks() const { return static_cast<int>(blocks.size()); }
};

class BlockAllocator {
 public:
  BlockAllocator(int num_blocks, int block_size, PrefixCacheOptions cache = {});
  ~BlockAllocator();  // CHECKs that every block came back
  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  // A block with reference count 1: a free one, else the least recently used cached one (evicted: it leaves the
  // prefix cache), else nullopt (an expected "no", not an error).
  std::optional<BlockId> Allocate();
  void AddRef(BlockId block);   // another owner shares a held `block`
  // One owner lets go. At reference count 0 a registered block becomes cached (the most recently used), any other
  // block free.
  void Release(BlockId block);

  // --- Prefix cache (Match finds nothing and nothing registers when it is disabled.)
  bool caching() const { return cache_.enabled; }
  BlockHash cache_root() const { return cache_.root; }
  // The longest run of registered blocks holding the first full blocks of `tokens`; hashes[i] is the key of
  // block i (ExtendBlockHashes from cache_root()). Changes nothing: take the blocks with Acquire.
  PrefixMatch Match(absl::Span<const int32_t> tokens, absl::Span<const BlockHash> hashes) const;
  // Takes a registered block (a match): reference count + 1, off the LRU list if it was cached.
  void Acquire(BlockId block);
  // Registers a held, full block whose K/V is computed: it holds `tokens` (block_size of them, key `hash`) after
  // the registered block `parent` (-1: the first block of a sequence). Returns the block the caller keeps: `block`,
  // or, when an equal block is registered already, that one (acquired) while `block` is released.
  BlockId Register(BlockId block, BlockId parent, BlockHash hash, absl::Span<const int32_t> tokens);
  bool is_registered(BlockId block) const;

  int ref_count(BlockId block) const;
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_cached() const { return num_cached_; }
  int num_used() const { return num_used_; }
  int num_total() const { return static_cast<int>(ref_counts_.size()); }
  int num_available() const { return num_free() + num_cached(); }
  int block_size() const { return block_size_; }
  int64_t num_evictions() const { return num_evictions_; }
  bool CanAllocate(int num_blocks) const { return num_blocks <= num_available(); }
  // free + cached + used == total; the free list, the LRU list, the reference counts and the index agree.
  // Aborts otherwise.
  void CheckInvariants() const;

 private:
  BlockHash IndexKey(BlockHash hash) const;
  // The registered block holding `tokens` after the block with serial parent_serial; -1 when there is none.
  BlockId Find(BlockHash hash, uint64_t parent_serial, absl::Span<const int32_t> tokens) const;
  void Unregister(BlockId block);
  void LruAppend(BlockId block);
  void LruRemove(BlockId block);

  int block_size_;
  PrefixCacheOptions cache_;
  std::vector<int> ref_counts_;  // [num_blocks]
  std::vector<BlockId> free_;    // stack of free block ids; low ids are handed out first
  int num_used_ = 0;
  int64_t num_evictions_ = 0;

  // Cached blocks, least recently used first: a doubly linked list threaded through block ids (-1 ends it).
  std::vector<BlockId> lru_prev_;  // [num_blocks]
  std::vector<BlockId> lru_next_;  // [num_blocks]
  BlockId lru_head_ = -1;
  BlockId lru_tail_ = -1;
  int num_cached_ = 0;

  // Registered blocks. serial_ 0 = not registered.
  std::vector<uint64_t> serial_;         // [num_blocks]
  std::vector<uint64_t> parent_serial_;  // [num_blocks] the parent's serial at registration; 0 = first block
  std::vector<BlockHash> hash_;          // [num_blocks]
  std::vector<int32_t> tokens_;          // [num_blocks, block_size] the token ids whose K/V the block holds
  absl::flat_hash_map<BlockHash, absl::InlinedVector<BlockId, 1>> index_;  // IndexKey(hash) → registered blocks
  uint64_t next_serial_ = 1;
};

}  // namespace llama
