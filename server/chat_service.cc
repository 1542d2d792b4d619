#include "server/chat_service.h"

#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "server/request_parsing.h"
#include "server/status_mapping.h"

namespace llama::server {
namespace {

namespace v1 = ::llamachat::v1;

void FillShape(const ModelConfig& config, int context_length, v1::ModelShape* shape) {
  shape->set_num_layers(config.num_hidden_layers);
  shape->set_num_attention_heads(config.num_attention_heads);
  shape->set_num_key_value_heads(config.num_key_value_heads);
  shape->set_hidden_size(config.hidden_size);
  shape->set_intermediate_size(config.intermediate_size);
  shape->set_vocab_size(config.vocab_size);
  shape->set_context_length(context_length);
  shape->set_head_dim(config.head_dim());
  shape->set_rope_theta(config.rope_theta);
  shape->set_rope_scaling_factor(config.rope_scaling_factor);
}

// The index gRPC's generated code gives `method`: its position in the service's descriptor.
int MethodIndex(const char* method) {
  const google::protobuf::ServiceDescriptor* service =
      v1::ChatRequest::descriptor()->file()->FindServiceByName("ChatService");
  return service->FindMethodByName(method)->index();
}

// A raw handler runs even when the call ended before its request message arrived (a client cancel in flight), with
// no bytes at all. The generated handlers never ran for such a call, and neither is it counted or logged now.
template <typename Reactor>
Reactor* NoRequestMessage() {
  return new grpc::internal::FinishOnlyReactor<Reactor>(
      grpc::Status(grpc::StatusCode::CANCELLED, "the call ended before its request message arrived"));
}

}  // namespace

ChatServiceImpl::ChatServiceImpl(ChatDeps deps, ServiceInfo info) : deps_(std::move(deps)), info_(std::move(info)) {
  RegisterRawChat();
  RegisterRawUnary("Tokenize", &ChatServiceImpl::Tokenize);
  RegisterRawUnary("Score", &ChatServiceImpl::Score);
}

void ChatServiceImpl::RegisterRawChat() {
  MarkMethodRawCallback(
      MethodIndex("Chat"),
      new grpc::internal::CallbackServerStreamingHandler<grpc::ByteBuffer, v1::ChatResponse>(
          [this](grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes) {
            return ChatFromBytes(context, *bytes);
          }));
}

template <typename Request, typename Response>
void ChatServiceImpl::RegisterRawUnary(
    const char* method,
    grpc::ServerUnaryReactor* (ChatServiceImpl::*handler)(grpc::CallbackServerContext*, const Request*, Response*)) {
  MarkMethodRawCallback(
      MethodIndex(method),
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, Response>(
          [this, handler](grpc::CallbackServerContext* context, const grpc::ByteBuffer* bytes,
                          Response* response) -> grpc::ServerUnaryReactor* {
            if (!bytes->Valid()) return NoRequestMessage<grpc::ServerUnaryReactor>();
            Request request;
            if (absl::Status parsed = ParseRequest(*bytes, &request); !parsed.ok()) {
              grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
              reactor->Finish(ToGrpcStatus(parsed));
              return reactor;
            }
            // Tokenize and Score read the request only before they return (Score tokenizes it first).
            return (this->*handler)(context, &request, response);
          }));
}

grpc::ServerWriteReactor<v1::ChatResponse>* ChatServiceImpl::ChatFromBytes(grpc::CallbackServerContext* context,
                                                                           const grpc::ByteBuffer& bytes) {
  if (!bytes.Valid()) return NoRequestMessage<grpc::ServerWriteReactor<v1::ChatResponse>>();
  v1::ChatRequest request;
  const absl::Status parsed = ParseRequest(bytes, &request);
  // A request that does not parse still goes through the reactor: it is counted and logged like any refusal.
  return new ChatReactor(deps_, context, request, parsed, next_request_id_.fetch_add(1), NextSeed());
}

uint64_t ChatServiceImpl::NextSeed() {
  absl::MutexLock lock(&seed_mu_);
  return absl::Uniform<uint64_t>(seed_gen_);
}

grpc::ServerWriteReactor<v1::ChatResponse>* ChatServiceImpl::Chat(grpc::CallbackServerContext* context,
                                                                  const v1::ChatRequest* request) {
  return new ChatReactor(deps_, context, *request, absl::OkStatus(), next_request_id_.fetch_add(1), NextSeed());
}

grpc::ServerUnaryReactor* ChatServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                    const v1::TokenizeRequest* request,
                                                    v1::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // The same checks and truncation as Chat, so the ids are exactly the ones Chat would feed the model.
  absl::StatusOr<std::vector<Message>> dialog = ValidateMessages(request->messages(), deps_.limits);
  if (!dialog.ok()) {
    reactor->Finish(ToGrpcStatus(dialog.status()));
    return reactor;
  }
  absl::StatusOr<ChatPrompt> prompt = BuildServingPrompt(*deps_.tokenizer, *dialog, deps_.limits);
  if (!prompt.ok()) {
    reactor->Finish(ToGrpcStatus(prompt.status()));
    return reactor;
  }
  response->mutable_token_ids()->Assign(prompt->token_ids.begin(), prompt->token_ids.end());
  response->set_dropped_turns(prompt->dropped_turns);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ChatServiceImpl::GetModelInfo(grpc::CallbackServerContext* context,
                                                        const v1::GetModelInfoRequest* /*request*/,
                                                        v1::GetModelInfoResponse* response) {
  response->set_model_dir(info_.model_dir);
  response->set_backend(info_.backend);
  response->set_weights_dtype(info_.weights_dtype);
  response->set_weight_bytes(info_.weight_bytes);
  FillShape(deps_.engine->model_config(), deps_.limits.context_length, response->mutable_model());
  const KvCacheSpec& kv = deps_.engine->kv_cache();
  v1::KvCacheInfo* kv_info = response->mutable_kv_cache();
  kv_info->set_block_size(kv.block_size);
  kv_info->set_num_blocks(kv.num_blocks);
  kv_info->set_bytes_per_token(kv.bytes_per_token());
  kv_info->set_total_bytes(kv.total_bytes());
  kv_info->set_dtype_bytes(kv.dtype_bytes);
  kv_info->set_prefix_caching(deps_.engine->prefix_caching());
  v1::Limits* limits = response->mutable_limits();
  limits->set_max_tokens(deps_.limits.context_length);
  limits->set_default_max_tokens(deps_.limits.default_max_tokens);
  limits->set_max_candidates(deps_.limits.max_candidates);
  limits->set_max_queue(info_.max_queue);
  limits->set_max_num_seqs(info_.max_num_seqs);
  limits->set_max_num_batched_tokens(info_.max_num_batched_tokens);
  limits->set_max_stop_strings(deps_.limits.max_stop_strings);
  limits->set_max_message_bytes(deps_.limits.max_message_bytes);
  if (deps_.rewards != nullptr) {
    for (const RewardModelDescription& rm : deps_.rewards->models()) {
      v1::RewardModelInfo* info = response->add_reward_models();
      info->set_kind(rm.kind);
      info->set_model_dir(rm.model_dir);
      FillShape(rm.config, rm.config.max_position_embeddings, info->mutable_shape());
      info->set_weights_dtype(rm.weights_dtype);
      info->set_weight_bytes(rm.weight_bytes);
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// Scoring is prefill-only work of the engine loop's reward steps (EngineLoop::SubmitScore), batched with the
// candidates' scoring; the gRPC thread only validates and tokenizes, and the engine thread finishes the call.
namespace {

// One Score call between the engine loop's result and its Finish on the stream writer's thread; deletes itself.
struct ScoreCall final : StreamWriter::Stream {
  ScoreCall(grpc::ServerUnaryReactor* r, v1::ScoreResponse* out) : reactor(r), response(out) {}
  void OnWriterTurn() override {
    if (result.ok()) {
      response->set_safety_score(result->at(0));
      response->set_helpfulness_score(result->size() > 1 ? result->at(1) : -1.0f);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(ToGrpcStatus(result.status()));
    }
    delete this;
  }
  grpc::ServerUnaryReactor* reactor;
  v1::ScoreResponse* response;
  absl::StatusOr<std::vector<float>> result = absl::UnknownError("not scored");
};

}  // namespace

grpc::ServerUnaryReactor* ChatServiceImpl::Score(grpc::CallbackServerContext* context,
                                                 const v1::ScoreRequest* request, v1::ScoreResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (deps_.rewards == nullptr) {
    reactor->Finish(ToGrpcStatus(absl::UnimplementedError("no reward model loaded (--safety_model_dir)")));
    return reactor;
  }
  absl::StatusOr<std::vector<Message>> dialog = ValidateMessages(request->messages(), deps_.limits);
  if (!dialog.ok()) {
    reactor->Finish(ToGrpcStatus(dialog.status()));
    return reactor;
  }
  absl::StatusOr<std::vector<std::vector<int32_t>>> inputs = deps_.rewards->ScoreInputs(*dialog, request->response());
  if (!inputs.ok()) {
    reactor->Finish(ToGrpcStatus(inputs.status()));
    return reactor;
  }
  ScoreJob job;
  job.inputs = *std::move(inputs);
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    job.deadline = absl::FromChrono(context->deadline());
  }
  // The engine thread never calls into gRPC: its callback hands the result to the stream writer's thread, which
  // finishes the call (the response and the reactor live until Finish).
  auto* call = new ScoreCall(reactor, response);
  StreamWriter* writer = deps_.writer;
  job.done = [call, writer](absl::StatusOr<std::vector<float>> scores) {
    call->result = std::move(scores);
    writer->Schedule(call, /*wake_now=*/true);
  };
  if (absl::Status status = deps_.engine->SubmitScore(std::move(job)); !status.ok()) {
    delete call;
    reactor->Finish(ToGrpcStatus(status));
  }
  return reactor;
}

}  // namespace llama::server
