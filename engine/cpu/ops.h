// Elementwise and row-wise ops of the Llama forward on the CPU: RMSNorm, RoPE, SiLU-gated product, softmax.
// Plain pointers and sizes; each is the CPU twin of a CUDA kernel.
#pragma once

#include <cstdint>
#include <vector>

namespace llama {

// out[t] = x[t] / sqrt(mean(x[t]²) + eps) * weight for each of n rows.   x, out: [n, dim]   weight: [dim]
// out may alias x.
void RmsNorm(const float* x, const float* weight, int n, int dim, float eps, float* out);

// RoPE angles in the Hugging Face "rotate-half" convention: for position p and pair i in [0, head_dim/2),
// angle = (p / scaling_factor) · theta^(-2i / head_dim).
struct RopeTable {
  int head_dim = 0;
  int max_positions = 0;
  std::vector<float> cos;  // [max_positions, head_dim / 2]
  std::vector<float> sin;  // [max_positions, head_dim / 2]
};
RopeTable BuildRopeTable(int max_positions, int head_dim, float theta, float scaling_factor);

// Rotates each head's pairs (i, i + head_dim/2) of x in place by its token's position, for heads
// [head_begin, head_end) (so threads can split by head).
//   x: [n, num_heads, head_dim]   positions: [n], each < table.max_positions
void ApplyRope(float* x, const int32_t* positions, int n, int num_heads, int head_begin, int head_end,
               const RopeTable& table);

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i] for i in [0, count).   out may alias gate.
void SiluMul(const float* gate, const float* up, int64_t count, float* out);

// In-place softmax of x[0, count).
void Softmax(float* x, int count);

}  // namespace llama
