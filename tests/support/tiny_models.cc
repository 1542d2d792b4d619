#include "tests/support/tiny_models.h"

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"

namespace llama::testing {

ModelConfig TinyConfig(const TinyShape& shape) {
  ModelConfig c;
  c.hidden_size = shape.hidden;
  c.intermediate_size = shape.intermediate;
  c.num_hidden_layers = shape.layers;
  c.num_attention_heads = shape.heads;
  c.num_key_value_heads = shape.kv_heads;
  c.vocab_size = shape.vocab;
  c.max_position_embeddings = shape.context;
  c.num_labels = shape.num_labels;
  return c;
}

RewardModel::BackendFactory CpuRewardBackends(int num_blocks, int block_size, WrapBackend wrap) {
  CpuBackendOptions options;
  options.num_threads = 1;
  options.block_size = block_size;
  options.num_blocks = num_blocks;
  return CpuRewardBackends(options, std::move(wrap));
}

RewardModel::BackendFactory CpuRewardBackends(const CpuBackendOptions& options, WrapBackend wrap) {
  return [options, wrap](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
    absl::StatusOr<std::unique_ptr<CpuBackend>> backend = CpuBackend::Create(source, options);
    if (!backend.ok()) return backend.status();
    std::unique_ptr<Backend> b = std::move(*backend);
    return wrap ? wrap(std::move(b)) : std::move(b);
  };
}

ModelWeights KnownHeadRewardWeights(const Tokenizer& tokenizer,
                                    const std::vector<std::pair<std::string, float>>& word_values) {
  const ModelConfig c = TinyConfig({.hidden = kKnownHeadDim, .intermediate = 32, .layers = 1, .heads = 2,
                                    .kv_heads = 2, .vocab = tokenizer.vocab_size(), .context = 256,
                                    .num_labels = 1});
  ModelWeights w = MakeRandomWeights(c, 3);
  for (auto& layer : w.layers) {
    std::fill(layer.wo.begin(), layer.wo.end(), 0.0f);
    std::fill(layer.w_down.begin(), layer.w_down.end(), 0.0f);
  }
  std::fill(w.embed_tokens.begin(), w.embed_tokens.end(), 0.0f);
  for (int t = 0; t < c.vocab_size; ++t) w.embed_tokens[t * kKnownHeadDim + 1] = 1.0f;
  for (const auto& [word, value] : word_values) {
    const std::vector<int32_t> ids = tokenizer.Encode(word);
    EXPECT_EQ(ids.size(), 1u) << word;
    w.embed_tokens[ids.back() * kKnownHeadDim] = value;
  }
  std::fill(w.final_norm.begin(), w.final_norm.end(), 1.0f);
  std::fill(w.score.begin(), w.score.end(), 0.0f);
  w.score[0] = 2.0f;
  return w;
}

float KnownHeadScore(float a) {
  return 1.0f / (1.0f + std::exp(-2.0f * a * std::sqrt(float{kKnownHeadDim}) / std::sqrt(a * a + 1.0f)));
}

}  // namespace llama::testing
