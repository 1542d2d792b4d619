#include "engine/model/kv_head_pooling.h"

#include "absl/strings/str_cat.h"

namespace llama {
namespace {

// w: [src_heads * head_dim, cols] -> [kv_heads * head_dim, cols]; row r of new head g is the mean of row r of the
// source heads g*group .. (g+1)*group-1.
std::vector<float> PoolHeads(const std::vector<float>& w, int src_heads, int kv_heads, int head_dim, int cols) {
  const int group = src_heads / kv_heads;
  const size_t head_values = static_cast<size_t>(head_dim) * cols;
  std::vector<float> out(static_cast<size_t>(kv_heads) * head_values, 0.0f);
  for (int g = 0; g < kv_heads; ++g) {
    float* dst = out.data() + g * head_values;
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const float* src = w.data() + h * head_values;
      for (size_t i = 0; i < head_values; ++i) dst[i] += src[i];
    }
    for (size_t i = 0; i < head_values; ++i) dst[i] /= static_cast<float>(group);
  }
  return out;
}

}  // namespace

absl::Status MeanPoolKvHeads(int kv_heads, ModelWeights* weights) {
  ModelConfig& c = weights->config;
  if (kv_heads <= 0 || c.num_key_value_heads % kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_heads ", kv_heads, " does not divide num_key_value_heads ",
                                                   c.num_key_value_heads, " of the source model"));
  }
  if (kv_heads == c.num_key_value_heads) return absl::OkStatus();
  for (LayerWeights& layer : weights->layers) {
    layer.wk = PoolHeads(layer.wk, c.num_key_value_heads, kv_heads, c.head_dim(), c.hidden_size);
    layer.wv = PoolHeads(layer.wv, c.num_key_value_heads, kv_heads, c.head_dim(), c.hidden_size);
  }
  c.num_key_value_heads = kv_heads;
  return c.Validate();
}

}  // namespace llama
