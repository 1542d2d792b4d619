// RewardModel: the input format against python3-sentencepiece goldens, the host-side head against the CPU
// backend's own score head, batching/chunking invariance, deadlines, and loading the saved layout.
#include "engine/reward/reward_model.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "engine/cpu/cpu_backend.h"
#include "engine/forward_batch.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

using ::llama::testing::TinyRewardConfig;

RewardModel::BackendFactory CpuFactory(int num_blocks, int block_size = 4) {
  return ::llama::testing::CpuRewardBackends(num_blocks, block_size);
}

ModelWeights TinyRewardWeights() {
  ModelWeights w = MakeRandomWeights(TinyRewardConfig(), /*seed=*/7, /*scale=*/0.2f);
  w.score_bias = {0.25f};
  return w;
}

std::vector<std::vector<int32_t>> TestSequences() {
  return {{1, 5, 9, 13, 2, 40}, {1, 7}, {1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 11}, {1, 60, 61, 62, 63}};
}

// The backend's own score head (return_logits on a reward model) for one sequence, as an independent oracle for
// the head applied on the host.
float BackendScore(const std::vector<int32_t>& seq) {
  const InMemoryWeightSource source(TinyRewardWeights());
  auto backend = CpuFactory(32)(source);
  EXPECT_TRUE(backend.ok());
  std::vector<int32_t> blocks((seq.size() + 3) / 4);  // blocks 0.. in order, block_size 4
  std::iota(blocks.begin(), blocks.end(), 0);
  ForwardBatchBuilder batch(4);
  batch.AddSequence(seq, 0, blocks);
  OutputRow row;
  row.sample = false;
  batch.AddOutput(row);
  ForwardInput in = std::move(batch).Build();
  in.return_logits = true;
  ForwardOutput out;
  EXPECT_TRUE((*backend)->Forward(in, &out).ok());
  EXPECT_EQ(out.logits.size(), 1u);
  return 1.0f / (1.0f + std::exp(-out.logits[0]));
}

TEST(RewardModelTest, HostHeadMatchesBackendScoreHead) {
  auto rm = RewardModel::Create(TinyRewardWeights(), CpuFactory(32), {});
  ASSERT_TRUE(rm.ok()) << rm.status();
  const auto seqs = TestSequences();
  auto scores = (*rm)->Score(seqs);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->size(), seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    // fp32 dot products of length 32 in a different order: 1e-5 on a probability.
    EXPECT_NEAR((*scores)[s], BackendScore(seqs[s]), 1e-5) << s;
  }
}

TEST(RewardModelTest, ScoresDoNotDependOnBatchingOrPoolSize) {
  auto big = RewardModel::Create(TinyRewardWeights(), CpuFactory(32), {});
  // 4 blocks of 4 tokens: the 11-token sequence needs 3, so the four sequences take several Forward calls.
  auto small = RewardModel::Create(TinyRewardWeights(), CpuFactory(4), {});
  ASSERT_TRUE(big.ok() && small.ok());
  const auto seqs = TestSequences();
  auto batched = (*big)->Score(seqs);
  auto chunked = (*small)->Score(seqs);
  ASSERT_TRUE(batched.ok() && chunked.ok()) << chunked.status();
  for (size_t s = 0; s < seqs.size(); ++s) {
    auto alone = (*big)->Score({seqs[s]});
    ASSERT_TRUE(alone.ok());
    EXPECT_NEAR((*batched)[s], (*alone)[0], 1e-6) << s;
    EXPECT_NEAR((*chunked)[s], (*alone)[0], 1e-6) << s;
  }
  // Distinct inputs give distinct scores (the test would be vacuous if the head ignored its input).
  EXPECT_NE((*batched)[0], (*batched)[1]);
}

TEST(RewardModelTest, ErrorsAreStatuses) {
  auto rm = RewardModel::Create(TinyRewardWeights(), CpuFactory(4), {});
  ASSERT_TRUE(rm.ok());
  EXPECT_EQ((*rm)->Score({{1, 2}}, absl::Now() - absl::Seconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*rm)->Score({{}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*rm)->Score({std::vector<int32_t>(65, 1)}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*rm)->Score({std::vector<int32_t>(20, 1)}).status().code(), absl::StatusCode::kResourceExhausted);

  ModelConfig lm = TinyRewardConfig();
  lm.num_labels = 0;
  EXPECT_EQ(RewardModel::Create(MakeRandomWeights(lm, 1), CpuFactory(4), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RewardModelTest, LoadsTheSavedSequenceClassificationLayout) {
  const std::string dir = ::testing::TempDir() + "/reward_model_test_rm";
  ASSERT_TRUE(SaveModel(TinyRewardWeights(), dir).ok());
  std::ifstream cfg(dir + "/config.json");
  std::stringstream text;
  text << cfg.rdbuf();
  const auto json = nlohmann::json::parse(text.str());
  EXPECT_EQ(json["architectures"][0], "LlamaForSequenceClassification");
  EXPECT_EQ(json["num_labels"], 1);

  auto loaded = RewardModel::Load(dir, CpuFactory(32), {});
  auto direct = RewardModel::Create(TinyRewardWeights(), CpuFactory(32), {});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(direct.ok());
  EXPECT_FLOAT_EQ((*loaded)->bias(), 0.25f);
  auto a = (*loaded)->Score(TestSequences());
  auto b = (*direct)->Score(TestSequences());
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t s = 0; s < a->size(); ++s) EXPECT_FLOAT_EQ((*a)[s], (*b)[s]);
  std::filesystem::remove_all(dir);
}

TEST(RewardSequenceTest, MatchesSentencePieceReference) {
  const std::string root = LLAMA_SOURCE_DIR;
  auto tokenizer = Tokenizer::Load(root + "/models/.cache/tokenizer.model");
  if (!tokenizer.ok()) GTEST_SKIP() << "tokenizer.model not set up (bash scripts/fetch-model.sh)";
  std::ifstream in(root + "/tests/engine/reward/testdata/reward_sequence_golden.json");
  std::stringstream text;
  text << in.rdbuf();
  const auto cases = nlohmann::json::parse(text.str());
  ASSERT_EQ(cases.size(), 3u);
  for (const auto& c : cases) {
    std::vector<Message> dialog;
    for (const auto& m : c["dialog"]) {
      const std::string role = m["role"];
      dialog.push_back({role == "system" ? Role::kSystem : role == "user" ? Role::kUser : Role::kAssistant,
                        m["content"]});
    }
    auto ids = BuildRewardSequence(**tokenizer, dialog, c["response"].get<std::string>(), 256);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>());
    // The engine-loop form (prompt ids already built) gives the same ids.
    auto prompt = BuildChatPrompt(**tokenizer, dialog);
    ASSERT_TRUE(prompt.ok());
    auto appended = AppendRewardResponse(**tokenizer, prompt->token_ids, c["response"].get<std::string>(), 256);
    ASSERT_TRUE(appended.ok());
    EXPECT_EQ(*appended, *ids);
  }
  std::vector<Message> dialog = {{Role::kUser, "Hi"}};
  auto empty = BuildRewardSequence(**tokenizer, dialog, "   ", 256);  // an empty answer: the prompt alone
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, BuildChatPrompt(**tokenizer, dialog)->token_ids);
  EXPECT_EQ(BuildRewardSequence(**tokenizer, dialog, "A long answer with many words in it.", 8).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace llama
