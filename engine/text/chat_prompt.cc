#include "engine/text/chat_prompt.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/utf8.h"

namespace llama {
namespace {

// Meta's llama/generation.py: B_INST, E_INST, B_SYS, E_SYS and SPECIAL_TAGS.
constexpr char kBeginInst[] = "[INST]";
constexpr char kEndInst[] = "[/INST]";
constexpr char kBeginSys[] = "<<SYS>>\n";
constexpr char kEndSys[] = "\n<</SYS>>\n\n";
constexpr const char* kControlTags[] = {"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"};

const char* RoleName(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
  }
  return "?";
}

absl::Status MessageError(size_t index, std::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("messages[", index, "]: ", std::string(rule)));
}

absl::Status CheckContent(size_t index, const std::string& content) {
  if (!utf8::IsValid(content)) return MessageError(index, "content is not valid UTF-8");
  for (const char* tag : kControlTags) {
    if (content.find(tag) != std::string::npos) {
      return MessageError(index, absl::StrCat("content contains the control tag \"", tag, "\", which is reserved "
                                              "for the prompt format"));
    }
  }
  return absl::OkStatus();
}

// One turn of the prompt: BOS "[INST] {user.strip()} [/INST] {assistant.strip()} " EOS for a completed pair,
// BOS "[INST] {user.strip()} [/INST]" for the final user message (assistant == nullptr).
std::vector<int32_t> EncodeTurn(const Tokenizer& tokenizer, std::string_view user, const std::string* assistant) {
  std::string text = absl::StrCat(kBeginInst, " ", std::string(utf8::StripPythonWhitespace(user)), " ", kEndInst);
  if (assistant != nullptr) {
    absl::StrAppend(&text, " ", std::string(utf8::StripPythonWhitespace(*assistant)), " ");
  }
  std::vector<int32_t> ids = {tokenizer.bos_id()};
  const std::vector<int32_t> text_ids = tokenizer.Encode(text);
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  if (assistant != nullptr) ids.push_back(tokenizer.eos_id());
  return ids;
}

// The user message with the system message folded in front, as the reference does before stripping the whole.
std::string FoldSystem(const std::string& system, const std::string& user) {
  return absl::StrCat(kBeginSys, system, kEndSys, user);
}

}  // namespace

absl::Status ValidateDialog(const std::vector<Message>& dialog) {
  if (dialog.empty()) return absl::InvalidArgumentError("messages: the dialog is empty; it needs a user message");
  const size_t first_turn = dialog[0].role == Role::kSystem ? 1 : 0;
  for (size_t i = 0; i < dialog.size(); ++i) {
    RETURN_IF_ERROR(CheckContent(i, dialog[i].content));
    if (i < first_turn) continue;
    if (dialog[i].role == Role::kSystem) {
      return MessageError(i, "a system message is only allowed as the first message");
    }
    const Role expected = (i - first_turn) % 2 == 0 ? Role::kUser : Role::kAssistant;
    if (dialog[i].role != expected) {
      return MessageError(i, absl::StrCat("expected role ", RoleName(expected), ", got ", RoleName(dialog[i].role),
                                          " (roles alternate user, assistant, ... after an optional system)"));
    }
  }
  if (dialog.back().role != Role::kUser) {
    return MessageError(dialog.size() - 1, absl::StrCat("the last message must have role user, got ",
                                                        RoleName(dialog.back().role)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChatPrompt> BuildChatPrompt(const Tokenizer& tokenizer, const std::vector<Message>& dialog,
                                           int max_prompt_tokens) {
  RETURN_IF_ERROR(ValidateDialog(dialog));
  if (max_prompt_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_prompt_tokens must be >= 0, got ", max_prompt_tokens));
  }
  const Message* system = dialog[0].role == Role::kSystem ? &dialog[0] : nullptr;
  const size_t first_turn = system != nullptr ? 1 : 0;
  const size_t num_turns = (dialog.size() - first_turn + 1) / 2;  // completed pairs + the final user message
  auto user = [&](size_t turn) -> const std::string& { return dialog[first_turn + 2 * turn].content; };
  auto assistant = [&](size_t turn) -> const std::string* {
    return turn + 1 < num_turns ? &dialog[first_turn + 2 * turn + 1].content : nullptr;
  };

  std::vector<std::vector<int32_t>> turn_ids(num_turns);  // [num_turns] ids of each turn without the system
  std::vector<size_t> tail_tokens(num_turns + 1, 0);      // [num_turns + 1] tokens of turns t.. without system
  for (size_t t = num_turns; t-- > 0;) {
    turn_ids[t] = EncodeTurn(tokenizer, user(t), assistant(t));
    tail_tokens[t] = tail_tokens[t + 1] + turn_ids[t].size();
  }
  // Drop the oldest completed pairs until the prompt fits; the system message always stays, folded into the
  // first kept user message (the serving side of Ghost Attention: the system prompt governs the whole chat).
  size_t needed = 0;
  for (size_t dropped = 0; dropped < num_turns; ++dropped) {
    std::vector<int32_t> first =
        system != nullptr ? EncodeTurn(tokenizer, FoldSystem(system->content, user(dropped)), assistant(dropped))
                          : turn_ids[dropped];
    needed = first.size() + tail_tokens[dropped + 1];
    if (max_prompt_tokens > 0 && needed > static_cast<size_t>(max_prompt_tokens)) continue;
    ChatPrompt prompt;
    prompt.dropped_turns = static_cast<int>(dropped);
    prompt.token_ids = std::move(first);
    for (size_t t = dropped + 1; t < num_turns; ++t) {
      prompt.token_ids.insert(prompt.token_ids.end(), turn_ids[t].begin(), turn_ids[t].end());
    }
    return prompt;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the prompt does not fit: the last user message", system != nullptr ? " with the system message" : "",
      " needs ", needed, " tokens but the limit is ", max_prompt_tokens,
      num_turns > 1 ? absl::StrCat(" (after dropping all ", num_turns - 1, " earlier turns)") : ""));
}

}  // namespace llama
