// Stop strings and hold-back on real LLaMA 2 tokens. Expected texts are the plain strings the ids encode
// (Tokenizer::Encode of the sentence), cut at the stop string by hand.
#include "scheduler/text_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace llama {
namespace {

constexpr char kTokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";

class TextStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = Tokenizer::Load(kTokenizerPath);
    if (!tokenizer.ok()) GTEST_SKIP() << "tokenizer.model not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tokenizer);
  }

  // Streams the tokens of `text`; returns every non-empty text delta and sets *stopped_at (token index) if a
  // stop string matched.
  std::vector<std::string> Stream(const std::string& text, const std::vector<std::string>& stop,
                                  std::vector<int32_t>* emitted_ids, int* stopped_at, bool flush = true) {
    TextStream stream(tokenizer_.get(), &stop);
    std::vector<std::string> deltas;
    const std::vector<int32_t> ids = tokenizer_->Encode(text);
    *stopped_at = -1;
    auto take = [&](TextStream::Delta d) {
      if (!d.text.empty()) deltas.push_back(d.text);
      emitted_ids->insert(emitted_ids->end(), d.token_ids.begin(), d.token_ids.end());
      return d.stopped;
    };
    for (size_t i = 0; i < ids.size(); ++i) {
      if (take(stream.Push(ids[i]))) {
        *stopped_at = static_cast<int>(i);
        return deltas;
      }
    }
    if (flush) take(stream.Flush());
    return deltas;
  }

  std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) out += p;
    return out;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(TextStreamTest, WithoutStopStringsTextIsTheDecodedSequence) {
  std::vector<int32_t> ids;
  int stopped_at;
  const std::string text = "Once upon a time, there was a little girl.";
  auto deltas = Stream(text, {}, &ids, &stopped_at);
  EXPECT_EQ(Join(deltas), text);
  EXPECT_EQ(ids, tokenizer_->Encode(text));
  EXPECT_EQ(stopped_at, -1);
}

TEST_F(TextStreamTest, StopStringAndEverythingAfterItIsNotEmitted) {
  std::vector<int32_t> ids;
  int stopped_at;
  auto deltas = Stream("Hello world. The end", {"."}, &ids, &stopped_at);
  EXPECT_EQ(Join(deltas), "Hello world");
  EXPECT_GE(stopped_at, 0);
  // Exactly the tokens wholly before the stop string went out.
  EXPECT_EQ(tokenizer_->Decode(ids), "Hello world");
}

TEST_F(TextStreamTest, StopStringSpanningTokensIsFoundAndItsStartWasHeldBack) {
  std::vector<int32_t> ids;
  int stopped_at;
  auto deltas = Stream("She said goodbye to the cat and left", {"to the cat"}, &ids, &stopped_at);
  EXPECT_EQ(Join(deltas), "She said goodbye ");
  for (const std::string& d : deltas) {
    EXPECT_EQ(d.find("to"), std::string::npos) << "a possible stop-string start went out early: " << d;
  }
}

TEST_F(TextStreamTest, HeldBackTextIsReleasedWhenItTurnsOutNotToBeAStop) {
  std::vector<int32_t> ids;
  int stopped_at;
  const std::string text = "The world is big and the world peace is near";
  auto deltas = Stream(text, {"world peace!"}, &ids, &stopped_at);
  EXPECT_EQ(Join(deltas), text);
  EXPECT_EQ(stopped_at, -1);
  EXPECT_EQ(ids, tokenizer_->Encode(text));
}

TEST_F(TextStreamTest, HeldBackTextGoesOutAtTheEndOfTheStream) {
  std::vector<int32_t> ids;
  int stopped_at;
  auto held = Stream("It was the end of", {"of the story"}, &ids, &stopped_at, /*flush=*/false);
  EXPECT_EQ(Join(held), "It was the end ");  // "of" could start the stop string
  ids.clear();
  auto flushed = Stream("It was the end of", {"of the story"}, &ids, &stopped_at, /*flush=*/true);
  EXPECT_EQ(Join(flushed), "It was the end of");
}

TEST_F(TextStreamTest, EarliestOfSeveralStopStringsWins) {
  std::vector<int32_t> ids;
  int stopped_at;
  auto deltas = Stream("one two three four", {"four", "two"}, &ids, &stopped_at);
  EXPECT_EQ(Join(deltas), "one ");
}

TEST(TextStreamNoTokenizerTest, IdsOnly) {
  const std::vector<std::string> stop;
  TextStream stream(nullptr, &stop);
  TextStream::Delta d = stream.Push(42);
  EXPECT_THAT(d.token_ids, ::testing::ElementsAre(42));
  EXPECT_TRUE(d.text.empty());
  EXPECT_TRUE(stream.Flush().empty());
}

}  // namespace
}  // namespace llama
