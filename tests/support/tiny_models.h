// Small models for tests, defined once: the tiny shape most tests run (random weights of it build in
// milliseconds), the CPU backend factory a test reward model runs on, and the reward model whose score is known in
// closed form. A test that depends on other sizes names them as fields of TinyShape.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "engine/text/tokenizer.h"

namespace llama::testing {

struct TinyShape {
  int hidden = 32;
  int intermediate = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;     // GQA group 2, head_dim hidden / heads = 8
  int vocab = 64;
  int context = 64;     // max_position_embeddings
  int num_labels = 0;   // 1: a scalar reward model (LlamaForSequenceClassification)
};

ModelConfig TinyConfig(const TinyShape& shape = {});
// The tiny shape as a scalar reward model.
inline ModelConfig TinyRewardConfig() { return TinyConfig({.num_labels = 1}); }

// Reward-model backends for tests: a one-thread CPU backend with num_blocks blocks of block_size tokens, handed to
// `wrap` (when set) so a test can put an InterceptingBackend around it.
using WrapBackend = std::function<std::unique_ptr<Backend>(std::unique_ptr<Backend>)>;
RewardModel::BackendFactory CpuRewardBackends(int num_blocks, int block_size = 16, WrapBackend wrap = nullptr);
// The same with every CPU backend option given (weights_dtype, kv_dtype, threads, ...).
RewardModel::BackendFactory CpuRewardBackends(const CpuBackendOptions& options, WrapBackend wrap = nullptr);

// A reward model whose score is a known function of the sequence's last token: every layer's output projections
// are zero, so the final hidden state is RMSNorm(embed[last token]); embed[t] = (a_t, 1, 0, …) with a_t the value
// of t's word in word_values (0 for other tokens) and the head is (2, 0, …), so
// score = KnownHeadScore(a_t) = sigmoid(2 · a_t · sqrt(dim) / sqrt(a_t² + 1)) (up to the RMSNorm epsilon).
// Each word must be a single token of the tokenizer (EXPECTed).
inline constexpr int kKnownHeadDim = 16;
ModelWeights KnownHeadRewardWeights(const Tokenizer& tokenizer,
                                    const std::vector<std::pair<std::string, float>>& word_values);
float KnownHeadScore(float a);

}  // namespace llama::testing
