// LoadModelTokenizer: a model directory's tokenizer.model; a GGUF file's own vocab (written here with our writer
// from the LLaMA 2 tokenizer.model's pieces) tokenizing the 46 shared cases exactly as tokenizer.model; the
// tokenizer.model beside a GGUF file (used only when it holds the GGUF's pieces); and one test per rule of the
// GGUF vocab (gguf_vocab.h).
#include "engine/text/model_tokenizer.h"

#include <filesystem>
#include <string>

#include "convert/gguf_writer.h"
#include "engine/text/gguf_vocab.h"
#include "engine/text/sentencepiece_vocab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/text/llama2_tokenizer_fixture.h"

namespace llama {
namespace {

using ::llama::testing::kLlama2TokenizerPath;
using ::llama::testing::LoadCases;
using ::llama::testing::ReadTestFile;
using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/model_tokenizer_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

SentencePieceVocab Llama2Vocab() {
  auto vocab = ParseModelProto(ReadTestFile(kLlama2TokenizerPath));
  EXPECT_TRUE(vocab.ok()) << vocab.status();
  return *vocab;
}

// A GGUF holding only the tokenizer keys of `vocab` (LoadModelTokenizer reads no tensors), edited by `edit`.
std::string WriteVocabGguf(const std::string& dir, const SentencePieceVocab& vocab,
                           const std::function<void(GgufWriter*)>& edit = nullptr) {
  GgufWriter w;
  w.Set("general.architecture", GgufWriteValue::Str("llama"));
  SetLlamaTokenizer(vocab, &w);
  if (edit) edit(&w);
  const std::string path = dir + "/model.gguf";
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

class ModelTokenizerTest : public ::llama::testing::Llama2TokenizerTest {};

TEST_F(ModelTokenizerTest, GgufVocabTokenizesExactlyAsTokenizerModel) {
  const std::string path = WriteVocabGguf(FreshDir("vocab"), Llama2Vocab());
  auto loaded = LoadModelTokenizer(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tokenizer& t = **loaded;
  ASSERT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  for (int id = 0; id < t.vocab_size(); ++id) ASSERT_EQ(t.PieceBytes(id), tokenizer_->PieceBytes(id)) << id;
  const auto cases = LoadCases();
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    EXPECT_THAT(t.Encode(c.text), ::testing::ElementsAreArray(c.ids)) << "'" << c.text << "'";
    EXPECT_EQ(t.Decode(c.ids), c.text);
  }
}

TEST_F(ModelTokenizerTest, DirectoryAndSiblingTokenizerModel) {
  const std::string dir = FreshDir("sibling");
  std::filesystem::copy_file(kLlama2TokenizerPath, dir + "/tokenizer.model");
  auto from_dir = LoadModelTokenizer(dir);
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  EXPECT_EQ((*from_dir)->Encode("Hello world"), tokenizer_->Encode("Hello world"));
  // Beside a GGUF with the same pieces, tokenizer.model is used.
  const std::string path = WriteVocabGguf(dir, Llama2Vocab());
  auto beside = LoadModelTokenizer(path);
  ASSERT_TRUE(beside.ok()) << beside.status();
  EXPECT_EQ((*beside)->Encode("Hello world"), tokenizer_->Encode("Hello world"));
  // A tokenizer.model of another vocabulary beside it is an error, never used silently.
  SentencePieceVocab other = Llama2Vocab();
  other.pieces[500].piece = "\xE2\x96\x81zzzz";
  WriteVocabGguf(dir, other);
  EXPECT_THAT(std::string(LoadModelTokenizer(path).status().message()),
              HasSubstr("has '\xE2\x96\x81zzzz': not this model's tokenizer"));
  other.pieces.pop_back();
  WriteVocabGguf(dir, other);
  EXPECT_THAT(std::string(LoadModelTokenizer(path).status().message()), HasSubstr("32000 pieces, the vocab of"));
}

// Each broken rule of the GGUF vocab is INVALID_ARGUMENT naming the key.
TEST(GgufVocabTest, RulesNameTheKey) {
  const std::string dir = FreshDir("rules");
  const SentencePieceVocab vocab = Llama2Vocab();
  struct Rule {
    std::function<void(GgufWriter*)> edit;
    std::string message;
  };
  const std::vector<Rule> rules = {
      {[](GgufWriter* w) { w->Remove("tokenizer.ggml.model"); }, "missing metadata key 'tokenizer.ggml.model'"},
      {[](GgufWriter* w) { w->Set("tokenizer.ggml.model", GgufWriteValue::Str("gpt2")); },
       "tokenizer.ggml.model is 'gpt2'; only 'llama'"},
      {[](GgufWriter* w) { w->Remove("tokenizer.ggml.tokens"); }, "missing metadata key 'tokenizer.ggml.tokens'"},
      {[](GgufWriter* w) { w->Set("tokenizer.ggml.tokens", GgufWriteValue::U32(3)); },
       "'tokenizer.ggml.tokens' has type uint32, expected array of string"},
      {[](GgufWriter* w) {
         w->Set("tokenizer.ggml.scores", GgufWriteValue::Array(GgufValueType::kFloat32, {GgufWriteValue::F32(0)}));
       },
       "tokenizer.ggml.scores has 1 elements, tokenizer.ggml.tokens has 32000"},
      {[](GgufWriter* w) {
         std::vector<GgufWriteValue> types(32000, GgufWriteValue::I32(1));
         types[7] = GgufWriteValue::I32(9);
         w->Set("tokenizer.ggml.token_type", GgufWriteValue::Array(GgufValueType::kInt32, types));
       },
       "tokenizer.ggml.token_type[7] = 9 is not a token type"},
      {[](GgufWriter* w) { w->Set("tokenizer.ggml.bos_token_id", GgufWriteValue::U32(32000)); },
       "tokenizer.ggml.bos_token_id = 32000 is outside the 32000 tokens"},
      {[](GgufWriter* w) { w->Set("tokenizer.ggml.add_space_prefix", GgufWriteValue::U32(1)); },
       "'tokenizer.ggml.add_space_prefix' has type uint32, expected bool"},
  };
  for (const Rule& rule : rules) {
    auto file = GgufFile::Open(WriteVocabGguf(dir, vocab, rule.edit));
    ASSERT_TRUE(file.ok()) << file.status();
    const absl::Status s = GgufSentencePieceVocab(*file).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << rule.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(rule.message));
  }
  // A vocab SentencePiece itself refuses (no unknown piece) is INVALID_ARGUMENT from the tokenizer.
  SentencePieceVocab no_unk = vocab;
  no_unk.pieces[0].type = PieceType::kNormal;
  EXPECT_EQ(LoadModelTokenizer(WriteVocabGguf(dir, no_unk)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llama
