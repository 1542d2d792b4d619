// Writes this step's new K and V rows into their paged slots, and copies whole blocks (copy-on-write).
// Cache layout per layer, for K and for V: [num_blocks, num_kv_heads, block_size, head_dim] in the cache dtype.
// CPU twin: the CPU backend's KV write.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

struct KvWriteArgs {
  const float* qkv = nullptr;           // [num_tokens, row_stride] fp32 (after RoPE on the K heads)
  int row_stride = 0;
  int k_offset = 0;                     // column of the first K element in a qkv row
  int v_offset = 0;                     // column of the first V element in a qkv row
  const int32_t* slot_mapping = nullptr;  // [num_tokens] block * block_size + offset (device)
  int num_tokens = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 0;
  void* k_cache = nullptr;              // [num_blocks, num_kv_heads, block_size, head_dim]
  void* v_cache = nullptr;              // same shape
  DType dtype = DType::kBF16;
};

absl::Status WriteKv(const KvWriteArgs& args, cudaStream_t stream);

}  // namespace llama::cuda
