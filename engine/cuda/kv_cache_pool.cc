#include "engine/cuda/kv_cache_pool.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda/cuda_check.h"

namespace llama::cuda {

absl::Status KvCachePoolOptions::Validate() const {
  if (block_size <= 0) return absl::InvalidArgumentError(absl::StrCat("block_size must be > 0, got ", block_size));
  if (num_blocks < 0) return absl::InvalidArgumentError(absl::StrCat("num_blocks must be >= 0, got ", num_blocks));
  if (!(memory_fraction > 0.0 && memory_fraction <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_memory_fraction must be in (0, 1], got ", memory_fraction));
  }
  return absl::OkStatus();
}

absl::StatusOr<KvCachePool> KvCachePool::Create(const ModelConfig& config, DType dtype,
                                                const KvCachePoolOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  KvCachePool pool;
  pool.dtype_ = dtype;
  KvCacheSpec& s = pool.spec_;
  s.block_size = options.block_size;
  s.num_layers = config.num_hidden_layers;
  s.num_kv_heads = config.num_key_value_heads;
  s.head_dim = config.head_dim();
  s.dtype_bytes = DTypeBytes(dtype);
  s.num_blocks = options.num_blocks;
  if (s.num_blocks == 0) {
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double budget = static_cast<double>(free_bytes) * options.memory_fraction;
    const int64_t blocks = static_cast<int64_t>(budget / static_cast<double>(s.bytes_per_block()));
    s.num_blocks = static_cast<int>(blocks < (int64_t{1} << 30) ? blocks : (int64_t{1} << 30));
    if (s.num_blocks <= 0) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "KV cache: ", free_bytes, " free device bytes x fraction ", options.memory_fraction,
          " hold no block of ", s.bytes_per_block(), " bytes"));
    }
  }
  ASSIGN_OR_RETURN(pool.buffer_, DeviceBuffer::Allocate(s.total_bytes()));
  // Fresh blocks hold garbage; attention never reads a slot before its token is written, but zeroing keeps a
  // bug from turning into NaNs that are hard to trace.
  CUDA_RETURN_IF_ERROR(cudaMemset(pool.buffer_.get(), 0, static_cast<size_t>(s.total_bytes())));
  return pool;
}

absl::Status KvCachePool::CopyBlocks(absl::Span<const std::pair<int32_t, int32_t>> copies,
                                     cudaStream_t stream) const {
  // One block of one layer's K (or V) is contiguous: [n_kv_heads, block_size, head_dim].
  const int64_t block_bytes = TensorBytes() / spec_.num_blocks;
  for (const auto& [src, dst] : copies) {
    for (int layer = 0; layer < spec_.num_layers; ++layer) {
      for (int kv = 0; kv < 2; ++kv) {
        char* base = static_cast<char*>(Layer(layer, kv));
        CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base + dst * block_bytes, base + src * block_bytes, block_bytes,
                                             cudaMemcpyDeviceToDevice, stream));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace llama::cuda
