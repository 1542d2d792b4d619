#include "engine/cuda/cuda_check.h"
#include "engine/cuda/numeric.cuh"
#include "engine/cuda/tensor_init.cuh"

namespace llama::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 4096;

int GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

template <typename T>
__global__ void ConvertKernel(const float* in, int64_t n, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = FromFloat<T>(in[i]);
  }
}

template <typename T>
__global__ void ToF32Kernel(const T* in, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = ToFloat(in[i]);
  }
}

__device__ __forceinline__ uint64_t Mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void FillUniformKernel(T* out, int64_t n, float center, float half_width, uint64_t seed) {
  const uint64_t key = Mix64(seed);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(Mix64(key ^ static_cast<uint64_t>(i)) >> 40) * (1.0f / 16777216.0f);
    out[i] = FromFloat<T>(center + (2.0f * u - 1.0f) * half_width);
  }
}

}  // namespace

absl::Status ConvertFromF32(const float* in, int64_t n, void* out, DType dtype, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(dtype, [&] {
    ConvertKernel<T><<<GridFor(n), kThreads, 0, stream>>>(in, n, static_cast<T*>(out));
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status ConvertToF32(const void* in, DType dtype, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(dtype, [&] {
    ToF32Kernel<T><<<GridFor(n), kThreads, 0, stream>>>(static_cast<const T*>(in), n, out);
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

absl::Status FillUniform(void* out, DType dtype, int64_t n, float center, float half_width, uint64_t seed,
                         cudaStream_t stream) {
  if (n == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(dtype, [&] {
    FillUniformKernel<T><<<GridFor(n), kThreads, 0, stream>>>(static_cast<T*>(out), n, center, half_width, seed);
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
