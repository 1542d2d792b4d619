#include "training/preference_data.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/text/dialog_json.h"
#include "nlohmann/json.hpp"
#include "training/reward_data.h"

namespace llama {
namespace {

absl::Status FieldError(int line, absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": field \"", field, "\": ", message));
}

absl::StatusOr<std::string> StringField(const nlohmann::json& j, const char* field, int line) {
  if (!j.contains(field)) return FieldError(line, field, "missing");
  if (!j[field].is_string()) return FieldError(line, field, "must be a string");
  return j[field].get<std::string>();
}

absl::StatusOr<double> MarginOf(const nlohmann::json& j, MarginTable table, int line) {
  const bool has_margin = j.contains("margin"), has_rating = j.contains("rating");
  if (has_margin && has_rating) return FieldError(line, "rating", "give \"margin\" or \"rating\", not both");
  if (has_rating) {
    ASSIGN_OR_RETURN(const std::string rating, StringField(j, "rating", line));
    absl::StatusOr<double> m = RatingMargin(rating, table);
    if (!m.ok()) return FieldError(line, "rating", m.status().message());
    return *m;
  }
  if (!has_margin) return 0.0;
  if (!j["margin"].is_number()) return FieldError(line, "margin", "must be a number");
  const double m = j["margin"].get<double>();
  if (!std::isfinite(m) || m < 0) return FieldError(line, "margin", absl::StrCat("must be finite and >= 0, got ", m));
  return m;
}

absl::StatusOr<PreferencePair> ParsePair(const nlohmann::json& j, MarginTable table, int line) {
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat("line ", line, ": expected a JSON object"));
  PreferencePair pair;
  if (!j.contains("dialog")) return FieldError(line, "dialog", "missing");
  if (!j["dialog"].is_array()) return FieldError(line, "dialog", "must be an array of messages");
  absl::StatusOr<std::vector<Message>> dialog = ParseDialogJson(j["dialog"].dump());
  if (!dialog.ok()) return FieldError(line, "dialog", dialog.status().message());
  if (absl::Status s = ValidateDialog(*dialog); !s.ok()) return FieldError(line, "dialog", s.message());
  pair.dialog = std::move(*dialog);
  ASSIGN_OR_RETURN(pair.chosen, StringField(j, "chosen", line));
  ASSIGN_OR_RETURN(pair.rejected, StringField(j, "rejected", line));
  if (pair.chosen == pair.rejected) return FieldError(line, "rejected", "is the same text as \"chosen\"");
  ASSIGN_OR_RETURN(pair.margin, MarginOf(j, table, line));
  if (j.contains("category") && j["category"].is_string()) pair.category = j["category"].get<std::string>();
  return pair;
}

}  // namespace

absl::StatusOr<MarginTable> ParseMarginTable(std::string_view name) {
  if (name == "small") return MarginTable::kSmall;
  if (name == "large") return MarginTable::kLarge;
  return absl::InvalidArgumentError(
      absl::StrCat("margin table must be \"small\" or \"large\", got \"", std::string(name), "\""));
}

absl::StatusOr<double> RatingMargin(std::string_view rating, MarginTable table) {
  const bool large = table == MarginTable::kLarge;
  if (rating == "significantly_better") return large ? 3.0 : 1.0;
  if (rating == "better") return large ? 2.0 : 2.0 / 3.0;
  if (rating == "slightly_better") return large ? 1.0 : 1.0 / 3.0;
  if (rating == "negligibly_better" || rating == "unsure") return 0.0;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown rating \"", std::string(rating),
      "\" (one of significantly_better, better, slightly_better, negligibly_better, unsure)"));
}

absl::StatusOr<std::vector<PreferencePair>> ParsePreferencePairsJsonl(std::string_view text, MarginTable table) {
  std::vector<PreferencePair> pairs;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": invalid JSON"));
    ASSIGN_OR_RETURN(PreferencePair pair, ParsePair(j, table, line_number));
    pairs.push_back(std::move(pair));
  }
  return pairs;
}

bool IsHeldOut(const PreferencePair& pair, double holdout_frac) {
  return IsHeldOutAsk(pair.dialog.back().content, holdout_frac);
}

}  // namespace llama
