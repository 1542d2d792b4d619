// Exact per-step plans: who is scheduled with how many tokens, chunk boundaries, admission, preemption, forks.
// Plans are written as "<request>:<new tokens>" with "*<samples>" when the step samples, e.g. "1:8" is a chunk
// of 8 prompt tokens of request 1 and "2:1*1" a decode step; preemptions as "P<request>".
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/forward_input_builder.h"

namespace llama {
namespace {

using Plan = std::vector<std::string>;

SchedulerConfig Config(int max_num_seqs, int max_num_batched_tokens, int max_model_len) {
  SchedulerConfig config;
  config.max_num_seqs = max_num_seqs;
  config.max_num_batched_tokens = max_num_batched_tokens;
  config.max_model_len = max_model_len;
  config.max_num_candidates = std::min(4, max_num_seqs);
  // The plans below pin the policy without prefix caching; prefix_cache_test pins it with.
  config.enable_prefix_caching = false;
  return config;
}

std::vector<int32_t> Prompt(int n, int32_t first = 100) {
  std::vector<int32_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

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

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(int num_blocks, int block_size, SchedulerConfig config) {
    scheduler_ = std::make_unique<Scheduler>(config, num_blocks, block_size);
  }
  void Add(uint64_t id, int prompt_len, int k = 1) {
    scheduler_->AddRequest(id, Prompt(prompt_len, static_cast<int32_t>(100 * id)), SamplingParams{}, id, k);
  }
  // One step: schedule, check the plan, then apply it with made-up sampled tokens.
  void Step(const Plan& expected) {
    SchedulerPlan plan = scheduler_->Schedule();
    EXPECT_EQ(Describe(plan), expected) << "step " << step_;
    std::vector<int32_t> sampled(plan.num_samples(), 7000 + step_);
    last_updated_ = scheduler_->Update(plan, sampled);
    ++step_;
  }
  Sequence* Seq(uint64_t id, int candidate = 0) { return scheduler_->Candidates(id)[candidate].get(); }
  void TearDown() override {
    const BlockAllocator& a = scheduler_->allocator();
    a.CheckInvariants();
    EXPECT_EQ(a.num_free() + a.num_used(), a.num_total());
  }

  std::unique_ptr<Scheduler> scheduler_;
  std::vector<Sequence*> last_updated_;
  int step_ = 0;
};

TEST_F(SchedulerTest, IdleStepIsAnEmptyPlan) {
  Make(8, 4, Config(4, 8, 32));
  SchedulerPlan plan = scheduler_->Schedule();
  EXPECT_TRUE(plan.empty());
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, LongPromptIsChunkedUnderTheTokenBudget) {
  Make(16, 4, Config(4, 8, 64));
  Add(1, 20);
  Step({"1:8"});
  Step({"1:8"});
  Step({"1:4*1"});  // the last chunk samples the first token
  EXPECT_EQ(Seq(1)->num_tokens(), 21);
  Step({"1:1*1"});
  EXPECT_EQ(Seq(1)->num_computed_tokens(), 21);
  EXPECT_EQ(scheduler_->allocator().num_used(), 6);  // 21 tokens in blocks of 4
}

TEST_F(SchedulerTest, DecodesGoFirstThenChunksOfRunningThenNewPrompts) {
  Make(16, 4, Config(4, 8, 64));
  Add(1, 3);
  Add(2, 10);
  Step({"1:3*1", "2:5"});    // 2's prompt does not fit in the rest of the budget: a chunk of 5
  Add(3, 4);
  Step({"1:1*1", "2:5*1", "3:2"});  // 1 decodes first, 2 finishes its prompt, 3 gets what is left
  Step({"1:1*1", "2:1*1", "3:2*1"});
  Step({"1:1*1", "2:1*1", "3:1*1"});
}

TEST_F(SchedulerTest, SequenceCapLimitsAdmission) {
  Make(16, 4, Config(2, 64, 64));
  Add(1, 2);
  Add(2, 2);
  Add(3, 2);
  Step({"1:2*1", "2:2*1"});
  Step({"1:1*1", "2:1*1"});
  EXPECT_EQ(scheduler_->num_waiting(), 1);
  scheduler_->FinishSequence(Seq(1), SequenceStatus::kFinishedStopped);
  Step({"2:1*1", "3:2*1"});
}

TEST_F(SchedulerTest, AdmissionWaitsForMemoryInFifoOrder) {
  Make(4, 4, Config(8, 64, 16));
  Add(1, 12);  // 3 blocks
  Add(2, 8);   // 2 blocks: only 1 left
  Add(3, 2);   // would fit, but does not jump the queue
  Step({"1:12*1"});
  Step({"1:1*1"});  // token 12 takes the last free block
  EXPECT_EQ(scheduler_->allocator().num_free(), 0);
  EXPECT_EQ(scheduler_->num_waiting(), 2);
  scheduler_->FinishSequence(Seq(1), SequenceStatus::kFinishedLength);
  EXPECT_EQ(scheduler_->allocator().num_free(), 4);
  Step({"2:8*1", "3:2*1"});
}

TEST_F(SchedulerTest, OutOfBlocksPreemptsTheNewestByRecompute) {
  Make(4, 4, Config(8, 64, 16));
  Add(1, 6);
  Add(2, 6);
  Step({"1:6*1", "2:6*1"});  // 2 blocks each: the pool is full
  Step({"1:1*1", "2:1*1"});  // positions 6: still in their second blocks
  Step({"1:1*1", "2:1*1"});  // positions 7
  EXPECT_EQ(Seq(2)->num_tokens(), 9);
  // Position 8 needs a third block each. 1 (oldest) takes 2's blocks; 2 goes back to the front of the queue.
  Step({"1:1*1", "P2"});
  EXPECT_EQ(Seq(2)->status(), SequenceStatus::kPreempted);
  EXPECT_EQ(Seq(2)->num_computed_tokens(), 0);
  EXPECT_EQ(Seq(2)->num_tokens(), 9);  // its generated tokens are kept, to be recomputed as prompt
  EXPECT_EQ(scheduler_->num_preemptions(), 1);
  Step({"1:1*1"});  // 2 needs 3 blocks, 1 is free: it waits
  scheduler_->FinishSequence(Seq(1), SequenceStatus::kFinishedStopped);
  Step({"2:9*1"});  // recompute: 9 tokens as one prefill, then it samples its 4th token
  EXPECT_EQ(Seq(2)->num_generated_tokens(), 4);
  EXPECT_EQ(Seq(2)->num_preemptions(), 1);
}

TEST_F(SchedulerTest, NewestRunningPreemptsItselfWhenItIsTheOneShort) {
  Make(4, 4, Config(8, 64, 16));
  Add(1, 5);
  Add(2, 8);
  Step({"1:5*1", "2:8*1"});  // 2 + 2 blocks: the pool is full
  // 1 writes position 5 into its own block; 2 needs a third block for position 8. 1 is already in the plan, so
  // the newest sequence not in it is 2 itself.
  Step({"1:1*1", "P2"});
  EXPECT_EQ(scheduler_->allocator().num_used(), 2);
  EXPECT_EQ(scheduler_->num_waiting(), 1);
}

TEST_F(SchedulerTest, SequencesAlreadyInThePlanAreNeverPreempted) {
  Make(4, 4, Config(8, 8, 16));
  Add(0, 2, /*k=*/2);
  Add(1, 14);
  Step({"0:2*2", "1:6"});  // 0 forks; its candidate 1 is now the newest running sequence
  // The candidates decode first (copy-on-write of the shared block takes the last free block); 1's next chunk
  // then needs a block. The newest, 0#1, is in the plan: 1 preempts itself.
  Step({"0:1*1", "0#1:1*1", "P1"});
  EXPECT_EQ(Seq(1)->status(), SequenceStatus::kPreempted);
  Step({"0:1*1", "0#1:1*1", "1:6"});  // no preemption this step: 1 is admitted again, from token 0
  scheduler_->RemoveRequest(0, SequenceStatus::kFinishedCancelled);
  Step({"1:8*1"});
}

TEST_F(SchedulerTest, RunningPromptChunkIsPreemptedBeforeOlderDecodes) {
  Make(4, 4, Config(8, 8, 16));
  Add(1, 4);
  Step({"1:4*1"});
  Add(2, 14);
  Step({"1:1*1", "2:7"});  // 1: 2 blocks; 2: chunk of 7 in 2 blocks → pool full
  Step({"1:1*1", "P2"});   // 2's next chunk needs a third block: 2 is the newest and not in the plan
  EXPECT_EQ(Seq(2)->num_computed_tokens(), 0);
  EXPECT_EQ(scheduler_->allocator().num_used(), 2);
}

TEST_F(SchedulerTest, CandidatesForkAfterThePromptAndShareItsBlocks) {
  Make(16, 4, Config(8, 64, 32));
  Add(1, 6, /*k=*/3);
  Step({"1:6*3"});  // the prompt's last row is sampled 3 times
  ASSERT_EQ(scheduler_->Candidates(1).size(), 3u);
  EXPECT_EQ(last_updated_.size(), 3u);
  EXPECT_EQ(scheduler_->allocator().num_used(), 2);  // one copy of the prompt's KV
  const BlockId shared_last = Seq(1)->block_table().blocks()[1];
  EXPECT_EQ(scheduler_->allocator().ref_count(shared_last), 3);
  EXPECT_EQ(Seq(1, 1)->seed(), CandidateSeed(1, 1));
  EXPECT_NE(Seq(1, 1)->seed(), Seq(1, 2)->seed());

  SchedulerPlan plan = scheduler_->Schedule();
  EXPECT_EQ(Describe(plan), (Plan{"1:1*1", "1#1:1*1", "1#2:1*1"}));
  // Position 6 is in the shared, partly filled block: the first two copy it, the last owner writes in place.
  ASSERT_EQ(plan.block_copies.size(), 2u);
  EXPECT_EQ(plan.block_copies[0].first, shared_last);
  EXPECT_EQ(plan.block_copies[1].first, shared_last);
  EXPECT_EQ(Seq(1, 2)->block_table().blocks()[1], shared_last);
  EXPECT_EQ(Seq(1)->block_table().blocks()[0], Seq(1, 2)->block_table().blocks()[0]);  // full block shared
  EXPECT_EQ(scheduler_->allocator().num_used(), 4);
  scheduler_->Update(plan, std::vector<int32_t>(3, 5));
  scheduler_->RemoveRequest(1, SequenceStatus::kFinishedCancelled);
  EXPECT_EQ(scheduler_->allocator().num_used(), 0);
}

TEST_F(SchedulerTest, ForkRowsCarryEachCandidatesSeed) {
  Make(16, 4, Config(8, 64, 32));
  scheduler_->AddRequest(1, Prompt(5), SamplingParams{}, /*seed=*/77, /*num_candidates=*/2);
  SchedulerPlan plan = scheduler_->Schedule();
  ForwardInput input = BuildForwardInput(plan);
  ASSERT_EQ(input.outputs.size(), 2u);
  EXPECT_EQ(input.outputs[0].token_index, 4);
  EXPECT_EQ(input.outputs[1].token_index, 4);
  EXPECT_EQ(input.outputs[0].seed, 77u);
  EXPECT_EQ(input.outputs[1].seed, CandidateSeed(77, 1));
  EXPECT_EQ(input.outputs[0].step, 0);
  scheduler_->Update(plan, std::vector<int32_t>{9, 10});
  EXPECT_EQ(Seq(1, 0)->tokens().back(), 9);
  EXPECT_EQ(Seq(1, 1)->tokens().back(), 10);
  scheduler_->RemoveRequest(1, SequenceStatus::kFinishedCancelled);
}

TEST_F(SchedulerTest, CandidatesReserveSequenceSlotsAtAdmission) {
  Make(16, 4, Config(4, 64, 32));
  Add(1, 2, /*k=*/3);
  Add(2, 2, /*k=*/2);
  Step({"1:2*3"});  // 3 + 2 slots > 4: request 2 waits
  Step({"1:1*1", "1#1:1*1", "1#2:1*1"});
  scheduler_->RemoveRequest(1, SequenceStatus::kFinishedCancelled);
  Step({"2:2*2"});
}

TEST_F(SchedulerTest, RemovingARequestReturnsItsBlocksAtOnce) {
  Make(8, 4, Config(4, 64, 32));
  Add(1, 9);
  Add(2, 3);
  Step({"1:9*1", "2:3*1"});
  EXPECT_EQ(scheduler_->allocator().num_used(), 4);
  scheduler_->RemoveRequest(1, SequenceStatus::kFinishedCancelled);
  EXPECT_EQ(scheduler_->allocator().num_used(), 1);
  EXPECT_FALSE(scheduler_->HasRequest(1));
  Step({"2:1*1"});
  scheduler_->RemoveRequest(2, SequenceStatus::kFinishedCancelled);
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, ForwardInputIsTheRaggedBatchOfThePlan) {
  Make(8, 4, Config(4, 6, 32));
  Add(1, 2);
  Add(2, 9);
  SchedulerPlan plan = scheduler_->Schedule();
  ASSERT_EQ(Describe(plan), (Plan{"1:2*1", "2:4"}));
  ForwardInput input = BuildForwardInput(plan);
  EXPECT_EQ(input.token_ids, (std::vector<int32_t>{100, 101, 200, 201, 202, 203}));
  EXPECT_EQ(input.positions, (std::vector<int32_t>{0, 1, 0, 1, 2, 3}));
  EXPECT_EQ(input.query_start, (std::vector<int32_t>{0, 2, 6}));
  EXPECT_EQ(input.context_lens, (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(input.max_blocks_per_seq, 1);
  const BlockId b1 = Seq(1)->block_table().blocks()[0];
  const BlockId b2 = Seq(2)->block_table().blocks()[0];
  EXPECT_EQ(input.block_tables, (std::vector<int32_t>{b1, b2}));
  EXPECT_EQ(input.slot_mapping, (std::vector<int32_t>{b1 * 4, b1 * 4 + 1, b2 * 4, b2 * 4 + 1, b2 * 4 + 2,
                                                     b2 * 4 + 3}));
  ASSERT_EQ(input.outputs.size(), 1u);
  EXPECT_EQ(input.outputs[0].token_index, 1);
  scheduler_->Update(plan, std::vector<int32_t>{5});
  plan = scheduler_->Schedule();
  ASSERT_EQ(Describe(plan), (Plan{"1:1*1", "2:5*1"}));
  input = BuildForwardInput(plan);
  EXPECT_EQ(input.positions, (std::vector<int32_t>{2, 4, 5, 6, 7, 8}));
  EXPECT_EQ(input.context_lens, (std::vector<int32_t>{3, 9}));
  EXPECT_EQ(input.max_blocks_per_seq, 3);
  EXPECT_EQ(input.block_tables[1], -1);  // sequence 1 has one block; row padded
  EXPECT_EQ(input.outputs[0].step, 1);
  EXPECT_EQ(input.outputs[1].token_index, 5);
  scheduler_->Update(plan, std::vector<int32_t>{6, 7});
}

}  // namespace
}  // namespace llama
