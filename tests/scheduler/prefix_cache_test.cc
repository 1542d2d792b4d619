// Exact per-step plans with prefix caching on: admission starts after the cached prefix and the budget counts only
// the tokens left to compute; a sequence matched whole computes its last token in a copy of its last block;
// concurrent sequences with one prefix compute it once; a preempted sequence finds its blocks again. Plans are
// written as in scheduler_test ("<request>:<new tokens>*<samples>", "P<request>").
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace llama {
namespace {

using Plan = std::vector<std::string>;
constexpr int kBlockSize = 4;

Plan Describe(const SchedulerPlan& plan) {
  Plan out;
  for (const ScheduledSequence& s : plan.seqs) {
    std::string entry = absl::StrCat(s.seq->request_id());
    if (s.seq->candidate_index() > 0) absl::StrAppend(&entry, "#", s.seq->candidate_index());
    absl::StrAppend(&entry, ":", s.num_new_tokens);
    if (s.num_samples > 0) absl::StrAppend(&entry, "*", s.num_samples);
    out.push_back(entry);
  }
  for (const Sequence* seq : plan.preempted) out.push_back(absl::StrCat("P", seq->request_id()));
  return out;
}

// n tokens first, first + 1, ...
std::vector<int32_t> Ids(int n, int32_t first) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class PrefixCacheTest : public ::testing::Test {
 protected:
  void Make(int num_blocks, int max_num_batched_tokens, int max_model_len = 32) {
    SchedulerConfig config;
    config.max_num_seqs = 8;
    config.max_num_batched_tokens = max_num_batched_tokens;
    config.max_model_len = max_model_len;
    config.max_num_candidates = 4;
    ASSERT_TRUE(config.enable_prefix_caching);  // the default
    scheduler_ = std::make_unique<Scheduler>(config, num_blocks, kBlockSize, /*cache_root=*/42);
  }
  void Add(uint64_t id, std::vector<int32_t> prompt, int k = 1) {
    scheduler_->AddRequest(id, std::move(prompt), SamplingParams{}, id, k);
  }
  SchedulerPlan Step(const Plan& expected) {
    SchedulerPlan plan = scheduler_->Schedule();
    EXPECT_EQ(Describe(plan), expected) << "step " << step_;
    std::vector<int32_t> sampled(plan.num_samples(), 7000 + step_);
    scheduler_->Update(plan, sampled);
    ++step_;
    return plan;
  }
  Sequence* Seq(uint64_t id, int candidate = 0) { return scheduler_->Candidates(id)[candidate].get(); }
  void Finish(uint64_t id) { scheduler_->RemoveRequest(id, SequenceStatus::kFinishedStopped); }
  void TearDown() override {
    const BlockAllocator& a = scheduler_->allocator();
    a.CheckInvariants();
    EXPECT_EQ(a.num_free() + a.num_cached() + a.num_used(), a.num_total());
  }

  std::unique_ptr<Scheduler> scheduler_;
  int step_ = 0;
};

TEST_F(PrefixCacheTest, AdmissionStartsAfterTheCachedPrefixAndTheBudgetCountsOnlyTheRest) {
  Make(16, /*max_num_batched_tokens=*/6);
  const std::vector<int32_t> dialog = Ids(10, 100);
  Add(1, dialog);
  Step({"1:6"});
  Step({"1:4*1"});
  Finish(1);
  EXPECT_EQ(scheduler_->allocator().num_cached(), 2);  // tokens 0..7; the partial third block went back free
  // The next turn: the same 10 tokens and 3 more. Blocks 0 and 1 are cached: 5 tokens to compute fit the budget
  // of 6 in one step (without the cache: 13 tokens, 3 steps).
  Add(2, Concat(dialog, Ids(3, 500)));
  const SchedulerPlan plan = Step({"2:5*1"});
  EXPECT_EQ(plan.prefix_cache_queries, 13);
  EXPECT_EQ(plan.prefix_cache_hits, 8);
  EXPECT_EQ(plan.num_prefill_tokens, 5);
  EXPECT_TRUE(plan.block_copies.empty());
  EXPECT_EQ(Seq(2)->num_cached_prompt_tokens(), 8);
  EXPECT_EQ(Seq(2)->num_computed_prompt_tokens(), 5);
  EXPECT_EQ(scheduler_->prefix_cache_hits(), 8);
  EXPECT_EQ(scheduler_->prefix_cache_queries(), 10 + 13);
}

TEST_F(PrefixCacheTest, ASequenceMatchedWholeComputesItsLastTokenInACopyOfItsLastBlock) {
  Make(16, 16);
  const std::vector<int32_t> prompt = Ids(8, 100);  // exactly 2 blocks
  Add(1, prompt);
  Step({"1:8*1"});
  const std::vector<BlockId> cached(Seq(1)->block_table().blocks().begin(),
                                    Seq(1)->block_table().blocks().begin() + 2);
  Finish(1);
  Add(2, prompt);
  // All 8 tokens are cached, but the last one's logits are needed: it is computed again, into a copy of block 1
  // (a cached block is never written).
  const SchedulerPlan plan = Step({"2:1*1"});
  ASSERT_EQ(plan.block_copies.size(), 1u);
  EXPECT_EQ(plan.block_copies[0].first, cached[1]);
  EXPECT_EQ(plan.prefix_cache_hits, 7);
  EXPECT_EQ(Seq(2)->num_cached_prompt_tokens(), 7);
  EXPECT_EQ(Seq(2)->num_computed_prompt_tokens(), 1);
  // Once computed, the copy equals the cached block, which the table takes back; the copy is free again.
  const std::vector<BlockId>& blocks = Seq(2)->block_table().blocks();
  EXPECT_EQ(std::vector<BlockId>(blocks.begin(), blocks.begin() + 2), cached);
  EXPECT_EQ(Seq(2)->block_table().num_registered_blocks(), 2);
  Step({"2:1*1"});  // decodes into a new block
  EXPECT_EQ(scheduler_->allocator().num_used(), 3);
}

TEST_F(PrefixCacheTest, ConcurrentRequestsWithOnePrefixComputeItOnce) {
  Make(32, 64);
  const std::vector<int32_t> system = Ids(12, 100);  // 3 blocks
  for (uint64_t id = 1; id <= 4; ++id) Add(id, Concat(system, Ids(2, 1000 * id)));
  // 2..4 would compute 1's blocks a second time: they wait one step.
  Step({"1:14*1"});
  const SchedulerPlan plan = Step({"1:1*1", "2:2*1", "3:2*1", "4:2*1"});
  EXPECT_EQ(plan.prefix_cache_hits, 3 * 12);
  for (uint64_t id = 2; id <= 4; ++id) {
    EXPECT_EQ(Seq(id)->block_table().blocks()[0], Seq(1)->block_table().blocks()[0]);
    EXPECT_EQ(Seq(id)->block_table().blocks()[2], Seq(1)->block_table().blocks()[2]);
  }
  EXPECT_EQ(scheduler_->allocator().ref_count(Seq(1)->block_table().blocks()[0]), 4);
}

TEST_F(PrefixCacheTest, ASequenceWaitingForABlockInFlightLetsOthersPass) {
  Make(32, 64);
  const std::vector<int32_t> system = Ids(8, 100);
  Add(1, Concat(system, Ids(2, 1000)));
  Add(2, Concat(system, Ids(2, 2000)));  // waits for 1's blocks
  Add(3, Ids(5, 3000));                  // unrelated: admitted now
  Step({"1:10*1", "3:5*1"});
  EXPECT_EQ(Seq(2)->status(), SequenceStatus::kWaiting);
  Step({"1:1*1", "3:1*1", "2:2*1"});
}

TEST_F(PrefixCacheTest, APreemptedSequenceFindsItsComputedBlocksWhenItReturns) {
  Make(4, 64, 16);
  Add(1, Ids(6, 100));
  Add(2, Ids(6, 200));
  Step({"1:6*1", "2:6*1"});  // 2 blocks each: the pool is full
  Step({"1:1*1", "2:1*1"});
  Step({"1:1*1", "2:1*1"});
  // Position 8 needs a third block each: 2 is preempted; its two full, computed blocks are cached, and 1 takes
  // one of them (2's last block, the least recently used).
  Step({"1:1*1", "P2"});
  EXPECT_EQ(Seq(2)->num_tokens(), 9);
  EXPECT_EQ(scheduler_->allocator().num_cached(), 1);
  Finish(1);
  // Back: 2's block 0 is still cached, so it computes tokens 4..8 only (without the cache all 9).
  const SchedulerPlan plan = Step({"2:5*1"});
  EXPECT_EQ(plan.prefix_cache_hits, 4);
  EXPECT_EQ(Seq(2)->num_cached_prompt_tokens(), 4);
  EXPECT_EQ(Seq(2)->num_computed_prompt_tokens(), 6 + 2);  // 6 at first, then prompt tokens 4 and 5 again
}

TEST_F(PrefixCacheTest, CandidatesOfACachedPromptForkFromItsBlocks) {
  Make(16, 16);
  const std::vector<int32_t> prompt = Ids(9, 100);
  Add(1, prompt);
  Step({"1:9*1"});
  Finish(1);
  Add(2, prompt, /*k=*/3);
  Step({"2:1*3"});  // 8 tokens cached: the first sample (k rows) after one token
  ASSERT_EQ(scheduler_->Candidates(2).size(), 3u);
  const BlockId block0 = Seq(2)->block_table().blocks()[0];
  for (int c = 1; c < 3; ++c) EXPECT_EQ(Seq(2, c)->block_table().blocks()[0], block0);
  EXPECT_EQ(scheduler_->allocator().ref_count(block0), 3);
  Step({"2:1*1", "2#1:1*1", "2#2:1*1"});  // the shared partial block 2 is copied by the first two writers
}

}  // namespace
}  // namespace llama
