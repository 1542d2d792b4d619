// The reward queue's prefix cache on a small random CPU reward model, counted from its step stats: the
// dialog prefix of a request's k candidates is computed once, the next turn starts after the previous turn's
// blocks, a sequence that extends an earlier one (a growing answer scored segment by segment) reuses its full
// blocks, and eviction under a small pool keeps every score right. Scores are checked against RewardModel::Score
// (the direct path, which caches nothing) as the oracle.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "scheduler/reward_queue.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

constexpr int kBlockSize = 4;

std::vector<int32_t> Tokens(int len, int salt) {
  std::vector<int32_t> s;
  for (int i = 0; i < len; ++i) s.push_back(3 + (i * 7 + salt * 13) % 60);
  return s;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class RewardPrefixCacheTest : public ::testing::Test {
 protected:
  // engine_blocks of the pool (4 tokens each) go to the queue; the direct Score path has 32 more.
  void MakeRm(int engine_blocks = 48) {
    ModelWeights w = MakeRandomWeights(::llama::testing::TinyRewardConfig(), /*seed=*/12, /*scale=*/0.2f);
    auto rm = RewardModel::Create(std::move(w), ::llama::testing::CpuRewardBackends(engine_blocks + 32, kBlockSize),
                                  RewardModelOptions{.engine_kv_blocks = engine_blocks});
    ASSERT_TRUE(rm.ok()) << rm.status();
    rm_ = std::move(*rm);
  }
  // Queues one request and runs reward steps until it is scored; returns its scores, appends each step's stats.
  std::vector<float> Score(RewardQueue& queue, uint64_t id, const std::vector<std::vector<int32_t>>& seqs,
                           std::vector<RewardStepStats>* steps) {
    EXPECT_TRUE(queue.Add(id, {seqs}, absl::Now()).ok());
    for (int i = 0; i < 100; ++i) {
      RewardStepStats stats;
      EXPECT_TRUE(queue.Step(&stats).ok());
      steps->push_back(stats);
      std::vector<ScoredRequest> done = queue.TakeFinished(absl::Now());
      if (!done.empty()) return done[0].scores[0];
    }
    ADD_FAILURE() << "request " << id << " was never scored";
    return {};
  }
  void ExpectScores(const std::vector<float>& scores, const std::vector<std::vector<int32_t>>& seqs) {
    ASSERT_EQ(scores.size(), seqs.size());
    for (size_t c = 0; c < seqs.size(); ++c) {
      auto direct = rm_->Score({seqs[c]});
      ASSERT_TRUE(direct.ok()) << direct.status();
      EXPECT_NEAR(scores[c], (*direct)[0], 1e-5) << "candidate " << c;
    }
  }
  static int Sum(const std::vector<RewardStepStats>& steps, int RewardStepStats::*field) {
    int total = 0;
    for (const RewardStepStats& s : steps) total += s.*field;
    return total;
  }

  std::unique_ptr<RewardModel> rm_;
};

TEST_F(RewardPrefixCacheTest, KCandidatesComputeTheirDialogPrefixOnce) {
  MakeRm();
  const std::vector<int32_t> dialog = Concat({1}, Tokens(21, 1));  // 22 tokens: 5 full blocks + 2
  std::vector<std::vector<int32_t>> candidates;
  for (int c = 0; c < 4; ++c) candidates.push_back(Concat(dialog, Tokens(6, 10 + c)));  // 28 tokens each
  for (bool caching : {true, false}) {
    RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/512, caching);
    std::vector<RewardStepStats> steps;
    const std::vector<float> scores = Score(queue, 1, candidates, &steps);
    ExpectScores(scores, candidates);
    if (caching) {
      // Candidate 0 alone first (the others would compute its blocks again); then the others from its 5th block.
      ASSERT_EQ(steps.size(), 2u);
      EXPECT_EQ(steps[0].num_seqs, 1);
      EXPECT_EQ(steps[1].num_seqs, 3);
      EXPECT_EQ(Sum(steps, &RewardStepStats::num_tokens), 28 + 3 * (28 - 20));
      EXPECT_EQ(Sum(steps, &RewardStepStats::prefix_cache_hits), 3 * 20);
      EXPECT_EQ(Sum(steps, &RewardStepStats::prefix_cache_queries), 4 * 28);
      EXPECT_EQ(queue.prefix_cache_stats(0).hits, 3 * 20);
      EXPECT_GT(queue.prefix_cache_stats(0).cached_blocks, 0);  // kept after scoring
    } else {
      EXPECT_EQ(Sum(steps, &RewardStepStats::num_tokens), 4 * 28);
      EXPECT_EQ(queue.prefix_cache_stats(0).cached_blocks, 0);
    }
    queue.CheckIdle();
  }
}

TEST_F(RewardPrefixCacheTest, TheNextTurnStartsAfterThePreviousTurnsBlocks) {
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/512);
  const std::vector<int32_t> dialog = Concat({1}, Tokens(13, 2));
  std::vector<std::vector<int32_t>> turn1;
  for (int c = 0; c < 2; ++c) turn1.push_back(Concat(dialog, Tokens(9, 20 + c)));  // 23 tokens: 5 full blocks
  std::vector<RewardStepStats> steps;
  ExpectScores(Score(queue, 1, turn1, &steps), turn1);
  // Turn 2: the dialog, the chosen answer (candidate 0), a new user message; then two new candidates.
  const std::vector<int32_t> dialog2 = Concat(Concat(turn1[0], {2, 1}), Tokens(10, 3));
  std::vector<std::vector<int32_t>> turn2;
  for (int c = 0; c < 2; ++c) turn2.push_back(Concat(dialog2, Tokens(5, 30 + c)));  // 40 tokens
  steps.clear();
  ExpectScores(Score(queue, 2, turn2, &steps), turn2);
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps[0].prefix_cache_hits, 20);  // turn 1's candidate 0: its 5 full blocks
  // Candidate 0 computes 40 - 20 tokens; candidate 1 then starts after candidate 0's full blocks of dialog2.
  EXPECT_EQ(Sum(steps, &RewardStepStats::num_tokens), (40 - 20) + (40 - 4 * (static_cast<int>(dialog2.size()) / 4)));
  queue.CheckIdle();
}

TEST_F(RewardPrefixCacheTest, ASequenceExtendingAnEarlierOneReusesItsFullBlocks) {
  // A growing answer scored segment by segment: dialog + s1, dialog + s1 + s2, ... each is a new request.
  MakeRm();
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/512);
  std::vector<int32_t> seq = Concat({1}, Tokens(17, 4));
  int previous_len = 0;
  for (int segment = 0; segment < 4; ++segment) {
    seq = Concat(seq, Tokens(6, 40 + segment));
    std::vector<RewardStepStats> steps;
    ExpectScores(Score(queue, segment + 1, {seq}, &steps), {seq});
    const int cached = 4 * (previous_len / 4);  // the previous sequence's full blocks
    EXPECT_EQ(Sum(steps, &RewardStepStats::prefix_cache_hits), cached) << "segment " << segment;
    EXPECT_EQ(Sum(steps, &RewardStepStats::num_tokens), static_cast<int>(seq.size()) - cached);
    previous_len = static_cast<int>(seq.size());
  }
  queue.CheckIdle();
}

TEST_F(RewardPrefixCacheTest, ASmallPoolEvictsAndEveryScoreStaysRight) {
  MakeRm(/*engine_blocks=*/12);  // 48 tokens of KV for the queue
  RewardQueue queue({rm_.get()}, /*max_tokens_per_step=*/32);
  for (int round = 0; round < 2; ++round) {
    for (int r = 0; r < 6; ++r) {
      const std::vector<int32_t> dialog = Concat({1}, Tokens(14, r));
      std::vector<std::vector<int32_t>> seqs = {Concat(dialog, Tokens(5, 50 + round)),
                                                Concat(dialog, Tokens(7, 60 + round))};
      std::vector<RewardStepStats> steps;
      ExpectScores(Score(queue, 100 * round + r, seqs, &steps), seqs);
      queue.CheckIdle();  // free + cached + used == total, nothing held
    }
  }
  EXPECT_GT(queue.prefix_cache_stats(0).hits, 0);
}

}  // namespace
}  // namespace llama
