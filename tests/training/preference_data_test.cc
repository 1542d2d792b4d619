// Preference-pair parsing (training/preference_data.h): the committed pairs file and its split against the Python
// generator's, the margin tables, and malformed rows named by line and field.
#include "training/preference_data.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "training/reward_data.h"

namespace llama {
namespace {

std::string ReadFile(const std::string& relative) {
  std::ifstream in(std::string(LLAMA_SOURCE_DIR) + "/" + relative);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PreferenceDataTest, ParsesTheSafetyPairsAndTheirSplitMatchesTheGenerator) {
  const std::string text = ReadFile("data/safety/safety_rm_pairs.jsonl");
  auto pairs = ParsePreferencePairsJsonl(text, MarginTable::kSmall);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_GE(pairs->size(), 300u);
  // Every answer of a pair is a labeled row of safety_rm.jsonl: chosen labeled safe, rejected unsafe, same dialog.
  auto examples = ParseRewardDataJsonl(ReadFile("data/safety/safety_rm.jsonl"));
  ASSERT_TRUE(examples.ok()) << examples.status();
  auto label_of = [&](const std::vector<Message>& dialog, const std::string& response) {
    for (const RewardExample& ex : *examples) {
      if (ex.response != response || ex.dialog.size() != dialog.size()) continue;
      bool same = true;
      for (size_t k = 0; k < dialog.size(); ++k) same = same && ex.dialog[k].content == dialog[k].content;
      if (same) return ex.label;
    }
    return -1;
  };
  std::istringstream lines(text);
  std::string line;
  int i = 0, heldout = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    const PreferencePair& pair = (*pairs)[i++];
    // make_safety_rm_pairs.py computed the split in Python; the C++ rule must agree on every line.
    EXPECT_EQ(IsHeldOut(pair, 0.2), j["split"] == "heldout") << line;
    EXPECT_EQ(pair.chosen, j["chosen"].get<std::string>());
    EXPECT_EQ(pair.margin, 0.0);
    EXPECT_EQ(label_of(pair.dialog, pair.chosen), 1) << line;
    EXPECT_EQ(label_of(pair.dialog, pair.rejected), 0) << line;
    heldout += IsHeldOut(pair, 0.2);
  }
  EXPECT_EQ(i, static_cast<int>(pairs->size()));
  EXPECT_GT(heldout, 40);
}

TEST(PreferenceDataTest, MarginFromTheRowOrFromTheRatingTable) {
  const std::string rows =
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\"}\n"
      "\n"
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"margin\":0.25}\n"
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\","
      "\"rating\":\"significantly_better\"}\n"
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\","
      "\"rating\":\"better\"}\n"
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\","
      "\"rating\":\"slightly_better\"}\n"
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"rating\":\"unsure\"}\n";
  auto small = ParsePreferencePairsJsonl(rows, MarginTable::kSmall);
  auto large = ParsePreferencePairsJsonl(rows, MarginTable::kLarge);
  ASSERT_TRUE(small.ok()) << small.status();
  ASSERT_TRUE(large.ok()) << large.status();
  ASSERT_EQ(small->size(), 6u);
  const double want_small[] = {0, 0.25, 1, 2.0 / 3, 1.0 / 3, 0}, want_large[] = {0, 0.25, 3, 2, 1, 0};
  for (int i = 0; i < 6; ++i) {
    EXPECT_DOUBLE_EQ((*small)[i].margin, want_small[i]) << i;
    EXPECT_DOUBLE_EQ((*large)[i].margin, want_large[i]) << i;
  }
  EXPECT_EQ(ParseMarginTable("large").value(), MarginTable::kLarge);
  EXPECT_EQ(ParseMarginTable("medium").status().code(), absl::StatusCode::kInvalidArgument);
}

// Each malformed row is INVALID_ARGUMENT whose message names the line and the field.
TEST(PreferenceDataTest, MalformedRowsNameTheLineAndField) {
  const std::string ok_line =
      "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\"}\n";
  struct Case {
    std::string row;
    std::string want;  // in the message
  };
  const Case cases[] = {
      {"{not json", "line 2: invalid JSON"},
      {"[1, 2]", "line 2: expected a JSON object"},
      {"{\"chosen\":\"a\",\"rejected\":\"b\"}", "line 2: field \"dialog\": missing"},
      {"{\"dialog\":\"q\",\"chosen\":\"a\",\"rejected\":\"b\"}", "line 2: field \"dialog\": must be an array"},
      {"{\"dialog\":[{\"role\":\"assistant\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\"}",
       "line 2: field \"dialog\": "},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"rejected\":\"b\"}", "line 2: field \"chosen\": missing"},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":7}",
       "line 2: field \"rejected\": must be a string"},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"a\"}",
       "line 2: field \"rejected\": is the same text as \"chosen\""},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"margin\":-1}",
       "line 2: field \"margin\": must be finite and >= 0"},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"margin\":\"1\"}",
       "line 2: field \"margin\": must be a number"},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"rating\":\"best\"}",
       "line 2: field \"rating\": unknown rating \"best\""},
      {"{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\",\"rating\":\"better\","
       "\"margin\":1}",
       "line 2: field \"rating\": give \"margin\" or \"rating\", not both"},
  };
  for (const Case& c : cases) {
    auto parsed = ParsePreferencePairsJsonl(ok_line + c.row + "\n", MarginTable::kSmall);
    ASSERT_FALSE(parsed.ok()) << c.row;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.row;
    EXPECT_NE(std::string(parsed.status().message()).find(c.want), std::string::npos)
        << c.row << " -> " << parsed.status().message();
  }
}

}  // namespace
}  // namespace llama
