// Batch invariance on the real CPU engine with stories15M, greedy: 8 different prompts run together, one by one,
// and through a KV pool so small that preemption (recompute) must happen give the same text for every prompt.
// The reference is each prompt run alone (a batch of one, no chunking, no preemption): the scheduler must not
// change what a sequence computes.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"

namespace llama {
namespace {

constexpr char kModelDir[] = LLAMA_SOURCE_DIR "/models/stories15M";
constexpr int kMaxTokens = 48;

const std::vector<std::string>& Prompts() {
  static const auto* prompts = new std::vector<std::string>{
      "Once upon a time, there was a little girl named Lily.",
      "The dog ran to the park",
      "Tom had a big red ball. One day",
      "In a small house by the sea lived an old fisherman who",
      "The sun was shining",
      "Sara and Ben wanted to bake a cake for their mom.",
      "A little bird could not fly.",
      "Max found a shiny key under his bed. He",
  };
  return *prompts;
}

class BatchInvarianceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = Tokenizer::Load(std::string(kModelDir) + "/tokenizer.model");
    if (!tokenizer.ok()) GTEST_SKIP() << "models/stories15M not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tokenizer);
  }

  std::unique_ptr<CpuBackend> MakeBackend(int num_blocks) {
    auto weights = LoadModelWeights(kModelDir);
    EXPECT_TRUE(weights.ok()) << weights.status();
    CpuBackendOptions options;
    options.num_threads = 2;
    options.block_size = 16;
    options.num_blocks = num_blocks;
    auto backend = CpuBackend::Create(std::move(*weights), options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return std::move(*backend);
  }

  GenerationRequest Request(int i) {
    GenerationRequest r;
    r.id = static_cast<uint64_t>(i + 1);
    r.prompt_tokens = {tokenizer_->bos_id()};
    for (int32_t id : tokenizer_->Encode(Prompts()[i])) r.prompt_tokens.push_back(id);
    r.sampling.temperature = 0;
    r.max_tokens = kMaxTokens;
    return r;
  }

  BatchResult Run(llama::Backend* backend, std::vector<GenerationRequest> requests, int max_num_batched_tokens = 512) {
    EngineLoopOptions options;
    options.scheduler.max_num_batched_tokens = max_num_batched_tokens;
    absl::StatusOr<BatchResult> result = RunBatch(backend, tokenizer_.get(), options, std::move(requests));
    EXPECT_TRUE(result.ok()) << result.status();
    for (const FinishInfo& info : result->finish) EXPECT_TRUE(info.status.ok()) << info.status;
    EXPECT_EQ(result->snapshot.kv_blocks_used, 0);
    return *std::move(result);
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(BatchInvarianceTest, TogetherAloneAndPreemptedGiveTheSameText) {
  const int n = static_cast<int>(Prompts().size());
  auto big = MakeBackend(/*num_blocks=*/64);
  std::vector<std::string> alone(n);
  for (int i = 0; i < n; ++i) {
    BatchResult r = Run(big.get(), {Request(i)});
    alone[i] = r.texts[0];
    EXPECT_FALSE(alone[i].empty());
    EXPECT_EQ(r.snapshot.num_preemptions, 0);
  }

  std::vector<GenerationRequest> all;
  for (int i = 0; i < n; ++i) all.push_back(Request(i));
  BatchResult together = Run(big.get(), all);
  EXPECT_EQ(together.snapshot.num_preemptions, 0);

  // 8 sequences of up to ~64 tokens need ~32 blocks of 16; 12 blocks force preemption by recompute, and a
  // 24-token budget forces chunked prefill.
  auto small = MakeBackend(/*num_blocks=*/12);
  BatchResult squeezed = Run(small.get(), all, /*max_num_batched_tokens=*/24);
  EXPECT_GT(squeezed.snapshot.num_preemptions, 0);
  int preempted_requests = 0;
  for (const FinishInfo& info : squeezed.finish) preempted_requests += info.num_preemptions > 0;
  EXPECT_GT(preempted_requests, 0);

  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(together.texts[i], alone[i]) << "prompt " << i << " together";
    EXPECT_EQ(squeezed.texts[i], alone[i]) << "prompt " << i << " with preemption";
    EXPECT_EQ(together.token_ids[i], squeezed.token_ids[i]);
  }
  // A different prompt gives a different story (the comparison above is not vacuous).
  EXPECT_NE(alone[0], alone[1]);
  std::printf("preemptions with 12 blocks: %lld (%d of %d requests), steps %lld\n",
              static_cast<long long>(squeezed.snapshot.num_preemptions), preempted_requests, n,
              static_cast<long long>(squeezed.snapshot.num_steps));
}

}  // namespace
}  // namespace llama
