#include "engine/cuda/cuda_check.h"
#include "engine/cuda/numeric.cuh"
#include "engine/cuda/rms_norm.cuh"

namespace llama::cuda {
namespace {

template <typename T>
__global__ void RmsNormKernel(const float* x, const float* weight, const int32_t* row_index, int dim, float eps,
                              T* out) {
  const int r = blockIdx.x;
  const int src = row_index != nullptr ? row_index[r] : r;
  const float* xr = x + static_cast<int64_t>(src) * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = BlockSum(ss);
  const float inv_rms = rsqrtf(ss / dim + eps);
  T* dst = out + static_cast<int64_t>(r) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = FromFloat<T>(xr[i] * inv_rms * weight[i]);
}

}  // namespace

absl::Status RmsNorm(const float* x, const float* weight, const int32_t* row_index, int num_rows, int dim,
                     float eps, void* out, DType out_dtype, cudaStream_t stream) {
  if (num_rows == 0) return absl::OkStatus();
  const int threads = dim >= 1024 ? 1024 : ((dim + 31) / 32) * 32;
  LLAMA_DISPATCH_DTYPE(out_dtype, [&] {
    RmsNormKernel<T><<<num_rows, threads, 0, stream>>>(x, weight, row_index, dim, eps, static_cast<T*>(out));
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
