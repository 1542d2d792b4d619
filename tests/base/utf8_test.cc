// base/utf8: the one UTF-8 table (validity, incomplete prefixes), the two replacement policies, and where they
// differ. Python's whitespace table is checked against Python in tests/engine/text/chat_prompt_test.cc.
#include "base/utf8.h"

#include "gtest/gtest.h"

namespace llama::utf8 {
namespace {

constexpr char kFffd[] = "\xEF\xBF\xBD";

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValid(""));
  EXPECT_TRUE(IsValid("plain ascii"));
  EXPECT_TRUE(IsValid("caf\xC3\xA9"));               // é
  EXPECT_TRUE(IsValid("\xE2\x96\x81"));              // ▁
  EXPECT_TRUE(IsValid("\xF0\x9F\x98\x80"));          // 😀
  EXPECT_TRUE(IsValid("\xF4\x8F\xBF\xBF"));          // U+10FFFF
}

TEST(Utf8Test, RejectsIllFormedText) {
  EXPECT_FALSE(IsValid("\xC3"));                     // truncated
  EXPECT_FALSE(IsValid("\xF0\x9F\x98"));             // truncated 4-byte
  EXPECT_FALSE(IsValid("\x80"));                     // lone continuation
  EXPECT_FALSE(IsValid("\xC0\xAF"));                 // overlong
  EXPECT_FALSE(IsValid("\xE0\x80\xAF"));             // overlong 3-byte
  EXPECT_FALSE(IsValid("\xED\xA0\x80"));             // surrogate U+D800
  EXPECT_FALSE(IsValid("\xF4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(IsValid("\xFF"));
}

TEST(Utf8Test, ValidCharLengthAndIncompletePrefixes) {
  EXPECT_EQ(ValidCharLength("a"), 1);
  EXPECT_EQ(ValidCharLength("\xC3\xA9x"), 2);
  EXPECT_EQ(ValidCharLength("\xF0\x9F\x98\x80"), 4);
  EXPECT_EQ(ValidCharLength("\xF0\x9F\x98"), 0);
  EXPECT_TRUE(IsIncompletePrefix("\xF0\x9F\x98"));
  EXPECT_TRUE(IsIncompletePrefix("\xE2"));
  EXPECT_FALSE(IsIncompletePrefix("\xE0\x80"));      // can only become an overlong
  EXPECT_FALSE(IsIncompletePrefix("\x80"));
  EXPECT_FALSE(IsIncompletePrefix("\xC3\xA9"));      // complete already
  EXPECT_EQ(IncompleteSuffixLength("ab\xF0\x9F"), 2u);
  EXPECT_EQ(IncompleteSuffixLength("ab\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(IncompleteSuffixLength("\xFF\xE2\x96"), 2u);
  EXPECT_EQ(IncompleteSuffixLength(""), 0u);
}

TEST(Utf8Test, WireRepairReplacesEachBadRunWithOneReplacementCharacter) {
  EXPECT_EQ(ReplaceEachInvalidRun("ok"), "ok");
  EXPECT_EQ(ReplaceEachInvalidRun("a\xC3"), std::string("a") + kFffd);
  EXPECT_EQ(ReplaceEachInvalidRun("a\x80\x80" "b"), std::string("a") + kFffd + "b");
  EXPECT_EQ(ReplaceEachInvalidRun("\xF0\x9F\x98\x80\xFF"), std::string("\xF0\x9F\x98\x80") + kFffd);
  EXPECT_TRUE(IsValid(ReplaceEachInvalidRun("\xED\xA0\x80 x \xC0")));
}

TEST(Utf8Test, SentencePiecePolicyReplacesEachBadByte) {
  EXPECT_EQ(ReplaceEachInvalidByte("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(ReplaceEachInvalidByte("a\x80\x80" "b"), std::string("a") + kFffd + kFffd + "b");
  // A truncated character is a lead byte plus continuation bytes: one U+FFFD each.
  EXPECT_EQ(ReplaceEachInvalidByte("\xF0\x9F\x98"), std::string(kFffd) + kFffd + kFffd);
  EXPECT_EQ(ReplaceEachInvalidByte("\xED\xA0\x80!"), std::string(kFffd) + kFffd + kFffd + "!");
}

TEST(Utf8Test, BothPoliciesAlwaysGiveValidTextAndAgreeOnValidInput) {
  const std::string samples[] = {"", "plain", "caf\xC3\xA9", "\xFF\xFE", "x\xC3", "\xE2\x96\x81\x80", "\xF4\x90\x80\x80"};
  for (const std::string& s : samples) {
    EXPECT_TRUE(IsValid(ReplaceEachInvalidByte(s))) << s;
    EXPECT_TRUE(IsValid(ReplaceEachInvalidRun(s))) << s;
    if (IsValid(s)) {
      EXPECT_EQ(ReplaceEachInvalidByte(s), s);
      EXPECT_EQ(ReplaceEachInvalidRun(s), s);
    }
  }
}

}  // namespace
}  // namespace llama::utf8
