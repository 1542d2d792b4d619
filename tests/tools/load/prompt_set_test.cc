// The load generator's prompts: fixed lengths exact under the token counter, the chat mix's shape (roles, turns,
// lengths), fitting to the server's context, determinism by seed. The counter here is a stand-in tokenizer with
// the property the fitting relies on (a word's tokens do not depend on its neighbours: SentencePiece splits on
// whitespace): 9 template tokens plus ceil(length / 4) per word; the real Tokenize RPC is used by
// load_generator_test.
#include "tools/load/prompt_set.h"

#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama::load {
namespace {

namespace v1 = ::llamachat::v1;

int FakeTokens(const std::string& text) {
  int n = 0;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) n += (word.size() + 3) / 4;
  return n;
}

absl::StatusOr<int> FakeCount(const v1::ChatRequest& request) {
  int n = 9;
  for (const v1::Message& m : request.messages()) n += FakeTokens(m.content());
  return n;
}

TEST(PromptSetTest, FixedLengthsAreExact) {
  PromptSetOptions options;
  options.input_tokens = 77;
  options.output_tokens = 33;
  options.seed = 5;
  absl::StatusOr<PromptSet> set = PromptSet::Build(options, 50, FakeCount);
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->size(), 50);
  std::set<std::string> texts;
  for (int i = 0; i < set->size(); ++i) {
    const v1::ChatRequest& r = set->at(i);
    ASSERT_EQ(r.messages_size(), 1);
    EXPECT_EQ(r.messages(0).role(), v1::ROLE_USER);
    EXPECT_EQ(*FakeCount(r), 77) << r.messages(0).content();
    EXPECT_EQ(r.sampling().max_tokens(), 33);
    EXPECT_TRUE(r.sampling().ignore_eos());
    EXPECT_TRUE(r.sampling().has_seed());
    texts.insert(r.messages(0).content());
  }
  EXPECT_EQ(texts.size(), 50u) << "every request has its own prompt (no accidental prefix-cache hits)";
  EXPECT_TRUE(set->stats().exact_prompt_lengths);
}

TEST(PromptSetTest, SegmentTokensPassThroughOnlyWhenSet) {
  PromptSetOptions options;
  options.input_tokens = 40;
  options.output_tokens = 8;
  absl::StatusOr<PromptSet> unset = PromptSet::Build(options, 2, FakeCount);
  ASSERT_TRUE(unset.ok()) << unset.status();
  EXPECT_FALSE(unset->at(0).has_segment_tokens());  // the server's --segment_tokens decides
  for (int s : {0, 16}) {
    options.segment_tokens = s;
    absl::StatusOr<PromptSet> set = PromptSet::Build(options, 2, FakeCount);
    ASSERT_TRUE(set.ok()) << set.status();
    ASSERT_TRUE(set->at(1).has_segment_tokens());
    EXPECT_EQ(set->at(1).segment_tokens(), s);
  }
}

TEST(PromptSetTest, FixedLengthBelowTheTemplateIsInvalid) {
  PromptSetOptions options;
  options.input_tokens = 5;  // the template alone is 9 here
  options.output_tokens = 8;
  absl::StatusOr<PromptSet> set = PromptSet::Build(options, 1, FakeCount);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(set.status().message()), ::testing::HasSubstr("--input_tokens 5"));
}

TEST(PromptSetTest, FixedLengthsMustFitTheContext) {
  PromptSetOptions options;
  options.input_tokens = 200;
  options.output_tokens = 100;
  options.context_length = 256;
  EXPECT_EQ(PromptSet::Build(options, 1, FakeCount).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PromptSetTest, ChatMixShape) {
  PromptSetOptions options;
  options.seed = 11;
  constexpr int kDialogs = 2000;
  absl::StatusOr<PromptSet> set = PromptSet::Build(options, kDialogs, nullptr);
  ASSERT_TRUE(set.ok()) << set.status();
  std::map<int, int> turns;
  std::set<std::string> system_prompts;
  std::vector<double> max_tokens;
  for (int i = 0; i < kDialogs; ++i) {
    const v1::ChatRequest& r = set->at(i);
    ASSERT_GE(r.messages_size(), 2);
    EXPECT_EQ(r.messages(0).role(), v1::ROLE_SYSTEM);
    system_prompts.insert(r.messages(0).content());
    for (int m = 1; m < r.messages_size(); ++m) {
      EXPECT_EQ(r.messages(m).role(), m % 2 == 1 ? v1::ROLE_USER : v1::ROLE_ASSISTANT);
    }
    EXPECT_EQ(r.messages(r.messages_size() - 1).role(), v1::ROLE_USER);
    ++turns[r.messages_size() / 2];
    max_tokens.push_back(r.sampling().max_tokens());
  }
  EXPECT_EQ(system_prompts.size(), 4u);
  // Turn counts 1..4 with probabilities 0.45/0.25/0.18/0.12: each within 5 standard errors of a proportion.
  const double expected[] = {0.45, 0.25, 0.18, 0.12};
  for (int t = 1; t <= 4; ++t) {
    const double p = expected[t - 1], se = std::sqrt(p * (1 - p) / kDialogs);
    EXPECT_NEAR(turns[t] / double{kDialogs}, p, 5 * se) << t << " turns";
  }
  // Output lengths: lognormal with median 220 (sigma 0.9): the sample median's log has SE 1.2533·0.9/sqrt(n).
  std::sort(max_tokens.begin(), max_tokens.end());
  const double log_se = 1.2533 * 0.9 / std::sqrt(double{kDialogs});
  EXPECT_NEAR(std::log(max_tokens[kDialogs / 2]), std::log(220.0), 5 * log_se);
  EXPECT_EQ(set->stats().num_fitted, 0);  // no context given
}

TEST(PromptSetTest, ChatMixFitsTheContext) {
  PromptSetOptions options;
  options.seed = 3;
  options.length_scale = 0.25;
  options.context_length = 256;
  options.tokens_per_word = 1.0;  // FakeCount: most words of the list are 1-2 tokens
  absl::StatusOr<PromptSet> set = PromptSet::Build(options, 300, nullptr);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_GT(set->stats().num_fitted, 0);
  for (int i = 0; i < set->size(); ++i) {
    const v1::ChatRequest& r = set->at(i);
    EXPECT_GE(r.sampling().max_tokens(), 1);
    EXPECT_LT(r.sampling().max_tokens(), 256);
  }
  EXPECT_LT(set->stats().mean_prompt_tokens + set->stats().mean_output_tokens, 256);
}

TEST(PromptSetTest, SeedDecides) {
  PromptSetOptions a;
  a.seed = 1;
  PromptSetOptions b = a;
  PromptSetOptions c = a;
  c.seed = 2;
  const PromptSet x = *PromptSet::Build(a, 20, nullptr), y = *PromptSet::Build(b, 20, nullptr),
                  z = *PromptSet::Build(c, 20, nullptr);
  int differ = 0;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(x.at(i).SerializeAsString(), y.at(i).SerializeAsString());
    differ += x.at(i).SerializeAsString() != z.at(i).SerializeAsString() ? 1 : 0;
  }
  EXPECT_EQ(differ, 20);
}

TEST(PromptSetTest, TokensPerWordFromTheCounter) {
  absl::StatusOr<double> ratio = MeasureTokensPerWord(FakeCount, 256);
  ASSERT_TRUE(ratio.ok());
  EXPECT_GT(*ratio, 1.0);  // words of 5+ letters are 2 fake tokens
  EXPECT_LT(*ratio, 2.0);
}

}  // namespace
}  // namespace llama::load
