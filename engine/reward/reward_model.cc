#include "engine/reward/reward_model.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "engine/forward_batch.h"
#include "engine/model/model_source.h"

namespace llama {
namespace {

// absl::string_view is not std::string_view in this Abseil build.
std::string_view Strip(std::string_view text) {
  const absl::string_view s = absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
  return std::string_view(s.data(), s.size());
}

float Sigmoid(double x) {
  if (x >= 0) return static_cast<float>(1.0 / (1.0 + std::exp(-x)));
  const double e = std::exp(x);
  return static_cast<float>(e / (1.0 + e));
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> AppendRewardResponse(const Tokenizer& tokenizer,
                                                          absl::Span<const int32_t> prompt_ids,
                                                          std::string_view response, int max_tokens) {
  const std::string_view stripped = Strip(response);
  std::vector<int32_t> ids(prompt_ids.begin(), prompt_ids.end());
  const std::vector<int32_t> answer = stripped.empty() ? std::vector<int32_t>() : tokenizer.Encode(stripped);
  ids.insert(ids.end(), answer.begin(), answer.end());
  if (max_tokens > 0 && static_cast<int>(ids.size()) > max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("reward model: prompt (", prompt_ids.size(), ") + response (",
                                                   answer.size(), ") tokens exceed its context of ", max_tokens));
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> BuildRewardSequence(const Tokenizer& tokenizer,
                                                         const std::vector<Message>& dialog,
                                                         std::string_view response, int max_tokens) {
  const std::string_view stripped = Strip(response);
  int prompt_budget = 0;  // 0 = no limit for BuildChatPrompt
  if (max_tokens > 0) {
    prompt_budget = max_tokens - static_cast<int>(stripped.empty() ? 0 : tokenizer.Encode(stripped).size());
    if (prompt_budget <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("reward model: the response alone exceeds its context of ", max_tokens, " tokens"));
    }
  }
  ASSIGN_OR_RETURN(ChatPrompt prompt, BuildChatPrompt(tokenizer, dialog, prompt_budget));
  return AppendRewardResponse(tokenizer, prompt.token_ids, stripped, max_tokens);
}

RewardModel::RewardModel(std::unique_ptr<Backend> backend, ModelConfig config, std::vector<float> head, float bias,
                         RewardModelOptions options)
    : backend_(std::move(backend)),
      config_(std::move(config)),
      kv_(backend_->kv_cache()),
      backend_name_(backend_->name()),
      head_(std::move(head)),
      bias_(bias),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<RewardModel>> RewardModel::Create(const WeightSource& source,
                                                                 const BackendFactory& factory,
                                                                 RewardModelOptions options) {
  const ModelConfig config = source.config();
  if (!HasScoreHead(source)) {
    return absl::InvalidArgumentError(absl::StrCat(options.source.empty() ? options.name : options.source,
                                                   " is not a reward model (LlamaForSequenceClassification with "
                                                   "score.weight)"));
  }
  if (config.num_labels != 1) {
    return absl::InvalidArgumentError(absl::StrCat("reward model '", options.name,
                                                   "': expected a scalar score head (num_labels 1, score [1, ",
                                                   config.hidden_size, "]), got num_labels ", config.num_labels));
  }
  if (options.max_batch_tokens <= 0) return absl::InvalidArgumentError("max_batch_tokens must be > 0");
  // Headers only: a broken model is named before any backend work, and score.weight is [1, hidden] (the rule for
  // num_labels 1), which the head's ReadRows below relies on.
  RETURN_IF_ERROR(CheckWeightShapes(source));
  // The head before the backend: a backend may Release each tensor once it has read it.
  std::vector<float> head(config.hidden_size);  // [hidden]
  RETURN_IF_ERROR(source.ReadRows("score.weight", 0, 1, head.data()));
  float bias = 0.0f;
  if (source.Info("score.bias").ok()) RETURN_IF_ERROR(source.ReadRows("score.bias", 0, 1, &bias));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, factory(source));
  if (backend->kv_cache().num_blocks <= 0) return absl::InvalidArgumentError("reward model backend has no KV blocks");
  if (options.engine_kv_blocks < 0 || options.engine_kv_blocks >= backend->kv_cache().num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("reward model '", options.name, "': engine_kv_blocks ",
                                                   options.engine_kv_blocks, " must be in [0, ",
                                                   backend->kv_cache().num_blocks, ")"));
  }
  return std::unique_ptr<RewardModel>(
      new RewardModel(std::move(backend), config, std::move(head), bias, std::move(options)));
}

absl::StatusOr<std::unique_ptr<RewardModel>> RewardModel::Create(ModelWeights weights,
                                                                 const BackendFactory& factory,
                                                                 RewardModelOptions options) {
  const InMemoryWeightSource source(std::move(weights));
  return Create(source, factory, std::move(options));
}

absl::StatusOr<std::unique_ptr<RewardModel>> RewardModel::Load(const std::string& model_path,
                                                               const BackendFactory& factory,
                                                               RewardModelOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenWeightSource(model_path));
  if (options.source.empty()) options.source = model_path;
  return Create(*source, factory, std::move(options));
}

absl::Status RewardModel::ForwardChunk(const std::vector<std::vector<int32_t>>& sequences, size_t begin,
                                       size_t end, std::vector<float>* hidden) {
  const int block_size = kv_.block_size;
  ForwardBatchBuilder batch(block_size);
  // Each call owns the direct part of the pool: its blocks are handed out from the start of that part.
  int32_t next_block = options_.engine_kv_blocks;
  std::vector<int32_t> blocks;
  for (size_t s = begin; s < end; ++s) {
    const int len = static_cast<int>(sequences[s].size());
    blocks.resize((len + block_size - 1) / block_size);
    for (int32_t& block : blocks) block = next_block++;
    batch.AddSequence(sequences[s], /*start=*/0, blocks);
    OutputRow out;
    out.sample = false;  // the hidden state of the sequence's last token
    batch.AddOutput(std::move(out));
  }
  ForwardInput in = std::move(batch).Build();
  in.return_hidden = true;
  ForwardOutput result;
  RETURN_IF_ERROR(backend_->Forward(in, &result));
  const size_t want = (end - begin) * static_cast<size_t>(config_.hidden_size);
  if (result.hidden.size() != want) {
    return absl::InternalError(absl::StrCat("reward model '", options_.name, "': backend returned ",
                                            result.hidden.size(), " hidden values, expected ", want));
  }
  hidden->insert(hidden->end(), result.hidden.begin(), result.hidden.end());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> RewardModel::Features(const std::vector<std::vector<int32_t>>& sequences,
                                                         absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  const KvCacheSpec& kv = kv_;
  for (const auto& seq : sequences) {
    if (seq.empty()) return absl::InvalidArgumentError("reward model: empty sequence");
    if (static_cast<int>(seq.size()) > max_tokens()) {
      return absl::InvalidArgumentError(absl::StrCat("reward model: sequence of ", seq.size(),
                                                     " tokens exceeds its context of ", max_tokens()));
    }
    if ((static_cast<int>(seq.size()) + kv.block_size - 1) / kv.block_size > direct_blocks()) {
      return absl::ResourceExhaustedError("reward model: KV pool too small for one sequence");
    }
  }
  std::vector<float> hidden;  // [num_sequences, hidden_size]
  hidden.reserve(sequences.size() * config_.hidden_size);
  size_t begin = 0;
  while (begin < sequences.size()) {
    // Greedy packing: as many whole sequences as fit in the pool and the token cap (at least one).
    size_t end = begin;
    int blocks = 0, tokens = 0;
    while (end < sequences.size()) {
      const int len = static_cast<int>(sequences[end].size());
      const int b = (len + kv.block_size - 1) / kv.block_size;
      if (end > begin && (blocks + b > direct_blocks() || tokens + len > options_.max_batch_tokens)) break;
      blocks += b;
      tokens += len;
      ++end;
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("reward model '", options_.name, "': deadline passed"));
    }
    RETURN_IF_ERROR(ForwardChunk(sequences, begin, end, &hidden));
    begin = end;
  }
  return hidden;
}

absl::Status RewardModel::EngineForward(const ForwardInput& input, ForwardOutput* output) {
  absl::MutexLock lock(&mu_);
  for (int32_t block : input.block_tables) {
    if (block >= options_.engine_kv_blocks) {
      return absl::InternalError(absl::StrCat("reward model '", options_.name, "': engine block ", block,
                                              " outside the engine's ", options_.engine_kv_blocks, " blocks"));
    }
  }
  return backend_->Forward(input, output);
}

float RewardModel::ScoreHidden(absl::Span<const float> hidden) const {
  CHECK_EQ(static_cast<int>(hidden.size()), config_.hidden_size);
  double logit = bias_;
  for (int j = 0; j < config_.hidden_size; ++j) logit += static_cast<double>(head_[j]) * hidden[j];
  return Sigmoid(logit);
}

absl::StatusOr<std::vector<float>> RewardModel::Score(const std::vector<std::vector<int32_t>>& sequences,
                                                      absl::Time deadline) {
  ASSIGN_OR_RETURN(std::vector<float> hidden, Features(sequences, deadline));
  const size_t dim = config_.hidden_size;
  std::vector<float> scores(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    scores[s] = ScoreHidden(absl::MakeConstSpan(hidden).subspan(s * dim, dim));
  }
  return scores;
}

}  // namespace llama
