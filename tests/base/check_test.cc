// CHECK and CHECK_OP: a failure names the expression and, for comparisons, prints both operands; each operand is
// evaluated once; a passing check does nothing.
#include "base/check.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace llama {
namespace {

enum class Color { kRed = 3, kBlue = 7 };

TEST(CheckDeathTest, CheckEqPrintsBothOperands) {
  const int a = 3, b = 4;
  EXPECT_DEATH(CHECK_EQ(a, b), "CHECK failed: a == b \\(3 vs\\. 4\\) at .*check_test\\.cc");
}

TEST(CheckDeathTest, EveryComparisonPrintsItsOperands) {
  const int64_t big = int64_t{1} << 40;
  EXPECT_DEATH(CHECK_NE(big, big), "big != big \\(1099511627776 vs\\. 1099511627776\\)");
  EXPECT_DEATH(CHECK_LT(5, 2), "5 < 2 \\(5 vs\\. 2\\)");
  EXPECT_DEATH(CHECK_LE(2.5, 1.0), "2\\.5 <= 1\\.0 \\(2\\.5 vs\\. 1\\)");
  EXPECT_DEATH(CHECK_GT(std::string("a"), std::string("b")), "\\(a vs\\. b\\)");
  EXPECT_DEATH(CHECK_GE(-1, 0), "-1 >= 0 \\(-1 vs\\. 0\\)");
}

TEST(CheckDeathTest, EnumsAndBytesPrintAsNumbersAndOtherTypesStillCompile) {
  EXPECT_DEATH(CHECK_EQ(Color::kRed, Color::kBlue), "\\(3 vs\\. 7\\)");
  const unsigned char x = 'A';
  EXPECT_DEATH(CHECK_EQ(x, 'B'), "\\(65 vs\\. 66\\)");
  const std::vector<int> v = {1}, w = {2};
  EXPECT_DEATH(CHECK_EQ(v, w), "v == w \\(\\(unprintable\\) vs\\. \\(unprintable\\)\\)");
}

TEST(CheckDeathTest, PlainCheckAndCheckOkNameTheExpression) {
  const bool ready = false;
  EXPECT_DEATH(CHECK(ready), "CHECK failed: ready at ");
  EXPECT_DEATH(CHECK_OK(absl::InvalidArgumentError("bad field")), "is OK.*INVALID_ARGUMENT: bad field");
}

TEST(CheckTest, PassingChecksEvaluateEachOperandOnce) {
  int calls = 0;
  auto next = [&calls] { return ++calls; };
  CHECK_EQ(next(), 1);
  CHECK_LT(next(), 3);
  CHECK(next() == 3);
  CHECK_OK(absl::OkStatus());
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace llama
