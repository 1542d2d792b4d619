// RewardQueue: scoring as prefill-only reward steps on a small random CPU reward model whose backend records every
// Forward. Scores of chunked, batched steps are checked against RewardModel::Score (one unchunked Forward per
// batch, the direct path) as the oracle.
#include "scheduler/reward_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/support/intercepting_backend.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

constexpr int kBlockSize = 4;

// Every Forward the reward model's backend is asked to run (the hook of an InterceptingBackend); fails the ones
// asked to.
class ForwardRecord {
 public:
  absl::Status Record(const ForwardInput& input) {
    absl::MutexLock lock(&mu_);
    inputs_.push_back(input);
    return fail_ ? absl::InternalError("injected reward failure") : absl::OkStatus();
  }
  void set_fail(bool fail) { absl::MutexLock lock(&mu_); fail_ = fail; }
  std::vector<ForwardInput> inputs() const { absl::MutexLock lock(&mu_); return inputs_; }
  void clear() { absl::MutexLock lock(&mu_); inputs_.clear(); }

 private:
  mutable absl::Mutex mu_;
  std::vector<ForwardInput> inputs_;
  bool fail_ = false;
};

class RewardQueueTest : public ::testing::Test {
 protected:
  // engine_blocks of the 48-block pool (4 tokens each) go to the queue; the direct Score path uses the rest.
  void MakeRm(int engine_blocks = 32) {
    ModelWeights w = MakeRandomWeights(::llama::testing::TinyRewardConfig(), /*seed=*/11, /*scale=*/0.2f);
    w.score_bias = {0.1f};
    auto recorded = [this](std::unique_ptr<Backend> inner) -> std::unique_ptr<Backend> {
      return std::make_unique<::llama::testing::InterceptingBackend>(
          std::move(inner), [this](const ForwardInput& input) { return record_.Record(input); }, "recording");
    };
    auto rm = RewardModel::Create(std::move(w), ::llama::testing::CpuRewardBackends(48, kBlockSize, recorded),
                                  RewardModelOptions{.engine_kv_blocks = engine_blocks});
    ASSERT_TRUE(rm.ok()) << rm.status();
    rm_ = std::move(*rm);
  }
  static std::vector<int32_t> Seq(int len, int salt) {
    std::vector<int32_t> s = {1};
    for (int i = 1; i < len; ++i) s.push_back(3 + (i * 7 + salt * 13) % 60);
    return s;
  }
  float Direct(const std::vector<int32_t>& seq) {
    auto scores = rm_->Score({seq});
    EXPECT_TRUE(scores.ok()) << scores.status();
    return (*scores)[0];
  }

  ForwardRecord record_;  // what the reward model's backend was asked
  std::unique_ptr<RewardModel> rm_;
};

TEST_F(RewardQueueTest, ScoreWorkOfTwoRequestsSharesOneForward) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/512);
  const std::vector<int32_t> a0 = Seq(9, 1), a1 = Seq(12, 2), b0 = Seq(7, 3);
  ASSERT_TRUE(queue.Add(1, {{a0, a1}}, absl::Now()).ok());
  ASSERT_TRUE(queue.Add(2, {{b0}}, absl::Now()).ok());
  RewardStepStats stats;
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.num_seqs, 3);
  EXPECT_EQ(stats.num_tokens, 9 + 12 + 7);
  EXPECT_EQ(stats.num_outputs, 3);
  EXPECT_EQ(stats.request_ids, (std::vector<uint64_t>{1, 2}));
  const std::vector<ForwardInput> inputs = record_.inputs();
  ASSERT_EQ(inputs.size(), 1u);  // both requests' three sequences in one Forward
  EXPECT_EQ(inputs[0].num_seqs(), 3);
  EXPECT_EQ(inputs[0].outputs.size(), 3u);
  EXPECT_TRUE(inputs[0].return_hidden);
  std::vector<ScoredRequest> done = queue.TakeFinished(absl::Now());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.num_blocks_used(), 0);
  EXPECT_EQ(done[0].request_id, 1u);
  ASSERT_EQ(done[0].scores.size(), 1u);
  ASSERT_EQ(done[0].scores[0].size(), 2u);
  EXPECT_NEAR(done[0].scores[0][0], Direct(a0), 1e-5);
  EXPECT_NEAR(done[0].scores[0][1], Direct(a1), 1e-5);
  EXPECT_NEAR(done[1].scores[0][0], Direct(b0), 1e-5);
  queue.CheckIdle();
}

TEST_F(RewardQueueTest, LongInputIsChunkedAcrossStepsUnderTheBudget) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/8);
  const std::vector<int32_t> seq = Seq(30, 5);
  ASSERT_TRUE(queue.Add(7, {{seq}}, absl::Now()).ok());
  std::vector<int> chunk_sizes;
  while (!queue.empty()) {
    RewardStepStats stats;
    ASSERT_TRUE(queue.Step(&stats).ok());
    chunk_sizes.push_back(stats.num_tokens);
    if (stats.num_outputs == 0) {
      EXPECT_EQ(queue.num_blocks_used(), 8);  // all 30 tokens' blocks reserved at the first chunk, kept between
      EXPECT_TRUE(queue.TakeFinished(absl::Now()).empty());
      continue;
    }
    std::vector<ScoredRequest> done = queue.TakeFinished(absl::Now());
    ASSERT_EQ(done.size(), 1u);
    EXPECT_NEAR(done[0].scores[0][0], Direct(seq), 1e-5);  // chunked prefill = one unchunked Forward
  }
  EXPECT_EQ(chunk_sizes, (std::vector<int>{8, 8, 8, 6}));
  const std::vector<ForwardInput> inputs = record_.inputs();
  ASSERT_EQ(inputs.size(), 5u);  // 4 chunks + the Direct oracle
  for (int i = 0; i < 4; ++i) {
    EXPECT_LE(inputs[i].num_tokens(), 8);
    EXPECT_EQ(inputs[i].positions[0], 8 * i);  // each chunk continues where the last one stopped
    EXPECT_EQ(inputs[i].outputs.size(), i == 3 ? 1u : 0u);  // hidden state of the last token only
  }
  queue.CheckIdle();
}

TEST_F(RewardQueueTest, BudgetSplitsWorkOfSeveralRequestsFifo) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/10);
  ASSERT_TRUE(queue.Add(1, {{Seq(6, 1)}}, absl::Now()).ok());
  ASSERT_TRUE(queue.Add(2, {{Seq(9, 2)}}, absl::Now()).ok());
  RewardStepStats stats;
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.request_ids, (std::vector<uint64_t>{1, 2}));  // 6 of 1 + the first 4 of 2 share the Forward
  EXPECT_EQ(stats.num_tokens, 10);
  EXPECT_EQ(stats.num_outputs, 1);
  std::vector<ScoredRequest> done = queue.TakeFinished(absl::Now());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].request_id, 1u);
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.num_tokens, 5);
  EXPECT_EQ(queue.TakeFinished(absl::Now()).size(), 1u);
}

TEST_F(RewardQueueTest, FailedStepNamesExactlyItsRequests) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/8);
  ASSERT_TRUE(queue.Add(1, {{Seq(8, 1)}}, absl::Now()).ok());
  ASSERT_TRUE(queue.Add(2, {{Seq(8, 2)}}, absl::Now()).ok());
  record_.set_fail(true);
  RewardStepStats stats;
  EXPECT_FALSE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.request_ids, (std::vector<uint64_t>{1}));  // request 2 did not fit the budget: not in the step
  queue.Remove(1);
  record_.set_fail(false);
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.request_ids, (std::vector<uint64_t>{2}));
  EXPECT_EQ(queue.TakeFinished(absl::Now()).size(), 1u);
  queue.CheckIdle();
}

TEST_F(RewardQueueTest, RemoveMidChunkFreesTheBlocks) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/4);
  ASSERT_TRUE(queue.Add(3, {{Seq(20, 1), Seq(20, 2)}}, absl::Now()).ok());
  RewardStepStats stats;
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(queue.num_blocks_used(), 5);
  EXPECT_TRUE(queue.Contains(3));
  queue.Remove(3);
  EXPECT_FALSE(queue.Contains(3));
  EXPECT_TRUE(queue.empty());
  queue.CheckIdle();
}

TEST_F(RewardQueueTest, FullEngineBlocksMakeLaterSequencesWaitNotDeadlock) {
  MakeRm(/*engine_blocks=*/8);  // 32 tokens of engine KV: one 30-token sequence at a time
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/512);
  const std::vector<int32_t> a = Seq(30, 1), b = Seq(30, 2);
  ASSERT_TRUE(queue.Add(1, {{a, b}}, absl::Now()).ok());
  RewardStepStats stats;
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.num_seqs, 1);
  ASSERT_TRUE(queue.Step(&stats).ok());
  EXPECT_EQ(stats.num_seqs, 1);
  std::vector<ScoredRequest> done = queue.TakeFinished(absl::Now());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_NEAR(done[0].scores[0][1], Direct(b), 1e-5);
}

TEST_F(RewardQueueTest, InputThatCanNeverFitIsRefused) {
  MakeRm(/*engine_blocks=*/4);  // 16 tokens
  RewardQueue queue({rm_.get()}, 512);
  EXPECT_EQ(queue.Add(1, {{Seq(17, 1)}}, absl::Now()).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(queue.Add(2, {{{}}}, absl::Now()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace llama
