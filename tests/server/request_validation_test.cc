// PrepareChatRequest's translation of a valid request (defaults, seed, prompt) and the limits' own checks. The
// refusals are exercised end to end, one per field, in chat_e2e_test.
#include "server/request_validation.h"

#include <fstream>

#include "gtest/gtest.h"

namespace llama::server {
namespace {

namespace v1 = ::llamachat::v1;

class RequestValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path = std::string(LLAMA_SOURCE_DIR) + "/models/stories15M/tokenizer.model";
    if (!std::ifstream(path).good()) GTEST_SKIP() << path << " missing: run scripts/fetch-model.sh";
    auto tokenizer = Tokenizer::Load(path);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    limits_.context_length = 256;
    limits_.vocab_size = tokenizer_->vocab_size();
    limits_.default_max_tokens = 100;
    limits_.max_candidates = 4;
    limits_ = WithTokenizerBounds(limits_, *tokenizer_);
    ASSERT_TRUE(limits_.Validate().ok());
  }

  v1::ChatRequest UserRequest(const std::string& text) {
    v1::ChatRequest request;
    v1::Message* m = request.add_messages();
    m->set_role(v1::ROLE_USER);
    m->set_content(text);
    return request;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  ValidationLimits limits_;
};

TEST_F(RequestValidationTest, UnsetFieldsTakeTheirDefaults) {
  auto prepared = PrepareChatRequest(UserRequest("Hello"), limits_, *tokenizer_, /*fallback_seed=*/1234);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  const GenerationRequest& r = prepared->request;
  EXPECT_EQ(r.sampling.temperature, 0.0f);  // greedy
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(r.max_tokens, 100);
  EXPECT_EQ(r.num_candidates, 1);
  EXPECT_EQ(r.seed, 1234u);
  EXPECT_TRUE(r.stop.empty());
}

TEST_F(RequestValidationTest, SetFieldsAreCarriedOver) {
  v1::ChatRequest request = UserRequest("Hello");
  v1::SamplingParams* s = request.mutable_sampling();
  s->set_temperature(0.7f);
  s->set_top_p(0.9f);
  s->set_top_k(40);
  s->set_repetition_penalty(1.1f);
  s->set_seed(0);  // explicitly 0, not "unset"
  s->set_max_tokens(12);
  s->add_stop("The end");
  auto prepared = PrepareChatRequest(request, limits_, *tokenizer_, 1234);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  const GenerationRequest& r = prepared->request;
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r.seed, 0u);
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.stop, std::vector<std::string>{"The end"});
}

TEST_F(RequestValidationTest, PromptIsTheChatPromptOfTheDialog) {
  auto prepared = PrepareChatRequest(UserRequest("Hello"), limits_, *tokenizer_, 0);
  ASSERT_TRUE(prepared.ok());
  auto expected = BuildChatPrompt(*tokenizer_, {Message{Role::kUser, "Hello"}}, 255);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(prepared->request.prompt_tokens, expected->token_ids);
  EXPECT_EQ(prepared->request.prompt_tokens.front(), tokenizer_->bos_id());
}

TEST_F(RequestValidationTest, OldTurnsAreDroppedToFitAndCounted) {
  v1::ChatRequest request;
  std::string long_turn;
  for (int i = 0; i < 60; ++i) long_turn += "story ";
  for (int turn = 0; turn < 4; ++turn) {
    v1::Message* u = request.add_messages();
    u->set_role(v1::ROLE_USER);
    u->set_content(long_turn);
    v1::Message* a = request.add_messages();
    a->set_role(v1::ROLE_ASSISTANT);
    a->set_content(long_turn);
  }
  request.add_messages()->CopyFrom(UserRequest("And then?").messages(0));
  auto prepared = PrepareChatRequest(request, limits_, *tokenizer_, 0);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_GT(prepared->dropped_turns, 0);
  EXPECT_LE(static_cast<int>(prepared->request.prompt_tokens.size()), 255);
}

TEST_F(RequestValidationTest, MessageByteBoundFollowsTheLongestPiece) {
  // No message longer than context × longest piece can ever fit, and the bound is at least the context.
  EXPECT_GE(limits_.max_message_bytes, limits_.context_length);
  v1::ChatRequest request = UserRequest(std::string(limits_.max_message_bytes + 1, 'a'));
  auto prepared = PrepareChatRequest(request, limits_, *tokenizer_, 0);
  EXPECT_EQ(prepared.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(prepared.status().message().find("messages[0].content"), std::string::npos);
}

TEST(ValidationLimitsTest, RejectsInconsistentLimits) {
  ValidationLimits limits;
  limits.context_length = 256;
  limits.vocab_size = 32000;
  limits.default_max_tokens = 100;
  EXPECT_TRUE(limits.Validate().ok());
  limits.default_max_tokens = 257;
  EXPECT_FALSE(limits.Validate().ok());
  limits.default_max_tokens = 100;
  limits.context_length = 1;
  EXPECT_FALSE(limits.Validate().ok());
}

}  // namespace
}  // namespace llama::server
