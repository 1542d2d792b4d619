// stories15M greedy decoding reproduces karpathy's llama2.c run.c output (shared/testdata, an independent
// reference): `run -t 0 -n 64 -i "Once upon a time"`. run.c's 64 steps are positions 0..63: BOS, the prompt's
// tokens after it, then generated tokens; it prints the prompt and the continuation.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/cpu/cpu_backend.h"
#include "engine/forward_batch.h"
#include "engine/model/model_source.h"
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

std::unique_ptr<CpuBackend> LoadBackend(int num_threads, WeightsDtype dtype) {
  auto source = OpenWeightSource(kModelDir);
  EXPECT_TRUE(source.ok()) << source.status();
  CpuBackendOptions options;
  options.num_threads = num_threads;
  options.num_blocks = 16;
  options.weights_dtype = dtype;
  auto backend = CpuBackend::Create(**source, options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

// The tokens after BOS of run.c's window of `steps` positions: the prompt's, then the greedy continuation.
std::vector<int32_t> GreedyTokens(int num_threads, WeightsDtype dtype = WeightsDtype::kF32, int steps = 64) {
  auto tokenizer = Tokenizer::Load(kModelDir + "/tokenizer.model");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::unique_ptr<CpuBackend> backend = LoadBackend(num_threads, dtype);

  std::vector<int32_t> prompt = {(*tokenizer)->bos_id()};
  for (int32_t id : (*tokenizer)->Encode("Once upon a time")) prompt.push_back(id);
  GenerateOptions gen;
  gen.params.temperature = 0.0f;
  gen.max_new_tokens = steps - static_cast<int>(prompt.size() - 1);
  gen.stop_token_ids = {(*tokenizer)->bos_id(), (*tokenizer)->eos_id()};
  auto result = SimpleGenerate(backend.get(), prompt, gen);
  EXPECT_TRUE(result.ok()) << result.status();
  std::vector<int32_t> all(prompt.begin() + 1, prompt.end());
  all.insert(all.end(), result->tokens.begin(), result->tokens.end());
  return all;
}

std::string GreedyText(int num_threads) {
  auto tokenizer = Tokenizer::Load(kModelDir + "/tokenizer.model");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return (*tokenizer)->Decode(GreedyTokens(num_threads));
}

TEST(Stories15MGreedyTest, MatchesLlama2cReferenceText) {
  std::string expected = ReadFile(std::string(LLAMA_SHARED_DIR) + "/testdata/stories15M_greedy_onceuponatime_n64.txt");
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();  // run.c ends with a newline
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(GreedyText(2), expected);
  EXPECT_EQ(GreedyText(1), expected);
}

// q8_0 weights (and activations) against f32 over 64 generated tokens (after the 4 prompt tokens): equal, or the
// first divergence is a near-tie that q8_0's rounding explains. Measured (2026-12-03, every ISA): the first 50
// generated tokens are equal; at the 51st the f32 logits of f32's pick and q8_0's pick differ by 0.046, while q8_0
// moves that position's logits by 0.049 RMS on AVX-512 and 0.093 on AVX2/scalar (max 0.28-0.31; the logits' RMS is
// 2.98). [Why the ISAs differ: quantizing activations is discontinuous, so the last-bit differences of the
// ISA-specific attention and RMSNorm reductions flip a few int8 roundings, after which each ISA sees another draw
// of the same quantization noise; the q8_0 kernels themselves agree bit for bit.] So the divergence is a tie
// within 1-2 sigma of the quantization error. Asserted: any divergence comes after at least 32 equal generated
// tokens, with an f32 margin below 3 sigma of the error measured at that position and below the random-model
// bound (weights_dtype_test: q8_0 error RMS <= 6% of the logits' RMS; two logits' errors then differ by < 2 x 6%).
TEST(Stories15MGreedyTest, Q8ContinuationEqualsF32For64Tokens) {
  const std::vector<int32_t> f32 = GreedyTokens(2, WeightsDtype::kF32, 68);
  const std::vector<int32_t> q8 = GreedyTokens(2, WeightsDtype::kQ8_0, 68);
  ASSERT_EQ(f32.size(), 4u + 64u);  // no EOS inside the window
  ASSERT_EQ(q8.size(), f32.size());
  size_t first = 0;
  while (first < f32.size() && q8[first] == f32[first]) ++first;
  if (first == f32.size()) return;
  // Teacher-forced: both backends on BOS + the common prefix, logits of the last position.
  std::vector<int32_t> prefix = {1};
  prefix.insert(prefix.end(), f32.begin(), f32.begin() + first);
  auto logits_of = [&](WeightsDtype dtype) {
    std::unique_ptr<CpuBackend> b = LoadBackend(1, dtype);
    ForwardBatchBuilder batch(b->kv_cache().block_size);
    std::vector<int32_t> blocks;
    for (int i = 0; i * b->kv_cache().block_size < static_cast<int>(prefix.size()); ++i) blocks.push_back(i);
    batch.AddSequence(prefix, 0, blocks);
    batch.AddOutput({});
    ForwardInput in = std::move(batch).Build();
    in.return_logits = true;
    ForwardOutput out;
    EXPECT_TRUE(b->Forward(in, &out).ok());
    return out.logits;
  };
  const std::vector<float> lf = logits_of(WeightsDtype::kF32), lq = logits_of(WeightsDtype::kQ8_0);
  double rms = 0, max_diff = 0, rms_diff = 0;
  for (size_t i = 0; i < lf.size(); ++i) {
    rms += double(lf[i]) * lf[i];
    rms_diff += double(lf[i] - lq[i]) * (lf[i] - lq[i]);
    max_diff = std::max(max_diff, std::fabs(double(lf[i]) - lq[i]));
  }
  rms = std::sqrt(rms / lf.size());
  rms_diff = std::sqrt(rms_diff / lf.size());
  const double margin = lf[f32[first]] - lf[q8[first]];
  std::printf("q8_0 first differs from f32 at generated token %zu: f32 margin %.4g; q8_0 error RMS %.4g, max %.4g; "
              "logits RMS %.4g\n", first - 4 + 1, margin, rms_diff, max_diff, rms);
  EXPECT_GE(first, 4u + 32u);
  EXPECT_GT(margin, 0.0);  // f32's pick is its argmax
  EXPECT_LT(lq[f32[first]], lq[q8[first]]);  // q8_0's pick is q8_0's argmax
  EXPECT_LT(margin, 3 * rms_diff);
  EXPECT_LT(margin, 2 * 0.06 * rms);
}

}  // namespace
}  // namespace llama
