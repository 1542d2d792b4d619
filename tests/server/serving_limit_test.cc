// The serving context limit is the one the engine loop resolves: the model's context clamped to what the KV pool
// holds. Here the pool (8 blocks of 16 = 128 tokens) is smaller than stories15M's 256 positions: GetModelInfo and
// Tokenize report 128, a prompt between the two limits is refused the same way by Tokenize and Chat (before any
// engine step), and a long dialog is truncated to the clamped limit, identically in Tokenize and Chat.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/e2e_helpers.h"

namespace llama::server::testing {
namespace {

constexpr int kPoolTokens = 8 * 16;

// A user message of `words` words (one token each, with the leading "▁").
std::string Words(int words) {
  std::string text;
  for (int i = 0; i < words; ++i) text += i == 0 ? "cat" : " cat";
  return text;
}

ChatServerOptions SmallPoolOptions() {
  ChatServerOptions options;
  options.num_kv_blocks = kPoolTokens / 16;
  return options;
}

class ServingLimitTest : public SharedServerTest<SmallPoolOptions> {
 protected:
  // The prompt length BuildChatPrompt gives the dialog without a limit.
  int FullPromptLength(const v1::ChatRequest& request) {
    std::vector<Message> dialog;
    for (const v1::Message& m : request.messages()) {
      dialog.push_back({m.role() == v1::ROLE_USER ? Role::kUser : m.role() == v1::ROLE_SYSTEM ? Role::kSystem
                                                                                              : Role::kAssistant,
                        m.content()});
    }
    auto prompt = BuildChatPrompt(server_->tokenizer(), dialog);
    EXPECT_TRUE(prompt.ok()) << prompt.status();
    return prompt.ok() ? static_cast<int>(prompt->token_ids.size()) : 0;
  }
  grpc::Status Tokenize(const v1::ChatRequest& request, v1::TokenizeResponse* response) {
    v1::TokenizeRequest tokenize;
    *tokenize.mutable_messages() = request.messages();
    grpc::ClientContext context;
    return stub_->Tokenize(&context, tokenize, response);
  }
};

TEST_F(ServingLimitTest, ModelInfoReportsThePoolClampedContext) {
  ASSERT_EQ(server_->engine().model_config().max_position_embeddings, 256);
  ASSERT_EQ(server_->engine().kv_cache().num_blocks * server_->engine().kv_cache().block_size, kPoolTokens);
  v1::GetModelInfoResponse info;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.model().context_length(), kPoolTokens);
  EXPECT_EQ(info.limits().max_tokens(), kPoolTokens);
  EXPECT_EQ(server_->limits().context_length, kPoolTokens);
}

TEST_F(ServingLimitTest, PromptBetweenTheLimitsIsRefusedByTokenizeAndChatAlike) {
  const v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, Words(150)}}, 8);
  const int length = FullPromptLength(request);
  ASSERT_GT(length, kPoolTokens);  // too long for the pool ...
  ASSERT_LT(length, 256);          // ... but within the model's positions
  // The previous test's last step may still be finishing: count steps from an idle engine.
  ASSERT_TRUE(WaitFor([&] { return EngineIdle(*server_); }));
  const int64_t steps = server_->engine().Snapshot().num_steps;

  v1::TokenizeResponse tokenized;
  const grpc::Status tokenize = Tokenize(request, &tokenized);
  EXPECT_EQ(tokenize.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << tokenize.error_message();
  const StreamResult chat = Chat(*stub_, request);
  EXPECT_EQ(chat.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << chat.status.error_message();
  EXPECT_FALSE(chat.has_final);
  // One refusal, from request validation, naming the limit (one position is kept for the first generated token).
  EXPECT_EQ(chat.status.error_message(), tokenize.error_message());
  EXPECT_NE(chat.status.error_message().find("messages:"), std::string::npos) << chat.status.error_message();
  EXPECT_NE(chat.status.error_message().find(std::to_string(kPoolTokens - 1)), std::string::npos)
      << chat.status.error_message();
  EXPECT_EQ(server_->engine().Snapshot().num_steps, steps);  // refused before the engine
}

TEST_F(ServingLimitTest, MaxTokensAboveTheClampedContextIsRefused) {
  const StreamResult chat = Chat(*stub_, MakeRequest({{v1::ROLE_USER, "Hello"}}, kPoolTokens + 1));
  EXPECT_EQ(chat.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(chat.status.error_message().find("sampling.max_tokens"), std::string::npos) << chat.status.error_message();
}

TEST_F(ServingLimitTest, LongDialogIsTruncatedToTheClampedLimitInTokenizeAndChat) {
  // Three turns of 60 words: ~200 prompt tokens; only the last turn (and the system message) fits in 127.
  const v1::ChatRequest request = MakeRequest({{v1::ROLE_SYSTEM, "You tell short stories."},
                                               {v1::ROLE_USER, Words(60)},
                                               {v1::ROLE_ASSISTANT, Words(60)},
                                               {v1::ROLE_USER, Words(60)}},
                                              4);
  const int length = FullPromptLength(request);
  ASSERT_GT(length, kPoolTokens);
  ASSERT_LT(length, 256);
  v1::TokenizeResponse tokenized;
  ASSERT_TRUE(Tokenize(request, &tokenized).ok());
  EXPECT_EQ(tokenized.dropped_turns(), 1);
  EXPECT_LE(tokenized.token_ids_size(), kPoolTokens - 1);
  const StreamResult chat = Chat(*stub_, request);
  ASSERT_TRUE(chat.status.ok()) << chat.status.error_message();
  EXPECT_EQ(chat.final_message.usage().prompt_tokens(), tokenized.token_ids_size());
}

}  // namespace
}  // namespace llama::server::testing
