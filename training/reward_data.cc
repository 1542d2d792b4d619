#include "training/reward_data.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/text/dialog_json.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

absl::Status LineError(int line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", message));
}

absl::StatusOr<RewardExample> ParseExample(const nlohmann::json& j, int line) {
  if (!j.is_object()) return LineError(line, "expected a JSON object");
  RewardExample ex;
  if (!j.contains("dialog") || !j["dialog"].is_array()) return LineError(line, "missing array \"dialog\"");
  auto dialog = ParseDialogJson(j["dialog"].dump());
  if (!dialog.ok()) return LineError(line, dialog.status().message());
  if (absl::Status s = ValidateDialog(*dialog); !s.ok()) return LineError(line, s.message());
  ex.dialog = std::move(*dialog);
  if (!j.contains("response") || !j["response"].is_string()) return LineError(line, "missing string \"response\"");
  ex.response = j["response"].get<std::string>();
  if (!j.contains("label") || !j["label"].is_string()) return LineError(line, "missing string \"label\"");
  const std::string label = j["label"].get<std::string>();
  if (label != "safe" && label != "unsafe") return LineError(line, "label must be \"safe\" or \"unsafe\"");
  ex.label = label == "safe" ? 1 : 0;
  if (j.contains("category") && j["category"].is_string()) ex.category = j["category"].get<std::string>();
  return ex;
}

}  // namespace

absl::StatusOr<std::vector<RewardExample>> ParseRewardDataJsonl(std::string_view text) {
  std::vector<RewardExample> examples;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return LineError(line_number, "invalid JSON");
    ASSIGN_OR_RETURN(RewardExample ex, ParseExample(j, line_number));
    examples.push_back(std::move(ex));
  }
  return examples;
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

bool IsHeldOutAsk(std::string_view ask, double holdout_frac) {
  const uint64_t cut = static_cast<uint64_t>(std::llround(1000.0 * holdout_frac));
  return Fnv1a64(ask) % 1000 < cut;
}

bool IsHeldOut(const RewardExample& example, double holdout_frac) {
  return IsHeldOutAsk(example.dialog.back().content, holdout_frac);
}

}  // namespace llama
