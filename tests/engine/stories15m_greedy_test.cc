// stories15M greedy decoding reproduces karpathy's llama2.c run.c output (shared/testdata, an independent
// reference): `run -t 0 -n 64 -i "Once upon a time"`. run.c's 64 steps are positions 0..63: BOS, the prompt's
// tokens after it, then generated tokens; it prints the prompt and the continuation.
#include <fstream>
#include <sstream>
#include <string>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "engine/text/tokenizer.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

const std::string kModelDir = std::string(LLAMA_SOURCE_DIR) + "/models/stories15M";

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string GreedyText(int num_threads) {
  auto weights = LoadModelWeights(kModelDir);
  EXPECT_TRUE(weights.ok()) << weights.status();
  auto tokenizer = Tokenizer::Load(kModelDir + "/tokenizer.model");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  CpuBackendOptions options;
  options.num_threads = num_threads;
  options.num_blocks = 16;
  auto backend = CpuBackend::Create(std::move(*weights), options);
  EXPECT_TRUE(backend.ok()) << backend.status();

  std::vector<int32_t> prompt = {(*tokenizer)->bos_id()};
  for (int32_t id : (*tokenizer)->Encode("Once upon a time")) prompt.push_back(id);
  const int steps = 64;
  GenerateOptions gen;
  gen.params.temperature = 0.0f;
  gen.max_new_tokens = steps - static_cast<int>(prompt.size() - 1);
  gen.stop_token_ids = {(*tokenizer)->bos_id(), (*tokenizer)->eos_id()};
  auto result = SimpleGenerate(backend->get(), prompt, gen);
  EXPECT_TRUE(result.ok()) << result.status();
  std::vector<int32_t> all(prompt.begin() + 1, prompt.end());
  all.insert(all.end(), result->tokens.begin(), result->tokens.end());
  return (*tokenizer)->Decode(all);
}

TEST(Stories15MGreedyTest, MatchesLlama2cReferenceText) {
  std::string expected = ReadFile(std::string(LLAMA_SHARED_DIR) + "/testdata/stories15M_greedy_onceuponatime_n64.txt");
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();  // run.c ends with a newline
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(GreedyText(2), expected);
  EXPECT_EQ(GreedyText(1), expected);
}

}  // namespace
}  // namespace llama
