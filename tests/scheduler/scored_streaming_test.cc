// Scored streaming (segment-wise rejection sampling, GenerationRequest::segment_tokens) in the EngineLoop: a
// FakeBackend policy whose candidates say scripted words (candidate j of the request with seed s says script j,
// whatever the segment), the known-head reward model (tests/support/tiny_models.h) whose score is a known
// function of the answer's last word, so the tests decide which candidate wins each segment.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "scheduler/engine_loop.h"
#include "scheduler/reward_selector.h"
#include "tests/support/fake_backend.h"
#include "tests/support/intercepting_backend.h"
#include "tests/support/text_sink.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

using ::llama::testing::FakeBackend;
using ::llama::testing::FakeBackendOptions;

constexpr char kTokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";
constexpr uint64_t kSeedStride = 0x9E3779B97F4A7C15ull;  // candidate j's seed = request seed + j · stride
constexpr int kRmBlockSize = 4;

// Counts reward scorings (one per model per segment) as the selector reports them.
class ScoreCounter : public RewardObserver {
 public:
  void OnScored(const std::string&, absl::Span<const float>, double) override { ++scored_; }
  void OnSelected(int, bool) override {}
  int scored() const { return scored_.load(); }

 private:
  std::atomic<int> scored_{0};
};

// A TextSink that also records, at each delivered delta, how many segments had been scored by then.
class CheckedSink : public ::llama::testing::TextSink {
 public:
  explicit CheckedSink(const ScoreCounter* counter) : counter_(counter) {}
  void OnTokens(absl::Span<const int32_t> ids, std::string_view text) override {
    {
      absl::MutexLock lock(&mu_);
      scored_at_delta_.push_back(counter_->scored());
    }
    TextSink::OnTokens(ids, text);
  }
  std::vector<int> scored_at_delta() const {
    absl::MutexLock lock(&mu_);
    return scored_at_delta_;
  }

 private:
  const ScoreCounter* counter_;
  mutable absl::Mutex mu_;
  std::vector<int> scored_at_delta_;
};

class ScoredStreamingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::Load(kTokenizerPath);
    if (!tok.ok()) GTEST_SKIP() << "tokenizer.model not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tok);
  }

  int32_t Word(const std::string& w) const { return tokenizer_->Encode(w).back(); }

  // scripts[j]: the words candidate j says (one token each), then EOS; an empty list: the FakeBackend's hash.
  void Start(std::vector<std::vector<std::string>> scripts, absl::Duration rm_latency = absl::ZeroDuration(),
             uint64_t seed = 7) {
    auto rm = RewardModel::Create(
        ::llama::testing::KnownHeadRewardWeights(
            *tokenizer_, {{"one", 1.0f}, {"two", 2.0f}, {"three", 3.0f}, {"bad", -3.0f}}),
        ::llama::testing::CpuRewardBackends(/*num_blocks=*/256, kRmBlockSize, [this, rm_latency](auto b) {
          return std::make_unique<::llama::testing::InterceptingBackend>(
              std::move(b),
              [this, rm_latency](const ForwardInput& in) {
                rm_tokens_ += in.num_tokens();
                absl::SleepFor(rm_latency);
                return absl::OkStatus();
              },
              "R");
        }),
        RewardModelOptions{.engine_kv_blocks = 192});
    ASSERT_TRUE(rm.ok()) << rm.status();
    rm_ = std::move(*rm);
    std::vector<std::vector<int32_t>> ids;
    for (const auto& words : scripts) {
      std::vector<int32_t>& out = ids.emplace_back();
      for (const std::string& w : words) out.push_back(Word(w));
    }
    FakeBackendOptions o;
    o.num_blocks = 256;
    if (!ids.empty()) {
      o.next_token = [ids, seed](absl::Span<const int32_t>, const OutputRow& row) -> int32_t {
        for (uint64_t j = 0; j < ids.size(); ++j) {
          if (row.seed != seed + j * kSeedStride) continue;
          return row.step < static_cast<int64_t>(ids[j].size()) ? ids[j][row.step] : 2;
        }
        return 2;
      };
    }
    policy_ = std::make_unique<FakeBackend>(std::move(o));
    selector_ = std::make_unique<RewardSelector>(rm_.get(), nullptr, tokenizer_.get(), RewardSelectorOptions{});
    selector_->AddObserver(&counter_);
    loop_ = std::make_unique<EngineLoop>(policy_.get(), tokenizer_.get(), EngineLoopOptions{});
    loop_->SetCandidateSelector(selector_.get());
    loop_->Start();
  }
  GenerationRequest Request(int k, int segment_tokens, int max_tokens, uint64_t seed = 7) {
    GenerationRequest r;
    r.id = next_id_++;
    r.prompt_tokens = BuildChatPrompt(*tokenizer_, {{Role::kUser, "Count with me."}})->token_ids;
    r.num_candidates = k;
    r.seed = seed;
    r.max_tokens = max_tokens;
    r.segment_tokens = segment_tokens;
    return r;
  }
  std::shared_ptr<CheckedSink> Submit(GenerationRequest r) {
    auto sink = std::make_shared<CheckedSink>(&counter_);
    const absl::Status status = loop_->Submit(std::move(r), sink);
    EXPECT_TRUE(status.ok()) << status;
    return sink;
  }
  void ExpectAllBlocksFree() {
    for (int i = 0; i < 2000; ++i) {
      const EngineSnapshot s = loop_->Snapshot();
      if (s.kv_blocks_used == 0 && s.reward_kv_blocks_used == 0 && s.num_scoring == 0 && s.num_running == 0) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    const EngineSnapshot s = loop_->Snapshot();
    EXPECT_EQ(s.kv_blocks_used, 0);
    EXPECT_EQ(s.reward_kv_blocks_used, 0);
    EXPECT_EQ(s.num_scoring, 0);
    EXPECT_EQ(s.num_running, 0);
  }
  void TearDown() override {
    if (loop_) loop_->Stop();
  }

  std::atomic<int> rm_tokens_{0};
  ScoreCounter counter_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<RewardModel> rm_;
  std::unique_ptr<Backend> policy_;
  std::unique_ptr<RewardSelector> selector_;
  std::unique_ptr<EngineLoop> loop_;
  uint64_t next_id_ = 1;
};

TEST_F(ScoredStreamingTest, StreamsTheConcatenationOfEachSegmentsWinner) {
  // Segments of 2 tokens; the segment's last word decides ("three" scores highest): candidate 2 wins segment 1,
  // candidate 0 segment 2, candidate 1 segment 3; then every candidate says EOS (a 4th, empty segment).
  Start({{"red", "one", "red", "three", "red", "one"},
         {"blue", "two", "blue", "one", "blue", "three"},
         {"green", "three", "green", "two", "green", "two"}});
  auto sink = Submit(Request(3, 2, 32));
  ASSERT_TRUE(sink->Wait());
  const FinishInfo info = sink->info();
  ASSERT_TRUE(info.status.ok()) << info.status;
  EXPECT_EQ(sink->text(), "green three red three blue three");
  EXPECT_EQ(info.reason, FinishReason::kStop);
  EXPECT_EQ(info.num_segments, 4);
  EXPECT_EQ(info.completion_tokens, 7);  // 6 words and EOS
  EXPECT_NEAR(info.min_segment_score, ::llama::testing::KnownHeadScore(3.0f), 1e-3);
  // Nothing was sent before its segment was scored: delta i went out after segment i + 1's scoring.
  const std::vector<int> scored = sink->scored_at_delta();
  ASSERT_EQ(scored.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_GE(scored[i], i + 1) << "delta " << i;
  EXPECT_GT(info.time_to_first_token_s, 0);
  EXPECT_LT(info.time_to_first_token_s, info.total_time_s);
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, ASegmentBelowTheThresholdEndsWithTheRefusalAfterTheEarlierSegments) {
  Start({{"red", "one", "red", "bad", "red", "one"}, {"blue", "two", "blue", "bad", "blue", "two"}});
  auto sink = Submit(Request(2, 2, 32));
  ASSERT_TRUE(sink->Wait());
  const FinishInfo info = sink->info();
  ASSERT_TRUE(info.status.ok()) << info.status;
  EXPECT_EQ(info.reason, FinishReason::kSafety);
  EXPECT_EQ(sink->text(), "blue two" + RewardSelectorOptions{}.refusal_text);
  EXPECT_EQ(info.num_segments, 2);
  EXPECT_NEAR(info.min_segment_score, ::llama::testing::KnownHeadScore(-3.0f), 1e-3);
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, ACandidateThatStopsInsideASegmentCompetesAndEndsTheAnswerWhenItWins) {
  // Candidate 1 says "three" then EOS in segment 1 (a shorter segment); it wins, so the answer ends there.
  Start({{"red", "one", "red", "one"}, {"three"}});
  auto sink = Submit(Request(2, 3, 32));
  ASSERT_TRUE(sink->Wait());
  ASSERT_TRUE(sink->info().status.ok()) << sink->info().status;
  EXPECT_EQ(sink->text(), "three");
  EXPECT_EQ(sink->info().reason, FinishReason::kStop);
  EXPECT_EQ(sink->info().num_segments, 1);
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, OneCandidateWithSegmentsGivesTheWholeAnswerTextForTheSameSeed) {
  Start({});  // the FakeBackend's hash of (context, seed, step): every word scores 0.5, which passes
  for (uint64_t seed : {3u, 11u}) {
    auto whole = Submit(Request(1, 0, 40, seed));
    ASSERT_TRUE(whole->Wait());
    for (int segment_tokens : {1, 3, 16, 64}) {
      auto segmented = Submit(Request(1, segment_tokens, 40, seed));
      ASSERT_TRUE(segmented->Wait());
      ASSERT_TRUE(segmented->info().status.ok()) << segmented->info().status;
      EXPECT_EQ(segmented->ids(), whole->ids()) << "seed " << seed << " S " << segment_tokens;
      EXPECT_EQ(segmented->text(), whole->text()) << "seed " << seed << " S " << segment_tokens;
      EXPECT_EQ(segmented->info().num_segments, (40 + segment_tokens - 1) / segment_tokens);
    }
    EXPECT_EQ(whole->info().num_segments, 0);
  }
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, TheRewardModelScoresOnlyEachSegmentsNewTokens) {
  // 10 segments of 4 tokens, k = 2: the dialog and the accepted segments come from the reward model's prefix
  // cache, so each segment computes about S · k tokens (plus each candidate's partial last block), not the answer.
  std::vector<std::string> a, b;
  for (int i = 0; i < 40; ++i) {
    a.push_back(i % 4 == 3 ? "two" : "red");
    b.push_back(i % 4 == 3 ? "one" : "blue");
  }
  Start({a, b});
  GenerationRequest r = Request(2, 4, 40);
  const int prompt = static_cast<int>(r.prompt_tokens.size());
  auto sink = Submit(std::move(r));
  ASSERT_TRUE(sink->Wait());
  ASSERT_TRUE(sink->info().status.ok()) << sink->info().status;
  const int segments = sink->info().num_segments;
  EXPECT_EQ(segments, 10);
  int whole_cost = 0;  // what rescoring (dialog, answer so far) from scratch would compute
  for (int s = 1; s <= segments; ++s) whole_cost += 2 * (prompt + 4 * s);
  const int bound = prompt + segments * 2 * (4 + kRmBlockSize + 1);
  EXPECT_LE(rm_tokens_.load(), bound);
  EXPECT_LT(rm_tokens_.load() * 3, whole_cost);
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, CancelAndDeadlineReturnThePolicysAndTheRewardModelsBlocks) {
  std::vector<std::string> words(200, "red");
  Start({words, words}, /*rm_latency=*/absl::Milliseconds(20));
  auto cancelled = Submit(Request(2, 2, 200));
  for (int i = 0; i < 1000 && cancelled->token_calls() == 0; ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_GT(cancelled->token_calls(), 0);
  loop_->Cancel(1, absl::CancelledError("client went away"));
  ASSERT_TRUE(cancelled->Wait());
  EXPECT_EQ(cancelled->info().status.code(), absl::StatusCode::kCancelled);
  ExpectAllBlocksFree();
  GenerationRequest r = Request(2, 2, 200);
  r.deadline = absl::Now() + absl::Milliseconds(150);
  auto expired = Submit(std::move(r));
  ASSERT_TRUE(expired->Wait());
  EXPECT_EQ(expired->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(expired->info().reason, FinishReason::kDeadline);
  EXPECT_GT(expired->token_calls(), 0);  // earlier segments went out
  EXPECT_EQ(expired->finishes(), 1);
  ExpectAllBlocksFree();
}

TEST_F(ScoredStreamingTest, SegmentTokensAreValidated) {
  Start({});
  auto sink = std::make_shared<CheckedSink>(&counter_);
  const absl::Status negative = loop_->Submit(Request(1, -1, 8), sink);
  EXPECT_EQ(negative.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(negative.message().find("segment_tokens"), std::string::npos) << negative;
  // Longer than max_tokens: one segment, the whole answer.
  auto one = Submit(Request(1, 100, 8));
  ASSERT_TRUE(one->Wait());
  EXPECT_TRUE(one->info().status.ok());
  EXPECT_EQ(one->info().num_segments, 1);
}

// The Score RPC's path (issue 13): a ScoreJob is prefill-only work of the loop's reward steps; its callback runs
// on the engine thread with the reward model's score.
TEST_F(ScoredStreamingTest, ScoreJobsRunAsRewardStepsOfTheLoop) {
  Start({});
  const std::vector<int32_t> prompt = Request(1, 0, 8).prompt_tokens;
  auto input = [&](const std::string& answer) { return *AppendRewardResponse(*tokenizer_, prompt, answer, 0); };
  absl::Mutex mu;
  std::vector<absl::StatusOr<std::vector<float>>> results;
  std::vector<std::thread::id> threads;
  auto done = [&](absl::StatusOr<std::vector<float>> r) {
    absl::MutexLock lock(&mu);
    results.push_back(std::move(r));
    threads.push_back(std::this_thread::get_id());
  };
  const int tokens0 = rm_tokens_.load();
  ASSERT_TRUE(loop_->SubmitScore(ScoreJob{{input("one two three")}, absl::InfiniteFuture(), done}).ok());
  ASSERT_TRUE(loop_->SubmitScore(ScoreJob{{input("bad")}, absl::InfiniteFuture(), done}).ok());
  ASSERT_TRUE(loop_->SubmitScore(ScoreJob{{input("one")}, absl::Now() - absl::Seconds(1), done}).ok());
  EXPECT_EQ(loop_->SubmitScore(ScoreJob{{}, absl::InfiniteFuture(), done}).code(),
            absl::StatusCode::kInvalidArgument);  // one input per reward model
  auto num_results = [&] {
    absl::MutexLock lock(&mu);
    return results.size();
  };
  for (int i = 0; i < 2000 && num_results() < 3; ++i) absl::SleepFor(absl::Milliseconds(2));
  ExpectAllBlocksFree();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(results.size(), 3u);
  int ok = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_NE(threads[i], std::this_thread::get_id());
    if (!results[i].ok()) {
      EXPECT_EQ(results[i].status().code(), absl::StatusCode::kDeadlineExceeded);
      continue;
    }
    ++ok;
    ASSERT_EQ(results[i]->size(), 1u);
    const float s = results[i]->at(0);
    EXPECT_TRUE(std::abs(s - ::llama::testing::KnownHeadScore(3.0f)) < 1e-3 ||
                std::abs(s - ::llama::testing::KnownHeadScore(-3.0f)) < 1e-3)
        << s;
  }
  EXPECT_EQ(ok, 2);
  EXPECT_GT(rm_tokens_.load(), tokens0);  // computed by the loop's reward backend
}

}  // namespace
}  // namespace llama
