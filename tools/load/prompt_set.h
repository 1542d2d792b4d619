// PromptSet: the ChatRequests a load run sends, built before the run (so no prompt work falls into a measured
// window) and deterministic for a seed.
//
// Fixed lengths (input_tokens > 0): one user message of random words from word_list.h whose prompt is exactly
// input_tokens tokens as the server counts them (its Tokenize RPC: chat template, BOS and all), each request with
// max_tokens = output_tokens.
//
// The synthetic chat mix, shaped after ShareGPT conversations (long-tailed lengths, multi-turn) and written for a
// 4096-token context; every length below is multiplied by length_scale:
//   - a system prompt, one of four per run (24, 48, 96 or 160 tokens), so requests share system prompts as a
//     deployed chat application's do;
//   - 1 to 4 user turns (probabilities 0.45, 0.25, 0.18, 0.12), earlier ones each answered by an assistant turn;
//   - user turn tokens ~ lognormal(median 60, sigma 1.1), mean ~110, clipped to [4, 1024];
//   - earlier assistant turns ~ lognormal(median 160, sigma 0.8), clipped to [8, 1024];
//   - output tokens (max_tokens) ~ lognormal(median 220, sigma 0.9), mean ~330, clipped to [8, 1024]; ShareGPT's
//     mean reply is ~338 tokens in the vLLM paper's statistics. --output_tokens replaces this draw.
// A dialog longer than the server's context loses its oldest (user, assistant) pairs, then output tokens, as the
// server would truncate it. Token counts are estimated from words × the tokens-per-word the server's tokenizer gives
// this word list (measured once with Tokenize); the run reports the prompt tokens the server actually used.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "llamachat/v1/chat.pb.h"

namespace llama::load {

// A request's prompt tokens as the server counts them (the Tokenize RPC).
using TokenCounter = std::function<absl::StatusOr<int>(const llamachat::v1::ChatRequest&)>;

struct PromptSetOptions {
  int input_tokens = 0;   // > 0: fixed prompt length (needs a counter)
  int output_tokens = 0;  // > 0: fixed max_tokens; 0: drawn from the chat mix
  double length_scale = 1.0;
  uint64_t seed = 0;
  float temperature = 0.8f;
  bool ignore_eos = true;
  int num_candidates = 0;
  int segment_tokens = -1;  // ChatRequest.segment_tokens; -1 = unset
  bool include_token_ids = false;
  int context_length = 0;        // the server's context limit; 0 = unknown (nothing is fitted)
  double tokens_per_word = 1.3;  // of word_list.h under the server's tokenizer (MeasureTokensPerWord)
};

struct PromptSetStats {
  int num_requests = 0;
  double mean_prompt_tokens = 0;  // exact for fixed lengths, estimated for the chat mix
  double mean_output_tokens = 0;  // of max_tokens
  double mean_turns = 0;          // user turns per dialog
  int num_fitted = 0;             // dialogs shortened to fit the context
  bool exact_prompt_lengths = false;
};

class PromptSet {
 public:
  // `count` requests; counter may be null only for the chat mix (no exact fixed lengths without it).
  static absl::StatusOr<PromptSet> Build(const PromptSetOptions& options, int count, const TokenCounter& counter);

  int size() const { return static_cast<int>(requests_.size()); }
  const llamachat::v1::ChatRequest& at(int index) const { return requests_.at(index % requests_.size()); }
  const PromptSetStats& stats() const { return stats_; }

 private:
  std::vector<llamachat::v1::ChatRequest> requests_;
  PromptSetStats stats_;
};

// Tokens per word of word_list.h text under the server's tokenizer: one Tokenize of an n-word message (n up to 400,
// a third of the context; 0 = unknown) minus that of a one-word message, over n - 1.
absl::StatusOr<double> MeasureTokensPerWord(const TokenCounter& counter, int context_length);

}  // namespace llama::load
