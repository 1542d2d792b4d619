// Prefix caching on the real CPU engine with stories15M: the same tokens with the cache on and off, greedy and
// seeded sampling, k = 1 and k = 4 (every candidate compared). The prompts share a story opening; the second round
// runs them again (matched whole or up to their last partial block) and extended by a sentence (a second turn), so
// cached blocks, the copy of a matched last block and cached generated blocks are all read by later requests.
// The CPU backend computes every value by the same operation sequence whatever the batch, so equality is exact.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"
#include "scheduler/engine_loop.h"
#include "tests/support/candidate_recorder.h"
#include "tests/support/text_sink.h"

namespace llama {
namespace {

constexpr char kModelDir[] = LLAMA_SOURCE_DIR "/models/stories15M";

struct Outcome {
  std::vector<std::vector<int32_t>> ids;                      // [request] what was sent
  std::vector<std::vector<std::vector<int32_t>>> candidates;  // [request][candidate]
  std::vector<FinishInfo> finish;                             // [request]
  EngineSnapshot snapshot;
};

class PrefixCacheInvarianceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = Tokenizer::Load(std::string(kModelDir) + "/tokenizer.model");
    if (!tokenizer.ok()) GTEST_SKIP() << "models/stories15M not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tokenizer);
    auto weights = LoadModelWeights(kModelDir);
    ASSERT_TRUE(weights.ok()) << weights.status();
    CpuBackendOptions options;
    options.num_threads = 2;
    options.num_blocks = 128;
    auto backend = CpuBackend::Create(std::move(*weights), options);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
  }

  std::vector<int32_t> Prompt(const std::string& text) const {
    std::vector<int32_t> ids = {tokenizer_->bos_id()};
    for (int32_t id : tokenizer_->Encode(text)) ids.push_back(id);
    return ids;
  }

  // Runs each round's requests together on a fresh loop (caching on or off), one round after the other.
  Outcome Run(bool caching, const std::vector<std::vector<GenerationRequest>>& rounds) {
    EngineLoopOptions options;
    options.scheduler.enable_prefix_caching = caching;
    ::llama::testing::CandidateRecorder recorder;
    EngineLoop loop(backend_.get(), tokenizer_.get(), options);
    loop.SetCandidateSelector(&recorder);
    loop.Start();
    Outcome out;
    for (const auto& round : rounds) {
      std::vector<std::shared_ptr<::llama::testing::TextSink>> sinks;
      for (const GenerationRequest& r : round) {
        sinks.push_back(std::make_shared<::llama::testing::TextSink>());
        EXPECT_TRUE(loop.Submit(r, sinks.back()).ok());
      }
      for (size_t i = 0; i < round.size(); ++i) {
        EXPECT_TRUE(sinks[i]->Wait());
        EXPECT_TRUE(sinks[i]->info().status.ok()) << sinks[i]->info().status;
        out.ids.push_back(sinks[i]->ids());
        out.finish.push_back(sinks[i]->info());
        out.candidates.push_back(recorder.outputs(round[i].id));
      }
    }
    for (int i = 0; i < 1000 && loop.Snapshot().kv_blocks_used > 0; ++i) absl::SleepFor(absl::Milliseconds(2));
    out.snapshot = loop.Snapshot();
    loop.Stop();
    return out;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<CpuBackend> backend_;
};

TEST_F(PrefixCacheInvarianceTest, SameTokensWithAndWithoutCaching) {
  const std::string opening =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
      "friends.";
  const std::vector<std::string> endings = {" One day", " Her dog", " The sun was", " She saw a big"};
  std::vector<GenerationRequest> first, second;
  uint64_t id = 1;
  for (size_t i = 0; i < endings.size(); ++i) {
    GenerationRequest r;
    r.id = id++;
    r.prompt_tokens = Prompt(opening + endings[i]);
    r.max_tokens = 24;
    r.num_candidates = i % 2 == 0 ? 1 : 4;
    r.seed = 100 + i;
    r.sampling.temperature = i < 2 ? 0.0f : 0.9f;  // greedy k = 1, greedy k = 4, sampled k = 1, sampled k = 4
    r.sampling.top_p = 0.9f;
    first.push_back(r);
  }
  for (const GenerationRequest& r : first) {
    GenerationRequest again = r;
    again.id = id++;
    second.push_back(again);
    GenerationRequest longer = r;
    longer.id = id++;
    for (int32_t t : tokenizer_->Encode(" They were very happy and played all day.")) longer.prompt_tokens.push_back(t);
    second.push_back(longer);
  }
  const Outcome cached = Run(true, {first, second});
  const Outcome uncached = Run(false, {first, second});
  ASSERT_EQ(cached.ids.size(), first.size() + second.size());
  for (size_t i = 0; i < cached.ids.size(); ++i) {
    EXPECT_FALSE(cached.ids[i].empty());
    EXPECT_EQ(cached.ids[i], uncached.ids[i]) << "request " << i + 1;
    EXPECT_EQ(cached.candidates[i], uncached.candidates[i]) << "request " << i + 1;
  }
  // The second round found the first round's blocks: everything but a partial last block (or the last token).
  int cached_tokens = 0;
  for (size_t i = first.size(); i < cached.finish.size(); ++i) {
    EXPECT_GE(cached.finish[i].cached_prompt_tokens, 16) << "request " << i + 1;
    cached_tokens += cached.finish[i].cached_prompt_tokens;
  }
  ASSERT_EQ(cached.snapshot.prefix_caches.size(), 1u);
  EXPECT_GE(cached.snapshot.prefix_caches[0].hits, cached_tokens);
  EXPECT_EQ(uncached.snapshot.prefix_caches[0].hits, 0);
  EXPECT_EQ(cached.snapshot.kv_blocks_used, 0);
  EXPECT_GT(cached.snapshot.kv_blocks_cached, 0);
}

}  // namespace
}  // namespace llama
