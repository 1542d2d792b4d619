// A test fixture that loads the LLaMA 2 tokenizer.model once per test binary (setup puts it in models/.cache/).
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "engine/text/tokenizer.h"

namespace llama::testing {

inline constexpr char kLlama2TokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";

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
