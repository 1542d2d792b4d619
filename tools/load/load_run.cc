#include "tools/load/load_run.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "tools/load/load_client.h"
#include "tools/load/load_report.h"
#include "tools/load/progress_bar.h"

namespace llama::load {
namespace {

namespace v1 = ::llamachat::v1;

constexpr auto kConnectTimeout = std::chrono::milliseconds(5000);
constexpr auto kSetupRpcTimeout = std::chrono::seconds(10);
constexpr double kDefaultTokensPerWord = 1.3;
constexpr int kDurationPoolPerLevel = 1024;  // prompts per level when only --duration_s bounds it (then reused)

}  // namespace

ServerInfo AskServer(v1::ChatService::Stub& stub, const std::string& address) {
  ServerInfo info;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kSetupRpcTimeout);
  v1::GetModelInfoResponse response;
  const grpc::Status status = stub.GetModelInfo(&context, v1::GetModelInfoRequest(), &response);
  if (!status.ok()) {
    info.error = absl::StrCat("GetModelInfo on ", address, " failed: ", StatusCodeName(status.error_code()), ": ",
                              status.error_message());
    return info;
  }
  info.reachable = true;
  info.model_dir = response.model_dir();
  info.backend = response.backend();
  info.context_length = response.model().context_length();
  info.max_num_seqs = response.limits().max_num_seqs();
  info.max_queue = response.limits().max_queue();
  info.max_candidates = response.limits().max_candidates();
  info.num_reward_models = response.reward_models_size();
  return info;
}

namespace {

TokenCounter MakeTokenCounter(v1::ChatService::Stub* stub) {
  return [stub](const v1::ChatRequest& request) -> absl::StatusOr<int> {
    v1::TokenizeRequest tokenize;
    *tokenize.mutable_messages() = request.messages();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kSetupRpcTimeout);
    v1::TokenizeResponse response;
    const grpc::Status status = stub->Tokenize(&context, tokenize, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          absl::StrCat("Tokenize: ", status.error_message()));
    }
    return response.token_ids_size();
  };
}

int RequestsPerLevel(const LoadOptions& options, int level) {
  return options.RequestsAt(level) > 0 ? options.RequestsAt(level) : kDurationPoolPerLevel;
}

}  // namespace

absl::StatusOr<PromptSet> BuildRunPrompts(const LoadOptions& options, const ServerInfo& server,
                                          v1::ChatService::Stub& stub, double* tokens_per_word) {
  TokenCounter counter;
  *tokens_per_word = kDefaultTokensPerWord;
  if (server.reachable) {
    counter = MakeTokenCounter(&stub);
    ASSIGN_OR_RETURN(*tokens_per_word, MeasureTokensPerWord(counter, server.context_length));
  }
  PromptSetOptions p;
  p.input_tokens = options.input_tokens;
  p.output_tokens = options.output_tokens;
  p.length_scale = options.length_scale;
  p.seed = options.seed;
  p.temperature = options.temperature;
  p.ignore_eos = options.ignore_eos;
  p.num_candidates = options.num_candidates;
  p.segment_tokens = options.segment_tokens;
  p.include_token_ids = options.include_token_ids;
  p.context_length = server.context_length;
  p.tokens_per_word = *tokens_per_word;
  int count = 0;
  for (int level = 0; level < options.num_levels(); ++level) count += RequestsPerLevel(options, level) + options.warmup;
  return PromptSet::Build(p, count, counter);
}

namespace {

LevelPlan PlanLevel(const LoadOptions& options, int level, int64_t first_index) {
  LevelPlan plan;
  if (options.open_loop()) {
    plan.rate_per_s = options.request_rates[level];
    plan.burstiness = options.burstiness;
    plan.arrival_seed = options.seed * 1000003 + level;
  } else {
    plan.concurrency = options.concurrency[level];
  }
  plan.num_requests = options.RequestsAt(level);
  plan.duration_s = options.duration_s;
  plan.first_index = first_index;
  return plan;
}

void Warmup(LoadClient& client, const PromptSet& prompts, const LoadOptions& options, int level,
            int64_t first_index, std::FILE* log) {
  if (options.warmup == 0) return;
  LevelPlan plan;
  plan.concurrency = options.open_loop() ? options.warmup : std::min(options.warmup, options.concurrency[level]);
  plan.num_requests = options.warmup;
  plan.first_index = first_index;
  const LevelRun run = client.RunLevel(plan, prompts);
  int failed = 0;
  for (const RequestRecord& r : run.records) failed += r.ok() ? 0 : 1;
  if (log != nullptr && failed > 0) std::fprintf(log, "warm-up: %d of %d requests failed\n", failed, options.warmup);
}

void LogSetup(std::FILE* log, const LoadOptions& options, const LoadResult& result, const std::string& connect) {
  if (log == nullptr) return;
  const ServerInfo& s = result.server;
  if (!s.reachable) {
    std::fprintf(log, "llama-chat load: the server at %s is not reachable (%s); running anyway, every request "
                      "will count as an error\n", options.server.c_str(), connect.empty() ? s.error.c_str() : connect.c_str());
  } else {
    std::fprintf(log, "server %s: %s on %s, context %d, max_num_seqs %d, max_queue %d, %d reward model(s)\n",
                 options.server.c_str(), s.model_dir.c_str(), s.backend.c_str(), s.context_length, s.max_num_seqs,
                 s.max_queue, s.num_reward_models);
  }
  const PromptSetStats& p = result.prompts;
  std::fprintf(log, "prompts (%s): %d built, %s prompt tokens %.1f mean, max_tokens %.1f mean, %.2f user turns, "
                    "%d shortened to fit, %.2f tokens/word\n",
               result.options.RunLabel().c_str(), p.num_requests, p.exact_prompt_lengths ? "exact" : "estimated",
               p.mean_prompt_tokens, p.mean_output_tokens, p.mean_turns, p.num_fitted, result.tokens_per_word);
  std::fflush(log);
}

std::string UtcNow() { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone()); }

}  // namespace

bool LoadResult::any_success() const {
  for (const LevelSummary& s : levels) {
    if (s.num_ok > 0) return true;
  }
  return false;
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options, std::FILE* log) {
  RETURN_IF_ERROR(options.Validate());
  LoadResult result;
  result.options = options;
  result.started_utc = UtcNow();
  ASSIGN_OR_RETURN(std::unique_ptr<LoadClient> client,
                   LoadClient::Create(options.server, options.client_threads, options.channels, options.timeout_s,
                                      kConnectTimeout));
  result.server = AskServer(client->stub(0), options.server);
  ASSIGN_OR_RETURN(PromptSet prompts, BuildRunPrompts(options, result.server, client->stub(0), &result.tokens_per_word));
  result.prompts = prompts.stats();
  LogSetup(log, options, result, client->connect_error());
  ProgressBar progress(stdout);
  int64_t next_index = 0;
  for (int level = 0; level < options.num_levels(); ++level) {
    Warmup(*client, prompts, options, level, next_index, log);
    next_index += options.warmup;
    const LevelPlan plan = PlanLevel(options, level, next_index);
    next_index += RequestsPerLevel(options, level);
    if (options.progress) {
      progress.Start(options.LevelName(level), options.RequestsAt(level), options.duration_s, &client->counters());
    }
    const LevelRun run = client->RunLevel(plan, prompts);
    progress.Stop();
    result.levels.push_back(SummarizeLevel(options.LevelName(level), plan, run, options.slo, options.include_token_ids));
    if (log != nullptr) PrintLevel(log, result.levels.back(), options.slo);
  }
  return result;
}

}  // namespace llama::load
