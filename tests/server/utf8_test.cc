#include "server/utf8.h"

#include "gtest/gtest.h"

namespace llama::server {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));               // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x96\x81"));              // ▁
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\x98\x80"));          // 😀
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));          // U+10FFFF
}

TEST(Utf8Test, RejectsIllFormedText) {
  EXPECT_FALSE(IsValidUtf8("\xC3"));                     // truncated
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));             // truncated 4-byte
  EXPECT_FALSE(IsValidUtf8("\x80"));                     // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));                 // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x80\xAF"));             // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));             // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Utf8Test, RepairReplacesEachBadRunWithOneReplacementCharacter) {
  EXPECT_EQ(ToValidUtf8("ok"), "ok");
  EXPECT_EQ(ToValidUtf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(ToValidUtf8("a\x80\x80" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98\x80\xFF"), "\xF0\x9F\x98\x80\xEF\xBF\xBD");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8("\xED\xA0\x80 x \xC0")));
}

}  // namespace
}  // namespace llama::server
