// A dialog file: a JSON array of {"role": "system"|"user"|"assistant", "content": "..."} (llama-chat generate and
// tokenize --dialog, the reward data's dialogs).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/text/chat_prompt.h"

namespace llama {

// INVALID_ARGUMENT naming the element and field for JSON errors, unknown roles and unknown fields. The roles'
// order is not checked here (ValidateDialog / BuildChatPrompt do).
absl::StatusOr<std::vector<Message>> ParseDialogJson(const std::string& json_text);

}  // namespace llama
