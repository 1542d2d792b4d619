// Preference pairs for the pairwise reward-head fit (data/safety/safety_rm_pairs.jsonl): one JSON object per line,
// {"dialog": [{"role", "content"}...], "chosen": "...", "rejected": "...", "margin": m | "rating": "...", ...}:
// chosen is the better answer to the dialog. The margin of a pair is m of the Llama 2 ranking loss
// −log σ(r(x, chosen) − r(x, rejected) − m): the row's "margin" (a number ≥ 0), or its "rating" mapped through the
// paper's margin table, or 0 when the row has neither. Other fields ("id", "category", "split") are informative.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/text/chat_prompt.h"

namespace llama {

// The Llama 2 paper's two margin tables (its reward-model ablation): the rating of how much better chosen is →
// m. small: significantly better 1, better 2/3, slightly better 1/3, negligibly better / unsure 0; large: 3, 2, 1, 0.
enum class MarginTable { kSmall, kLarge };

// "small" | "large"; INVALID_ARGUMENT otherwise.
absl::StatusOr<MarginTable> ParseMarginTable(std::string_view name);

// The margin of a rating ("significantly_better", "better", "slightly_better", "negligibly_better", "unsure");
// INVALID_ARGUMENT for any other string.
absl::StatusOr<double> RatingMargin(std::string_view rating, MarginTable table);

struct PreferencePair {
  std::vector<Message> dialog;  // a valid dialog (ValidateDialog), last message from the user
  std::string chosen;           // the preferred answer
  std::string rejected;         // the other answer, different from chosen
  double margin = 0;            // m ≥ 0, resolved from "margin" or "rating"
  std::string category;         // informative ("" when absent)
};

// Parses JSONL text; blank lines are skipped. INVALID_ARGUMENT naming the line and the field for invalid JSON, a
// missing or mistyped field, chosen == rejected, a negative or non-finite margin, an unknown rating, or a row with
// both "margin" and "rating".
absl::StatusOr<std::vector<PreferencePair>> ParsePreferencePairsJsonl(std::string_view text, MarginTable table);

// The held-out rule of training/reward_data.h (IsHeldOutAsk) on the pair's last user message.
bool IsHeldOut(const PreferencePair& pair, double holdout_frac);

}  // namespace llama
