// LoadClient: drives many concurrent Chat streams against one server with gRPC's asynchronous (completion-queue)
// client API on a few threads: each client thread owns one CompletionQueue and runs the state machines (start →
// read … → finish) of every stream assigned to it, so a thousand streams in flight cost a thousand small objects,
// not a thousand threads. Streams go round-robin over the client threads and over `channels` HTTP/2 connections
// (separate subchannel pools, so separate TCP connections, as separate clients would have).
//
// One level at a time (RunLevel blocks): closed loop = `concurrency` streams in flight, each finished stream starts
// the next request on its thread; open loop = a dispatcher (the caller's thread) starts each request at its
// arrival time (arrivals.h), however many are in flight. A level stops issuing after num_requests or duration_s,
// then waits for the streams in flight. Every request ends as one RequestRecord: a failed call (refused, server
// down, deadline) is a record with its status code, never an error of the run.
//
// Threading: RunLevel and counters() from one controlling thread (counters() from any); records are written by
// the client threads under mu_.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "tools/load/prompt_set.h"

namespace llama::load {

// What one request did, as the client saw it. Times are seconds since the level started.
struct RequestRecord {
  int64_t index = 0;         // into the prompt set
  double scheduled_s = 0;    // when it was due (open loop); = start_s in the closed loop
  double start_s = 0;        // the call was started
  double ttft_s = -1;        // start → first Delta; -1 when none came
  double e2e_s = 0;          // start → Final (OK calls) or → the status (failed calls)
  std::vector<double> itl_s;  // gaps between consecutive Delta messages [num_deltas - 1]
  int num_deltas = 0;
  int prompt_tokens = 0;     // Final's usage
  int output_tokens = 0;
  int streamed_token_ids = 0;  // token ids in the Deltas (only with include_token_ids)
  int dropped_turns = 0;
  bool has_final = false;
  llamachat::v1::FinishReason finish_reason = llamachat::v1::FINISH_REASON_UNSPECIFIED;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string error;  // the status message of a failed call
  bool ok() const { return code == grpc::StatusCode::OK && has_final; }
};

struct LevelPlan {
  int concurrency = 1;      // closed loop: streams in flight
  double rate_per_s = 0;    // > 0: open loop at this mean arrival rate
  double burstiness = 1.0;  // open loop: gamma shape of the gaps
  uint64_t arrival_seed = 0;
  int num_requests = 0;     // 0: no count limit
  double duration_s = 0;    // 0: no time limit
  int64_t first_index = 0;  // prompt index of the level's first request (levels use disjoint slices)
  bool open_loop() const { return rate_per_s > 0; }
};

struct LevelRun {
  std::vector<RequestRecord> records;  // in completion order
  double wall_s = 0;                   // first start → last completion
  double client_cpu_s = 0;             // this process's user + system CPU over the level
};

class LoadClient {
 public:
  struct Counters {
    std::atomic<int64_t> issued{0};
    std::atomic<int64_t> done{0};
    std::atomic<int64_t> failed{0};
  };

  // Opens the channels and waits up to connect_timeout for them; a server that is down is not an error here
  // (connect_error() says so and every call will fail UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<LoadClient>> Create(const std::string& server, int client_threads,
                                                            int channels, double timeout_s,
                                                            std::chrono::milliseconds connect_timeout);
  ~LoadClient();  // shuts the completion queues down and joins the client threads
  LoadClient(const LoadClient&) = delete;
  LoadClient& operator=(const LoadClient&) = delete;

  LevelRun RunLevel(const LevelPlan& plan, const PromptSet& prompts);

  const std::string& connect_error() const { return connect_error_; }  // "" when every channel connected
  const Counters& counters() const { return counters_; }  // reset at each RunLevel
  llamachat::v1::ChatService::Stub& stub(int i) { return *stubs_.at(i); }

 private:
  class Call;
  using Clock = std::chrono::steady_clock;
  LoadClient() = default;

  // Starts request `index` on client thread `worker`. Any thread.
  void Issue(int worker, int64_t index, double scheduled_s);
  // A client thread: the call ended; records it and (closed loop) issues the next request on the same thread.
  void OnCallDone(int worker, RequestRecord record);
  // Closed loop: the next index to issue, or -1 when the level's limits say stop.
  int64_t NextClosedLoopIndex() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double SinceStart(Clock::time_point t) const;
  void RunOpenLoop(const LevelPlan& plan);

  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<llamachat::v1::ChatService::Stub>> stubs_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;  // [client_threads]
  std::vector<std::thread> threads_;                            // [client_threads]
  std::atomic<int64_t> next_channel_{0};
  double timeout_s_ = 0;
  std::string connect_error_;
  Counters counters_;

  // The running level; set by RunLevel before any call starts.
  const PromptSet* prompts_ = nullptr;
  LevelPlan plan_;
  Clock::time_point level_start_;

  absl::Mutex mu_;
  std::vector<RequestRecord> records_ ABSL_GUARDED_BY(mu_);
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t num_issued_ ABSL_GUARDED_BY(mu_) = 0;
  bool issuing_ ABSL_GUARDED_BY(mu_) = false;  // the level may still start requests
  Clock::time_point last_done_ ABSL_GUARDED_BY(mu_);
};

// This process's user + system CPU seconds so far.
double ProcessCpuSeconds();

}  // namespace llama::load
