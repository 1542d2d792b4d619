#include "engine/cuda/cuda_check.h"
#include "engine/cuda/embedding.cuh"
#include "engine/cuda/numeric.cuh"

namespace llama::cuda {
namespace {

template <typename T>
__global__ void EmbeddingKernel(const T* table, const int32_t* token_ids, int dim, float* out) {
  const int t = blockIdx.x;
  const T* row = table + static_cast<int64_t>(token_ids[t]) * dim;
  float* dst = out + static_cast<int64_t>(t) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = ToFloat(row[i]);
}

}  // namespace

absl::Status EmbeddingLookup(const void* table, DType dtype, const int32_t* token_ids, int num_tokens, int dim,
                             float* out, cudaStream_t stream) {
  if (num_tokens == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(dtype, [&] {
    EmbeddingKernel<T><<<num_tokens, 256, 0, stream>>>(static_cast<const T*>(table), token_ids, dim, out);
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
