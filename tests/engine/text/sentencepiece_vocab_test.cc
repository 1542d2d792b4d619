// SentencePieceVocab and its ModelProto: the LLaMA 2 tokenizer.model parsed into pieces and settings (the values
// checked below were read independently with Python sentencepiece's sentencepiece_model_pb2 from the same file),
// a serialize/parse round trip, and the tokenizer assembled from the parsed pieces (as a GGUF vocab would give
// them) tokenizing the 46 shared cases, and decoding, exactly as tokenizer.model itself.
#include "engine/text/sentencepiece_vocab.h"

#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/text/llama2_tokenizer_fixture.h"

namespace llama {
namespace {

using ::llama::testing::kLlama2TokenizerPath;
using ::llama::testing::LoadCases;
using ::llama::testing::ReadTestFile;

class SentencePieceVocabTest : public ::llama::testing::Llama2TokenizerTest {};

TEST(SentencePieceVocabParseTest, ReadsTheLlama2Model) {
  auto vocab = ParseModelProto(ReadTestFile(kLlama2TokenizerPath));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  ASSERT_EQ(vocab->pieces.size(), 32000u);
  EXPECT_EQ(vocab->model_type, 2);  // BPE
  EXPECT_TRUE(vocab->byte_fallback);
  EXPECT_EQ(vocab->unk_id, 0);
  EXPECT_EQ(vocab->bos_id, 1);
  EXPECT_EQ(vocab->eos_id, 2);
  EXPECT_EQ(vocab->pad_id, -1);
  EXPECT_TRUE(vocab->add_dummy_prefix);
  EXPECT_FALSE(vocab->remove_extra_whitespaces);
  // What the encoder checks before accepting the model (sentencepiece_bpe.h).
  EXPECT_EQ(vocab->normalizer_name, "identity");
  EXPECT_FALSE(vocab->has_precompiled_charsmap);
  EXPECT_FALSE(vocab->has_denormalizer_charsmap);
  EXPECT_TRUE(vocab->escape_whitespaces);
  EXPECT_FALSE(vocab->treat_whitespace_as_suffix);
  EXPECT_EQ(vocab->unk_surface, " \xE2\x81\x87 ");
  EXPECT_EQ(vocab->pieces[0].piece, "<unk>");
  EXPECT_EQ(vocab->pieces[0].type, PieceType::kUnknown);
  EXPECT_EQ(vocab->pieces[1].piece, "<s>");
  EXPECT_EQ(vocab->pieces[1].type, PieceType::kControl);
  EXPECT_EQ(vocab->pieces[3].piece, "<0x00>");
  EXPECT_EQ(vocab->pieces[258].type, PieceType::kByte);
  EXPECT_EQ(vocab->pieces[259].piece, "\xE2\x96\x81\xE2\x96\x81");  // "▁▁"
  EXPECT_EQ(vocab->pieces[259].score, -1e9f);
  EXPECT_EQ(vocab->pieces[260].score, -1.0f);
  EXPECT_EQ(vocab->pieces[31999].piece, "\xE7\xBB\x99");  // "给"
  EXPECT_EQ(vocab->pieces[31999].score, -31740.0f);
  int counts[7] = {};
  for (const VocabPiece& p : vocab->pieces) ++counts[static_cast<int>(p.type)];
  EXPECT_EQ(counts[static_cast<int>(PieceType::kNormal)], 31741);
  EXPECT_EQ(counts[static_cast<int>(PieceType::kByte)], 256);
  EXPECT_EQ(counts[static_cast<int>(PieceType::kControl)], 2);
}

TEST(SentencePieceVocabParseTest, SerializeParseRoundTrip) {
  SentencePieceVocab v;
  v.pieces = {{"<unk>", 0, PieceType::kUnknown}, {"<s>", 0, PieceType::kControl}, {"</s>", 0, PieceType::kControl},
              {"<pad>", 0, PieceType::kControl}, {"\xE2\x96\x81" "a", -1.5f, PieceType::kNormal},
              {"x", -2.25f, PieceType::kUserDefined}, {"y", 0, PieceType::kUnused}};
  v.pad_id = 3;
  v.add_dummy_prefix = false;
  v.remove_extra_whitespaces = true;
  v.byte_fallback = false;
  v.escape_whitespaces = false;
  v.unk_surface = "<?>";
  auto parsed = ParseModelProto(SerializeModelProto(v));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->pieces.size(), v.pieces.size());
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    EXPECT_EQ(parsed->pieces[i].piece, v.pieces[i].piece);
    EXPECT_EQ(parsed->pieces[i].score, v.pieces[i].score);
    EXPECT_EQ(parsed->pieces[i].type, v.pieces[i].type);
  }
  EXPECT_EQ(parsed->pad_id, 3);
  EXPECT_EQ(parsed->model_type, 2);
  EXPECT_FALSE(parsed->add_dummy_prefix);
  EXPECT_TRUE(parsed->remove_extra_whitespaces);
  EXPECT_FALSE(parsed->byte_fallback);
  EXPECT_FALSE(parsed->escape_whitespaces);
  EXPECT_EQ(parsed->unk_surface, "<?>");
  EXPECT_EQ(parsed->normalizer_name, "identity");
}

TEST(SentencePieceVocabParseTest, MalformedBytesAreInvalidArgument) {
  EXPECT_EQ(ParseModelProto("\x0a\xff").status().code(), absl::StatusCode::kInvalidArgument);  // length past end
  EXPECT_EQ(ParseModelProto("\x0b").status().code(), absl::StatusCode::kInvalidArgument);      // wire type 3
  EXPECT_EQ(ParseModelProto(std::string(11, '\xff')).status().code(), absl::StatusCode::kInvalidArgument);
}

// The tokenizer assembled from the pieces alone (the information a GGUF vocab carries) against tokenizer.model.
TEST_F(SentencePieceVocabTest, AssembledModelTokenizesExactlyAsTokenizerModel) {
  auto vocab = ParseModelProto(ReadTestFile(kLlama2TokenizerPath));
  ASSERT_TRUE(vocab.ok());
  auto assembled = Tokenizer::FromSerializedModel(SerializeModelProto(*vocab), "assembled");
  ASSERT_TRUE(assembled.ok()) << assembled.status();
  const Tokenizer& a = **assembled;
  ASSERT_EQ(a.vocab_size(), tokenizer_->vocab_size());
  EXPECT_EQ(a.bos_id(), tokenizer_->bos_id());
  EXPECT_EQ(a.eos_id(), tokenizer_->eos_id());
  for (int id = 0; id < a.vocab_size(); ++id) {
    ASSERT_EQ(a.PieceBytes(id), tokenizer_->PieceBytes(id)) << id;
    ASSERT_EQ(a.piece_kind(id), tokenizer_->piece_kind(id)) << id;
  }
  const auto cases = LoadCases();
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    EXPECT_THAT(a.Encode(c.text), ::testing::ElementsAreArray(c.ids)) << "'" << c.text << "'";
    EXPECT_EQ(a.Decode(c.ids), c.text);
  }
  // Runs of spaces, tabs and newlines are where BPE's whitespace settings show; random ids exercise decoding.
  for (const std::string text : {"a  b   c    d", "  leading", "trailing   ", "\t\t x \n\n  y", "1234567 89"}) {
    EXPECT_EQ(a.Encode(text), tokenizer_->Encode(text)) << "'" << text << "'";
  }
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int32_t> ids(1 + rng() % 20);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % 32000);
    EXPECT_EQ(a.Decode(ids), tokenizer_->Decode(ids));
  }
}

}  // namespace
}  // namespace llama
