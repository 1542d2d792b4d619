// Paged causal GQA attention over the ragged batch, one code path for prefill chunks and decode tokens.
//
// Token t (of sequence token_seq[t], at position positions[t]) attends to cache positions [0, positions[t]] of its
// sequence, which live in the blocks of its block-table row. The step's new K/V rows must already be written
// (WriteKv) so a prefill chunk sees itself. Query head h reads KV head h / (num_heads / num_kv_heads) straight
// from the cache: no per-head copies of K/V. Softmax is computed online (running max and sum) in fp32, so the
// context length is not limited by shared memory. CPU twin: the CPU backend's paged attention.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

inline constexpr int kMaxAttentionHeadDim = 256;

struct PagedAttentionArgs {
  const float* q = nullptr;             // [num_tokens, q_row_stride] fp32; head h at columns [h*head_dim, ...)
  int q_row_stride = 0;
  const void* k_cache = nullptr;        // [num_blocks, num_kv_heads, block_size, head_dim] in kv_dtype
  const void* v_cache = nullptr;        // same shape
  DType kv_dtype = DType::kBF16;
  const int32_t* positions = nullptr;   // [num_tokens]
  const int32_t* token_seq = nullptr;   // [num_tokens] sequence index of each token
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  int num_tokens = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;                     // <= kMaxAttentionHeadDim
  int block_size = 0;
  float scale = 1.0f;                   // usually 1 / sqrt(head_dim)
  void* out = nullptr;                  // [num_tokens, num_heads * head_dim] in out_dtype
  DType out_dtype = DType::kBF16;
};

absl::Status PagedAttention(const PagedAttentionArgs& args, cudaStream_t stream);

}  // namespace llama::cuda
