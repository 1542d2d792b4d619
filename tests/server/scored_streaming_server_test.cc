// Scored streaming end to end: an in-process ChatServer with models/stories15M-safety-rm (scripts/fetch-model.sh),
// ChatRequest.segment_tokens over gRPC: segments stream as they are chosen, Final reports them, k = 1 with
// segments equals the whole-answer text, refusals and validation.
#include <fstream>

#include "gtest/gtest.h"
#include "tests/server/e2e_helpers.h"

namespace llama::server::testing {
namespace {

std::string RewardModelDir() { return std::string(LLAMA_SOURCE_DIR) + "/models/stories15M-safety-rm"; }
bool HaveRewardModel() { return HaveModel() && std::ifstream(RewardModelDir() + "/model.safetensors").good(); }

ChatServerOptions RewardOptions() {
  ChatServerOptions options;
  options.safety_model_dir = RewardModelDir();
  options.max_candidates = 4;
  return options;
}

class ScoredStreamingServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRewardModel()) GTEST_SKIP() << "models/stories15M-safety-rm missing: run scripts/fetch-model.sh";
  }
};

v1::ChatRequest StoryRequest(int k, int max_tokens, uint64_t seed) {
  v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, "Tell me a story about a dog."}}, max_tokens);
  request.set_num_candidates(k);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(seed);
  request.mutable_sampling()->set_ignore_eos(true);  // exactly max_tokens: a known number of segments
  return request;
}

TEST_F(ScoredStreamingServerTest, SegmentsStreamAsTheyAreChosen) {
  auto server = StartServer(RewardOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const double segments0 = MetricValue(server->metrics(), "llama_chat_segments_per_request");
  const double segment_scores0 = MetricValue(server->metrics(), "llama_chat_segment_score");
  const double selections0 = MetricValue(server->metrics(), "llama_chat_candidates_per_request");
  v1::ChatRequest request = StoryRequest(4, 32, 42);
  request.set_segment_tokens(8);
  const StreamResult result = Chat(*stub, request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_TRUE(result.has_final);
  ASSERT_NE(result.final_message.finish_reason(), v1::FINISH_REASON_SAFETY) << "threshold 0.15 refused a story";
  EXPECT_EQ(result.final_message.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(result.final_message.num_segments(), 4);  // 32 tokens / 8
  EXPECT_GE(result.deltas.size(), 2u);                 // more than the whole answer in one piece
  EXPECT_LE(result.deltas.size(), 4u);                 // one per segment at most
  EXPECT_EQ(result.final_message.usage().completion_tokens(), 32);
  EXPECT_GE(result.final_message.min_segment_score(), 0.15f);
  EXPECT_LE(result.final_message.min_segment_score(), result.final_message.safety_score());
  EXPECT_LT(result.final_message.time_to_first_token_s(), result.final_message.total_time_s());
  // Reproducible with the same seed.
  EXPECT_EQ(Chat(*stub, request).text, result.text);
  // Two requests of 4 segments: each observed once per request, each segment once, k once per request.
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_segments_per_request") - segments0, 2);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_segment_score") - segment_scores0, 8);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_candidates_per_request") - selections0, 2);
  EXPECT_TRUE(WaitFor([&] {
    const EngineSnapshot s = server->engine().Snapshot();
    return s.kv_blocks_used == 0 && s.reward_kv_blocks_used == 0;
  }));
}

TEST_F(ScoredStreamingServerTest, OneCandidateWithSegmentsEqualsTheWholeAnswer) {
  auto server = StartServer(RewardOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  v1::ChatRequest whole = StoryRequest(1, 24, 7);
  whole.set_segment_tokens(0);
  v1::ChatRequest segmented = whole;
  segmented.set_segment_tokens(5);
  const StreamResult a = Chat(*stub, whole);
  const StreamResult b = Chat(*stub, segmented);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.final_message.num_segments(), 0);
  EXPECT_FLOAT_EQ(a.final_message.min_segment_score(), -1.0f);
  EXPECT_EQ(b.final_message.num_segments(), 5);  // 24 tokens in segments of 5
}

TEST_F(ScoredStreamingServerTest, ServerDefaultRefusalAndValidation) {
  ChatServerOptions options = RewardOptions();
  options.segment_tokens = 4;         // requests that leave segment_tokens unset
  options.safety_threshold = 1.0f;    // nothing passes: the first segment is refused
  options.refusal_text = "No can do.";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const double rejected0 = MetricValue(server->metrics(), "llama_chat_rejected_segments_total");
  const double refusals0 = MetricValue(server->metrics(), "llama_chat_safety_refusals_total");
  const StreamResult refused = Chat(*stub, StoryRequest(2, 16, 3));
  ASSERT_TRUE(refused.status.ok()) << refused.status.error_message();
  EXPECT_EQ(refused.text, "No can do.");
  EXPECT_EQ(refused.final_message.finish_reason(), v1::FINISH_REASON_SAFETY);
  EXPECT_EQ(refused.final_message.num_segments(), 1);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_rejected_segments_total") - rejected0, 1);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_safety_refusals_total") - refusals0, 1);
  v1::ChatRequest negative = StoryRequest(1, 16, 3);
  negative.set_segment_tokens(-2);
  const StreamResult bad = Chat(*stub, negative);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.status.error_message().find("segment_tokens"), std::string::npos) << bad.status.error_message();
}

}  // namespace
}  // namespace llama::server::testing
