#include "scheduler/sequence.h"

#include <gtest/gtest.h>

namespace llama {
namespace {

TEST(SequenceStatusTest, OrderedWithOneIsFinished) {
  EXPECT_FALSE(IsFinished(SequenceStatus::kWaiting));
  EXPECT_FALSE(IsFinished(SequenceStatus::kRunning));
  EXPECT_FALSE(IsFinished(SequenceStatus::kPreempted));
  EXPECT_TRUE(IsFinished(SequenceStatus::kFinishedStopped));
  EXPECT_TRUE(IsFinished(SequenceStatus::kFinishedLength));
  EXPECT_TRUE(IsFinished(SequenceStatus::kFinishedCancelled));
  EXPECT_TRUE(IsFinished(SequenceStatus::kFinishedDeadline));
  EXPECT_TRUE(IsFinished(SequenceStatus::kFinishedError));
}

class SequenceTest : public ::testing::Test {
 protected:
  BlockAllocator allocator_{8, 4};
  SequenceParams params_{7, SamplingParams{}, 1};
};

TEST_F(SequenceTest, ProgressAndPreemptionByRecompute) {
  Sequence seq(0, &params_, 0, 42, {1, 5, 6, 7, 8}, &allocator_);
  EXPECT_EQ(seq.status(), SequenceStatus::kWaiting);
  seq.MarkRunning();
  ASSERT_TRUE(seq.block_table().Append(0, 5).has_value());
  seq.AdvanceComputed(5);
  seq.AppendToken(9);
  EXPECT_EQ(seq.num_generated_tokens(), 1);
  EXPECT_EQ(seq.num_uncomputed_tokens(), 1);
  EXPECT_EQ(allocator_.num_used(), 2);

  seq.MarkPreempted();
  EXPECT_EQ(seq.status(), SequenceStatus::kPreempted);
  EXPECT_EQ(seq.num_computed_tokens(), 0);  // everything is recomputed, generated tokens included
  EXPECT_EQ(seq.num_tokens(), 6);
  EXPECT_EQ(seq.num_generated_tokens(), 1);
  EXPECT_EQ(seq.num_preemptions(), 1);
  EXPECT_EQ(allocator_.num_used(), 0);

  seq.MarkRunning();
  seq.MarkFinished(SequenceStatus::kFinishedCancelled);
  EXPECT_TRUE(seq.is_finished());
}

TEST_F(SequenceTest, IllegalTransitionsAbort) {
  EXPECT_DEATH(
      {
        Sequence seq(0, &params_, 0, 42, {1, 2}, &allocator_);
        seq.MarkPreempted();  // waiting → preempted
      },
      "CHECK failed");
  EXPECT_DEATH(
      {
        Sequence seq(0, &params_, 0, 42, {1, 2}, &allocator_);
        seq.MarkFinished(SequenceStatus::kFinishedStopped);
        seq.MarkRunning();  // finished → running
      },
      "CHECK failed");
  EXPECT_DEATH(
      {
        Sequence seq(0, &params_, 0, 42, {1, 2}, &allocator_);
        seq.MarkRunning();
        seq.AppendToken(3);  // sampled before the prompt was computed
      },
      "CHECK failed");
}

TEST_F(SequenceTest, ForkSharesBlocksAndProgress) {
  SequenceParams params{7, SamplingParams{}, 2};
  Sequence seq(0, &params, 0, 42, {1, 5, 6, 7, 8, 9}, &allocator_);
  EXPECT_TRUE(seq.fork_pending());
  seq.MarkRunning();
  ASSERT_TRUE(seq.block_table().Append(0, 6).has_value());
  seq.AdvanceComputed(6);
  std::unique_ptr<Sequence> fork = seq.Fork(1, 1, 43);
  seq.set_forked();
  EXPECT_FALSE(seq.fork_pending());
  EXPECT_FALSE(fork->fork_pending());
  EXPECT_EQ(fork->status(), SequenceStatus::kRunning);
  EXPECT_EQ(fork->num_computed_tokens(), 6);
  EXPECT_EQ(fork->num_prompt_tokens(), 6);
  EXPECT_EQ(fork->block_table().blocks(), seq.block_table().blocks());
  EXPECT_EQ(allocator_.num_used(), 2);
  EXPECT_EQ(allocator_.ref_count(seq.block_table().blocks()[0]), 2);
  seq.MarkFinished(SequenceStatus::kFinishedStopped);
  EXPECT_EQ(allocator_.num_used(), 2);  // the fork still holds them
  fork->MarkFinished(SequenceStatus::kFinishedStopped);
  EXPECT_EQ(allocator_.num_used(), 0);
}

}  // namespace
}  // namespace llama
