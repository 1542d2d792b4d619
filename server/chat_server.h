// ChatServer: everything one llama-chat-server process runs, assembled from plain options: the model (weights,
// tokenizer, backend), the engine loop, the gRPC server (ChatService, grpc.health.v1 (health_service.h), optional reflection) and the
// Prometheus endpoint. server_main.cc only parses flags into ChatServerOptions and calls Start / Warmup / Drain;
// the end-to-end tests run the same object in-process.
//
// Lifecycle: Start (listening, health NOT_SERVING, Chat → UNAVAILABLE) → Warmup (one forward through the engine
// loop; health SERVING) → Drain (health NOT_SERVING, Chat → UNAVAILABLE, streams in flight get drain_timeout to
// finish, then the gRPC server and the engine stop).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/text/tokenizer.h"
#include "grpcpp/grpcpp.h"
#include "scheduler/engine_loop.h"
#include "scheduler/scheduler_config.h"
#include "server/chat_service.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/request_validation.h"
#include "server/reward_scoring.h"
#include "server/serving_state.h"
#include "server/stream_writer.h"

namespace prometheus {
class Exposer;
}

namespace llama::server {

// Defaults are the engine's own (SchedulerConfig, EngineLoopOptions, CpuBackendOptions, RewardSelectorOptions);
// llama-chat-server's flags take theirs from here.
struct ChatServerOptions {
  std::string model_path;           // a model directory or a GGUF file (engine/model/model_source.h)
  std::string host = "0.0.0.0";
  int port = 50051;                 // 0: any free port (see ChatServer::port)
  int metrics_port = 9400;          // 0: any free port; -1: no metrics endpoint
  std::string backend = "cpu";      // "cpu" or "cuda"
  int num_threads = CpuBackendOptions{}.num_threads;  // CPU backend threads; 0: all cores
  WeightsDtype weights_dtype = CpuBackendOptions{}.weights_dtype;  // CPU backend weight storage
  // A named shape (engine/model/model_shapes.h): the policy runs on dummy weights of it (CPU backend); model_path
  // then only supplies the tokenizer (every named shape has LLaMA 2's 32000-token vocabulary).
  std::string dummy_weights;
  int num_kv_blocks = 0;            // 0: sized by the backend
  // The CPU backends' KV cache element type, f32, f16 or bf16 (--kv_dtype; engine/cpu/kv_dtype.h), the policy's and
  // the reward models': f16/bf16 halve the bytes per token, so the default pool holds twice the blocks. Ignored by
  // CUDA (bf16 KV).
  std::string kv_dtype = KvDtypeName(CpuBackendOptions{}.kv_dtype);
  // Waiting requests beyond which Chat answers RESOURCE_EXHAUSTED.
  int max_queue = EngineLoopOptions{}.max_queued_requests;
  int max_num_seqs = SchedulerConfig{}.max_num_seqs;
  int max_num_batched_tokens = SchedulerConfig{}.max_num_batched_tokens;
  int max_candidates = SchedulerConfig{}.max_num_candidates;
  // Keep and reuse full KV blocks across requests (the policy's and the reward models'): multi-turn chat and shared
  // system prompts are not recomputed.
  bool enable_prefix_caching = SchedulerConfig{}.enable_prefix_caching;
  // Co-hosted reward models (DESIGN §7); without a safety model every request is k = 1 and streamed unscored.
  std::string safety_model_dir;       // empty: no reward model
  std::string helpfulness_model_dir;  // optional second reward model
  // The reward models' CPU weight storage, f32, bf16 or q8_0 (--reward_weights_dtype); empty: weights_dtype's.
  std::string reward_weights_dtype;
  float safety_threshold = RewardSelectorOptions{}.safety_threshold;  // below it a candidate does not pass
  std::string refusal_text = RewardSelectorOptions{}.refusal_text;
  int default_candidates = 1;         // k when a request leaves num_candidates at 0
  // Scored streaming: segment length when a request leaves segment_tokens unset; 0 = whole-answer mode.
  int segment_tokens = 0;
  int default_max_tokens = ValidationLimits{}.default_max_tokens;  // clamped to the context length
  bool reflection = false;
  // Hostile and slow clients (docs/reliability.md, "Slow and hostile clients").
  // Chat streams live at once beyond which a new one is refused with RESOURCE_EXHAUSTED (0: no cap).
  int max_concurrent_streams = 1024;
  // The largest request gRPC accepts (bytes on the wire); a bigger one is refused with RESOURCE_EXHAUSTED by gRPC
  // before it is parsed. Not ValidationLimits::max_message_bytes, the bound on one chat message's content.
  int max_grpc_message_bytes = 4 << 20;
  // Text waiting for a stream whose client is not reading (a write in flight that does not complete) beyond which
  // the stream is dropped: the engine frees its sequence, the call ends RESOURCE_EXHAUSTED "client not reading".
  int max_stream_pending_bytes = 1 << 20;
  // A Chat write that has not completed after this many seconds (a client whose window is full and that reads
  // nothing, however few bytes pile up) ends the call: the engine frees the sequence and the call is cancelled.
  // 0: no time bound.
  int stream_stall_timeout_s = 60;
  // HTTP/2 keepalive: the server pings a connection idle this long and closes it (cancelling its streams) when the
  // ping is not answered within keepalive_timeout_s, so dead clients are reaped. 0 turns pings off.
  int keepalive_time_s = 60;
  int keepalive_timeout_s = 20;
  // One JSON line per Chat call (request_log.h): "-" stderr, "" none, otherwise a file appended to.
  std::string request_log = "-";
  // Testing only: every Chat call leaks one allocation of this many bytes (touched, so it is resident), so the soak's
  // RSS check can be shown to catch a leak (tests/server/soak.py --expect_leak). 0 in every real deployment.
  int debug_leak_bytes_per_request = 0;

  absl::Status Validate() const;
  // reward_weights_dtype parsed (INVALID_ARGUMENT naming --reward_weights_dtype), or weights_dtype when empty.
  absl::StatusOr<WeightsDtype> RewardWeightsDtype() const;
};

class ChatServer {
 public:
  static absl::StatusOr<std::unique_ptr<ChatServer>> Start(const ChatServerOptions& options);
  // The same on a backend the caller built (a test double, a benchmark's): options.model_path still names the
  // tokenizer (the tokenizer of the model path) and the reward models are loaded as usual; backend, num_threads and num_kv_blocks
  // are the given backend's.
  static absl::StatusOr<std::unique_ptr<ChatServer>> StartWithBackend(const ChatServerOptions& options,
                                                                      std::unique_ptr<Backend> backend);
  ~ChatServer();  // Drains with no grace period if Drain was not called

  // One forward pass through the engine loop (a one-token prompt, one generated token); then health is SERVING.
  absl::Status Warmup();
  // NOT_SERVING, new calls UNAVAILABLE, waits up to timeout for the live streams, then stops gRPC and the engine
  // (streams still live then end CANCELLED). Returns true when every stream finished within the timeout.
  bool Drain(absl::Duration timeout);

  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  EngineLoop& engine() { return *engine_; }
  ServerMetrics& metrics() { return *metrics_; }
  ServingState& serving() { return *serving_; }
  const ValidationLimits& limits() const { return limits_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  RewardScoring* rewards() { return rewards_.get(); }  // null without --safety_model_dir

 private:
  ChatServer() = default;
  absl::Status LoadModel(const ChatServerOptions& options, std::unique_ptr<Backend> backend);  // null: load one
  absl::Status LoadRewards(const ChatServerOptions& options);  // rewards_ from the safety/helpfulness options
  absl::Status StartGrpc(const ChatServerOptions& options);
  absl::Status StartMetrics(const ChatServerOptions& options);

  // Declaration order is teardown order reversed: the gRPC server goes before the engine it calls into.
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<RewardScoring> rewards_;  // before the engine that calls its selector
  std::unique_ptr<Backend> backend_;
  // Outlives every stream (gRPC's Wait in Drain needs it to finish them) and the engine loop that calls its OnStep.
  std::unique_ptr<StreamWriter> writer_;
  std::unique_ptr<EngineLoop> engine_;
  std::shared_ptr<ServerMetrics> metrics_;
  ValidationLimits limits_;
  std::FILE* request_log_file_ = nullptr;  // owned when it is not stderr
  std::unique_ptr<RequestLog> request_log_;  // outlives every reactor (declared before the gRPC server)
  std::unique_ptr<ChatServiceImpl> service_;
  std::unique_ptr<HealthService> health_;  // grpc.health.v1, driven by serving_
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<ServingState> serving_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  int metrics_port_ = -1;
  bool stopped_ = false;
};

}  // namespace llama::server
