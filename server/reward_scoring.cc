#include "server/reward_scoring.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda_plugin.h"

namespace llama::server {
namespace {

constexpr int kRewardBlockSize = kDefaultBlockSize;

int BlocksPerSequence(const ModelConfig& config) {
  return (config.max_position_embeddings + kRewardBlockSize - 1) / kRewardBlockSize;
}

// A reward model's backend: the policy's kind, with a KV pool for max_candidates full-context sequences lent to
// the engine loop's reward steps (sequences in flight across steps) plus one for the Score RPC's direct calls.
RewardModel::BackendFactory MakeRewardBackendFactory(const RewardScoringOptions& options) {
  return [options](ModelWeights weights) -> absl::StatusOr<std::unique_ptr<Backend>> {
    constexpr int kBlockSize = kRewardBlockSize;
    const int num_blocks = (options.max_candidates + 1) * BlocksPerSequence(weights.config);
    if (options.backend == "cuda") {
      cuda::CudaBackendOptions cuda_options;
      cuda_options.block_size = kBlockSize;
      cuda_options.num_blocks = num_blocks;
      return CreateCudaBackendViaPlugin(weights, cuda_options);
    }
    CpuBackendOptions cpu;
    cpu.num_threads = options.num_threads;
    cpu.block_size = kBlockSize;
    cpu.num_blocks = num_blocks;
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(std::move(weights), cpu));
    return std::unique_ptr<Backend>(std::move(backend));
  };
}

absl::StatusOr<std::unique_ptr<RewardModel>> LoadOne(const std::string& dir, const std::string& name,
                                                     const RewardScoringOptions& options, const Tokenizer& policy) {
  absl::StatusOr<ModelConfig> config = LoadModelConfig(dir);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(name, " reward model ", dir, ": ",
                                                             config.status().message()));
  }
  RewardModelOptions rm_options;
  rm_options.name = name;
  rm_options.engine_kv_blocks = options.max_candidates * BlocksPerSequence(*config);
  absl::StatusOr<std::unique_ptr<RewardModel>> rm =
      RewardModel::Load(dir, MakeRewardBackendFactory(options), rm_options);
  if (!rm.ok()) {
    return absl::Status(rm.status().code(), absl::StrCat(name, " reward model ", dir, ": ", rm.status().message()));
  }
  if ((*rm)->config().vocab_size != policy.vocab_size()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " reward model ", dir, ": vocabulary of ",
                                                   (*rm)->config().vocab_size, " tokens, the served model has ",
                                                   policy.vocab_size()));
  }
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
  ASSIGN_OR_RETURN(r->safety_, LoadOne(options.safety_model_dir, "safety", options, *policy_tokenizer));
  std::vector<std::string> names = {"safety"};
  r->models_.push_back({"safety", options.safety_model_dir, r->safety_->config()});
  if (!options.helpfulness_model_dir.empty()) {
    ASSIGN_OR_RETURN(r->helpfulness_,
                     LoadOne(options.helpfulness_model_dir, "helpfulness", options, *policy_tokenizer));
    names.push_back("helpfulness");
    r->models_.push_back({"helpfulness", options.helpfulness_model_dir, r->helpfulness_->config()});
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
