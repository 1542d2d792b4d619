#include "server/reward_scoring.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda_plugin.h"
#include "engine/model/model_source.h"

namespace llama::server {
namespace {

constexpr int kRewardBlockSize = kDefaultBlockSize;

int BlocksPerSequence(const ModelConfig& config) {
  return (config.max_position_embeddings + kRewardBlockSize - 1) / kRewardBlockSize;
}

// A reward model's backend: the policy's kind, with a KV pool for max_candidates full-context sequences lent to
// the engine loop's reward steps (sequences in flight across steps) plus one for the Score RPC's direct calls.
// The CPU backend's storage types go into *described.
RewardModel::BackendFactory MakeRewardBackendFactory(const RewardScoringOptions& options,
                                                     RewardModelDescription* described) {
  return [options, described](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
    constexpr int kBlockSize = kRewardBlockSize;
    const int num_blocks = (options.max_candidates + 1) * BlocksPerSequence(source.config());
    if (options.backend == "cuda") {
      ASSIGN_OR_RETURN(const ModelWeights weights, MaterializeWeights(source));
      cuda::CudaBackendOptions cuda_options;
      cuda_options.block_size = kBlockSize;
      cuda_options.num_blocks = num_blocks;
      return CreateCudaBackendViaPlugin(weights, cuda_options);
    }
    CpuBackendOptions cpu;
    cpu.num_threads = options.num_threads;
    cpu.block_size = kBlockSize;
    cpu.num_blocks = num_blocks;
    cpu.weights_dtype = options.weights_dtype;
    cpu.kv_dtype = options.kv_dtype;
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(source, cpu));
    described->weights_dtype = WeightsDtypeName(backend->weights_dtype());
    described->weight_bytes = backend->weight_bytes();
    return std::unique_ptr<Backend>(std::move(backend));
  };
}

// Loads the reward model `name` from dir and appends its description to *models.
absl::StatusOr<std::unique_ptr<RewardModel>> LoadOne(const std::string& dir, const std::string& name,
                                                     const RewardScoringOptions& options, const Tokenizer& policy,
                                                     std::vector<RewardModelDescription>* models) {
  absl::StatusOr<std::unique_ptr<WeightSource>> source = OpenWeightSource(dir);  // headers only
  if (!source.ok()) {
    return absl::Status(source.status().code(), absl::StrCat(name, " reward model ", dir, ": ",
                                                             source.status().message()));
  }
  const ModelConfig& config = (*source)->config();
  RewardModelOptions rm_options;
  rm_options.name = name;
  rm_options.source = dir;
  rm_options.engine_kv_blocks = options.max_candidates * BlocksPerSequence(config);
  RewardModelDescription described;
  described.kind = name;
  described.model_dir = dir;
  described.config = config;
  absl::StatusOr<std::unique_ptr<RewardModel>> rm =
      RewardModel::Create(**source, MakeRewardBackendFactory(options, &described), rm_options);
  if (!rm.ok()) {
    return absl::Status(rm.status().code(), absl::StrCat(name, " reward model ", dir, ": ", rm.status().message()));
  }
  if ((*rm)->config().vocab_size != policy.vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " reward model ", dir, ": vocabulary of ",
                                                   (*rm)->config().vocab_size, " tokens, the served model has ",
                                                   policy.vocab_size()));
  }
  models->push_back(std::move(described));
  return rm;
}

}  // namespace

absl::Status RewardScoringOptions::Validate() const {
  if (safety_model_dir.empty()) return absl::InvalidArgumentError("--safety_model_dir is required for rewards");
  if (max_candidates < 1) return absl::InvalidArgumentError("max_candidates must be >= 1");
  return selector.Validate();
}

absl::StatusOr<std::unique_ptr<RewardScoring>> RewardScoring::Load(const RewardScoringOptions& options,
                                                                   const Tokenizer* policy_tokenizer,
                                                                   prometheus::Registry& registry) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<RewardScoring> r(new RewardScoring());
  r->tokenizer_ = policy_tokenizer;
  ASSIGN_OR_RETURN(r->safety_,
                   LoadOne(options.safety_model_dir, "safety", options, *policy_tokenizer, &r->models_));
  std::vector<std::string> names = {"safety"};
  if (!options.helpfulness_model_dir.empty()) {
    ASSIGN_OR_RETURN(r->helpfulness_,
                     LoadOne(options.helpfulness_model_dir, "helpfulness", options, *policy_tokenizer, &r->models_));
    names.push_back("helpfulness");
  }
  r->metrics_ = std::make_unique<RewardMetrics>(registry, names);
  r->selector_ = std::make_unique<RewardSelector>(r->safety_.get(), r->helpfulness_.get(), policy_tokenizer,
                                                  options.selector);
  r->selector_->AddObserver(r->metrics_.get());
  return r;
}

absl::Status RewardScoring::Warmup() {
  const std::vector<Message> dialog = {{Role::kUser, "Hello"}};
  absl::StatusOr<RewardScores> scores = Score(dialog, "Hello! How can I help you?");
  if (!scores.ok()) return absl::InternalError(absl::StrCat("reward model warm-up failed: ", scores.status().message()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<int32_t>>> RewardScoring::ScoreInputs(const std::vector<Message>& dialog,
                                                                             const std::string& response) const {
  std::vector<std::vector<int32_t>> inputs;
  for (RewardModel* model : selector_->RewardModels()) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, BuildRewardSequence(*tokenizer_, dialog, response, model->max_tokens()));
    inputs.push_back(std::move(ids));
  }
  return inputs;
}

absl::StatusOr<RewardScores> RewardScoring::Score(const std::vector<Message>& dialog, const std::string& response) {
  RewardScores out;
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, BuildRewardSequence(*tokenizer_, dialog, response, safety_->max_tokens()));
  ASSIGN_OR_RETURN(std::vector<float> safety, safety_->Score({ids}));
  out.safety = safety[0];
  if (helpfulness_ != nullptr) {
    ASSIGN_OR_RETURN(std::vector<int32_t> h_ids,
                     BuildRewardSequence(*tokenizer_, dialog, response, helpfulness_->max_tokens()));
    ASSIGN_OR_RETURN(std::vector<float> helpfulness, helpfulness_->Score({h_ids}));
    out.helpfulness = helpfulness[0];
  }
  return out;
}

}  // namespace llama::server
