#include "server/chat_server.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda_plugin.h"
#include "engine/model/config.h"
#include "engine/model/dummy_weight_source.h"
#include "engine/model/model_source.h"
#include "engine/model/weights.h"
#include "engine/text/model_tokenizer.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "prometheus/exposer.h"

namespace llama::server {
namespace {

// The warm-up request's engine id; Chat ids count up from 1 and never reach it.
constexpr uint64_t kWarmupRequestId = std::numeric_limits<uint64_t>::max();

class WarmupSink : public RequestSink {
 public:
  void OnTokens(absl::Span<const int32_t>, std::string_view) override {}
  void OnFinish(const FinishInfo& info) override {
    status_ = info.status;
    done_.Notify();
  }
  absl::Status Wait() {
    done_.WaitForNotification();
    return status_;
  }

 private:
  absl::Notification done_;
  absl::Status status_;  // written before Notify, read after WaitForNotification
};

// The CPU backend reads the model panel by panel into its storage type; CUDA takes host fp32 weights.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const ChatServerOptions& options) {
  std::unique_ptr<WeightSource> source;
  if (!options.dummy_weights.empty()) {
    ASSIGN_OR_RETURN(source, DummyWeightSource::Create(options.dummy_weights, /*seed=*/1));
  } else {
    ASSIGN_OR_RETURN(source, OpenWeightSource(options.model_path));
  }
  if (options.backend == "cuda") {
    ASSIGN_OR_RETURN(const ModelWeights weights, MaterializeWeights(*source));
    cuda::CudaBackendOptions cuda_options;  // bf16 weights and KV, KV pool from free device memory
    cuda_options.num_blocks = options.num_kv_blocks;
    return CreateCudaBackendViaPlugin(weights, cuda_options);
  }
  CpuBackendOptions cpu;
  cpu.num_threads = options.num_threads;
  cpu.num_blocks = options.num_kv_blocks;
  ASSIGN_OR_RETURN(cpu.kv_dtype, ParseKvDtype(options.kv_dtype));
  cpu.weights_dtype = options.weights_dtype;
  ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(*source, cpu));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace

absl::Status ChatServerOptions::Validate() const {
  if (model_path.empty()) return absl::InvalidArgumentError("--model is required");
  if (port < 0 || port > 65535) return absl::InvalidArgumentError(absl::StrCat("--port out of range: ", port));
  if (metrics_port < -1 || metrics_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--metrics_port out of range: ", metrics_port));
  }
  if (backend != "cpu" && backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be cpu or cuda, got ", backend));
  }
  if (backend != "cpu" && (weights_dtype != WeightsDtype::kF32 || !dummy_weights.empty())) {
    return absl::InvalidArgumentError("--weights_dtype and --dummy_weights are CPU backend flags");
  }
  if (num_threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  if (num_kv_blocks < 0) return absl::InvalidArgumentError("--num_kv_blocks must be >= 0");
  ASSIGN_OR_RETURN(const KvDtype kv, ParseKvDtype(kv_dtype));
  if (backend != "cpu" && kv != KvDtype::kF32) {
    return absl::InvalidArgumentError("--kv_dtype is a CPU backend flag (the CUDA backend's KV cache is bf16)");
  }
  ASSIGN_OR_RETURN(const WeightsDtype reward_dtype, RewardWeightsDtype());
  if (backend != "cpu" && reward_dtype != WeightsDtype::kF32) {
    return absl::InvalidArgumentError("--reward_weights_dtype is a CPU backend flag");
  }
  if (max_queue < 1) return absl::InvalidArgumentError("--max_queue must be >= 1");
  if (max_candidates < 1) return absl::InvalidArgumentError("--max_candidates must be >= 1");
  if (default_max_tokens < 1) return absl::InvalidArgumentError("--default_max_tokens must be >= 1");
  if (max_concurrent_streams < 0) return absl::InvalidArgumentError("--max_concurrent_streams must be >= 0");
  if (max_grpc_message_bytes < 1) return absl::InvalidArgumentError("--max_message_bytes must be >= 1");
  if (debug_leak_bytes_per_request < 0) return absl::InvalidArgumentError("--debug_leak_bytes_per_request < 0");
  if (max_stream_pending_bytes < 1) return absl::InvalidArgumentError("--max_stream_pending_bytes must be >= 1");
  if (stream_stall_timeout_s < 0) return absl::InvalidArgumentError("--stream_stall_timeout_s must be >= 0");
  if (keepalive_time_s < 0 || keepalive_timeout_s < 1) {
    return absl::InvalidArgumentError("--keepalive_time_s must be >= 0 and --keepalive_timeout_s >= 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<WeightsDtype> ChatServerOptions::RewardWeightsDtype() const {
  if (reward_weights_dtype.empty()) return weights_dtype;
  return ParseWeightsDtype(reward_weights_dtype, "--reward_weights_dtype");
}

absl::StatusOr<std::unique_ptr<ChatServer>> ChatServer::Start(const ChatServerOptions& options) {
  return StartWithBackend(options, nullptr);
}

absl::StatusOr<std::unique_ptr<ChatServer>> ChatServer::StartWithBackend(const ChatServerOptions& options,
                                                                         std::unique_ptr<Backend> backend) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<ChatServer> server(new ChatServer());
  RETURN_IF_ERROR(server->LoadModel(options, std::move(backend)));
  RETURN_IF_ERROR(server->StartGrpc(options));
  RETURN_IF_ERROR(server->StartMetrics(options));
  return server;
}

absl::Status ChatServer::LoadModel(const ChatServerOptions& options, std::unique_ptr<Backend> backend) {
  ASSIGN_OR_RETURN(tokenizer_, LoadModelTokenizer(options.model_path));
  metrics_ = std::make_shared<ServerMetrics>();
  RETURN_IF_ERROR(LoadRewards(options));  // before the policy, whose KV pool may take the rest of the device
  if (backend != nullptr) {
    backend_ = std::move(backend);
  } else {
    ASSIGN_OR_RETURN(backend_, MakeBackend(options));
  }
  EngineLoopOptions engine_options;
  engine_options.max_queued_requests = options.max_queue;
  engine_options.scheduler.max_num_seqs = options.max_num_seqs;
  engine_options.scheduler.max_num_batched_tokens = options.max_num_batched_tokens;
  engine_options.scheduler.max_num_candidates = options.max_candidates;
  engine_options.scheduler.enable_prefix_caching = options.enable_prefix_caching;
  // Names the weights in the prefix-cache keys (scheduler/block_hash.h).
  engine_options.model_source =
      options.dummy_weights.empty() ? options.model_path : absl::StrCat("dummy:", options.dummy_weights, ":1");
  RETURN_IF_ERROR(engine_options.Validate());
  metrics_->SetKvCacheShape(backend_->kv_cache().bytes_per_token(), backend_->kv_cache().total_bytes());
  engine_ = std::make_unique<EngineLoop>(backend_.get(), tokenizer_.get(), engine_options);
  if (rewards_ != nullptr) engine_->SetCandidateSelector(rewards_->selector());
  engine_->AddObserver(metrics_.get());
  writer_ = std::make_unique<StreamWriter>(absl::Seconds(options.stream_stall_timeout_s));
  engine_->AddObserver(writer_.get());  // wakes the writer once per step
  EngineLoop* engine = engine_.get();
  metrics_->SetSnapshotSource([engine] { return engine->Snapshot(); });
  engine_->Start();

  const ModelConfig& config = backend_->config();
  limits_.context_length = engine_->max_model_len();  // what Submit accepts: clamped to the KV pool
  limits_.vocab_size = config.vocab_size;
  limits_.default_max_tokens = std::min(options.default_max_tokens, limits_.context_length);
  limits_.max_candidates = options.max_candidates;
  limits_.has_reward_model = rewards_ != nullptr;
  limits_.default_candidates = options.default_candidates;
  limits_.default_segment_tokens = options.segment_tokens;
  limits_ = WithTokenizerBounds(limits_, *tokenizer_);
  return limits_.Validate();
}

absl::Status ChatServer::LoadRewards(const ChatServerOptions& options) {
  if (options.safety_model_dir.empty()) {
    if (!options.helpfulness_model_dir.empty()) {
      return absl::InvalidArgumentError("--helpfulness_model_dir needs --safety_model_dir");
    }
    return absl::OkStatus();
  }
  RewardScoringOptions reward_options;
  reward_options.safety_model_dir = options.safety_model_dir;
  reward_options.helpfulness_model_dir = options.helpfulness_model_dir;
  reward_options.selector.safety_threshold = options.safety_threshold;
  reward_options.selector.refusal_text = options.refusal_text;
  reward_options.backend = options.backend;
  reward_options.num_threads = options.num_threads;
  ASSIGN_OR_RETURN(reward_options.weights_dtype, options.RewardWeightsDtype());
  ASSIGN_OR_RETURN(reward_options.kv_dtype, ParseKvDtype(options.kv_dtype));
  reward_options.max_candidates = options.max_candidates;
  ASSIGN_OR_RETURN(rewards_, RewardScoring::Load(reward_options, tokenizer_.get(), metrics_->registry()));
  return absl::OkStatus();
}

absl::Status ChatServer::StartGrpc(const ChatServerOptions& options) {
  // Our own grpc.health.v1 service (health_service.h) instead of gRPC's default one: its descriptor is in the pool
  // reflection reads, and it is NOT_SERVING from before the server is built (Chat refuses calls with UNAVAILABLE
  // until Warmup anyway).
  grpc::EnableDefaultHealthCheckService(false);
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ServiceInfo info;
  info.model_dir = options.model_path;
  info.backend = backend_->name();
  if (const auto* cpu = dynamic_cast<const CpuBackend*>(backend_.get()); cpu != nullptr) {
    info.weights_dtype = WeightsDtypeName(cpu->weights_dtype());
    info.weight_bytes = cpu->weight_bytes();
  }
  metrics_->SetWeightBytes("policy", info.weights_dtype, info.weight_bytes);
  if (rewards_ != nullptr) {
    for (const RewardModelDescription& rm : rewards_->models()) {
      metrics_->SetWeightBytes(rm.kind, rm.weights_dtype, rm.weight_bytes);
    }
  }
  info.max_queue = options.max_queue;
  info.max_num_seqs = options.max_num_seqs;
  info.max_num_batched_tokens = options.max_num_batched_tokens;
  health_ = std::make_unique<HealthService>(std::vector<std::string>{"", ServingState::kServiceName});
  serving_ = std::make_unique<ServingState>(options.max_concurrent_streams);
  serving_->AttachHealth(health_.get());
  if (options.request_log == "-") {
    request_log_file_ = stderr;
  } else if (!options.request_log.empty()) {
    request_log_file_ = std::fopen(options.request_log.c_str(), "a");
    if (request_log_file_ == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--request_log: cannot open ", options.request_log));
    }
  }
  request_log_ = std::make_unique<RequestLog>(request_log_file_);
  ChatDeps deps{engine_.get(), tokenizer_.get(), metrics_.get(), serving_.get(), limits_, rewards_.get(), writer_.get(),
                options.max_stream_pending_bytes, request_log_.get(), options.debug_leak_bytes_per_request};
  service_ = std::make_unique<ChatServiceImpl>(deps, info);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(options.max_grpc_message_bytes);  // gRPC refuses bigger ones before parsing
  if (options.keepalive_time_s > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_time_s * 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_timeout_s * 1000);
    // Idle connections too (a client that died between calls), and without waiting for data between pings.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port), grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(health_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  return absl::OkStatus();
}

absl::Status ChatServer::StartMetrics(const ChatServerOptions& options) {
  if (options.metrics_port < 0) return absl::OkStatus();
  const std::string address = absl::StrCat(options.host, ":", options.metrics_port);
  // civetweb reports a bind failure by throwing; this is the one place an exception is turned into a status.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  exposer_->RegisterCollectable(metrics_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  metrics_port_ = ports.empty() ? options.metrics_port : ports.front();
  return absl::OkStatus();
}

absl::Status ChatServer::Warmup() {
  GenerationRequest request;
  request.id = kWarmupRequestId;
  request.prompt_tokens = {tokenizer_->bos_id()};
  request.sampling.temperature = 0.0f;
  request.max_tokens = 1;
  auto sink = std::make_shared<WarmupSink>();
  RETURN_IF_ERROR(engine_->Submit(std::move(request), sink));
  absl::Status status = sink->Wait();
  if (!status.ok()) return absl::InternalError(absl::StrCat("warm-up forward failed: ", status.message()));
  if (rewards_ != nullptr) RETURN_IF_ERROR(rewards_->Warmup());
  serving_->MarkReady();
  return absl::OkStatus();
}

bool ChatServer::Drain(absl::Duration timeout) {
  if (stopped_) return true;
  stopped_ = true;
  serving_->StartDrain();
  const bool idle = serving_->WaitIdle(timeout);
  // Streams still live are cancelled now; each still gets its engine OnFinish and a Finish.
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc_server_->Wait();
  engine_->Stop();
  return idle;
}

ChatServer::~ChatServer() {
  if (grpc_server_ != nullptr) Drain(absl::ZeroDuration());
  grpc_server_.reset();  // every reactor (which writes the request log) is gone first
  if (request_log_file_ != nullptr && request_log_file_ != stderr) std::fclose(request_log_file_);
}

}  // namespace llama::server
