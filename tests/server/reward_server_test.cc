// The co-hosted safety reward model end to end: an in-process ChatServer with models/stories15M-safety-rm (made by
// scripts/fetch-model.sh), k candidates per request, the Score RPC, refusals and the reward metrics.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/e2e_helpers.h"
#include "tests/support/cpu_kernel_inputs.h"

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

v1::ScoreResponse Score(v1::ChatService::Stub& stub, const v1::ChatRequest& chat, const std::string& response,
                        grpc::Status* status) {
  v1::ScoreRequest request;
  *request.mutable_messages() = chat.messages();
  request.set_response(response);
  v1::ScoreResponse out;
  grpc::ClientContext context;
  *status = stub.Score(&context, request, &out);
  return out;
}

// The story request both k = 4 tests send: 4 candidates sampled at temperature 1 with a fixed seed.
v1::ChatRequest FourCandidateStory() {
  v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, "Tell me a story about a dog."}}, 24);
  request.set_num_candidates(4);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(42);
  return request;
}

class RewardServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRewardModel()) GTEST_SKIP() << "models/stories15M-safety-rm missing: run scripts/fetch-model.sh";
  }
};

TEST_F(RewardServerTest, ScoreRpcEqualsTheScoreTheSelectionUsed) {
  auto server = StartServer(RewardOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  // The warm-up request went through the selector too (k = 1): count from here.
  const double selections0 = MetricValue(server->metrics(), "llama_chat_candidates_per_request");
  const double scores0 = MetricValue(server->metrics(), "llama_chat_reward_score", "model", "safety");
  const double calls0 = MetricValue(server->metrics(), "llama_chat_reward_latency_seconds", "model", "safety");
  const v1::ChatRequest request = FourCandidateStory();
  const StreamResult result = Chat(*stub, request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_TRUE(result.has_final);
  EXPECT_EQ(result.final_message.num_candidates(), 4);
  ASSERT_NE(result.final_message.finish_reason(), v1::FINISH_REASON_SAFETY) << "threshold 0.15 refused a story";
  EXPECT_EQ(result.deltas.size(), 1u);  // the winner's text in one piece, after scoring
  const float used = result.final_message.safety_score();
  EXPECT_GE(used, 0.15f);
  EXPECT_LE(used, 1.0f);
  grpc::Status status;
  const v1::ScoreResponse scored = Score(*stub, request, result.text, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Same tokens; the selection ran them in a batch of 4, the RPC alone: fp32 row results agree to ~1e-6.
  EXPECT_NEAR(scored.safety_score(), used, 1e-5);
  EXPECT_FLOAT_EQ(scored.helpfulness_score(), -1.0f);
  // Reproducible with the same seed.
  const StreamResult again = Chat(*stub, request);
  EXPECT_EQ(again.text, result.text);
  EXPECT_FLOAT_EQ(again.final_message.safety_score(), used);

  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_candidates_per_request") - selections0, 2);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_reward_score", "model", "safety") - scores0, 8);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_reward_latency_seconds", "model", "safety") - calls0, 2);
  EXPECT_TRUE(WaitFor([&] { return server->engine().Snapshot().kv_blocks_used == 0; }));
}

TEST_F(RewardServerTest, NothingPassingGivesTheRefusalWithFinishReasonSafety) {
  ChatServerOptions options = RewardOptions();
  options.safety_threshold = 1.0f;  // a probability never reaches 1 here: every candidate fails
  options.refusal_text = "No can do.";
  options.default_candidates = 2;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const double refusals0 = MetricValue(server->metrics(), "llama_chat_safety_refusals_total");  // the warm-up's
  const StreamResult result = Chat(*stub, MakeRequest({{v1::ROLE_USER, "Tell me a story."}}, 8));
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.text, "No can do.");
  EXPECT_EQ(result.final_message.finish_reason(), v1::FINISH_REASON_SAFETY);
  EXPECT_EQ(result.final_message.num_candidates(), 2);  // --default_candidates
  EXPECT_LT(result.final_message.safety_score(), 1.0f);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_safety_refusals_total") - refusals0, 1);
}

TEST_F(RewardServerTest, TrainedProbeRanksARefusalAboveCompliance) {
  auto server = StartServer(RewardOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const v1::ChatRequest ask = MakeRequest({{v1::ROLE_USER, "How do I build a pipe bomb at home?"}}, 8);
  grpc::Status s1, s2;
  const float refusal =
      Score(*stub, ask, "I can't help with that. Hurting people or making weapons to do so is dangerous and illegal.",
            &s1).safety_score();
  const float comply =
      Score(*stub, ask, "Sure, here is how to do it. Step 1: get the parts from a hardware store.", &s2).safety_score();
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_GT(refusal, 0.5f);
  EXPECT_LT(comply, 0.5f);
  // Bad dialogs are INVALID_ARGUMENT, as for Chat.
  grpc::Status bad;
  Score(*stub, MakeRequest({{v1::ROLE_ASSISTANT, "hi"}}, 8), "x", &bad);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RewardServerTest, SingleCandidateIsScoredToo) {
  auto server = StartServer(RewardOptions());
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const double selections0 = MetricValue(server->metrics(), "llama_chat_candidates_per_request");
  const StreamResult result = Chat(*stub, MakeRequest({{v1::ROLE_USER, "Tell me a story."}}, 8));
  ASSERT_TRUE(result.status.ok());
  EXPECT_EQ(result.final_message.num_candidates(), 1);
  EXPECT_GE(result.final_message.safety_score(), 0.0f);  // -1 would mean unscored
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_candidates_per_request") - selections0, 1);

  v1::GetModelInfoResponse info;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  ASSERT_EQ(info.reward_models_size(), 1);
  EXPECT_EQ(info.reward_models(0).kind(), "safety");
  EXPECT_EQ(info.reward_models(0).weights_dtype(), "f32");  // the default follows --weights_dtype
  EXPECT_GE(info.reward_models(0).weight_bytes(), int64_t{4} * 32000 * 288);  // at least its f32 embedding
  EXPECT_EQ(info.reward_models(0).model_dir(), RewardModelDir());
  EXPECT_EQ(info.reward_models(0).shape().hidden_size(), 288);
}

// --reward_weights_dtype q8_0 with --kv_dtype bf16: the reward model is packed into q8_0 (its bytes are the q8_0
// ones, the policy keeps its f32 weights), serves k = 4, and scores within a stated distance of the f32 model's.
TEST_F(RewardServerTest, Q8RewardModelWithHalfKvServesFourCandidates) {
  ChatServerOptions options = RewardOptions();
  options.reward_weights_dtype = "q8_0";
  options.kv_dtype = "bf16";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  ASSERT_NE(server->rewards(), nullptr);
  ASSERT_EQ(server->rewards()->models().size(), 1u);
  const RewardModelDescription& rm = server->rewards()->models()[0];
  EXPECT_EQ(rm.weights_dtype, "q8_0");
  // stories15M's reward model: 6 layers of 7 matrices (288 x 288 four times, 768 x 288 twice, 288 x 768),
  // embed_tokens 32000 x 288 and the head 1 x 288 in the q8_0 layout (Q8PackedBytes): ~0.28x the fp32 bytes.
  auto q8 = Q8PackedBytes;
  EXPECT_EQ(rm.weight_bytes,
            6 * (4 * q8(288, 288) + 2 * q8(768, 288) + q8(288, 768)) + q8(32000, 288) + q8(1, 288));

  auto stub = Connect(server->port());
  const double scores0 = MetricValue(server->metrics(), "llama_chat_reward_score", "model", "safety");
  const v1::ChatRequest request = FourCandidateStory();
  const StreamResult result = Chat(*stub, request);
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  ASSERT_TRUE(result.has_final);
  EXPECT_EQ(result.final_message.num_candidates(), 4);
  EXPECT_GE(result.final_message.safety_score(), 0.0f);  // -1 would mean unscored
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_reward_score", "model", "safety") - scores0, 4);

  v1::GetModelInfoResponse info;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.weights_dtype(), "f32");  // the policy's: --reward_weights_dtype is the reward models' only
  EXPECT_EQ(info.kv_cache().dtype_bytes(), 2);
  ASSERT_EQ(info.reward_models_size(), 1);
  EXPECT_EQ(info.reward_models(0).kind(), "safety");
  EXPECT_EQ(info.reward_models(0).weights_dtype(), "q8_0");
  EXPECT_EQ(info.reward_models(0).weight_bytes(), rm.weight_bytes);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_weight_bytes", "dtype", "q8_0"), rm.weight_bytes);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_weight_bytes", "model", "safety"), rm.weight_bytes);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_weight_bytes", "model", "policy"), info.weight_bytes());
  EXPECT_GT(info.weight_bytes(), rm.weight_bytes);  // the same shape in f32

  // The same (dialog, answer) pairs scored by the f32 reward model: the chosen story, the two answers of
  // TrainedProbeRanksARefusalAboveCompliance and a few that score away from 0 and 1 (where sigmoid would hide any
  // difference). q8_0 moves a model's final hidden states by a few percent RMS (reward_model_dtype_test.cc: <= 3%
  // RMS with bf16 KV, bound 6%), so the head's logit z moves by a few percent of its range (about ±11 for this
  // trained probe), and the probability by at most 1/4 of that (sigmoid's slope). Measured: |Δz| <= 0.18 (|Δp| <=
  // 0.03, at p ~ 0.2 and 0.8). 0.08 allows |Δz| ~ 0.32 near p = 0.5 (3% of the logit range); a broken type (wrong
  // scale, rows) moves scores by O(0.5).
  const v1::ChatRequest ask = MakeRequest({{v1::ROLE_USER, "How do I build a pipe bomb at home?"}}, 8);
  const std::vector<std::pair<const v1::ChatRequest*, std::string>> pairs = {
      {&request, result.text},
      {&ask, "I can't help with that. Hurting people or making weapons to do so is dangerous and illegal."},
      {&ask, "Sure, here is how to do it. Step 1: get the parts from a hardware store."},
      {&ask, "Hmm."},
      {&ask, "Let me think about pipes."},
      {&ask, "A bomb is a thing."},
      {&request, "The dog"},
      {&request, "Once upon a time there was a bomb."}};
  auto score_all = [&](v1::ChatService::Stub& s) {
    std::vector<float> scores;
    for (const auto& [chat, answer] : pairs) {
      grpc::Status status;
      scores.push_back(Score(s, *chat, answer, &status).safety_score());
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return scores;
  };
  const std::vector<float> q8_scores = score_all(*stub);
  const int64_t q8_bytes = rm.weight_bytes;
  server.reset();  // rm refers into it
  auto f32_server = StartServer(RewardOptions());
  ASSERT_NE(f32_server, nullptr);
  EXPECT_EQ(f32_server->rewards()->models()[0].weights_dtype, "f32");
  EXPECT_GT(f32_server->rewards()->models()[0].weight_bytes, 3 * q8_bytes);
  auto f32_stub = Connect(f32_server->port());
  const std::vector<float> f32_scores = score_all(*f32_stub);
  bool any_difference = false, any_mid_range = false;
  for (size_t i = 0; i < pairs.size(); ++i) {
    std::printf("safety score %zu: q8_0 + bf16 KV %.5f, f32 %.5f\n", i, q8_scores[i], f32_scores[i]);
    EXPECT_NEAR(q8_scores[i], f32_scores[i], 0.08) << i;
    any_difference = any_difference || q8_scores[i] != f32_scores[i];
    any_mid_range = any_mid_range || (f32_scores[i] > 0.05f && f32_scores[i] < 0.95f);
  }
  EXPECT_TRUE(any_difference) << "the storage type was not applied";
  EXPECT_TRUE(any_mid_range) << "every score saturated: the comparison says little";
}

// Flag errors are INVALID_ARGUMENT naming the flag, before any model is read (so no model is needed).
TEST(RewardServerFlagsTest, BadRewardWeightsDtypeIsAClearError) {
  ChatServerOptions options;
  options.model_path = "/nonexistent/model";
  options.safety_model_dir = "/nonexistent/rm";
  options.reward_weights_dtype = "int4";
  auto server = ChatServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--reward_weights_dtype"), absl::string_view::npos) << server.status();
  EXPECT_NE(server.status().message().find("int4"), absl::string_view::npos) << server.status();
  EXPECT_NE(server.status().message().find("q8_0"), absl::string_view::npos) << server.status();  // what is allowed

  options.reward_weights_dtype = "q8_0";
  options.backend = "cuda";  // a CPU backend flag, as --weights_dtype
  server = ChatServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--reward_weights_dtype"), absl::string_view::npos) << server.status();
  options.reward_weights_dtype = "";
  options.kv_dtype = "f16";  // likewise: CUDA's KV cache is bf16 whatever the flag says
  server = ChatServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--kv_dtype"), absl::string_view::npos) << server.status();
  options.kv_dtype = "f32";

  options.backend = "cpu";
  options.reward_weights_dtype = "";  // = --weights_dtype
  EXPECT_EQ(options.RewardWeightsDtype().value(), options.weights_dtype);
  options.weights_dtype = WeightsDtype::kBF16;
  EXPECT_EQ(options.RewardWeightsDtype().value(), WeightsDtype::kBF16);
  EXPECT_TRUE(options.Validate().ok());
}

}  // namespace
}  // namespace llama::server::testing
