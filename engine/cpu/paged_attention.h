// Paged attention on the CPU: causal GQA attention of a ragged batch's queries over the paged KV cache.
//
// Query token t (of sequence seq) at position p attends to its sequence's positions 0..p, read from the cache
// through the sequence's block-table row; within a prefill chunk that is the causal mask. Query head h reads KV
// head h / group_size directly from the shared cache (no per-head copies).
//
// The cache holds fp32, f16 or bf16 elements (kv_dtype.h). A narrow row is widened exactly to fp32 as it is read
// and then goes through the same fp32 arithmetic, in the same order, as an fp32 row would on the same ISA: the
// result over a half cache equals, bit for bit, the result over an fp32 cache holding the widened values.
#pragma once

#include <cstdint>

#include "engine/cpu/kv_dtype.h"

namespace llama {

struct PagedAttentionArgs {
  const float* q = nullptr;             // [num_tokens, num_heads, head_dim] (RoPE applied)
  const void* k_cache = nullptr;        // [num_blocks, num_kv_heads, block_size, head_dim] of kv_dtype
  const void* v_cache = nullptr;        // [num_blocks, num_kv_heads, block_size, head_dim] of kv_dtype
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  const int32_t* token_seq = nullptr;   // [num_tokens] sequence index of each token
  const int32_t* positions = nullptr;   // [num_tokens]
  float* out = nullptr;                 // [num_tokens, num_heads, head_dim]
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  int max_blocks_per_seq = 0;
  KvDtype kv_dtype = KvDtype::kF32;     // element type of k_cache and v_cache
};

// The largest head_dim a half-precision cache supports (the scalar kernels widen a row into a stack buffer of this
// many floats); CPU backend creation rejects larger ones.
inline constexpr int kMaxHalfKvHeadDim = 1024;

// Computes the (token, head) items [item_begin, item_end) of num_tokens * num_heads, item = token * num_heads +
// head. scratch holds at least max position + 1 floats (the scores of one query).
void PagedAttention(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch);

// Writes K and V rows of the batch into their cache slots (slot = block * block_size + offset), converted to
// `dtype` (round to nearest even; every ISA path gives the bits of FloatToF16 / FloatToBf16).
//   k, v: [num_tokens, num_kv_heads, head_dim]   slots: [num_tokens]   caches as above, of dtype
// Only KV heads [head_begin, head_end) are written (so threads can split by head).
void WriteKvCache(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,
                  int head_dim, int block_size, int head_begin, int head_end, void* k_cache, void* v_cache,
                  KvDtype dtype = KvDtype::kF32);

}  // namespace llama
