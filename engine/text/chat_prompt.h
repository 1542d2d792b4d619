// The LLaMA 2-Chat prompt, exactly as Meta's reference chat_completion builds it (DESIGN §4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/text/tokenizer.h"

namespace llama {

enum class Role { kSystem, kUser, kAssistant };

struct Message {
  Role role = Role::kUser;
  std::string content;
};

// Role order (optional leading system, then user/assistant alternating, last is user) and control tags
// ([INST], [/INST], <<SYS>>, <</SYS>>). INVALID_ARGUMENT naming the message index and the rule otherwise.
absl::Status ValidateDialog(const std::vector<Message>& dialog);

struct ChatPrompt {
  std::vector<int32_t> token_ids;
  int dropped_turns = 0;  // oldest complete (user, assistant) pairs dropped to fit max_prompt_tokens
};

// Builds the prompt ids: per completed pair BOS "[INST] {user} [/INST] {assistant} " EOS, the final turn
// BOS "[INST] {user} [/INST]"; the system message folded into the first user message. When the ids exceed
// max_prompt_tokens (0 = no limit) the oldest complete turns are dropped, keeping the system message; if it still
// does not fit: INVALID_ARGUMENT.
absl::StatusOr<ChatPrompt> BuildChatPrompt(const Tokenizer& tokenizer, const std::vector<Message>& dialog,
                                           int max_prompt_tokens = 0);

}  // namespace llama
