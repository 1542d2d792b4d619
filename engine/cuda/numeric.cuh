// Device-side loads and stores of the storage types (fp32, fp16, bf16) as fp32, for kernels templated on the
// storage type. Only .cu files include this; it holds device code.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/dtype.h"

namespace llama::cuda {

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Sum over a warp; every lane gets the total.
__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ __forceinline__ float BlockSum(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  v = WarpSum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int num_warps = blockDim.x / 32;
  v = lane < num_warps ? partial[lane] : 0.0f;
  return WarpSum(v);
}

}  // namespace llama::cuda

// Calls `body` with `using T = <storage type of dtype>` (a generic lambda taking a T* null tag).
#define LLAMA_DISPATCH_DTYPE(dtype, ...)                                  \
  [&] {                                                                  \
    switch (dtype) {                                                     \
      case ::llama::cuda::DType::kF32: {                                 \
        using T = float;                                                 \
        return __VA_ARGS__();                                            \
      }                                                                  \
      case ::llama::cuda::DType::kF16: {                                 \
        using T = __half;                                                \
        return __VA_ARGS__();                                            \
      }                                                                  \
      case ::llama::cuda::DType::kBF16:                                  \
      default: {                                                         \
        using T = __nv_bfloat16;                                         \
        return __VA_ARGS__();                                            \
      }                                                                  \
    }                                                                    \
  }()
