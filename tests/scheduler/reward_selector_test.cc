// RewardSelector: the Llama 2 selection rule, and rejection sampling end to end in the EngineLoop (FakeBackend
// policy whose candidates say scripted words, a small CPU reward model whose head is known in closed form).
#include "scheduler/reward_selector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "scheduler/engine_loop.h"
#include "tests/support/fake_backend.h"
#include "tests/support/intercepting_backend.h"
#include "tests/support/text_sink.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

constexpr char kTokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";
constexpr uint64_t kSeedStride = 0x9E3779B97F4A7C15ull;  // candidate j's seed = request seed + j · stride

TEST(SelectByRewardsTest, SafetyOnlyPicksTheSafest) {
  EXPECT_EQ(SelectByRewards({0.2f, 0.9f, 0.5f}, {}, 0.15f), 1);
  EXPECT_EQ(SelectByRewards({0.9f, 0.9f}, {}, 0.15f), 0);  // ties: lowest index
  EXPECT_EQ(SelectByRewards({0.1f, 0.149f}, {}, 0.15f), std::nullopt);
  EXPECT_EQ(SelectByRewards({0.15f}, {}, 0.15f), 0);  // the threshold itself passes
  EXPECT_EQ(SelectByRewards({NAN, 0.2f}, {}, 0.15f), 1);
}

TEST(SelectByRewardsTest, HelpfulnessDecidesAmongCandidatesThatPassSafety) {
  // Candidate 0 is the most helpful but unsafe: below the threshold its safety score decides, so it loses.
  EXPECT_EQ(SelectByRewards({0.05f, 0.6f, 0.9f}, {0.99f, 0.7f, 0.3f}, 0.15f), 1);
  EXPECT_EQ(SelectByRewards({0.05f, 0.1f}, {0.99f, 0.7f}, 0.15f), std::nullopt);
  EXPECT_EQ(SelectByRewards({0.5f, 0.5f}, {0.4f, 0.4f}, 0.15f), 0);
}

using ::llama::testing::FakeBackend;
using ::llama::testing::FakeBackendOptions;
using ::llama::testing::KnownHeadScore;

// The known-head reward model (tests/support/tiny_models.h) on a CPU backend wrapped to inject failures and latency.
std::unique_ptr<RewardModel> MakeKnownHeadRm(const Tokenizer& tok, const std::vector<std::pair<std::string, float>>& a,
                                             bool fail = false, absl::Duration latency = absl::ZeroDuration()) {
  auto controlled = [fail, latency](std::unique_ptr<Backend> inner) -> std::unique_ptr<Backend> {
    return std::make_unique<::llama::testing::InterceptingBackend>(
        std::move(inner),
        [fail, latency](const ForwardInput&) {
          absl::SleepFor(latency);
          return fail ? absl::InternalError("injected reward backend failure") : absl::OkStatus();
        },
        "controlled");
  };
  auto rm = RewardModel::Create(::llama::testing::KnownHeadRewardWeights(tok, a),
                                ::llama::testing::CpuRewardBackends(/*num_blocks=*/64, /*block_size=*/16, controlled),
                                RewardModelOptions{.engine_kv_blocks = 48});  // 16 blocks left for Score
  EXPECT_TRUE(rm.ok()) << rm.status();
  return std::move(*rm);
}

using Sink = ::llama::testing::TextSink;

class Recorder : public RewardObserver {
 public:
  void OnScored(const std::string& model, absl::Span<const float> scores, double latency_s) override {
    absl::MutexLock lock(&mu_);
    scores_.assign(scores.begin(), scores.end());
  }
  void OnSelected(int num_candidates, bool refused) override {
    absl::MutexLock lock(&mu_);
    ++selections_;
    refusals_ += refused;
  }
  std::vector<float> scores() const { absl::MutexLock lock(&mu_); return scores_; }
  int selections() const { absl::MutexLock lock(&mu_); return selections_; }
  int refusals() const { absl::MutexLock lock(&mu_); return refusals_; }

 private:
  mutable absl::Mutex mu_;
  std::vector<float> scores_;
  int selections_ = 0, refusals_ = 0;
};

class RejectionSamplingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::Load(kTokenizerPath);
    if (!tok.ok()) GTEST_SKIP() << "tokenizer.model not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tok);
    rm_ = MakeKnownHeadRm(*tokenizer_, {{"good", 3.0f}, {"bad", -3.0f}, {"fine", 1.0f}});
  }
  // Candidate j of request seed `seed` says scripts[j] (then EOS); with scripts empty, the FakeBackend hash.
  void Make(std::vector<std::string> scripts, RewardModel* rm, absl::Duration step_latency = absl::ZeroDuration(),
            uint64_t seed = 7, RewardModel* helpfulness = nullptr) {
    FakeBackendOptions o;
    o.step_latency = step_latency;
    o.num_blocks = 64;
    if (!scripts.empty()) {
      std::vector<std::vector<int32_t>> ids;
      for (const std::string& s : scripts) ids.push_back(tokenizer_->Encode(s));
      o.next_token = [ids, seed](absl::Span<const int32_t>, const OutputRow& row) -> int32_t {
        for (size_t j = 0; j < ids.size(); ++j) {
          if (row.seed != seed + j * kSeedStride) continue;
          return row.step < static_cast<int64_t>(ids[j].size()) ? ids[j][row.step] : 2;
        }
        return 2;
      };
    }
    backend_ = std::make_unique<FakeBackend>(std::move(o));
    selector_ = std::make_unique<RewardSelector>(rm, helpfulness, tokenizer_.get(), RewardSelectorOptions{});
    selector_->AddObserver(&recorder_);
    loop_ = std::make_unique<EngineLoop>(backend_.get(), tokenizer_.get(), EngineLoopOptions{});
    loop_->SetCandidateSelector(selector_.get());
    loop_->Start();
  }
  GenerationRequest Request(int k, uint64_t seed = 7, int max_tokens = 16) {
    GenerationRequest r;
    r.id = next_id_++;
    r.prompt_tokens = BuildChatPrompt(*tokenizer_, dialog_)->token_ids;
    r.num_candidates = k;
    r.seed = seed;
    r.max_tokens = max_tokens;
    return r;
  }
  std::shared_ptr<Sink> Submit(GenerationRequest r) {
    auto sink = std::make_shared<Sink>();
    EXPECT_TRUE(loop_->Submit(std::move(r), sink).ok());
    return sink;
  }
  void ExpectNoBlocksLeft() {
    for (int i = 0; i < 2000 && loop_->Snapshot().kv_blocks_used > 0; ++i) absl::SleepFor(absl::Milliseconds(5));
    EXPECT_EQ(loop_->Snapshot().kv_blocks_used, 0);
  }
  void TearDown() override {
    if (loop_) loop_->Stop();
  }

  std::vector<Message> dialog_ = {{Role::kUser, "How is the weather?"}};
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<RewardModel> rm_;
  std::unique_ptr<FakeBackend> backend_;
  Recorder recorder_;
  std::unique_ptr<RewardSelector> selector_;
  std::unique_ptr<EngineLoop> loop_;
  uint64_t next_id_ = 1;
};

TEST_F(RejectionSamplingTest, KnownHeadPicksTheSafestAndStreamsExactlyItsText) {
  Make({"The weather is bad", "The weather is good", "The weather is fine"}, rm_.get());
  auto sink = Submit(Request(3));
  ASSERT_TRUE(sink->Wait());
  const FinishInfo info = sink->info();
  ASSERT_TRUE(info.status.ok()) << info.status;
  EXPECT_EQ(info.reason, FinishReason::kStop);
  EXPECT_EQ(sink->text(), "The weather is good");
  EXPECT_EQ(sink->token_calls(), 1);  // the winner's whole output at once, after scoring
  // Scores follow the closed form of the known head (RMSNorm epsilon 1e-5 → 1e-3 on the probability).
  const std::vector<float> scores = recorder_.scores();
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_NEAR(scores[0], KnownHeadScore(-3.0f), 1e-3);
  EXPECT_NEAR(scores[1], KnownHeadScore(3.0f), 1e-3);
  EXPECT_NEAR(scores[2], KnownHeadScore(1.0f), 1e-3);
  EXPECT_FLOAT_EQ(info.safety_score, scores[1]);
  // The Score RPC's path (dialog + response text) reproduces the score the selection used.
  auto seq = BuildRewardSequence(*tokenizer_, dialog_, sink->text(), rm_->max_tokens());
  ASSERT_TRUE(seq.ok());
  auto direct = rm_->Score({*seq});
  ASSERT_TRUE(direct.ok());
  EXPECT_FLOAT_EQ((*direct)[0], info.safety_score);
  ExpectNoBlocksLeft();
}

TEST_F(RejectionSamplingTest, AllBelowThresholdGivesTheRefusalWithFinishReasonSafety) {
  Make({"The weather is bad", "It is really bad"}, rm_.get());
  auto sink = Submit(Request(2));
  ASSERT_TRUE(sink->Wait());
  EXPECT_TRUE(sink->info().status.ok());
  EXPECT_EQ(sink->info().reason, FinishReason::kSafety);
  EXPECT_EQ(sink->text(), RewardSelectorOptions{}.refusal_text);
  EXPECT_LT(sink->info().safety_score, 0.15f);
  EXPECT_EQ(recorder_.refusals(), 1);
  ExpectNoBlocksLeft();
}

TEST_F(RejectionSamplingTest, SingleCandidateIsScoredBeforeAnythingIsStreamed) {
  Make({"That is bad"}, rm_.get());
  auto sink = Submit(Request(1));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kSafety);  // k = 1 goes through the reward model too
  EXPECT_EQ(sink->text(), RewardSelectorOptions{}.refusal_text);
  EXPECT_EQ(recorder_.selections(), 1);
}

TEST_F(RejectionSamplingTest, RewardModelFailureFailsTheRequestAndStreamsNothing) {
  auto failing = MakeKnownHeadRm(*tokenizer_, {{"good", 3.0f}}, /*fail=*/true);
  Make({"The weather is good", "The weather is good"}, failing.get());
  auto sink = Submit(Request(2));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(sink->info().reason, FinishReason::kError);
  EXPECT_EQ(sink->token_calls(), 0);
  EXPECT_EQ(sink->text(), "");
  EXPECT_EQ(sink->finishes(), 1);
  ExpectNoBlocksLeft();
}

TEST_F(RejectionSamplingTest, RewardModelPastTheDeadlineIsDeadlineExceeded) {
  auto slow = MakeKnownHeadRm(*tokenizer_, {{"good", 3.0f}}, false, absl::Milliseconds(400));
  Make({"The weather is good", "The weather is good"}, slow.get());
  GenerationRequest r = Request(2);
  r.deadline = absl::Now() + absl::Milliseconds(200);  // generation takes a few ms, scoring 400 ms
  auto sink = Submit(std::move(r));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sink->info().reason, FinishReason::kDeadline);
  EXPECT_EQ(sink->token_calls(), 0);
}

TEST_F(RejectionSamplingTest, FixedSeedReproducesTheChosenCandidate) {
  Make({}, rm_.get());  // FakeBackend hash tokens: seed-dependent text
  auto first = Submit(Request(4, /*seed=*/123, /*max_tokens=*/8));
  ASSERT_TRUE(first->Wait());
  auto second = Submit(Request(4, /*seed=*/123, /*max_tokens=*/8));
  ASSERT_TRUE(second->Wait());
  ASSERT_TRUE(first->info().status.ok()) << first->info().status;
  EXPECT_FALSE(first->text().empty());
  EXPECT_EQ(first->text(), second->text());
  EXPECT_EQ(first->info().safety_score, second->info().safety_score);
  EXPECT_EQ(first->info().reason, second->info().reason);
}

TEST_F(RejectionSamplingTest, CancelMidGenerationFreesEveryCandidatesBlocks) {
  Make({}, rm_.get(), absl::Milliseconds(3));
  auto sink = Submit(Request(4, 5, /*max_tokens=*/200));
  for (int i = 0; i < 2000 && backend_->num_steps() < 5; ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_GT(loop_->Snapshot().kv_blocks_used, 0);
  loop_->Cancel(1, absl::CancelledError("client went away"));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kCancelled);
  EXPECT_EQ(sink->token_calls(), 0);
  EXPECT_EQ(recorder_.selections(), 0);
  ExpectNoBlocksLeft();
}

TEST_F(RejectionSamplingTest, HelpfulnessPicksAmongTheSafeCandidates) {
  // Safety: good 0.9995, fine 0.998, bad 0.0005. Helpfulness prefers "fine", and likes "bad" best of all, which
  // must still lose because its safety score is below the threshold.
  auto helpful = MakeKnownHeadRm(*tokenizer_, {{"good", -1.0f}, {"fine", 2.0f}, {"bad", 3.0f}});
  Make({"The weather is good", "The weather is bad", "The weather is fine"}, rm_.get(), absl::ZeroDuration(), 7,
       helpful.get());
  auto sink = Submit(Request(3));
  ASSERT_TRUE(sink->Wait());
  ASSERT_TRUE(sink->info().status.ok()) << sink->info().status;
  EXPECT_EQ(sink->text(), "The weather is fine");
  EXPECT_NEAR(sink->info().safety_score, KnownHeadScore(1.0f), 1e-3);
  EXPECT_NEAR(sink->info().helpfulness_score, KnownHeadScore(2.0f), 1e-3);
}

TEST_F(RejectionSamplingTest, DeadlineMidGenerationFreesEveryCandidatesBlocks) {
  Make({}, rm_.get(), absl::Milliseconds(3));
  GenerationRequest r = Request(4, 5, /*max_tokens=*/200);
  r.deadline = absl::Now() + absl::Milliseconds(60);
  auto sink = Submit(std::move(r));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kDeadline);
  EXPECT_EQ(sink->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sink->token_calls(), 0);
  EXPECT_GT(backend_->num_steps(), 1);  // it was generating when the deadline passed
  ExpectNoBlocksLeft();
}

}  // namespace
}  // namespace llama
