// Tokenizer and IncrementalDetokenizer against the LLaMA 2 tokenizer.model.
// Encode is checked against 46 cases from llama.cpp's test vectors (independently confirmed with Python
// sentencepiece, see /work/shared/testdata/README.md); Decode against Python sentencepiece's decode on the leading-
// space and broken byte-fallback rules, and the detokenizer against Decode on randomized id streams. The full
// comparison with libsentencepiece is reference/tokenizer_differential_test.cc.
#include "engine/text/tokenizer.h"

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/text/llama2_tokenizer_fixture.h"

namespace llama {
namespace {

using ::llama::testing::Case;
using ::llama::testing::kCasesPrefix;
using ::llama::testing::LoadCases;

class TokenizerTest : public ::llama::testing::Llama2TokenizerTest {};

// Streams `ids` one at a time; every chunk must be valid UTF-8. Returns the concatenation (Flush included).
std::string Stream(const Tokenizer& tokenizer, const std::vector<int32_t>& ids, int* empty_pushes = nullptr) {
  IncrementalDetokenizer detok(&tokenizer);
  std::string all;
  for (int32_t id : ids) {
    const std::string chunk = detok.Push(id);
    EXPECT_TRUE(utf8::IsValid(chunk)) << "invalid UTF-8 chunk after id " << id;
    if (chunk.empty() && empty_pushes != nullptr) ++*empty_pushes;
    all += chunk;
  }
  const std::string rest = detok.Flush();
  EXPECT_TRUE(utf8::IsValid(rest));
  all += rest;
  EXPECT_EQ(detok.text(), all);
  return all;
}

TEST(TokenizerLoadTest, MissingFileIsAnError) {
  auto loaded = Tokenizer::Load("/nonexistent/tokenizer.model");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  auto not_a_model = Tokenizer::Load(kCasesPrefix + std::string(".inp"));
  EXPECT_EQ(not_a_model.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenizerTest, Vocabulary) {
  EXPECT_EQ(tokenizer_->vocab_size(), 32000);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_EQ(tokenizer_->PieceBytes(1), "");
  EXPECT_EQ(tokenizer_->PieceBytes(2), "");
  EXPECT_EQ(tokenizer_->PieceBytes(0), " \xE2\x81\x87 ");  // SentencePiece's unknown surface " ⁇ "
  EXPECT_EQ(tokenizer_->PieceBytes(29871), " ");           // "▁"
  EXPECT_EQ(tokenizer_->PieceBytes(15043), " Hello");      // "▁Hello"
  EXPECT_EQ(tokenizer_->PieceBytes(3), std::string(1, '\0'));   // <0x00>
  EXPECT_EQ(tokenizer_->PieceBytes(13), "\n");                  // <0x0A>
  EXPECT_EQ(tokenizer_->PieceBytes(258), std::string(1, '\xFF'));  // <0xFF>
  using Kind = Tokenizer::PieceKind;
  EXPECT_EQ(tokenizer_->piece_kind(0), Kind::kUnknown);
  EXPECT_EQ(tokenizer_->piece_kind(1), Kind::kControl);
  EXPECT_EQ(tokenizer_->piece_kind(3), Kind::kByte);
  EXPECT_EQ(tokenizer_->piece_kind(258), Kind::kByte);
  EXPECT_EQ(tokenizer_->piece_kind(259), Kind::kNormal);
}

TEST_F(TokenizerTest, EncodesAll46ReferenceCases) {
  const std::vector<Case> cases = LoadCases();
  ASSERT_EQ(cases.size(), 46u);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_THAT(tokenizer_->Encode(cases[i].text), ::testing::ElementsAreArray(cases[i].ids))
        << "case " << i << ": '" << cases[i].text << "'";
  }
}

TEST_F(TokenizerTest, DecodeRoundTripsAndDropsBosEos) {
  for (const Case& c : LoadCases()) {
    EXPECT_EQ(tokenizer_->Decode(c.ids), c.text);
    std::vector<int32_t> framed = {tokenizer_->bos_id()};
    framed.insert(framed.end(), c.ids.begin(), c.ids.end());
    framed.push_back(tokenizer_->eos_id());
    EXPECT_EQ(tokenizer_->Decode(framed), c.text);
  }
}

TEST_F(TokenizerTest, StreamingMatchesDecodeOnReferenceCases) {
  for (const Case& c : LoadCases()) {
    EXPECT_EQ(Stream(*tokenizer_, c.ids), c.text);
    std::vector<int32_t> framed = {tokenizer_->bos_id()};
    framed.insert(framed.end(), c.ids.begin(), c.ids.end());
    framed.push_back(tokenizer_->eos_id());
    EXPECT_EQ(Stream(*tokenizer_, framed), c.text);
  }
}

TEST_F(TokenizerTest, StreamingHoldsBackSplitCharacters) {
  // Rare CJK characters and emoji have no piece of their own: they are spelled with byte-fallback pieces.
  const std::string text = "Rocket \xF0\x9F\x9A\x80 and \xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F "
                           "\xE9\xBE\x98\xE9\xBD\x89 ok \xE1\x9E\x80\xE1\x9E\xB6";
  std::vector<int32_t> ids = {tokenizer_->bos_id()};
  for (int32_t id : tokenizer_->Encode(text)) ids.push_back(id);
  int byte_pieces = 0;
  for (int32_t id : ids) byte_pieces += tokenizer_->piece_kind(id) == Tokenizer::PieceKind::kByte;
  ASSERT_GE(byte_pieces, 8) << "the text must exercise byte fallback";
  int empty_pushes = 0;
  EXPECT_EQ(Stream(*tokenizer_, ids, &empty_pushes), text);
  EXPECT_GE(empty_pushes, 6) << "lead and middle bytes of split characters must be held back";
}

TEST_F(TokenizerTest, LeadingSpaceOnlyDroppedFromFirstPrintedPiece) {
  const std::vector<std::vector<int32_t>> sequences = {
      {29871, 29871, 29871},       // "▁" "▁" "▁": only the first loses its space
      {1, 29871, 15043},           // BOS does not count as the first piece
      {1, 1, 2, 15043, 1, 15043},  // control pieces mid-stream
      {0, 29871, 15043},           // <unk> is the first printed piece
      {35, 15043},                 // <0x20> is the first printed piece
  };
  // What Python sentencepiece 0.1.97's decode prints for each (the reference, outside this project's code).
  const std::vector<std::string> expected = {"  ", " Hello", "Hello Hello", " \xE2\x81\x87   Hello", "  Hello"};
  for (size_t i = 0; i < sequences.size(); ++i) {
    EXPECT_EQ(tokenizer_->Decode(sequences[i]), expected[i]) << i;
    EXPECT_EQ(Stream(*tokenizer_, sequences[i]), tokenizer_->Decode(sequences[i])) << i;
  }
}

// Invalid UTF-8 never fails: SentencePiece's normalizer turns each byte that does not start a valid character into
// U+FFFD, which the LLaMA vocab has as a piece (30140), and "\uFFFD\uFFFD" as 26308. Ids from Python sentencepiece
// 0.1.97 with the same tokenizer.model.
TEST_F(TokenizerTest, InvalidUtf8EncodesAsReplacementCharacters) {
  EXPECT_THAT(tokenizer_->Encode("\x80"), ::testing::ElementsAre(29871, 30140));
  EXPECT_THAT(tokenizer_->Encode("\xC3"), ::testing::ElementsAre(29871, 30140));
  EXPECT_THAT(tokenizer_->Encode("a\xFF" "b"), ::testing::ElementsAre(263, 30140, 29890));
  EXPECT_THAT(tokenizer_->Encode("\xED\xA0\x80"), ::testing::ElementsAre(29871, 26308, 30140));  // a surrogate
  EXPECT_THAT(tokenizer_->Encode("\xEF\xBF\xBD"), ::testing::ElementsAre(29871, 30140));  // a real U+FFFD
  EXPECT_THAT(tokenizer_->Encode(std::string(1, '\0')), ::testing::ElementsAre(29871, 3));  // NUL: <0x00>
  EXPECT_THAT(tokenizer_->Encode("\xC3\xA9"), ::testing::ElementsAre(904));                // valid "é"
  EXPECT_EQ(tokenizer_->Decode({263, 30140, 29890}), "a\xEF\xBF\xBD" "b");
}

TEST_F(TokenizerTest, BrokenByteSequencesMatchSentencePiece) {
  auto byte = [](int b) { return static_cast<int32_t>(3 + b); };
  const std::vector<std::vector<int32_t>> sequences = {
      {byte(0xF0), byte(0x9F)},                         // truncated at the end of the stream
      {byte(0xF0), byte(0x9F), 15043},                  // truncated by a normal piece
      {byte(0xF0), 2, byte(0x9F), byte(0x9A), byte(0x80)},  // EOS in the middle ends the run
      {byte(0xED), byte(0xA0), byte(0x80)},             // surrogate
      {byte(0xC0), byte(0x80)},                         // overlong
      {byte(0xF4), byte(0x90), byte(0x80), byte(0x80)},  // above U+10FFFF
      {byte(0xF0), byte(0x9F), byte(0x98), byte(0x41)},  // cut short by an ASCII byte
      {byte(0xFF), byte(0xE2), byte(0x82), byte(0xAC)},  // stray byte then a valid euro sign
  };
  // Python sentencepiece 0.1.97's decode of each: one U+FFFD per byte that does not complete a character.
  const std::string r(utf8::kReplacementChar);
  const std::vector<std::string> expected = {r + r, r + r + " Hello", r + r + r + r, r + r + r, r + r,
                                             r + r + r + r, r + r + r + "A", r + "\xE2\x82\xAC"};
  ASSERT_EQ(expected.size(), sequences.size());
  for (size_t i = 0; i < sequences.size(); ++i) {
    EXPECT_EQ(tokenizer_->Decode(sequences[i]), expected[i]) << i;
    EXPECT_EQ(Stream(*tokenizer_, sequences[i]), expected[i]) << i;
  }
}

TEST_F(TokenizerTest, RandomStreamsMatchDecode) {
  std::mt19937 rng(20240607);
  // Mostly byte pieces of multi-byte characters, so that runs are often broken, plus every other kind.
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<int> high_byte(0x80, 0xFF);
  std::uniform_int_distribution<int> lead_byte(0xC0, 0xF7);
  std::uniform_int_distribution<int> any_piece(0, tokenizer_->vocab_size() - 1);
  std::uniform_int_distribution<int> length(1, 24);
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<int32_t> ids;
    for (int n = length(rng); n > 0; --n) {
      const int k = kind(rng);
      if (k < 3) ids.push_back(3 + high_byte(rng));
      else if (k < 5) ids.push_back(3 + lead_byte(rng));
      else if (k == 5) ids.push_back(3 + (rng() % 0x80));
      else if (k == 6) ids.push_back(static_cast<int32_t>(rng() % 3));  // <unk>, BOS, EOS
      else ids.push_back(any_piece(rng));
    }
    ASSERT_EQ(Stream(*tokenizer_, ids), tokenizer_->Decode(ids)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace llama
