// ChatReactor: one Chat stream (callback API). It validates the request, submits it to the engine loop and writes
// what the engine sends back.
//
// Threading: the engine thread calls the sink (OnTokens / OnFinish). The sink only appends to this reactor's
// buffers under mu_ and, when the stream is idle (no write in flight), queues it on the StreamWriter, whose thread
// starts the write (or the Finish): the engine thread never calls into gRPC and allocates nothing per token here.
// gRPC threads run OnWriteDone (which writes what accumulated meanwhile at once), OnCancel and OnDone.
//
// Invariants: at most one write in flight; text queued while the stream waits for the writer or has a write in
// flight is coalesced into the next Delta; Final is written only after every Delta, together with the OK status
// (StartWriteAndFinish); exactly one Finish, and only after the engine's OnFinish when the request was admitted (so
// the sink never outlives the reactor's use of it); while the stream is queued on the writer only the writer may
// finish it (so the writer never holds a deleted reactor); OnCancel cancels in the engine (DEADLINE_EXCEEDED when
// the deadline passed, CANCELLED otherwise); OnDone deletes. A client that stops reading holds at most one message
// in flight plus max_pending_bytes of text: beyond that the stream is dropped (the engine frees the sequence at
// once; the client, if it ever reads again, gets what was in flight and RESOURCE_EXHAUSTED "client not reading").
// A write in flight longer than the writer's stall timeout (--stream_stall_timeout_s) ends the call whatever the
// byte count: the engine is told to stop (RESOURCE_EXHAUSTED "client not reading", the call's recorded outcome) and
// the call is cancelled (TryCancel: the client gets CANCELLED, as no status can pass a full window).
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
#include "server/request_log.h"
#include "server/request_validation.h"
#include "server/reward_scoring.h"
#include "server/serving_state.h"
#include "server/stream_writer.h"

namespace llama::server {

// What every Chat stream shares; owned by the server, outlives all reactors.
struct ChatDeps {
  EngineLoop* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  ServerMetrics* metrics = nullptr;
  ServingState* serving = nullptr;
  ValidationLimits limits;
  RewardScoring* rewards = nullptr;  // the co-hosted reward models (Score RPC); null when none is loaded
  StreamWriter* writer = nullptr;    // starts the writes of idle streams
  // Bytes waiting behind a write that does not complete (a client not reading) beyond which the stream is dropped
  // with RESOURCE_EXHAUSTED "client not reading"; 0: no limit.
  int max_pending_bytes = 0;
  RequestLog* log = nullptr;         // one line per call; null: none
  int debug_leak_bytes_per_request = 0;  // testing only (ChatServerOptions): leaked per call
};

class ChatReactor : public grpc::ServerWriteReactor<llamachat::v1::ChatResponse>, private StreamWriter::Stream {
 public:
  // Runs admission, validation and Submit; on any refusal the stream is finished at once with that status.
  // parsed: how parsing the request went (request_parsing.h); not OK is a refusal after admission. request_id is
  // the engine id (unique per server); fallback_seed is used when the request sets none.
  ChatReactor(const ChatDeps& deps, grpc::CallbackServerContext* context, const llamachat::v1::ChatRequest& request,
              const absl::Status& parsed, uint64_t request_id, uint64_t fallback_seed);

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
  // The call's one outcome: the metrics' count and the request log's line. info: the engine's, null when refused.
  void RecordOutcome(const grpc::Status& status, const FinishInfo* info);
  // Engine thread: queue this stream on the writer unless it has a write in flight or is queued already.
  void ScheduleWrite(bool wake_now) ABSL_LOCKS_EXCLUDED(mu_);
  // The writer thread's turn (StreamWriter::Stream).
  void OnWriterTurn() override ABSL_LOCKS_EXCLUDED(mu_);
  // The writer thread: a write has been in flight longer than the stall timeout.
  void OnWriteStalled() override ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the next write or the Finish when nothing is in flight. from_writer: the writer's turn (it clears
  // scheduled_); otherwise a queued stream is left to the writer. Never called with mu_ held.
  void Pump(bool from_writer) ABSL_LOCKS_EXCLUDED(mu_);
  // Fills response_ with the next message to write, if any.
  enum class Next { kNothing, kDelta, kFinal };
  Next NextMessage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  grpc::Status FinalStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ChatDeps deps_;
  const uint64_t request_id_;
  grpc::CallbackServerContext* const context_;
  std::string client_request_id_;
  std::string peer_;
  int dropped_turns_ = 0;
  bool include_token_ids_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool admitted_ = false;   // counted by ServingState (Release in OnDone)
  bool submitted_ = false;  // the engine owns a sink and will call OnFinish exactly once
  absl::Time last_tokens_time_;  // engine thread only: previous token delivery, for inter-token latency

  absl::Mutex mu_;
  // Swapped with the Delta's fields at each write, so both buffers keep their capacity: no allocation per token.
  std::string pending_text_ ABSL_GUARDED_BY(mu_);
  google::protobuf::RepeatedField<int32_t> pending_ids_ ABSL_GUARDED_BY(mu_);
  std::optional<FinishInfo> finish_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;  // queued on the writer, its turn not yet run
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed or the call was cancelled
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;  // over max_pending_bytes: text discarded, the engine told to stop
  bool final_written_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status stall_status_ ABSL_GUARDED_BY(mu_);  // set when a write stalled: the call's outcome
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  // The message being written; only touched while no write is in flight.
  llamachat::v1::ChatResponse response_;
};

}  // namespace llama::server
