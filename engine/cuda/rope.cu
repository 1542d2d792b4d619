#include "engine/cuda/cuda_check.h"
#include "engine/cuda/rope.cuh"

namespace llama::cuda {
namespace {

// One block per token; threads cover (head, pair) = num_rotary_heads * head_dim/2 rotations.
__global__ void RopeKernel(float* qkv, int row_stride, int num_rotary_heads, int head_dim, const int32_t* positions,
                           float theta, float scaling_factor) {
  const int t = blockIdx.x;
  const int half = head_dim / 2;
  const float pos = static_cast<float>(positions[t]) / scaling_factor;
  float* row = qkv + static_cast<int64_t>(t) * row_stride;
  for (int idx = threadIdx.x; idx < num_rotary_heads * half; idx += blockDim.x) {
    const int head = idx / half;
    const int i = idx % half;
    // Same expression as the CPU twin (BuildRopeTable) so both round alike.
    const float inv_freq = 1.0f / powf(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    float s, c;
    sincosf(pos * inv_freq, &s, &c);
    float* h = row + head * head_dim;
    const float x0 = h[i];
    const float x1 = h[i + half];
    h[i] = x0 * c - x1 * s;
    h[i + half] = x1 * c + x0 * s;
  }
}

}  // namespace

absl::Status ApplyRope(float* qkv, int row_stride, int num_rotary_heads, int head_dim, const int32_t* positions,
                       int num_tokens, float theta, float scaling_factor, cudaStream_t stream) {
  if (num_tokens == 0) return absl::OkStatus();
  RopeKernel<<<num_tokens, 256, 0, stream>>>(qkv, row_stride, num_rotary_heads, head_dim, positions, theta,
                                             scaling_factor);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
