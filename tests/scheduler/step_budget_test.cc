// "Fits in this step", tested apart from "fits in memory" (block_allocator_test.cc).
#include "scheduler/step_budget.h"

#include <gtest/gtest.h>

namespace llama {
namespace {

TEST(StepBudgetTest, LongPromptGetsAChunkOfWhatIsLeft) {
  StepBudget budget(/*max_tokens=*/8, /*max_seqs=*/4);
  EXPECT_EQ(budget.TokensFor(1), 1);
  budget.Take(1);
  EXPECT_EQ(budget.TokensFor(20), 7);
  budget.Take(7);
  EXPECT_EQ(budget.TokensFor(1), 0);  // token budget spent
  EXPECT_EQ(budget.tokens_left(), 0);
}

TEST(StepBudgetTest, SequenceCapStopsEvenWithTokensLeft) {
  StepBudget budget(/*max_tokens=*/100, /*max_seqs=*/2);
  budget.Take(1);
  budget.Take(1);
  EXPECT_EQ(budget.seqs_left(), 0);
  EXPECT_EQ(budget.TokensFor(1), 0);
  EXPECT_EQ(budget.tokens_left(), 98);
}

}  // namespace
}  // namespace llama
