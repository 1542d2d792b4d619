// The LLaMA 2-Chat prompt against golden ids from an independent Python implementation of Meta's chat_completion
// (tests/golden/make_chat_prompt_golden.py), plus the refusal rules and truncation.
#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/text/llama2_tokenizer_fixture.h"

namespace llama {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr char kGoldenPath[] = LLAMA_SOURCE_DIR "/tests/golden/chat_prompt_cases.json";

nlohmann::json LoadGolden() {
  std::ifstream in(kGoldenPath, std::ios::binary);
  EXPECT_TRUE(in.good()) << kGoldenPath;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
}

Message System(std::string text) { return {Role::kSystem, std::move(text)}; }
Message User(std::string text) { return {Role::kUser, std::move(text)}; }
Message Assistant(std::string text) { return {Role::kAssistant, std::move(text)}; }

class ChatPromptTest : public ::llama::testing::Llama2TokenizerTest {};

void ExpectInvalid(const absl::Status& status, const std::string& fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(fragment));
}

TEST_F(ChatPromptTest, MatchesGoldenIds) {
  const nlohmann::json golden = LoadGolden();
  ASSERT_TRUE(golden.is_object());
  const auto& cases = golden["cases"];
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto dialog = ParseDialogJson(c["dialog"].dump());
    ASSERT_TRUE(dialog.ok()) << dialog.status();
    const int limit = c["max_prompt_tokens"].get<int>();
    auto prompt = BuildChatPrompt(*tokenizer_, *dialog, limit);
    if (c["token_ids"].is_null()) {
      ExpectInvalid(prompt.status(), "needs " + std::to_string(c["needed_tokens"].get<int>()) +
                                         " tokens but the limit is " + std::to_string(limit));
      continue;
    }
    ASSERT_TRUE(prompt.ok()) << prompt.status();
    EXPECT_THAT(prompt->token_ids, ElementsAreArray(c["token_ids"].get<std::vector<int32_t>>()));
    EXPECT_EQ(prompt->dropped_turns, c["dropped_turns"].get<int>());
    if (limit > 0) {
      EXPECT_LE(prompt->token_ids.size(), static_cast<size_t>(limit));
    }
  }
}

TEST(PythonWhitespaceTest, MatchesPythonIsspaceForEveryCodePoint) {
  const nlohmann::json golden = LoadGolden();
  const auto list = golden["python_whitespace_code_points"].get<std::vector<uint32_t>>();
  ASSERT_FALSE(list.empty());
  const std::set<uint32_t> python(list.begin(), list.end());
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    ASSERT_EQ(utf8::IsPythonWhitespace(c), python.count(c) > 0) << "U+" << std::hex << static_cast<uint32_t>(c);
  }
}

TEST(PythonWhitespaceTest, Strip) {
  EXPECT_EQ(utf8::StripPythonWhitespace(" \t a b \n"), "a b");
  EXPECT_EQ(utf8::StripPythonWhitespace("\xE3\x80\x80x\xC2\xA0\xE2\x80\xA8"), "x");  // U+3000, U+00A0, U+2028
  EXPECT_EQ(utf8::StripPythonWhitespace("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");           // U+200B is not whitespace
  EXPECT_EQ(utf8::StripPythonWhitespace(" \xFF "), "\xFF");                             // invalid byte is kept
  EXPECT_EQ(utf8::StripPythonWhitespace(" \n "), "");
}

TEST_F(ChatPromptTest, RefusesControlTagsInEveryRole) {
  for (const char* tag : {"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"}) {
    const std::string bad = std::string("please ") + tag + " obey";
    ExpectInvalid(ValidateDialog({System(bad), User("hi")}), std::string("messages[0]: content contains the "
                                                                         "control tag \"") + tag);
    ExpectInvalid(ValidateDialog({User(bad)}), "messages[0]");
    ExpectInvalid(ValidateDialog({User("a"), Assistant(bad), User("b")}), "messages[1]");
    ExpectInvalid(BuildChatPrompt(*tokenizer_, {System("s"), User("a"), Assistant("b"), User(bad)}).status(),
                  std::string("messages[3]: content contains the control tag \"") + tag + "\"");
  }
}

TEST_F(ChatPromptTest, RefusesEveryRoleOrderViolation) {
  ExpectInvalid(ValidateDialog({}), "empty");
  ExpectInvalid(ValidateDialog({System("a"), System("b"), User("c")}),
                "messages[1]: a system message is only allowed as the first message");
  ExpectInvalid(ValidateDialog({User("a"), System("b")}),
                "messages[1]: a system message is only allowed as the first message");
  ExpectInvalid(ValidateDialog({Assistant("a"), User("b")}), "messages[0]: expected role user, got assistant");
  ExpectInvalid(ValidateDialog({System("s"), Assistant("a"), User("b")}),
                "messages[1]: expected role user, got assistant");
  ExpectInvalid(ValidateDialog({User("a"), User("b")}), "messages[1]: expected role assistant, got user");
  ExpectInvalid(ValidateDialog({User("a"), Assistant("b"), Assistant("c"), User("d")}),
                "messages[2]: expected role user, got assistant");
  ExpectInvalid(ValidateDialog({User("a"), Assistant("b")}),
                "messages[1]: the last message must have role user, got assistant");
  ExpectInvalid(ValidateDialog({System("s")}), "messages[0]: the last message must have role user, got system");
  ExpectInvalid(ValidateDialog({User("\xC3\x28")}), "messages[0]: content is not valid UTF-8");
  ExpectInvalid(BuildChatPrompt(*tokenizer_, {}).status(), "empty");
  EXPECT_TRUE(ValidateDialog({User("a")}).ok());
  EXPECT_TRUE(ValidateDialog({System("s"), User("a"), Assistant("b"), User("c")}).ok());
}

TEST_F(ChatPromptTest, TruncationKeepsSystemAndDropsOldestTurns) {
  const std::vector<Message> dialog = {System("SYSTEM-RULES"), User("oldest question"), Assistant("oldest answer"),
                                       User("middle question"), Assistant("middle answer"), User("newest question")};
  auto full = BuildChatPrompt(*tokenizer_, dialog);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->dropped_turns, 0);
  auto cut = BuildChatPrompt(*tokenizer_, dialog, static_cast<int>(full->token_ids.size()) - 1);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->dropped_turns, 1);
  const std::string text = tokenizer_->Decode(cut->token_ids);
  EXPECT_THAT(text, HasSubstr("<<SYS>>\nSYSTEM-RULES\n<</SYS>>\n\nmiddle question"));
  EXPECT_THAT(text, Not(HasSubstr("oldest")));
  EXPECT_THAT(text, HasSubstr("newest question [/INST]"));
  // The same as building the shortened dialog from scratch.
  auto shortened = BuildChatPrompt(*tokenizer_, {dialog[0], dialog[3], dialog[4], dialog[5]});
  ASSERT_TRUE(shortened.ok());
  EXPECT_EQ(cut->token_ids, shortened->token_ids);
  EXPECT_EQ(cut->token_ids[0], tokenizer_->bos_id());
}

TEST_F(ChatPromptTest, UnfittablePromptIsRefused) {
  auto last = BuildChatPrompt(*tokenizer_, {System("a long system message"), User("question")});
  ASSERT_TRUE(last.ok());
  const int needed = static_cast<int>(last->token_ids.size());
  auto refused = BuildChatPrompt(*tokenizer_, {System("a long system message"), User("q0"), Assistant("a0"),
                                               User("question")}, needed - 1);
  ExpectInvalid(refused.status(), "needs " + std::to_string(needed) + " tokens but the limit is " +
                                      std::to_string(needed - 1));
  ExpectInvalid(BuildChatPrompt(*tokenizer_, {User("x")}, -1).status(), "max_prompt_tokens");
}

TEST(ParseDialogJsonTest, AcceptsValidDialog) {
  auto dialog = ParseDialogJson(
      R"([{"role": "system", "content": "s"}, {"role": "user", "content": "\u00e9 \ud83d\ude80"}])");
  ASSERT_TRUE(dialog.ok()) << dialog.status();
  ASSERT_EQ(dialog->size(), 2u);
  EXPECT_EQ((*dialog)[0].role, Role::kSystem);
  EXPECT_EQ((*dialog)[1].role, Role::kUser);
  EXPECT_EQ((*dialog)[1].content, "\xC3\xA9 \xF0\x9F\x9A\x80");
  auto empty = ParseDialogJson("[]");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseDialogJsonTest, RejectsMalformedInput) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"([{"role": "user", "content": "x"})", "not valid JSON"},
      {"", "not valid JSON"},
      {R"([{"role": "user", "content": "x"}] trailing)", "not valid JSON"},
      {"[{\"role\": \"user\", \"content\": \"\xFF\"}]", "not valid JSON"},
      {R"({"role": "user", "content": "x"})", "expected a JSON array of messages, got object"},
      {R"([1])", "messages[0]: expected an object, got number"},
      {R"([{"content": "x"}])", "messages[0].role: missing"},
      {R"([{"role": 3, "content": "x"}])", "messages[0].role: expected a string, got number"},
      {R"([{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}])",
       "messages[1].role: unknown role \"bot\""},
      {R"([{"role": "User", "content": "x"}])", "unknown role \"User\""},
      {R"([{"role": "user"}])", "messages[0].content: missing"},
      {R"([{"role": "user", "content": ["x"]}])", "messages[0].content: expected a string, got array"},
      {R"([{"role": "user", "content": null}])", "messages[0].content: expected a string, got null"},
      {R"([{"role": "user", "contents": "x"}])", "messages[0]: unknown field \"contents\""},
  };
  for (const auto& [json, fragment] : bad) {
    SCOPED_TRACE(json);
    ExpectInvalid(ParseDialogJson(json).status(), fragment);
  }
}

}  // namespace
}  // namespace llama
