// A test fixture that loads the LLaMA 2 tokenizer.model once per test binary (setup puts it in models/.cache/),
// and the 46 shared tokenizer cases (/work/shared/testdata/README.md says where they come from).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"

namespace llama::testing {

inline constexpr char kLlama2TokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";
inline constexpr char kCasesPrefix[] = LLAMA_SHARED_DIR "/testdata/llama2-tokenizer-cases";

inline std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// The .inp file is each case followed by "\n__ggml_vocab_test__\n" (llama.cpp writes it that way), so the newline
// before a separator belongs to the separator; the .out file has one line of ids per case.
inline std::vector<Case> LoadCases() {
  const std::string inp = ReadTestFile(std::string(kCasesPrefix) + ".inp");
  const std::string out = ReadTestFile(std::string(kCasesPrefix) + ".out");
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<Case> cases;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(separator, pos);
    EXPECT_NE(end, std::string::npos) << "case without a trailing separator at byte " << pos;
    if (end == std::string::npos) break;
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + separator.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  for (; std::getline(lines, line); ++i) {
    if (i >= cases.size()) break;
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) cases[i].ids.push_back(id);
  }
  EXPECT_EQ(i, cases.size()) << ".inp and .out disagree on the number of cases";
  return cases;
}

class Llama2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = Tokenizer::Load(kLlama2TokenizerPath);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tokenizer_ = loaded->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static inline Tokenizer* tokenizer_ = nullptr;
};

}  // namespace llama::testing
