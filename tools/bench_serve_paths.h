// The two paths `llama-chat bench-serve` compares on one in-process llama-chat-server (ChatServer), both closed
// loops at the same concurrency over requests built the same way (load_run.h's BuildRunPrompts):
//   - direct: the requests straight into the server's engine loop (EngineLoop::Submit + sinks), the engine's
//     throughput with no transport at all;
//   - gRPC: `llama-chat load` as a separate process (optionally pinned to other CPUs) driving the server's port.
// Each round reports what the server process spent (CPU seconds over the window in which the engine stepped, so a
// child's set-up RPCs are left out) and, for gRPC, what the client process spent (its own getrusage, from its JSON).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/chat_server.h"
#include "tools/load/load_options.h"
#include "tools/load/prompt_set.h"

namespace llama::cli {

struct RoundResult {
  int64_t requests_ok = 0;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  double wall_s = 0;            // first request started → last finished
  double server_cpu_s = 0;      // this process, over the engine's busy window
  double client_cpu_s = 0;      // the load process (gRPC path only)
  int64_t engine_steps = 0;
  double ttft_p50_ms = 0;
  double ttft_p99_ms = 0;
  double tokens_per_s() const { return wall_s > 0 ? output_tokens / wall_s : 0; }
  double server_cpu_ms_per_token() const { return output_tokens > 0 ? 1e3 * server_cpu_s / output_tokens : 0; }
  double client_cpu_ms_per_token() const { return output_tokens > 0 ? 1e3 * client_cpu_s / output_tokens : 0; }
};

// The direct path: `concurrency` requests of `prompts` in flight, each finished one replaced by the next, until
// num_requests finished. Requests are validated and tokenized (PrepareChatRequest) before the clock starts.
absl::StatusOr<RoundResult> RunDirect(server::ChatServer& server, const load::PromptSet& prompts, int concurrency,
                                      int num_requests, uint64_t* next_request_id);

// The gRPC path: runs `llama-chat load` (this same binary, /proc/self/exe) with `load_args` against the server's
// port, pinned to `cpus` when not empty (a Linux CPU list: "1", "2-5,7"), and reads its --json result.
absl::StatusOr<RoundResult> RunLoadProcess(server::ChatServer& server, const std::vector<std::string>& load_args,
                                           const std::string& cpus, const std::string& work_dir);

// Pins the calling process (and every thread it creates afterwards) to `cpus`.
absl::Status PinProcess(const std::string& cpus);

}  // namespace llama::cli
