#include "engine/cuda/cuda_check.h"
#include "engine/cuda/kv_write.cuh"
#include "engine/cuda/numeric.cuh"

namespace llama::cuda {
namespace {

// One block per token; threads cover num_kv_heads * head_dim elements of K and of V.
template <typename T>
__global__ void KvWriteKernel(KvWriteArgs a) {
  const int t = blockIdx.x;
  const int64_t slot = a.slot_mapping[t];
  const int64_t block = slot / a.block_size;
  const int64_t offset = slot % a.block_size;
  const float* row = a.qkv + static_cast<int64_t>(t) * a.row_stride;
  T* k_cache = static_cast<T*>(a.k_cache);
  T* v_cache = static_cast<T*>(a.v_cache);
  for (int idx = threadIdx.x; idx < a.num_kv_heads * a.head_dim; idx += blockDim.x) {
    const int h = idx / a.head_dim;
    const int d = idx % a.head_dim;
    const int64_t dst = ((block * a.num_kv_heads + h) * a.block_size + offset) * a.head_dim + d;
    k_cache[dst] = FromFloat<T>(row[a.k_offset + idx]);
    v_cache[dst] = FromFloat<T>(row[a.v_offset + idx]);
  }
}

}  // namespace

absl::Status WriteKv(const KvWriteArgs& args, cudaStream_t stream) {
  if (args.num_tokens == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(args.dtype, [&] { KvWriteKernel<T><<<args.num_tokens, 256, 0, stream>>>(args); });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
