// SentencePieceBpe on small hand-made vocabularies, where each expected segmentation follows by hand from
// SentencePiece's BPE rules (highest-scoring pair first, ties to the leftmost; control pieces never merged into;
// unused pieces only as intermediate merges; user-defined pieces atomic; byte fallback or one unknown per run), and
// the models it refuses. The LLaMA model itself is checked against libsentencepiece in
// reference/tokenizer_differential_test.cc and against Python sentencepiece's ids in tokenizer_test.cc.
#include "engine/text/sentencepiece_bpe.h"

#include <cstdio>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"

// <unk>, <s>, </s>, then `pieces` from id 3 on.
SentencePieceVocab Vocab(const std::vector<VocabPiece>& pieces, bool add_dummy_prefix = false) {
  SentencePieceVocab v;
  v.pieces = {{"<unk>", 0, PieceType::kUnknown}, {"<s>", 0, PieceType::kControl}, {"</s>", 0, PieceType::kControl}};
  v.pieces.insert(v.pieces.end(), pieces.begin(), pieces.end());
  v.byte_fallback = false;
  v.add_dummy_prefix = add_dummy_prefix;
  return v;
}

std::unique_ptr<SentencePieceBpe> Make(const SentencePieceVocab& v) {
  auto bpe = SentencePieceBpe::Create(v);
  EXPECT_TRUE(bpe.ok()) << bpe.status();
  return bpe.ok() ? std::move(*bpe) : nullptr;
}

TEST(SentencePieceBpeTest, HighestScoringPairMergesFirst) {
  // ids 3 a, 4 b, 5 c, 6 ab, 7 bc: "bc" outscores "ab", so "abc" is a + bc, although "ab" comes first.
  auto bpe = Make(Vocab({{"a", -10}, {"b", -10}, {"c", -10}, {"ab", -2}, {"bc", -1}}));
  EXPECT_THAT(bpe->Encode("abc"), ElementsAre(3, 7));
  EXPECT_THAT(bpe->Encode("abab"), ElementsAre(6, 6));
}

TEST(SentencePieceBpeTest, EqualScoresMergeLeftmostFirst) {
  // ids 3 a, 4 aa: "aaa" → aa + a (the leftmost pair), "aaaa" → aa + aa, "aaaaa" → aa aa a.
  auto bpe = Make(Vocab({{"a", -5}, {"aa", -1}}));
  EXPECT_THAT(bpe->Encode("aaa"), ElementsAre(4, 3));
  EXPECT_THAT(bpe->Encode("aaaa"), ElementsAre(4, 4));
  EXPECT_THAT(bpe->Encode("aaaaa"), ElementsAre(4, 4, 3));
}

TEST(SentencePieceBpeTest, MergesChainThroughIntermediatePieces) {
  // ids 3 ▁, 4 h, 5 i, 6 ▁h, 7 ▁hi: the dummy prefix joins the word.
  auto bpe = Make(Vocab({{kSpace, -9}, {"h", -9}, {"i", -9}, {std::string(kSpace) + "h", -2},
                         {std::string(kSpace) + "hi", -3}},
                        /*add_dummy_prefix=*/true));
  EXPECT_THAT(bpe->Encode("hi"), ElementsAre(7));
  EXPECT_THAT(bpe->Encode("hi hi"), ElementsAre(7, 7));
  EXPECT_THAT(bpe->Encode(""), ElementsAre());
}

TEST(SentencePieceBpeTest, ControlPiecesAreNeverProduced) {
  // "<s>" and "xy" are control pieces: the text "<s>" stays three characters (all unknown here, one id for the
  // run), "xy" stays x + y.
  SentencePieceVocab v = Vocab({{"x", -1}, {"y", -1}, {"xy", 0, PieceType::kControl}, {"<", -1}});
  auto bpe = Make(v);
  EXPECT_THAT(bpe->Encode("xy"), ElementsAre(3, 4));
  EXPECT_THAT(bpe->Encode("<s>"), ElementsAre(6, 0));  // "<", then "s>" as one unknown run
}

TEST(SentencePieceBpeTest, UnusedPiecesOnlyServeAsIntermediateMerges) {
  // ids 3 a, 4 b, 5 c, 6 ab (unused), 7 abc: "abc" merges through "ab"; a final "ab" is split back.
  auto bpe = Make(Vocab({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -1, PieceType::kUnused}, {"abc", -2}}));
  EXPECT_THAT(bpe->Encode("abc"), ElementsAre(7));
  EXPECT_THAT(bpe->Encode("ab"), ElementsAre(3, 4));
  EXPECT_THAT(bpe->Encode("abab"), ElementsAre(3, 4, 3, 4));
}

TEST(SentencePieceBpeTest, UserDefinedPiecesAreAtomic) {
  // ids 3 a, 4 b, 5 c, 6 ab, 7 bc (user-defined): "abc" → a + bc (bc is matched whole and never merges), "ab" → ab.
  auto bpe = Make(Vocab({{"a", -9}, {"b", -9}, {"c", -9}, {"ab", -1}, {"bc", 0, PieceType::kUserDefined}}));
  EXPECT_THAT(bpe->Encode("abc"), ElementsAre(3, 7));
  EXPECT_THAT(bpe->Encode("ab"), ElementsAre(6));
  EXPECT_THAT(bpe->Encode("bcbc"), ElementsAre(7, 7));
}

TEST(SentencePieceBpeTest, UnknownRunsWithoutByteFallback) {
  auto bpe = Make(Vocab({{"a", -1}}));
  EXPECT_THAT(bpe->Encode("xyza"), ElementsAre(0, 3));
  EXPECT_THAT(bpe->Encode("axya"), ElementsAre(3, 0, 3));
}

TEST(SentencePieceBpeTest, ByteFallbackAndInvalidUtf8) {
  // ids 3..258 the byte pieces <0x00>..<0xFF>, 259 a.
  std::vector<VocabPiece> pieces;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    pieces.push_back({name, 0, PieceType::kByte});
  }
  pieces.push_back({"a", -1});
  SentencePieceVocab v = Vocab(pieces);
  v.byte_fallback = true;
  auto bpe = Make(v);
  // "é" is C3 A9; an invalid byte is normalized to U+FFFD (EF BF BD) first, so it falls back to those three bytes.
  EXPECT_THAT(bpe->Encode("a\xC3\xA9"), ElementsAre(259, 3 + 0xC3, 3 + 0xA9));
  EXPECT_THAT(bpe->Encode("\x80"), ElementsAre(3 + 0xEF, 3 + 0xBF, 3 + 0xBD));
  EXPECT_THAT(bpe->Encode(std::string("\0", 1)), ElementsAre(3));
}

TEST(SentencePieceBpeTest, Normalization) {
  SentencePieceVocab v = Vocab({{"a", -1}}, /*add_dummy_prefix=*/true);
  auto bpe = Make(v);
  const std::string s = kSpace;
  EXPECT_EQ(bpe->Normalize("a b"), s + "a" + s + "b");
  EXPECT_EQ(bpe->Normalize(" "), s + s);
  EXPECT_EQ(bpe->Normalize(""), "");
  EXPECT_EQ(bpe->Normalize("\x80z\xC3"), s + "\xEF\xBF\xBDz\xEF\xBF\xBD");
  EXPECT_EQ(bpe->Normalize("\xC0\x80"), s + "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: two bytes, two U+FFFD
  v.remove_extra_whitespaces = true;
  bpe = Make(v);
  EXPECT_EQ(bpe->Normalize("  a   b  "), s + "a" + s + "b");
  EXPECT_EQ(bpe->Normalize("   "), "");
  v.escape_whitespaces = false;
  bpe = Make(v);
  EXPECT_EQ(bpe->Normalize("a  b"), " a b");
}

TEST(SentencePieceBpeTest, RefusesWhatItDoesNotImplement) {
  auto error = [](const SentencePieceVocab& v) { return SentencePieceBpe::Create(v).status(); };
  SentencePieceVocab v = Vocab({{"a", -1}});
  v.model_type = 1;
  EXPECT_EQ(error(v).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(error(v).message(), HasSubstr("not BPE"));
  v = Vocab({{"a", -1}});
  v.normalizer_name = "nmt_nfkc";
  v.has_precompiled_charsmap = true;
  EXPECT_THAT(error(v).message(), HasSubstr("normalizer 'nmt_nfkc'"));
  v = Vocab({{"a", -1}});
  v.has_denormalizer_charsmap = true;
  EXPECT_THAT(error(v).message(), HasSubstr("denormalizer"));
  v = Vocab({{"a", -1}});
  v.treat_whitespace_as_suffix = true;
  EXPECT_THAT(error(v).message(), HasSubstr("treat_whitespace_as_suffix"));
  // What SentencePiece refuses too.
  v = Vocab({{"a", -1}, {"a", -2}});
  EXPECT_THAT(error(v).message(), HasSubstr("already defined"));
  v = Vocab({{"", -1}});
  EXPECT_THAT(error(v).message(), HasSubstr("empty"));
  v = Vocab({{"<0x41>", 0, PieceType::kByte}});
  EXPECT_THAT(error(v).message(), HasSubstr("byte_fallback"));
  v = Vocab({{"a", -1}});
  v.pieces[0].type = PieceType::kNormal;
  EXPECT_THAT(error(v).message(), HasSubstr("no unknown piece"));
  v = Vocab({{"a", -1}, {"<unk2>", 0, PieceType::kUnknown}});
  EXPECT_THAT(error(v).message(), HasSubstr("more than one unknown"));
}

}  // namespace
}  // namespace llama
