// llama-chat train-rm-head end to end on a small random backbone: it writes a LlamaForSequenceClassification
// directory that LoadModelWeights loads as a reward model, with a report on the fixed held-out split; both objectives
// (pointwise, pairwise), and bad flags or pairs files refused with a message naming the problem.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "engine/text/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/tiny_models.h"
#include "training/reward_data.h"

namespace llama {
namespace {

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

const std::string kBin = std::string(LLAMA_BIN_DIR) + "/llama-chat";
const std::string kTokenizer = std::string(LLAMA_SOURCE_DIR) + "/models/.cache/tokenizer.model";
const std::string kSafety = std::string(LLAMA_SOURCE_DIR) + "/data/safety/";

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A one-layer random backbone with the LLaMA 2 vocabulary and tokenizer in a fresh directory.
class TrainRmHeadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kBin) || !std::filesystem::exists(kTokenizer)) {
      GTEST_SKIP() << "needs llama-chat built and models/.cache/tokenizer.model";
    }
    // Per process: TempDir() is shared by every checkout on the machine, and the suite may run concurrently.
    dir_ = ::testing::TempDir() + "/train_rm_head_test_" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    const ModelConfig c =
        ::llama::testing::TinyConfig({.layers = 1, .kv_heads = 4, .vocab = 32000, .context = 256});  // LLaMA 2 vocab
    ASSERT_TRUE(SaveModel(MakeRandomWeights(c, 11, 0.1f), dir_ + "/backbone").ok());
    std::filesystem::copy_file(kTokenizer, dir_ + "/backbone/tokenizer.model");
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  // Runs train-rm-head with args after --backbone; the exit code, and stdout + stderr in log_.
  int Train(const std::string& args) {
    const std::string command =
        kBin + " train-rm-head --backbone " + dir_ + "/backbone --threads 1 " + args + " > " + dir_ + "/log.txt 2>&1";
    const int status = std::system(command.c_str());
    log_ = ReadText(dir_ + "/log.txt");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_;
  std::string log_;
};

TEST_F(TrainRmHeadTest, WritesARewardModelThatLoadsAndScores) {
  const std::string dir = dir_;
  ASSERT_EQ(Train("--data " + kSafety + "safety_rm.jsonl --l2 0.1 --out " + dir + "/rm"), 0) << log_;

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
  EXPECT_FALSE(report.contains("pairs"));  // no --pairs: no pairwise figures
  EXPECT_EQ(report["objective"], "pointwise");
}

TEST_F(TrainRmHeadTest, PairwiseObjectiveFitsThePairsAndCalibratesTheBias) {
  ASSERT_EQ(Train("--objective pairwise --data " + kSafety + "safety_rm.jsonl --pairs " + kSafety +
                  "safety_rm_pairs.jsonl --eval_pairs " + kSafety + "safety_rm_probe_pairs.jsonl --out " + dir_ +
                  "/rm"),
            0)
      << log_;
  const nlohmann::json report = ReadJson(dir_ + "/rm/train_report.json");
  EXPECT_EQ(report["objective"], "pairwise");
  EXPECT_EQ(report["pairs"]["train"]["n"], 280);  // the fixed split of safety_rm_pairs.jsonl (see its README)
  EXPECT_EQ(report["pairs"]["heldout"]["n"], 64);
  EXPECT_EQ(report["eval_pairs"]["n"], 14);
  // λ from the grid by cross-validation on ranking loss: a finite loss below the zero head's log 2 per pair.
  EXPECT_GT(report["cv_loss"].get<double>(), 0.0);
  EXPECT_LT(report["cv_loss"].get<double>(), std::log(2.0));
  // The fit minimises the ranking loss on the training pairs: below what the zero head (Δ = 0) pays.
  EXPECT_LT(report["pairs"]["train"]["loss"].get<double>(), std::log(2.0));
  EXPECT_GT(report["pairs"]["train"]["accuracy"].get<double>(), 0.5);
  // The bias is the maximum-likelihood intercept on the labeled training rows, so the mean predicted P(safe) there
  // equals the fraction labeled safe (the intercept's stationarity condition): 194 of 342.
  auto rm = RewardModel::Load(dir_ + "/rm", ::llama::testing::CpuRewardBackends(/*num_blocks=*/64), {});
  ASSERT_TRUE(rm.ok()) << rm.status();
  auto tokenizer = Tokenizer::Load(kTokenizer);
  ASSERT_TRUE(tokenizer.ok());
  auto examples = ParseRewardDataJsonl(ReadText(kSafety + "safety_rm.jsonl"));
  ASSERT_TRUE(examples.ok());
  std::vector<std::vector<int32_t>> train;
  for (const RewardExample& ex : *examples) {
    if (IsHeldOut(ex, 0.2)) continue;
    auto ids = BuildRewardSequence(**tokenizer, ex.dialog, ex.response, (*rm)->max_tokens());
    ASSERT_TRUE(ids.ok());
    train.push_back(*ids);
  }
  auto scores = (*rm)->Score(train);
  ASSERT_TRUE(scores.ok()) << scores.status();
  double mean = 0;
  for (float p : *scores) mean += p / scores->size();
  // float32 head and scores (the tool checks the reloaded model against its fit to 1e-4 per score; the errors
  // average out): 1e-5 on a mean of 342 probabilities.
  EXPECT_NEAR(mean, 194.0 / 342.0, 1e-5);
}

TEST_F(TrainRmHeadTest, RefusesBadObjectivesAndMalformedPairs) {
  const std::string data = "--data " + kSafety + "safety_rm.jsonl --out " + dir_ + "/rm ";
  EXPECT_EQ(Train(data + "--objective pairwise"), 1);
  EXPECT_NE(log_.find("--objective pairwise needs --pairs FILE.jsonl"), std::string::npos) << log_;
  EXPECT_EQ(Train(data + "--objective listwise"), 1);
  EXPECT_NE(log_.find("--objective must be pointwise or pairwise, got \"listwise\""), std::string::npos) << log_;
  EXPECT_EQ(Train(data + "--pairs " + kSafety + "safety_rm_pairs.jsonl --margin_table huge"), 1);
  EXPECT_NE(log_.find("--margin_table: margin table must be"), std::string::npos) << log_;
  {
    std::ofstream bad(dir_ + "/bad_pairs.jsonl");
    bad << "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\"}\n"
        << "{\"dialog\":[{\"role\":\"user\",\"content\":\"q\"}],\"chosen\":\"a\",\"rejected\":\"b\","
           "\"rating\":\"much_better\"}\n";
  }
  EXPECT_EQ(Train(data + "--objective pairwise --pairs " + dir_ + "/bad_pairs.jsonl"), 1);
  EXPECT_NE(log_.find("bad_pairs.jsonl: line 2: field \"rating\": unknown rating \"much_better\""), std::string::npos)
      << log_;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/rm/config.json"));  // nothing written on a refused run
}

}  // namespace
}  // namespace llama
