// Rotary position embedding in the Hugging Face "rotate-half" convention: within each head the pairs are
// (i, i + head_dim/2), rotated by angle (position / scaling_factor) * theta^(-2i / head_dim).
// Linear scaling (position interpolation) divides the position. CPU twin: the CPU backend's rope.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"

namespace llama::cuda {

// qkv: [num_tokens, row_stride] fp32, rotated in place. The first num_rotary_heads heads of each row (the query
// heads, then the key heads, contiguous in the fused QKV output) are rotated; the rest (values) are untouched.
// positions: [num_tokens] (device).
absl::Status ApplyRope(float* qkv, int row_stride, int num_rotary_heads, int head_dim, const int32_t* positions,
                       int num_tokens, float theta, float scaling_factor, cudaStream_t stream);

}  // namespace llama::cuda
