// llama-chat train-rm-head: fits a safety reward model's scalar head on a frozen backbone and writes it in the
// Hugging Face LlamaForSequenceClassification layout (backbone tensors + score.weight [1, hidden] + score.bias,
// config num_labels 1), plus tokenizer.model and train_report.json.
//
// Features: the final-norm hidden state of the last token of each (dialog, response) reward sequence
// (engine/reward/reward_model.h), computed by the CPU backend, once per distinct sequence. Two objectives:
// - pointwise (default): L2 logistic regression of the safe/unsafe labels of --data on standardised features, λ by
//   5-fold cross-validation over asks on the training split (training/reward_head_fit.h);
// - pairwise: the Llama 2 binary ranking loss −log σ(r_chosen − r_rejected − m) over the (dialog, chosen, rejected)
//   rows of --pairs, λ by the same cross-validation on ranking loss; the bias, which cancels in that loss, is fitted
//   on the labeled training rows of --data (training/pairwise_head_fit.h says why).
// The held-out split is the fixed rule of training/reward_data.h for both files. With --pairs, either head is also
// scored on the pairs (ranking accuracy and loss), so the two objectives can be compared on the same numbers;
// --eval / --eval_pairs score files that are never trained on (the hand-written probe set and its pairs).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

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
#include "training/pairwise_head_fit.h"
#include "training/pairwise_ranking.h"
#include "training/preference_data.h"
#include "training/reward_data.h"
#include "training/reward_head_fit.h"

namespace llama::cli {
namespace {

RewardModel::BackendFactory CpuRewardBackend(int num_threads) {
  return [num_threads](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
    CpuBackendOptions options;
    options.num_threads = num_threads;
    options.kv_cache_bytes = int64_t{64} << 20;  // prefill-only scoring batches are small
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(source, options));
    return std::unique_ptr<Backend>(std::move(backend));
  };
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

// Reads and parses one JSONL file of --flag; errors say which file ("--pairs FILE: line 3: field ...").
template <typename Parse>
auto ReadJsonl(const std::string& flag, const std::string& path, Parse parse) -> decltype(parse(std::string_view())) {
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile(flag, path));
  auto parsed = parse(text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(), absl::StrCat("--", flag, " ", path, ": ", parsed.status().message()));
  }
  return parsed;
}

absl::StatusOr<std::vector<RewardExample>> ReadRewardData(const std::string& flag, const std::string& path) {
  return ReadJsonl(flag, path, [](std::string_view text) { return ParseRewardDataJsonl(text); });
}

absl::StatusOr<std::vector<PreferencePair>> ReadPairs(const std::string& flag, const std::string& path,
                                                      MarginTable table) {
  return ReadJsonl(flag, path, [table](std::string_view text) { return ParsePreferencePairsJsonl(text, table); });
}

// Features of distinct reward sequences: a pair's answers are usually labeled rows too, so each is computed once.
class FeatureTable {
 public:
  FeatureTable(const Tokenizer& tokenizer, RewardModel& rm) : tokenizer_(tokenizer), rm_(rm) {}

  // Row index of (dialog, response)'s reward sequence, added if new.
  absl::StatusOr<int> Add(const std::vector<Message>& dialog, const std::string& response) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, BuildRewardSequence(tokenizer_, dialog, response, rm_.max_tokens()));
    auto [it, added] = index_.emplace(ids, static_cast<int>(sequences_.size()));
    if (added) sequences_.push_back(std::move(ids));
    return it->second;
  }
  absl::Status Compute() {
    ASSIGN_OR_RETURN(features_, rm_.Features(sequences_));
    return absl::OkStatus();
  }
  int dim() const { return rm_.config().hidden_size; }
  absl::Span<const float> Row(int i) const { return absl::MakeConstSpan(features_).subspan(i * dim(), dim()); }
  const std::vector<std::vector<int32_t>>& sequences() const { return sequences_; }

 private:
  const Tokenizer& tokenizer_;
  RewardModel& rm_;
  std::map<std::vector<int32_t>, int> index_;
  std::vector<std::vector<int32_t>> sequences_;  // [rows] distinct reward inputs
  std::vector<float> features_;                  // [rows, dim] final-norm hidden state of each last token
};

struct Split {
  std::vector<float> features;   // [n, dim]
  std::vector<int> labels;       // [n]
  std::vector<uint64_t> groups;  // [n] ask hash
};

struct PairSplit {
  std::vector<float> chosen, rejected;  // [n, dim] each
  std::vector<double> margins;          // [n]
  std::vector<uint64_t> groups;         // [n] ask hash
};

struct Metrics {
  double accuracy = 0, auc = 0;
  int n = 0;
};

struct PairMetrics {
  double accuracy = 0, loss = 0;
  int n = 0;
};

void AddPair(const FeatureTable& table, const PreferencePair& pair, int chosen, int rejected, PairSplit* split) {
  for (auto [row, out] : {std::pair{chosen, &split->chosen}, std::pair{rejected, &split->rejected}}) {
    const absl::Span<const float> x = table.Row(row);
    out->insert(out->end(), x.begin(), x.end());
  }
  split->margins.push_back(pair.margin);
  split->groups.push_back(Fnv1a64(pair.dialog.back().content));
}

Metrics Evaluate(const RewardHead& head, const Split& split, int dim) {
  std::vector<double> logits;
  for (size_t i = 0; i < split.labels.size(); ++i) {
    logits.push_back(head.Logit(absl::MakeConstSpan(split.features).subspan(i * dim, dim)));
  }
  return {Accuracy(logits, split.labels, 0.0), RocAuc(logits, split.labels), static_cast<int>(logits.size())};
}

PairMetrics EvaluatePairs(const RewardHead& head, const PairSplit& split, int dim) {
  std::vector<double> diffs;  // [n] r_chosen − r_rejected
  for (size_t i = 0; i < split.margins.size(); ++i) {
    diffs.push_back(head.Logit(absl::MakeConstSpan(split.chosen).subspan(i * dim, dim)) -
                    head.Logit(absl::MakeConstSpan(split.rejected).subspan(i * dim, dim)));
  }
  return {PairwiseAccuracy(diffs), PairwiseLoss(diffs, split.margins), static_cast<int>(diffs.size())};
}

// Scores a second labeled file (e.g. hand-written examples outside the training templates) with the fitted head:
// accuracy, ROC AUC, and every misclassified example printed, so the README can say what the probe misses.
absl::StatusOr<Metrics> EvaluateFile(const std::string& path, RewardModel& rm, const Tokenizer& tokenizer,
                                     const RewardHead& head) {
  ASSIGN_OR_RETURN(const std::vector<RewardExample> examples, ReadRewardData("eval", path));
  FeatureTable table(tokenizer, rm);
  std::vector<int> rows;
  for (const RewardExample& ex : examples) {
    ASSIGN_OR_RETURN(int row, table.Add(ex.dialog, ex.response));
    rows.push_back(row);
  }
  RETURN_IF_ERROR(table.Compute());
  Split split;
  for (size_t i = 0; i < examples.size(); ++i) {
    const absl::Span<const float> x = table.Row(rows[i]);
    split.features.insert(split.features.end(), x.begin(), x.end());
    split.labels.push_back(examples[i].label);
    const double logit = head.Logit(x);
    if ((logit >= 0) != (examples[i].label == 1)) {
      std::printf("train-rm-head: eval miss [%s] label %s p(safe) %.3f: %s -> %.60s\n", examples[i].category.c_str(),
                  examples[i].label ? "safe" : "unsafe", 1.0 / (1.0 + std::exp(-logit)),
                  examples[i].dialog.back().content.c_str(), examples[i].response.c_str());
    }
  }
  return Evaluate(head, split, table.dim());
}

// Ranks a second pairs file with the fitted head: ranking accuracy and loss over all its pairs, and every pair ranked
// the wrong way printed.
absl::StatusOr<PairMetrics> EvaluatePairsFile(const std::string& path, MarginTable margin_table, RewardModel& rm,
                                              const Tokenizer& tokenizer, const RewardHead& head) {
  ASSIGN_OR_RETURN(const std::vector<PreferencePair> pairs, ReadPairs("eval_pairs", path, margin_table));
  FeatureTable table(tokenizer, rm);
  std::vector<std::pair<int, int>> rows;  // [n] (chosen, rejected) rows
  for (const PreferencePair& pair : pairs) {
    ASSIGN_OR_RETURN(int c, table.Add(pair.dialog, pair.chosen));
    ASSIGN_OR_RETURN(int r, table.Add(pair.dialog, pair.rejected));
    rows.emplace_back(c, r);
  }
  RETURN_IF_ERROR(table.Compute());
  PairSplit split;
  for (size_t i = 0; i < pairs.size(); ++i) {
    AddPair(table, pairs[i], rows[i].first, rows[i].second, &split);
    const double diff = head.Logit(table.Row(rows[i].first)) - head.Logit(table.Row(rows[i].second));
    if (diff <= 0) {
      std::printf("train-rm-head: eval_pairs miss [%s] r_chosen - r_rejected %.3f: %s -> %.40s | %.40s\n",
                  pairs[i].category.c_str(), diff, pairs[i].dialog.back().content.c_str(), pairs[i].chosen.c_str(),
                  pairs[i].rejected.c_str());
    }
  }
  return EvaluatePairs(head, split, table.dim());
}

struct TrainArgs {
  std::string backbone;
  std::string data;
  std::string out;
  std::string eval;                     // optional second labeled file
  std::string eval_pairs;               // optional second pairs file
  std::string objective = "pointwise";  // pointwise | pairwise
  std::string pairs;                    // preference pairs: required by pairwise, scored by both
  std::string margin_table = "small";   // the table "rating" fields of --pairs map through
  double holdout_frac = 0.2;            // the fixed held-out rule's fraction (training/reward_data.h)
  double l2 = 0;                        // only with --l2: fit this λ instead of cross-validating the grid
  int threads = CpuBackendOptions{}.num_threads;
};

// Everything the fit reads, featurised and split by the held-out rule.
struct TrainingSet {
  Split train, test;
  PairSplit pairs_train, pairs_test;
  bool has_pairs = false;
};

absl::StatusOr<TrainingSet> BuildTrainingSet(const TrainArgs& args, MarginTable table_kind, FeatureTable& table) {
  ASSIGN_OR_RETURN(const std::vector<RewardExample> examples, ReadRewardData("data", args.data));
  std::vector<PreferencePair> pairs;
  if (!args.pairs.empty()) {
    ASSIGN_OR_RETURN(pairs, ReadPairs("pairs", args.pairs, table_kind));
  }
  std::vector<int> rows, chosen, rejected;
  for (const RewardExample& ex : examples) {
    ASSIGN_OR_RETURN(int row, table.Add(ex.dialog, ex.response));
    rows.push_back(row);
  }
  for (const PreferencePair& pair : pairs) {
    ASSIGN_OR_RETURN(int c, table.Add(pair.dialog, pair.chosen));
    ASSIGN_OR_RETURN(int r, table.Add(pair.dialog, pair.rejected));
    chosen.push_back(c);
    rejected.push_back(r);
  }
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(table.Compute());
  std::printf("train-rm-head: %zu examples, %zu pairs, features [%zu, %d] in %.1f s\n", examples.size(), pairs.size(),
              table.sequences().size(), table.dim(), absl::ToDoubleSeconds(absl::Now() - start));
  TrainingSet set;
  set.has_pairs = !pairs.empty();
  for (size_t i = 0; i < examples.size(); ++i) {
    Split& s = IsHeldOut(examples[i], args.holdout_frac) ? set.test : set.train;
    const absl::Span<const float> x = table.Row(rows[i]);
    s.features.insert(s.features.end(), x.begin(), x.end());
    s.labels.push_back(examples[i].label);
    s.groups.push_back(Fnv1a64(examples[i].dialog.back().content));
  }
  for (size_t i = 0; i < pairs.size(); ++i) {
    PairSplit& s = IsHeldOut(pairs[i], args.holdout_frac) ? set.pairs_test : set.pairs_train;
    AddPair(table, pairs[i], chosen[i], rejected[i], &s);
  }
  return set;
}

absl::StatusOr<RewardHead> FitHead(const TrainArgs& args, const TrainingSet& set, int dim,
                                   const RewardHeadFitOptions& fit) {
  if (args.objective == "pointwise") {
    return FitRewardHead(set.train.features, dim, set.train.labels, set.train.groups, fit);
  }
  if (set.pairs_train.margins.empty()) return absl::InvalidArgumentError("--pairs has no pairs on the training side");
  const PairwiseHeadData data{set.pairs_train.chosen, set.pairs_train.rejected, set.pairs_train.margins,
                              set.pairs_train.groups, set.train.features,     set.train.labels};
  return FitPairwiseRewardHead(data, dim, fit);
}

nlohmann::json MetricsJson(const Metrics& m) { return {{"n", m.n}, {"accuracy", m.accuracy}, {"roc_auc", m.auc}}; }
nlohmann::json PairJson(const PairMetrics& m) { return {{"n", m.n}, {"accuracy", m.accuracy}, {"loss", m.loss}}; }

// The report: train_report.json in out, and the same figures printed.
struct Report {
  Metrics train, test;
  std::optional<Metrics> eval;
  std::optional<PairMetrics> pairs_train, pairs_test, eval_pairs;
};

absl::Status WriteReport(const TrainArgs& args, const RewardHead& head, const Report& r) {
  nlohmann::json j = {
      {"data", args.data}, {"objective", args.objective}, {"holdout_frac", args.holdout_frac}, {"l2", head.l2},
      {"cv_accuracy", head.cv_accuracy}, {"train", MetricsJson(r.train)}, {"heldout", MetricsJson(r.test)},
      {"feature", "final-norm hidden state of the last token of chat prompt + stripped response"}};
  if (args.objective == "pairwise") j["cv_loss"] = head.cv_loss;
  if (r.eval) j["eval"] = MetricsJson(*r.eval);
  if (r.eval_pairs) j["eval_pairs"] = PairJson(*r.eval_pairs);
  if (r.pairs_train) {
    j["pairs"] = {{"file", args.pairs}, {"margin_table", args.margin_table}, {"train", PairJson(*r.pairs_train)},
                  {"heldout", PairJson(*r.pairs_test)}};
  }
  std::ofstream f(args.out + "/train_report.json");
  f << j.dump(1) << "\n";
  return f ? absl::OkStatus() : absl::InternalError("cannot write train_report.json");
}

void PrintReport(const TrainArgs& args, const RewardHead& head, const Report& r) {
  std::printf("train-rm-head: objective %s, l2 %g (cv accuracy %.3f", args.objective.c_str(), head.l2,
              head.cv_accuracy);
  if (args.objective == "pairwise") std::printf(", cv loss %.3g", head.cv_loss);
  std::printf(")\n");
  std::printf("train-rm-head: train   n=%d accuracy %.3f roc_auc %.3f\n", r.train.n, r.train.accuracy, r.train.auc);
  std::printf("train-rm-head: heldout n=%d accuracy %.3f roc_auc %.3f\n", r.test.n, r.test.accuracy, r.test.auc);
  if (r.pairs_train) {
    for (auto [name, m] : {std::pair{"train  ", *r.pairs_train}, std::pair{"heldout", *r.pairs_test}}) {
      std::printf("train-rm-head: pairs %s n=%d ranking accuracy %.3f loss %.3g\n", name, m.n, m.accuracy, m.loss);
    }
  }
  if (r.eval) {
    std::printf("train-rm-head: eval    n=%d accuracy %.3f roc_auc %.3f (%s)\n", r.eval->n, r.eval->accuracy,
                r.eval->auc, args.eval.c_str());
  }
  if (r.eval_pairs) {
    std::printf("train-rm-head: eval_pairs n=%d ranking accuracy %.3f loss %.3g (%s)\n", r.eval_pairs->n,
                r.eval_pairs->accuracy, r.eval_pairs->loss, args.eval_pairs.c_str());
  }
}

// Writes the backbone + fitted head as LlamaForSequenceClassification with the tokenizer, then reloads it and checks
// that the reloaded model reproduces the fitted head's scores on the first rows.
absl::Status WriteAndVerify(ModelWeights saved, const RewardHead& head, const TrainArgs& args,
                            const FeatureTable& table) {
  saved.score = head.weight;
  saved.score_bias = {head.bias};
  RETURN_IF_ERROR(SaveModel(saved, args.out));
  std::error_code ec;
  std::filesystem::copy_file(args.backbone + "/tokenizer.model", args.out + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copying tokenizer.model: ", ec.message()));
  ASSIGN_OR_RETURN(auto reloaded, RewardModel::Load(args.out, CpuRewardBackend(args.threads), {}));
  for (size_t i = 0; i < std::min<size_t>(table.sequences().size(), 8); ++i) {
    ASSIGN_OR_RETURN(auto p, reloaded->Score({table.sequences()[i]}));
    const double want = 1.0 / (1.0 + std::exp(-head.Logit(table.Row(static_cast<int>(i)))));
    if (std::abs(p[0] - want) > 1e-4) {
      return absl::InternalError(absl::StrCat("reloaded reward model scores ", p[0], ", the fit says ", want));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RewardHeadFitOptions> CheckArgs(const TrainArgs& args, bool l2_given) {
  if (!(args.holdout_frac >= 0 && args.holdout_frac < 1)) {
    return absl::InvalidArgumentError("--holdout_frac must be in [0, 1)");
  }
  if (args.objective != "pointwise" && args.objective != "pairwise") {
    return absl::InvalidArgumentError(
        absl::StrCat("--objective must be pointwise or pairwise, got \"", args.objective, "\""));
  }
  if (args.objective == "pairwise" && args.pairs.empty()) {
    return absl::InvalidArgumentError("--objective pairwise needs --pairs FILE.jsonl");
  }
  RewardHeadFitOptions fit;
  if (l2_given) {
    if (!(args.l2 > 0)) return absl::InvalidArgumentError("--l2 must be > 0");
    fit.l2_grid = {args.l2};
  }
  return fit;
}

absl::Status Train(const TrainArgs& args, bool l2_given) {
  ASSIGN_OR_RETURN(const RewardHeadFitOptions fit, CheckArgs(args, l2_given));
  absl::StatusOr<MarginTable> margin_table = ParseMarginTable(args.margin_table);
  if (!margin_table.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--margin_table: ", margin_table.status().message()));
  }
  ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(args.backbone + "/tokenizer.model"));
  ASSIGN_OR_RETURN(ModelWeights weights, LoadBackboneAsRewardModel(args.backbone));
  ModelWeights saved = weights;  // the backbone tensors to write out with the fitted head
  ASSIGN_OR_RETURN(auto rm, RewardModel::Create(std::move(weights), CpuRewardBackend(args.threads), {}));
  FeatureTable table(*tokenizer, *rm);
  ASSIGN_OR_RETURN(const TrainingSet set, BuildTrainingSet(args, *margin_table, table));
  const int dim = table.dim();

  ASSIGN_OR_RETURN(const RewardHead head, FitHead(args, set, dim, fit));
  Report report;
  report.train = Evaluate(head, set.train, dim);
  report.test = Evaluate(head, set.test, dim);
  if (set.has_pairs) {
    report.pairs_train = EvaluatePairs(head, set.pairs_train, dim);
    report.pairs_test = EvaluatePairs(head, set.pairs_test, dim);
  }
  if (!args.eval.empty()) {
    ASSIGN_OR_RETURN(report.eval, EvaluateFile(args.eval, *rm, *tokenizer, head));
  }
  if (!args.eval_pairs.empty()) {
    ASSIGN_OR_RETURN(report.eval_pairs, EvaluatePairsFile(args.eval_pairs, *margin_table, *rm, *tokenizer, head));
  }
  PrintReport(args, head, report);

  RETURN_IF_ERROR(WriteAndVerify(std::move(saved), head, args, table));
  RETURN_IF_ERROR(WriteReport(args, head, report));
  std::printf("train-rm-head: wrote %s (LlamaForSequenceClassification, reloaded and checked)\n", args.out.c_str());
  return absl::OkStatus();
}

int RunTrainRmHead(int argc, char** argv) {
  TrainArgs args;
  FlagSet flags("train-rm-head", "--backbone DIR --data FILE.jsonl --out DIR [flags]",
                "Fits a safety reward head on a frozen backbone and writes a LlamaForSequenceClassification model.");
  flags.AddRequired("backbone", &args.backbone, "the frozen backbone's model directory (with tokenizer.model)");
  flags.AddRequired("data", &args.data,
                    "labeled JSONL (data/safety/README.md): the pointwise fit's rows, the pairwise fit's bias rows");
  flags.AddRequired("out", &args.out, "output model directory");
  flags.Add("objective", &args.objective,
            "pointwise (logistic loss on --data labels) or pairwise (ranking loss on --pairs)");
  flags.Add("pairs", &args.pairs, "preference pairs JSONL (data/safety/README.md); scored by either objective");
  flags.Add("margin_table", &args.margin_table, "small or large: the margins of the pairs' \"rating\" fields");
  flags.AddOptional("l2", &args.l2, "fit this L2 strength; unset: choose from the grid by cross-validation");
  flags.Add("holdout_frac", &args.holdout_frac, "fraction of asks held out for the report");
  flags.Add("threads", &args.threads, "CPU backend threads (0: all cores)");
  flags.Add("eval", &args.eval, "a second labeled JSONL to score with the fitted head");
  flags.Add("eval_pairs", &args.eval_pairs, "a second pairs JSONL to rank with the fitted head");
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
