// llama-chat train-rm-head: fits a safety reward model's scalar head on a frozen backbone and writes it in the
// Hugging Face LlamaForSequenceClassification layout (backbone tensors + score.weight [1, hidden] + score.bias,
// config num_labels 1), plus tokenizer.model and train_report.json.
//
// Features: the final-norm hidden state of the last token of each (dialog, response) reward sequence
// (engine/reward/reward_model.h), computed by the CPU backend. Head: L2 logistic regression on standardised features,
// λ by 5-fold cross-validation over asks on the training split (training/reward_head_fit.h). The held-out split is
// the fixed rule of training/reward_data.h.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/reward/reward_model.h"
#include "nlohmann/json.hpp"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"
#include "tools/text_file.h"
#include "training/logistic_regression.h"
#include "training/reward_data.h"
#include "training/reward_head_fit.h"

namespace llama::cli {
namespace {

RewardModel::BackendFactory CpuRewardBackend(int num_threads) {
  return [num_threads](ModelWeights w) -> absl::StatusOr<std::unique_ptr<Backend>> {
    CpuBackendOptions options;
    options.num_threads = num_threads;
    options.kv_cache_bytes = int64_t{64} << 20;  // prefill-only scoring batches are small
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(std::move(w), options));
    return std::unique_ptr<Backend>(std::move(backend));
  };
}

struct Split {
  std::vector<float> features;  // [n, dim]
  std::vector<int> labels;      // [n]
  std::vector<uint64_t> groups;  // [n] ask hash
};

struct Metrics {
  double accuracy = 0, auc = 0;
  int n = 0;
};

Metrics Evaluate(const RewardHead& head, const Split& split, int dim) {
  std::vector<double> logits;
  for (size_t i = 0; i < split.labels.size(); ++i) {
    logits.push_back(head.Logit(absl::MakeConstSpan(split.features).subspan(i * dim, dim)));
  }
  return {Accuracy(logits, split.labels, 0.0), RocAuc(logits, split.labels), static_cast<int>(logits.size())};
}

// The backbone as a reward model with a zero head: features do not depend on the head.
absl::StatusOr<ModelWeights> LoadBackboneAsRewardModel(const std::string& dir) {
  ASSIGN_OR_RETURN(ModelWeights w, LoadModelWeights(dir));
  w.config.num_labels = 1;
  w.lm_head.clear();
  w.score.assign(w.config.hidden_size, 0.0f);
  w.score_bias = {0.0f};
  return w;
}

struct Featurized {
  std::vector<std::vector<int32_t>> sequences;  // [n] reward inputs
  std::vector<float> features;                  // [n, dim] final-norm hidden state of each last token
};

absl::StatusOr<Featurized> Featurize(RewardModel& rm, const Tokenizer& tokenizer,
                                     const std::vector<RewardExample>& examples) {
  Featurized f;
  for (const RewardExample& ex : examples) {
    ASSIGN_OR_RETURN(auto ids, BuildRewardSequence(tokenizer, ex.dialog, ex.response, rm.max_tokens()));
    f.sequences.push_back(std::move(ids));
  }
  ASSIGN_OR_RETURN(f.features, rm.Features(f.sequences));
  return f;
}

// Scores a second labeled file (e.g. hand-written examples outside the training templates) with the fitted head:
// accuracy, ROC AUC, and every misclassified example printed, so the README can say what the probe misses.
absl::StatusOr<Metrics> EvaluateFile(const std::string& path, RewardModel& rm, const Tokenizer& tokenizer,
                                     const RewardHead& head) {
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile("eval", path));
  ASSIGN_OR_RETURN(const std::vector<RewardExample> examples, ParseRewardDataJsonl(text));
  ASSIGN_OR_RETURN(const Featurized f, Featurize(rm, tokenizer, examples));
  const std::vector<float>& features = f.features;
  const int dim = rm.config().hidden_size;
  Split split;
  for (size_t i = 0; i < examples.size(); ++i) {
    split.features.insert(split.features.end(), features.begin() + i * dim, features.begin() + (i + 1) * dim);
    split.labels.push_back(examples[i].label);
    const double logit = head.Logit(absl::MakeConstSpan(features).subspan(i * dim, dim));
    if ((logit >= 0) != (examples[i].label == 1)) {
      std::printf("train-rm-head: eval miss [%s] label %s p(safe) %.3f: %s -> %.60s\n", examples[i].category.c_str(),
                  examples[i].label ? "safe" : "unsafe", 1.0 / (1.0 + std::exp(-logit)),
                  examples[i].dialog.back().content.c_str(), examples[i].response.c_str());
    }
  }
  return Evaluate(head, split, dim);
}

absl::Status WriteReport(const std::string& out, const RewardHead& head, const Metrics& train, const Metrics& test,
                         const Metrics* eval, double holdout_frac, const std::string& data) {
  nlohmann::json j = {
      {"data", data}, {"holdout_frac", holdout_frac}, {"l2", head.l2}, {"cv_accuracy", head.cv_accuracy},
      {"train", {{"n", train.n}, {"accuracy", train.accuracy}, {"roc_auc", train.auc}}},
      {"heldout", {{"n", test.n}, {"accuracy", test.accuracy}, {"roc_auc", test.auc}}},
      {"feature", "final-norm hidden state of the last token of chat prompt + stripped response"}};
  if (eval != nullptr) j["eval"] = {{"n", eval->n}, {"accuracy", eval->accuracy}, {"roc_auc", eval->auc}};
  std::ofstream f(out + "/train_report.json");
  f << j.dump(1) << "\n";
  return f ? absl::OkStatus() : absl::InternalError("cannot write train_report.json");
}

// Writes the backbone + fitted head as LlamaForSequenceClassification with the tokenizer, then reloads it and checks
// that the reloaded model reproduces the fitted head's scores on the first examples.
absl::Status WriteAndVerify(ModelWeights saved, const RewardHead& head, const std::string& backbone,
                            const std::string& out, const Featurized& f, int threads) {
  saved.score = head.weight;
  saved.score_bias = {head.bias};
  RETURN_IF_ERROR(SaveModel(saved, out));
  std::error_code ec;
  std::filesystem::copy_file(backbone + "/tokenizer.model", out + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copying tokenizer.model: ", ec.message()));
  ASSIGN_OR_RETURN(auto reloaded, RewardModel::Load(out, CpuRewardBackend(threads), {}));
  const int dim = saved.config.hidden_size;
  for (size_t i = 0; i < std::min<size_t>(f.sequences.size(), 8); ++i) {
    ASSIGN_OR_RETURN(auto p, reloaded->Score({f.sequences[i]}));
    const double want = 1.0 / (1.0 + std::exp(-head.Logit(absl::MakeConstSpan(f.features).subspan(i * dim, dim))));
    if (std::abs(p[0] - want) > 1e-4) {
      return absl::InternalError(absl::StrCat("reloaded reward model scores ", p[0], ", the fit says ", want));
    }
  }
  return absl::OkStatus();
}

struct TrainArgs {
  std::string backbone;
  std::string data;
  std::string out;
  std::string eval;            // optional second labeled file
  double holdout_frac = 0.2;   // the fixed held-out rule's fraction (training/reward_data.h)
  double l2 = 0;               // only with --l2: fit this λ instead of cross-validating the grid
  int threads = CpuBackendOptions{}.num_threads;
};

absl::Status Train(const TrainArgs& args, bool l2_given) {
  const std::string& backbone = args.backbone;
  const std::string& data = args.data;
  const std::string& out = args.out;
  const double holdout_frac = args.holdout_frac;
  const int threads = args.threads;
  if (!(holdout_frac >= 0 && holdout_frac < 1)) return absl::InvalidArgumentError("--holdout_frac must be in [0, 1)");
  RewardHeadFitOptions fit;
  if (l2_given) {
    if (!(args.l2 > 0)) return absl::InvalidArgumentError("--l2 must be > 0");
    fit.l2_grid = {args.l2};
  }
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile("data", data));
  ASSIGN_OR_RETURN(const std::vector<RewardExample> examples, ParseRewardDataJsonl(text));
  ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(backbone + "/tokenizer.model"));
  ASSIGN_OR_RETURN(ModelWeights weights, LoadBackboneAsRewardModel(backbone));
  ModelWeights saved = weights;  // the backbone tensors to write out with the fitted head
  ASSIGN_OR_RETURN(auto rm, RewardModel::Create(std::move(weights), CpuRewardBackend(threads), {}));

  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(const Featurized featurized, Featurize(*rm, *tokenizer, examples));
  const std::vector<float>& features = featurized.features;  // [n, dim]
  const int dim = rm->config().hidden_size;
  std::printf("train-rm-head: %zu examples, features [%zu, %d] in %.1f s\n", examples.size(), examples.size(), dim,
              absl::ToDoubleSeconds(absl::Now() - start));

  Split train, test;
  for (size_t i = 0; i < examples.size(); ++i) {
    Split& s = IsHeldOut(examples[i], holdout_frac) ? test : train;
    s.features.insert(s.features.end(), features.begin() + i * dim, features.begin() + (i + 1) * dim);
    s.labels.push_back(examples[i].label);
    s.groups.push_back(Fnv1a64(examples[i].dialog.back().content));
  }
  ASSIGN_OR_RETURN(const RewardHead head, FitRewardHead(train.features, dim, train.labels, train.groups, fit));
  const Metrics train_m = Evaluate(head, train, dim), test_m = Evaluate(head, test, dim);
  std::printf("train-rm-head: l2 %g (cv accuracy %.3f)\n", head.l2, head.cv_accuracy);
  std::printf("train-rm-head: train   n=%d accuracy %.3f roc_auc %.3f\n", train_m.n, train_m.accuracy, train_m.auc);
  std::printf("train-rm-head: heldout n=%d accuracy %.3f roc_auc %.3f\n", test_m.n, test_m.accuracy, test_m.auc);

  std::optional<Metrics> eval_m;
  if (!args.eval.empty()) {
    ASSIGN_OR_RETURN(eval_m, EvaluateFile(args.eval, *rm, *tokenizer, head));
    std::printf("train-rm-head: eval    n=%d accuracy %.3f roc_auc %.3f (%s)\n", eval_m->n, eval_m->accuracy,
                eval_m->auc, args.eval.c_str());
  }

  RETURN_IF_ERROR(WriteAndVerify(std::move(saved), head, backbone, out, featurized, threads));
  RETURN_IF_ERROR(WriteReport(out, head, train_m, test_m, eval_m ? &*eval_m : nullptr, holdout_frac, data));
  std::printf("train-rm-head: wrote %s (LlamaForSequenceClassification, reloaded and checked)\n", out.c_str());
  return absl::OkStatus();
}

int RunTrainRmHead(int argc, char** argv) {
  TrainArgs args;
  FlagSet flags("train-rm-head", "--backbone DIR --data FILE.jsonl --out DIR [flags]",
                "Fits a safety reward head on a frozen backbone and writes a LlamaForSequenceClassification model.");
  flags.AddRequired("backbone", &args.backbone, "the frozen backbone's model directory (with tokenizer.model)");
  flags.AddRequired("data", &args.data, "labeled JSONL (data/safety/README.md)");
  flags.AddRequired("out", &args.out, "output model directory");
  flags.AddOptional("l2", &args.l2, "fit this L2 strength; unset: choose from the grid by cross-validation");
  flags.Add("holdout_frac", &args.holdout_frac, "fraction of asks held out for the report");
  flags.Add("threads", &args.threads, "CPU backend threads (0: all cores)");
  flags.Add("eval", &args.eval, "a second labeled JSONL to score with the fitted head");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (absl::Status s = Train(args, flags.Has("l2")); !s.ok()) return Fail("train-rm-head", s);
  return 0;
}

}  // namespace

// LLAMA_SUBCOMMAND stringifies an identifier, which cannot hold the dashes of "train-rm-head": register directly.
static SubcommandRegistrar llama_subcommand_train_rm_head(
    "train-rm-head",
    "fit a safety reward head on a frozen backbone",
    RunTrainRmHead);

}  // namespace llama::cli
