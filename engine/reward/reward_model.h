// RewardModel: a co-hosted scalar reward model (LlamaForSequenceClassification: Llama backbone + score head
// [1, hidden] + optional bias), run as prefill-only work on its own Backend with its own KV pool.
//
// What a reward model scores, defined once here and used by training (train-rm-head), candidate selection and the
// Score RPC: the LLaMA 2-Chat prompt of the dialog (BuildChatPrompt) followed by Encode(strip(response)), the
// response as the assistant's answer, without the EOS that would close the turn. The score is
// sigmoid(score · h + bias), h = the final-norm hidden state of that sequence's last token, applied on the host.
// Candidates are scored from their decoded text (re-encoded), so a (dialog, response) pair gets the same tokens,
// and hence the same score, whether it comes from generation or from a Score RPC.
//
// Two users share the backend and its KV pool: the engine loop's reward steps (scheduler/reward_queue.h: chunked,
// prefill-only, batched over requests; they own blocks [0, engine_kv_blocks) and keep them across steps) and the
// direct calls Score/Features (the Score RPC, train-rm-head), which use the rest of the pool and nothing of theirs
// outlives a call.
//
// Threading: every method may be called from any thread; Forward calls are serialised on an internal mutex (the
// backend runs one Forward at a time).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/backend.h"
#include "engine/model/weight_source.h"
#include "engine/model/weights.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/tokenizer.h"

namespace llama {

// prompt_ids (as BuildChatPrompt made them) followed by Encode(strip(response)); an empty response adds nothing
// (the score then reads the prompt's last token). INVALID_ARGUMENT when the result is longer than max_tokens
// (0 = no limit).
absl::StatusOr<std::vector<int32_t>> AppendRewardResponse(const Tokenizer& tokenizer,
                                                          absl::Span<const int32_t> prompt_ids,
                                                          std::string_view response, int max_tokens);

// The whole reward sequence of (dialog, response). The dialog's oldest turns are dropped, as in BuildChatPrompt,
// so that prompt + response fits max_tokens (0 = no limit).
absl::StatusOr<std::vector<int32_t>> BuildRewardSequence(const Tokenizer& tokenizer,
                                                         const std::vector<Message>& dialog,
                                                         std::string_view response, int max_tokens);

struct RewardModelOptions {
  std::string name = "safety";       // metrics label and logs
  int max_batch_tokens = 2048;       // tokens in one Forward at most; more sequences take several Forward calls
  // Blocks [0, engine_kv_blocks) of the pool are lent to the engine loop's reward steps; Score/Features use the
  // others. 0: the direct calls own the whole pool (tools, tests) and the engine loop cannot score with it.
  int engine_kv_blocks = 0;
  // Names the weights (Load: the model directory when left empty); part of the engine's prefix-cache key, so two
  // reward models with one config never share cached K/V.
  std::string source{};
};

class RewardModel {
 public:
  // Makes the reward model's backend from its weights. The source lives only during the call; a backend that keeps
  // its own storage (the CPU backend's packed f32/bf16/q8_0 panels) reads it panel by panel, so no full fp32 copy
  // of the model exists; one that takes host fp32 weights (CUDA today) materialises them (MaterializeWeights).
  using BackendFactory = std::function<absl::StatusOr<std::unique_ptr<Backend>>(const WeightSource&)>;

  // source must be a reward model (score.weight present, num_labels == 1, score.weight [1, hidden], optional
  // score.bias [1]: INVALID_ARGUMENT otherwise); the head is read from it (fp32, applied on the host), then the
  // backend is made from it by factory.
  static absl::StatusOr<std::unique_ptr<RewardModel>> Create(const WeightSource& source,
                                                             const BackendFactory& factory,
                                                             RewardModelOptions options);
  // The same over host weights (tests, tools): an owning InMemoryWeightSource, each tensor freed once the backend
  // has read it.
  static absl::StatusOr<std::unique_ptr<RewardModel>> Create(ModelWeights weights, const BackendFactory& factory,
                                                             RewardModelOptions options);
  // OpenWeightSource(model_path) (a model directory, or a GGUF file), checked to be a reward model, then Create:
  // nothing but headers is read before the backend reads its rows.
  static absl::StatusOr<std::unique_ptr<RewardModel>> Load(const std::string& model_path,
                                                           const BackendFactory& factory, RewardModelOptions options);

  // P(safe/helpful) of each sequence: [num_sequences] in [0, 1]. The direct path (the Score RPC, its warm-up,
  // train-rm-head): sequences are packed into as few Forward calls as the direct part of the KV pool and
  // max_batch_tokens allow. DEADLINE_EXCEEDED when deadline passes before a Forward; the backend's error otherwise.
  absl::StatusOr<std::vector<float>> Score(const std::vector<std::vector<int32_t>>& sequences,
                                           absl::Time deadline = absl::InfiniteFuture());
  // Final-norm hidden state of each sequence's last token: [num_sequences, hidden_size] row-major.
  absl::StatusOr<std::vector<float>> Features(const std::vector<std::vector<int32_t>>& sequences,
                                              absl::Time deadline = absl::InfiniteFuture());

  // The engine loop's reward step: one prefill-only Forward whose block tables use only blocks
  // [0, engine_kv_blocks()) (the caller's bookkeeping), serialised with Score/Features.
  absl::Status EngineForward(const ForwardInput& input, ForwardOutput* output);
  // sigmoid(head · hidden + bias) of one final-norm hidden state [hidden_size].
  float ScoreHidden(absl::Span<const float> hidden) const;

  const std::string& name() const { return options_.name; }
  const std::string& source() const { return options_.source; }
  const std::string& backend_name() const { return backend_name_; }
  const KvCacheSpec& kv_cache() const { return kv_; }
  int engine_kv_blocks() const { return options_.engine_kv_blocks; }
  const ModelConfig& config() const { return config_; }
  int max_tokens() const { return config_.max_position_embeddings; }
  const std::vector<float>& head() const { return head_; }  // [hidden]
  float bias() const { return bias_; }

 private:
  RewardModel(std::unique_ptr<Backend> backend, ModelConfig config, std::vector<float> head, float bias,
              RewardModelOptions options);
  int direct_blocks() const { return kv_.num_blocks - options_.engine_kv_blocks; }
  // Runs one Forward over sequences [begin, end), appending their hidden rows to hidden.
  absl::Status ForwardChunk(const std::vector<std::vector<int32_t>>& sequences, size_t begin, size_t end,
                            std::vector<float>* hidden) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<Backend> backend_ ABSL_GUARDED_BY(mu_);
  const ModelConfig config_;
  const KvCacheSpec kv_;           // the backend's, immutable
  const std::string backend_name_;  // the backend's, immutable
  const std::vector<float> head_;  // [hidden]  score.weight row 0
  const float bias_;               // score.bias[0], 0 when absent
  const RewardModelOptions options_;
};

}  // namespace llama
