// The paged KV cache on the device: for every layer a K and a V tensor [num_blocks, n_kv_heads, block_size,
// head_dim] in the backend dtype, carved from one allocation. Sized at start from the device's free memory times
// a fraction (after weights and a reserve for activations), and from n_kv_heads: GQA models get
// n_heads / n_kv_heads times more blocks for the same bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/backend.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/dtype.h"
#include "engine/model/config.h"

namespace llama::cuda {

struct KvCachePoolOptions {
  int block_size = kDefaultBlockSize;
  // 0: size from free memory: floor(free_bytes * memory_fraction / bytes_per_block) blocks.
  int num_blocks = 0;
  double memory_fraction = 0.9;
  absl::Status Validate() const;
};

class KvCachePool {
 public:
  static absl::StatusOr<KvCachePool> Create(const ModelConfig& config, DType dtype, const KvCachePoolOptions& options);

  const KvCacheSpec& spec() const { return spec_; }
  DType dtype() const { return dtype_; }
  void* k(int layer) const { return Layer(layer, 0); }
  void* v(int layer) const { return Layer(layer, 1); }

  // Copy-on-write: block dst of every layer's K and V becomes a copy of block src, in order.
  absl::Status CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> copies, cudaStream_t stream) const;

 private:
  // Bytes of one layer's K (or V) tensor.
  int64_t TensorBytes() const {
    return static_cast<int64_t>(spec_.num_blocks) * spec_.num_kv_heads * spec_.block_size * spec_.head_dim *
           spec_.dtype_bytes;
  }
  void* Layer(int layer, int kv) const {
    return buffer_.as<char>() + (static_cast<int64_t>(layer) * 2 + kv) * TensorBytes();
  }

  KvCacheSpec spec_;
  DType dtype_ = DType::kBF16;
  DeviceBuffer buffer_;  // [num_layers, 2 (K, V), num_blocks, n_kv_heads, block_size, head_dim]
};

}  // namespace llama::cuda
