// llama-chat train-rm-head end to end on a small random backbone: it writes a LlamaForSequenceClassification
// directory that LoadModelWeights loads as a reward model, with a report on the fixed held-out split.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(TrainRmHeadTest, WritesARewardModelThatLoadsAndScores) {
  const std::string bin = std::string(LLAMA_BIN_DIR) + "/llama-chat";
  const std::string tokenizer = std::string(LLAMA_SOURCE_DIR) + "/models/.cache/tokenizer.model";
  if (!std::filesystem::exists(bin) || !std::filesystem::exists(tokenizer)) {
    GTEST_SKIP() << "needs llama-chat built and models/.cache/tokenizer.model";
  }
  const std::string dir = ::testing::TempDir() + "/train_rm_head_test";
  std::filesystem::remove_all(dir);
  const ModelConfig c =
      ::llama::testing::TinyConfig({.layers = 1, .kv_heads = 4, .vocab = 32000, .context = 256});  // LLaMA 2 vocab
  ASSERT_TRUE(SaveModel(MakeRandomWeights(c, 11, 0.1f), dir + "/backbone").ok());
  std::filesystem::copy_file(tokenizer, dir + "/backbone/tokenizer.model");

  const std::string command = bin + " train-rm-head --backbone " + dir + "/backbone --data " + LLAMA_SOURCE_DIR +
                              "/data/safety/safety_rm.jsonl --l2 0.1 --threads 1 --out " + dir + "/rm > " + dir +
                              "/log.txt 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  const nlohmann::json config = ReadJson(dir + "/rm/config.json");
  EXPECT_EQ(config["architectures"][0], "LlamaForSequenceClassification");
  EXPECT_EQ(config["num_labels"], 1);
  auto weights = LoadModelWeights(dir + "/rm");
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_TRUE(weights->is_reward_model());
  EXPECT_EQ(weights->score.size(), 32u);
  EXPECT_EQ(weights->score_bias.size(), 1u);
  EXPECT_TRUE(weights->lm_head.empty());

  const nlohmann::json report = ReadJson(dir + "/rm/train_report.json");
  EXPECT_EQ(report["train"]["n"], 342);  // the fixed split of data/safety/safety_rm.jsonl (see its README)
  EXPECT_EQ(report["heldout"]["n"], 73);
  EXPECT_EQ(report["l2"], 0.1);
  EXPECT_GE(report["train"]["accuracy"].get<double>(), 0.5);

  auto rm = RewardModel::Load(dir + "/rm", ::llama::testing::CpuRewardBackends(/*num_blocks=*/32), {});
  ASSERT_TRUE(rm.ok()) << rm.status();
  auto scores = (*rm)->Score({{1, 518, 25580, 29962}});
  ASSERT_TRUE(scores.ok());
  EXPECT_GT((*scores)[0], 0.0f);
  EXPECT_LT((*scores)[0], 1.0f);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace llama
