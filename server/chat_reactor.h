// ChatReactor: one Chat stream (callback API). It validates the request, submits it to the engine loop and writes
// what the engine sends back.
//
// Threading: the engine thread calls the sink (OnTokens / OnFinish). The sink only appends to this reactor's
// queue under mu_ and, when no write is in flight, starts the next one (StartWrite and Finish never block), so the
// engine thread never waits on the network. gRPC threads run OnWriteDone / OnCancel / OnDone.
//
// Invariants: at most one write in flight; text queued while a write is in flight is coalesced into the next Delta;
// Final is written only after every Delta; exactly one Finish, and only after the engine's OnFinish when the
// request was admitted (so the sink never outlives the reactor's use of it); OnCancel cancels in the engine
// (DEADLINE_EXCEEDED when the deadline passed, CANCELLED otherwise); OnDone deletes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/text/tokenizer.h"
#include "grpcpp/grpcpp.h"
#include "llamachat/v1/chat.pb.h"
#include "scheduler/engine_loop.h"
#include "server/metrics.h"
#include "server/request_validation.h"
#include "server/reward_scoring.h"
#include "server/serving_state.h"

namespace llama::server {

// What every Chat stream shares; owned by the server, outlives all reactors.
struct ChatDeps {
  EngineLoop* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  ServerMetrics* metrics = nullptr;
  ServingState* serving = nullptr;
  ValidationLimits limits;
  RewardScoring* rewards = nullptr;  // the co-hosted reward models (Score RPC); null when none is loaded
};

class ChatReactor : public grpc::ServerWriteReactor<llamachat::v1::ChatResponse> {
 public:
  // Runs admission, validation and Submit; on any refusal the stream is finished at once with that status.
  // request_id is the engine id (unique per server); fallback_seed is used when the request sets none.
  ChatReactor(const ChatDeps& deps, grpc::CallbackServerContext* context, const llamachat::v1::ChatRequest& request,
              uint64_t request_id, uint64_t fallback_seed);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  class Sink;
  // Engine thread (through Sink).
  void OnEngineTokens(absl::Span<const int32_t> token_ids, std::string_view text);
  void OnEngineFinish(const FinishInfo& info);

  // Refusal before admission to the engine.
  void FinishNow(const absl::Status& status);
  // Starts the next write or the Finish when nothing is in flight. Any thread; never called with mu_ held.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_);
  // Fills response_ with the next message; false when there is nothing to write.
  bool NextMessage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status FinalStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ChatDeps deps_;
  const uint64_t request_id_;
  std::string client_request_id_;
  int dropped_turns_ = 0;
  bool include_token_ids_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool admitted_ = false;   // counted by ServingState (Release in OnDone)
  bool submitted_ = false;  // the engine owns a sink and will call OnFinish exactly once
  absl::Time last_tokens_time_;  // engine thread only: previous token delivery, for inter-token latency

  absl::Mutex mu_;
  std::string pending_text_ ABSL_GUARDED_BY(mu_);
  std::vector<int32_t> pending_ids_ ABSL_GUARDED_BY(mu_);
  std::optional<FinishInfo> finish_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed or the call was cancelled
  bool final_written_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  // The message being written; only touched while no write is in flight.
  llamachat::v1::ChatResponse response_;
};

}  // namespace llama::server
