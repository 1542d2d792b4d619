#include "engine/cpu/ops.h"

#include <cmath>

namespace llama {

void RmsNorm(const float* x, const float* weight, int n, int dim, float eps, float* out) {
  for (int t = 0; t < n; ++t) {
    const float* xt = x + static_cast<int64_t>(t) * dim;
    float* ot = out + static_cast<int64_t>(t) * dim;
    float ss = 0.0f;
    for (int i = 0; i < dim; ++i) ss += xt[i] * xt[i];
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int i = 0; i < dim; ++i) ot[i] = weight[i] * (scale * xt[i]);
  }
}

RopeTable BuildRopeTable(int max_positions, int head_dim, float theta, float scaling_factor) {
  RopeTable table;
  table.head_dim = head_dim;
  table.max_positions = max_positions;
  const int half = head_dim / 2;
  table.cos.resize(static_cast<size_t>(max_positions) * half);
  table.sin.resize(static_cast<size_t>(max_positions) * half);
  for (int p = 0; p < max_positions; ++p) {
    const float pos = static_cast<float>(p) / scaling_factor;
    for (int i = 0; i < half; ++i) {
      const float inv_freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
      const float angle = pos * inv_freq;
      table.cos[static_cast<size_t>(p) * half + i] = std::cos(angle);
      table.sin[static_cast<size_t>(p) * half + i] = std::sin(angle);
    }
  }
  return table;
}

void ApplyRope(float* x, const int32_t* positions, int n, int num_heads, int head_begin, int head_end,
               const RopeTable& table) {
  const int head_dim = table.head_dim;
  const int half = head_dim / 2;
  for (int t = 0; t < n; ++t) {
    const float* c = table.cos.data() + static_cast<size_t>(positions[t]) * half;
    const float* s = table.sin.data() + static_cast<size_t>(positions[t]) * half;
    for (int h = head_begin; h < head_end; ++h) {
      float* v = x + (static_cast<int64_t>(t) * num_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void SiluMul(const float* gate, const float* up, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void Softmax(float* x, int count) {
  float max_val = x[0];
  for (int i = 1; i < count; ++i) max_val = x[i] > max_val ? x[i] : max_val;
  float sum = 0.0f;
  for (int i = 0; i < count; ++i) {
    x[i] = std::exp(x[i] - max_val);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < count; ++i) x[i] *= inv;
}

}  // namespace llama
