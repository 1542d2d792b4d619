#include "server/request_validation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/utf8.h"

namespace llama::server {
namespace {

namespace v1 = ::llamachat::v1;

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::StatusOr<Role> ToRole(v1::Role role, int index) {
  switch (role) {
    case v1::ROLE_SYSTEM: return Role::kSystem;
    case v1::ROLE_USER: return Role::kUser;
    case v1::ROLE_ASSISTANT: return Role::kAssistant;
    default:
      return Invalid(absl::StrCat("messages[", index, "].role"),
                     absl::StrCat("must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT, got ", static_cast<int>(role)));
  }
}

// Sampling fields: 0 means "unset" for top_p and repetition_penalty (proto3 defaults), "greedy" for temperature.
absl::StatusOr<SamplingParams> ValidateSampling(const v1::SamplingParams& in, const ValidationLimits& limits) {
  SamplingParams out;
  if (!std::isfinite(in.temperature()) || in.temperature() < 0.0f || in.temperature() > limits.max_temperature) {
    return Invalid("sampling.temperature",
                   absl::StrCat("must be in [0, ", limits.max_temperature, "] (0 = greedy), got ", in.temperature()));
  }
  out.temperature = in.temperature();
  const float top_p = in.top_p() == 0.0f ? 1.0f : in.top_p();
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
    return Invalid("sampling.top_p", absl::StrCat("must be in (0, 1] (0 = unset), got ", in.top_p()));
  }
  out.top_p = top_p;
  if (in.top_k() < 0 || in.top_k() > limits.vocab_size) {
    return Invalid("sampling.top_k",
                   absl::StrCat("must be in [0, ", limits.vocab_size, "] (0 = off), got ", in.top_k()));
  }
  out.top_k = in.top_k();
  const float penalty = in.repetition_penalty() == 0.0f ? 1.0f : in.repetition_penalty();
  if (!std::isfinite(penalty) || penalty <= 0.0f || penalty > limits.max_repetition_penalty) {
    return Invalid("sampling.repetition_penalty",
                   absl::StrCat("must be in (0, ", limits.max_repetition_penalty, "] (0 = unset), got ",
                                in.repetition_penalty()));
  }
  out.repetition_penalty = penalty;
  return out;
}

absl::Status ValidateStops(const v1::SamplingParams& in, const ValidationLimits& limits) {
  if (in.stop_size() > limits.max_stop_strings) {
    return Invalid("sampling.stop", absl::StrCat("at most ", limits.max_stop_strings, " strings, got ", in.stop_size()));
  }
  for (int i = 0; i < in.stop_size(); ++i) {
    const std::string& stop = in.stop(i);
    if (stop.empty()) return Invalid(absl::StrCat("sampling.stop[", i, "]"), "must not be empty");
    if (static_cast<int>(stop.size()) > limits.max_stop_bytes) {
      return Invalid(absl::StrCat("sampling.stop[", i, "]"),
                     absl::StrCat("at most ", limits.max_stop_bytes, " bytes, got ", stop.size()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestId(const std::string& id, const ValidationLimits& limits) {
  if (static_cast<int>(id.size()) > limits.max_request_id_bytes) {
    return Invalid("request_id", absl::StrCat("at most ", limits.max_request_id_bytes, " bytes, got ", id.size()));
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7E) return Invalid("request_id", "must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ValidateCandidates(int num_candidates, const ValidationLimits& limits) {
  const int k = num_candidates == 0 ? limits.default_candidates : num_candidates;
  if (k < 1 || k > limits.max_candidates) {
    return Invalid("num_candidates", absl::StrCat("must be in [1, ", limits.max_candidates, "] (0 = ",
                                                  limits.default_candidates, "), got ", num_candidates));
  }
  // Candidates are only ever chosen by a reward model; without one k > 1 would stream unscored text.
  if (k > 1 && !limits.has_reward_model) {
    return Invalid("num_candidates", absl::StrCat("k = ", k, " needs a reward model; this server has none"));
  }
  return k;
}

}  // namespace

absl::Status ValidationLimits::Validate() const {
  if (context_length < 2) return absl::InvalidArgumentError("context_length must be >= 2");
  if (vocab_size < 1) return absl::InvalidArgumentError("vocab_size must be >= 1");
  if (default_max_tokens < 1 || default_max_tokens > context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_max_tokens must be in [1, ", context_length, "], got ", default_max_tokens));
  }
  if (max_candidates < 1) return absl::InvalidArgumentError("max_candidates must be >= 1");
  if (default_segment_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment_tokens must be >= 0 (0 = whole-answer mode), got ", default_segment_tokens));
  }
  if (default_candidates < 1 || default_candidates > max_candidates) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_candidates must be in [1, ", max_candidates, "], got ", default_candidates));
  }
  if (default_candidates > 1 && !has_reward_model) {
    return absl::InvalidArgumentError("default_candidates > 1 needs a reward model (--safety_model_dir)");
  }
  if (max_messages < 1 || max_message_bytes < 0 || max_stop_strings < 0 || max_stop_bytes < 1) {
    return absl::InvalidArgumentError("message and stop-string limits must be positive");
  }
  return absl::OkStatus();
}

ValidationLimits WithTokenizerBounds(ValidationLimits limits, const Tokenizer& tokenizer) {
  if (limits.max_message_bytes != 0) return limits;
  size_t longest = 1;
  for (int id = 0; id < tokenizer.vocab_size(); ++id) longest = std::max(longest, tokenizer.PieceBytes(id).size());
  const int64_t bound = int64_t{limits.context_length} * static_cast<int64_t>(longest);
  limits.max_message_bytes = static_cast<int>(std::min<int64_t>(bound, 64 << 20));
  return limits;
}

absl::StatusOr<std::vector<Message>> ValidateMessages(
    const google::protobuf::RepeatedPtrField<v1::Message>& messages, const ValidationLimits& limits) {
  if (messages.empty()) return Invalid("messages", "must hold at least one ROLE_USER message");
  if (messages.size() > limits.max_messages) {
    return Invalid("messages", absl::StrCat("at most ", limits.max_messages, " messages, got ", messages.size()));
  }
  std::vector<Message> dialog;
  dialog.reserve(messages.size());
  for (int i = 0; i < messages.size(); ++i) {
    ASSIGN_OR_RETURN(Role role, ToRole(messages[i].role(), i));
    const std::string& content = messages[i].content();
    if (limits.max_message_bytes > 0 && static_cast<int>(content.size()) > limits.max_message_bytes) {
      return Invalid(absl::StrCat("messages[", i, "].content"),
                     absl::StrCat(content.size(), " bytes can never fit the context of ", limits.context_length,
                                  " tokens (at most ", limits.max_message_bytes, " bytes)"));
    }
    // The tokenizer and the prompt's strip() work on characters; ill-formed bytes are the client's bug, not text.
    if (!utf8::IsValid(content)) {
      return Invalid(absl::StrCat("messages[", i, "].content"), "is not valid UTF-8");
    }
    dialog.push_back(Message{role, content});
  }
  // Role order and control tags; the engine's message names the offending message index.
  const absl::Status dialog_status = ValidateDialog(dialog);
  if (!dialog_status.ok()) return Invalid("messages", dialog_status.message());
  return dialog;
}

absl::StatusOr<ChatPrompt> BuildServingPrompt(const Tokenizer& tokenizer, const std::vector<Message>& dialog,
                                              const ValidationLimits& limits) {
  // One position stays free for the first generated token.
  absl::StatusOr<ChatPrompt> prompt = BuildChatPrompt(tokenizer, dialog, limits.context_length - 1);
  if (!prompt.ok()) {
    if (prompt.status().code() == absl::StatusCode::kInvalidArgument) {
      return Invalid("messages", prompt.status().message());
    }
    return prompt.status();
  }
  return prompt;
}

absl::StatusOr<PreparedChat> PrepareChatRequest(const v1::ChatRequest& request, const ValidationLimits& limits,
                                                const Tokenizer& tokenizer, uint64_t fallback_seed) {
  // Cheap field checks first; tokenizing the dialog is the last and most expensive step.
  RETURN_IF_ERROR(ValidateRequestId(request.request_id(), limits));
  PreparedChat prepared;
  GenerationRequest& out = prepared.request;
  const v1::SamplingParams& sampling = request.sampling();
  ASSIGN_OR_RETURN(out.sampling, ValidateSampling(sampling, limits));
  RETURN_IF_ERROR(ValidateStops(sampling, limits));
  if (sampling.max_tokens() < 0 || sampling.max_tokens() > limits.context_length) {
    return Invalid("sampling.max_tokens", absl::StrCat("must be in [0, ", limits.context_length,
                                                       "] (0 = server default), got ", sampling.max_tokens()));
  }
  out.max_tokens = sampling.max_tokens() == 0 ? limits.default_max_tokens : sampling.max_tokens();
  out.stop.assign(sampling.stop().begin(), sampling.stop().end());
  out.seed = sampling.has_seed() ? sampling.seed() : fallback_seed;
  out.ignore_eos = sampling.ignore_eos();
  ASSIGN_OR_RETURN(out.num_candidates, ValidateCandidates(request.num_candidates(), limits));
  if (request.has_segment_tokens() && request.segment_tokens() < 0) {
    return Invalid("segment_tokens", absl::StrCat("must be >= 0 (0 = whole-answer mode, unset = the server's ",
                                                  limits.default_segment_tokens, "), got ",
                                                  request.segment_tokens()));
  }
  out.segment_tokens = request.has_segment_tokens() ? request.segment_tokens() : limits.default_segment_tokens;
  ASSIGN_OR_RETURN(std::vector<Message> dialog, ValidateMessages(request.messages(), limits));
  ASSIGN_OR_RETURN(ChatPrompt prompt, BuildServingPrompt(tokenizer, dialog, limits));
  out.prompt_tokens = std::move(prompt.token_ids);
  prepared.dropped_turns = prompt.dropped_turns;
  return prepared;
}

}  // namespace llama::server
