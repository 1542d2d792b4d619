// The progress line `llama-chat load` redraws on a terminal.
#include "tools/load/progress_bar.h"

#include "gtest/gtest.h"

namespace llama::load {
namespace {

TEST(ProgressBarTest, ByRequests) {
  EXPECT_EQ(ProgressBar::Line("concurrency 4", 50, 2, 100, 3.25, 0),
            "concurrency 4  [############............]  50/100 requests  2 failed  3.2 s");
  EXPECT_EQ(ProgressBar::Line("c", 0, 0, 10, 0, 0), "c  [........................]  0/10 requests  0 failed  0.0 s");
  EXPECT_EQ(ProgressBar::Line("c", 10, 0, 10, 1, 0), "c  [########################]  10/10 requests  0 failed  1.0 s");
}

TEST(ProgressBarTest, ByTimeWhenOnlyADurationIsSet) {
  EXPECT_EQ(ProgressBar::Line("rate 2/s", 7, 0, 0, 5, 20),
            "rate 2/s  [######..................]  7 requests  0 failed  5.0 s");
  EXPECT_EQ(ProgressBar::Line("rate 2/s", 9, 0, 0, 30, 20),
            "rate 2/s  [########################]  9 requests  0 failed  30.0 s");
}

}  // namespace
}  // namespace llama::load
