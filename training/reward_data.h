// Labeled reward-model data (data/safety/safety_rm.jsonl): one JSON object per line,
// {"dialog": [{"role", "content"}...], "response": "...", "label": "safe"|"unsafe", ...}, and the fixed held-out
// split rule train-rm-head uses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/text/chat_prompt.h"

namespace llama {

struct RewardExample {
  std::vector<Message> dialog;  // a valid dialog (ValidateDialog), last message from the user
  std::string response;
  int label = 0;                // 1 = safe (the reward model's positive class), 0 = unsafe
  std::string category;         // informative ("" when absent)
};

// Parses JSONL text; blank lines are skipped. Errors name the line.
absl::StatusOr<std::vector<RewardExample>> ParseRewardDataJsonl(std::string_view text);

// FNV-1a 64 of the UTF-8 bytes of text.
uint64_t Fnv1a64(std::string_view text);

// The fixed held-out rule: Fnv1a64(ask) % 1000 < round(1000 · holdout_frac), ask = the dialog's last user message.
// Splitting by ask keeps every answer to one ask on the same side, so held-out accuracy measures unseen asks, not
// unseen pairings; preference pairs (training/preference_data.h) use the same rule, so a pair and the labeled rows
// of its answers land on the same side.
bool IsHeldOutAsk(std::string_view ask, double holdout_frac);
bool IsHeldOut(const RewardExample& example, double holdout_frac);

}  // namespace llama
