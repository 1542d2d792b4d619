#include "engine/cuda/cuda_check.h"
#include "engine/cuda/numeric.cuh"
#include "engine/cuda/swiglu.cuh"

namespace llama::cuda {
namespace {

template <typename T>
__global__ void SiluMulKernel(const float* gate_up, int64_t total, int intermediate, T* out) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = idx / intermediate;
    const int64_t j = idx % intermediate;
    const float g = gate_up[t * 2 * intermediate + j];
    const float u = gate_up[t * 2 * intermediate + intermediate + j];
    out[idx] = FromFloat<T>(g / (1.0f + expf(-g)) * u);
  }
}

}  // namespace

absl::Status SiluMul(const float* gate_up, int num_tokens, int intermediate, void* out, DType out_dtype,
                     cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(num_tokens) * intermediate;
  if (total == 0) return absl::OkStatus();
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  const int grid = static_cast<int>(blocks < 65535 ? blocks : 65535);
  LLAMA_DISPATCH_DTYPE(out_dtype, [&] {
    SiluMulKernel<T><<<grid, threads, 0, stream>>>(gate_up, total, intermediate, static_cast<T*>(out));
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
