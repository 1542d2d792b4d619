// RunLoad: one `llama-chat load` run. Asks the server for its limits (GetModelInfo), builds the prompts (with the
// server's Tokenize for exact lengths), then runs every level of the sweep in order, each after its warm-up
// requests, and summarises it. A server that cannot be reached is reported (ServerInfo::error) and the run still
// goes on, so its requests show up as UNAVAILABLE counts: the figures say what a client would have seen.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "tools/load/load_options.h"
#include "tools/load/load_stats.h"
#include "tools/load/prompt_set.h"

namespace llama::load {

struct ServerInfo {
  bool reachable = false;
  std::string error;       // why not, when !reachable
  std::string model_dir;
  std::string backend;
  int context_length = 0;  // 0 when unknown
  int max_num_seqs = 0;
  int max_queue = 0;
  int max_candidates = 0;
  int num_reward_models = 0;
};

struct LoadResult {
  LoadOptions options;
  ServerInfo server;
  PromptSetStats prompts;
  double tokens_per_word = 0;
  std::string started_utc;  // "2026-11-27T09:38:00Z"
  std::vector<LevelSummary> levels;  // in sweep order
  bool any_success() const;
};

// log (may be null) gets the progress of the run: what the server is, each level's report as it finishes.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options, std::FILE* log);

// The pieces RunLoad starts with, for callers that need the very same requests (bench-serve's direct path):
// the server's limits (never an error: ServerInfo::reachable says), and the run's whole prompt set (every level's
// and warm-up's requests) built with the server's Tokenize; tokens_per_word gets the measured ratio.
ServerInfo AskServer(llamachat::v1::ChatService::Stub& stub, const std::string& address);
absl::StatusOr<PromptSet> BuildRunPrompts(const LoadOptions& options, const ServerInfo& server,
                                          llamachat::v1::ChatService::Stub& stub, double* tokens_per_word);

}  // namespace llama::load
