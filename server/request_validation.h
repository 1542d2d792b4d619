// Request validation: every field of a ChatRequest / TokenizeRequest is checked here, before admission, and each
// refusal is INVALID_ARGUMENT naming the field ("sampling.top_p: …", "messages[2].content: …"). A request that
// passes becomes the GenerationRequest the engine loop runs, with the exact prompt ids Tokenize reports.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/tokenizer.h"
#include "google/protobuf/repeated_field.h"
#include "llamachat/v1/chat.pb.h"
#include "scheduler/request.h"

namespace llama::server {

// The server's limits, fixed at start (flags and the model).
struct ValidationLimits {
  int context_length = 0;         // prompt + generated tokens at most
  int vocab_size = 0;             // top_k bound
  int default_max_tokens = 256;   // when a request leaves max_tokens at 0
  int max_candidates = 1;         // num_candidates cap
  int default_candidates = 1;     // k when a request leaves num_candidates at 0
  int default_segment_tokens = 0; // scored streaming when a request leaves segment_tokens unset (0 = whole answer)
  bool has_reward_model = false;  // k > 1 needs one: unscored candidates are never chosen
  int max_messages = 1024;
  int max_message_bytes = 0;      // 0 = context_length * the tokenizer's longest piece (can never fit beyond it)
  int max_stop_strings = 8;
  int max_stop_bytes = 256;
  int max_request_id_bytes = 128;
  float max_temperature = 100.0f;
  float max_repetition_penalty = 10.0f;

  absl::Status Validate() const;
};

// Fills max_message_bytes when it is 0: no single message longer than context_length × (longest piece in bytes)
// can fit the context, so such messages are refused before tokenizing them.
ValidationLimits WithTokenizerBounds(ValidationLimits limits, const Tokenizer& tokenizer);

// Roles (set, in order), control tags, sizes. Returns the engine's dialog.
absl::StatusOr<std::vector<Message>> ValidateMessages(
    const google::protobuf::RepeatedPtrField<llamachat::v1::Message>& messages, const ValidationLimits& limits);

// The prompt ids Chat feeds the model: BuildChatPrompt with room for at least one generated token (the oldest
// turns dropped if needed). INVALID_ARGUMENT ("messages: …") when even the last turn cannot fit.
absl::StatusOr<ChatPrompt> BuildServingPrompt(const Tokenizer& tokenizer, const std::vector<Message>& dialog,
                                              const ValidationLimits& limits);

struct PreparedChat {
  GenerationRequest request;  // id, deadline and arrival are left for the caller
  int dropped_turns = 0;
};

// Validates every field and builds the request. fallback_seed is used when the request sets no seed.
absl::StatusOr<PreparedChat> PrepareChatRequest(const llamachat::v1::ChatRequest& request,
                                                const ValidationLimits& limits, const Tokenizer& tokenizer,
                                                uint64_t fallback_seed);

}  // namespace llama::server
