// Our tokenizer (engine/text/sentencepiece_bpe.h, Tokenizer::Decode) against libsentencepiece 0.1.97 itself (the
// reference module, engine/text/sentencepiece_model.h): equal ids from Encode and equal text from Decode on the 46
// shared cases, every string of tests/golden/chat_prompt_cases.json, and 20000 random strings (ASCII, whitespace
// runs, multi-byte UTF-8, emoji, invalid bytes, NUL, long repeats, piece names as text), for the LLaMA 2
// tokenizer.model, the stories15M one, and variants of the LLaMA vocab that switch on what the LLaMA model does not
// use (no dummy prefix, extra-whitespace removal, no whitespace escaping, user-defined and unused pieces, no byte
// fallback). Decode is also compared on random id streams.
#include <nlohmann/json.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/text/sentencepiece_model.h"
#include "engine/text/sentencepiece_vocab.h"
#include "engine/text/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/engine/text/llama2_tokenizer_fixture.h"

namespace llama {
namespace {

using ::llama::testing::kLlama2TokenizerPath;
using ::llama::testing::LoadCases;
using ::llama::testing::ReadTestFile;

constexpr char kStoriesTokenizerPath[] = LLAMA_SOURCE_DIR "/models/stories15M/tokenizer.model";
constexpr char kChatPromptCases[] = LLAMA_SOURCE_DIR "/tests/golden/chat_prompt_cases.json";
constexpr int kRandomStrings = 20000;

// Appends one UTF-8 encoded code point.
void AppendUtf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// A random string built from segments of the kinds a tokenizer gets wrong.
std::string RandomString(std::mt19937& rng) {
  static const std::vector<std::string> kWords = {
      "the", "The", " of", "Hello", "world", "ing", "tion", "don't", "I'm", "1234567", "3.14", "[INST]", "<<SYS>>",
      "<s>", "</s>", "<unk>", "<0x0A>", "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81", "\xEF\xBF\xBD", "@#$%^&*",
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "\xE4\xBD\xA0\xE5\xA5\xBD", "\xE1\x9E\x80\xE1\x9E\xB6",
      "\xF0\x9F\x98\x80", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9", "caf\xC3\xA9", "e\xCC\x81"};
  static const std::vector<std::string> kSpaces = {" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\xE3\x80\x80",
                                                   "\xC2\xA0", "\xE2\x80\xA8", " \t ", "\x0B", "\x0C"};
  static const std::vector<std::string> kInvalid = {
      "\x80", "\xBF", "\xC0\x80", "\xC1\xBF", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xF0\x9F\x98", "\xF4\x90\x80\x80",
      "\xF5", "\xFE", "\xFF", "\xE0\x80\xAF", "\xF8\x88\x80\x80\x80"};
  std::string s;
  const int segments = 1 + rng() % 12;
  for (int i = 0; i < segments; ++i) {
    switch (rng() % 10) {
      case 0:
      case 1: s += kWords[rng() % kWords.size()]; break;
      case 2: s += kSpaces[rng() % kSpaces.size()]; break;
      case 3: s += kInvalid[rng() % kInvalid.size()]; break;
      case 4: {  // random ASCII, control characters and NUL included
        const int n = 1 + rng() % 8;
        for (int k = 0; k < n; ++k) s.push_back(static_cast<char>(rng() % 128));
        break;
      }
      case 5: {  // random code points from the BMP and beyond (surrogates skipped)
        const int n = 1 + rng() % 6;
        for (int k = 0; k < n; ++k) {
          char32_t c = rng() % 3 == 0 ? 0x10000 + rng() % 0x100000 : 0x80 + rng() % 0xFF80;
          if (c >= 0xD800 && c < 0xE000) c = 0x4E00 + (c & 0xFFF);
          AppendUtf8(c, &s);
        }
        break;
      }
      case 6: {  // emoji
        const int n = 1 + rng() % 4;
        for (int k = 0; k < n; ++k) AppendUtf8(0x1F300 + rng() % 0x300, &s);
        break;
      }
      case 7: {  // long repeats
        const std::string unit = rng() % 2 ? kWords[rng() % kWords.size()] : kSpaces[rng() % kSpaces.size()];
        const int n = 10 + rng() % 200;
        for (int k = 0; k < n; ++k) s += unit;
        break;
      }
      case 8: {  // random bytes
        const int n = 1 + rng() % 6;
        for (int k = 0; k < n; ++k) s.push_back(static_cast<char>(rng() % 256));
        break;
      }
      default: s += std::string(1 + rng() % 3, ' '); break;
    }
  }
  return s;
}

void CollectStrings(const nlohmann::json& j, std::vector<std::string>* out) {
  if (j.is_string()) {
    out->push_back(j.get<std::string>());
  } else if (j.is_array() || j.is_object()) {
    for (const auto& v : j) CollectStrings(v, out);
  }
}

std::vector<std::string> TestStrings() {
  std::vector<std::string> strings = {"", " ", "  ", "a", " a", "a ", "\n", "\x80", "\xFF\xFE", std::string(1, '\0'),
                                      std::string("a\0b", 3)};
  for (const auto& c : LoadCases()) strings.push_back(c.text);
  CollectStrings(nlohmann::json::parse(ReadTestFile(kChatPromptCases)), &strings);
  std::mt19937 rng(20261203);
  for (int i = 0; i < kRandomStrings; ++i) strings.push_back(RandomString(rng));
  return strings;
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

// Compares one model in both implementations: Encode on every string, Decode of the resulting ids, and Decode of
// 3000 random id streams; reports the first differences.
void CompareModel(const std::string& serialized, const std::string& name, const std::vector<std::string>& strings) {
  SCOPED_TRACE(name);
  std::string error;
  std::unique_ptr<SentencePieceModel> reference = SentencePieceModel::FromSerializedProto(serialized, &error);
  ASSERT_NE(reference, nullptr) << error;
  auto ours = Tokenizer::FromSerializedModel(serialized, name);
  ASSERT_TRUE(ours.ok()) << ours.status();
  const Tokenizer& tokenizer = **ours;
  ASSERT_EQ(tokenizer.vocab_size(), reference->piece_size());
  EXPECT_EQ(tokenizer.bos_id(), reference->bos_id());
  EXPECT_EQ(tokenizer.eos_id(), reference->eos_id());
  int encode_diffs = 0, decode_diffs = 0;
  for (const std::string& text : strings) {
    std::vector<int> expected;
    ASSERT_TRUE(reference->Encode(text, &expected));
    const std::vector<int32_t> got = tokenizer.Encode(text);
    if (std::vector<int>(got.begin(), got.end()) != expected) {
      if (++encode_diffs <= 5) {
        ADD_FAILURE() << "Encode differs on '" << Printable(text) << "': ours " << ::testing::PrintToString(got)
                      << ", SentencePiece " << ::testing::PrintToString(expected);
      }
      continue;
    }
    const std::string decoded = tokenizer.Decode(got);
    const std::string expected_text = reference->DecodeIds(expected);
    if (decoded != expected_text && ++decode_diffs <= 5) {
      ADD_FAILURE() << "Decode differs on the ids of '" << Printable(text) << "': ours '" << Printable(decoded)
                    << "', SentencePiece '" << Printable(expected_text) << "'";
    }
  }
  std::mt19937 rng(7);
  const int vocab = tokenizer.vocab_size();
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<int> ids(1 + rng() % 24);
    // Biased toward byte pieces and the special ids, where decoding has its rules.
    for (int& id : ids) id = rng() % 3 == 0 ? static_cast<int>(rng() % 262) : static_cast<int>(rng() % vocab);
    const std::string expected = reference->DecodeIds(ids);
    if (tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.end())) != expected && ++decode_diffs <= 10) {
      ADD_FAILURE() << "Decode differs on ids " << ::testing::PrintToString(ids);
    }
  }
  EXPECT_EQ(encode_diffs, 0) << "of " << strings.size() << " strings";
  EXPECT_EQ(decode_diffs, 0);
}

class TokenizerDifferentialTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { strings_ = new std::vector<std::string>(TestStrings()); }
  static void TearDownTestSuite() {
    delete strings_;
    strings_ = nullptr;
  }
  static SentencePieceVocab Llama2Vocab() {
    auto vocab = ParseModelProto(ReadTestFile(kLlama2TokenizerPath));
    EXPECT_TRUE(vocab.ok()) << vocab.status();
    return *vocab;
  }
  static int32_t IdOf(const SentencePieceVocab& v, const std::string& piece) {
    for (size_t i = 0; i < v.pieces.size(); ++i) {
      if (v.pieces[i].piece == piece) return static_cast<int32_t>(i);
    }
    ADD_FAILURE() << "no piece " << piece;
    return 0;
  }
  static inline std::vector<std::string>* strings_ = nullptr;
};

TEST_F(TokenizerDifferentialTest, Llama2TokenizerModel) {
  ASSERT_GE(strings_->size(), static_cast<size_t>(kRandomStrings));
  CompareModel(ReadTestFile(kLlama2TokenizerPath), "llama2 tokenizer.model", *strings_);
}

TEST_F(TokenizerDifferentialTest, Stories15MTokenizerModel) {
  CompareModel(ReadTestFile(kStoriesTokenizerPath), "stories15M tokenizer.model", *strings_);
}

TEST_F(TokenizerDifferentialTest, NoDummyPrefix) {
  SentencePieceVocab v = Llama2Vocab();
  v.add_dummy_prefix = false;
  CompareModel(SerializeModelProto(v), "no dummy prefix", *strings_);
}

TEST_F(TokenizerDifferentialTest, RemoveExtraWhitespaces) {
  SentencePieceVocab v = Llama2Vocab();
  v.remove_extra_whitespaces = true;
  CompareModel(SerializeModelProto(v), "remove_extra_whitespaces", *strings_);
  v.add_dummy_prefix = false;
  CompareModel(SerializeModelProto(v), "remove_extra_whitespaces, no dummy prefix", *strings_);
}

TEST_F(TokenizerDifferentialTest, NoWhitespaceEscaping) {
  SentencePieceVocab v = Llama2Vocab();
  v.escape_whitespaces = false;
  CompareModel(SerializeModelProto(v), "escape_whitespaces off", *strings_);
}

TEST_F(TokenizerDifferentialTest, UserDefinedPieces) {
  SentencePieceVocab v = Llama2Vocab();
  for (const std::string piece : {"\xE2\x96\x81the", "ing", "\xE2\x96\x81\xE2\x96\x81", "Hello", "[INST]"}) {
    bool found = false;
    for (VocabPiece& p : v.pieces) {
      if (p.piece == piece) {
        p.type = PieceType::kUserDefined;
        found = true;
      }
    }
    if (!found) v.pieces.push_back({piece, 0, PieceType::kUserDefined});  // appended: a new id
  }
  CompareModel(SerializeModelProto(v), "user-defined pieces", *strings_);
}

TEST_F(TokenizerDifferentialTest, UnusedPieces) {
  SentencePieceVocab v = Llama2Vocab();
  for (const std::string piece : {"\xE2\x96\x81the", "er", "\xE2\x96\x81Hello", "\xE2\x96\x81\xE2\x96\x81", "in",
                                  "\xE2\x96\x81t"}) {
    v.pieces[IdOf(v, piece)].type = PieceType::kUnused;
  }
  CompareModel(SerializeModelProto(v), "unused pieces", *strings_);
}

TEST_F(TokenizerDifferentialTest, NoByteFallback) {
  SentencePieceVocab v = Llama2Vocab();
  v.byte_fallback = false;
  for (VocabPiece& p : v.pieces) {
    if (p.type == PieceType::kByte) p.type = PieceType::kUnused;  // SentencePiece refuses byte pieces here
  }
  CompareModel(SerializeModelProto(v), "no byte fallback", *strings_);
}

TEST_F(TokenizerDifferentialTest, CustomUnknownSurface) {
  SentencePieceVocab v = Llama2Vocab();
  v.byte_fallback = false;
  for (VocabPiece& p : v.pieces) {
    if (p.type == PieceType::kByte) p.type = PieceType::kUnused;
  }
  v.unk_surface = "<?>";
  CompareModel(SerializeModelProto(v), "unk surface '<?>'", *strings_);
}

}  // namespace
}  // namespace llama
