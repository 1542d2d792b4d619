// Prefix-cache keys of full KV blocks (the cache itself is the BlockAllocator's, scheduler/block_allocator.h).
//
// A block's key chains the key of the block before it with the block's token ids, so it names the whole prefix up
// to the block's end: key_0 = H(root, tokens of block 0), key_i = H(key_{i-1}, tokens of block i). The root mixes
// in everything besides the tokens that changes the K/V a block holds: the model (its config.json and where its
// weights come from) and the KV format (backend, dtype, block size). The policy and each reward model have roots
// of their own, so their entries never meet, even if two of them ever shared a pool.
//
// Keys are 64-bit and not cryptographic: a key only finds candidate blocks. The allocator uses a candidate only
// after comparing its token ids and its parent block with what is asked for (block_allocator.h), so a collision
// costs a cache miss, never wrong KV.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "engine/backend.h"
#include "engine/model/config.h"

namespace llama {

using BlockHash = uint64_t;

// The root key of one model's KV pool. model_source names the weights (a model directory; "dummy:<shape>:<seed>"
// for random weights): two checkpoints with the same config differ only there.
BlockHash PrefixCacheRoot(std::string_view model_source, std::string_view backend, const ModelConfig& config,
                          const KvCacheSpec& kv);

// The key of a block holding `tokens` after the prefix whose key is `parent`.
BlockHash HashBlockTokens(BlockHash parent, absl::Span<const int32_t> tokens);

// Extends `hashes` (the keys of the first hashes->size() full blocks of `tokens`) to every full block of `tokens`;
// a partly filled last block has no key yet.
void ExtendBlockHashes(BlockHash root, absl::Span<const int32_t> tokens, int block_size,
                       std::vector<BlockHash>* hashes);

}  // namespace llama
