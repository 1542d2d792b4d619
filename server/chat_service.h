// ChatServiceImpl: the llamachat.v1.ChatService handlers. Chat hands each call to a ChatReactor; Tokenize,
// GetModelInfo and Score are unary and answered inline on the gRPC thread (they do no model compute).
//
// Chat, Tokenize and Score carry client text: they are registered with a raw request (grpc::ByteBuffer) that
// request_parsing.h parses, so invalid UTF-8 is INVALID_ARGUMENT naming the field instead of a failed parse. The
// typed overrides below are what the raw handlers call once the request is parsed.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/byte_buffer.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "server/chat_reactor.h"

namespace llama::server {

struct ServiceInfo {
  std::string model_dir;     // the --model path (a directory or a GGUF file), reported as ModelInfo.model_dir
  std::string backend;       // "cpu" or "cuda"
  std::string weights_dtype;  // the CPU backend's weight storage type (empty for other backends)
  int64_t weight_bytes = 0;   // bytes of the stored matrices (0: not known)
  int max_queue = 0;
  int max_num_seqs = 0;
  int max_num_batched_tokens = 0;
};

class ChatServiceImpl final : public llamachat::v1::ChatService::CallbackService {
 public:
  ChatServiceImpl(ChatDeps deps, ServiceInfo info);

  grpc::ServerWriteReactor<llamachat::v1::ChatResponse>* Chat(grpc::CallbackServerContext* context,
                                                               const llamachat::v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const llamachat::v1::TokenizeRequest* request,
                                     llamachat::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const llamachat::v1::GetModelInfoRequest* request,
                                         llamachat::v1::GetModelInfoResponse* response) override;
  // Scores (dialog, response) with the co-hosted reward models; UNIMPLEMENTED when none is loaded.
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* context, const llamachat::v1::ScoreRequest* request,
                                  llamachat::v1::ScoreResponse* response) override;

 private:
  uint64_t NextSeed();
  // Replaces the generated handler of `method` (whose request would be parsed by gRPC) by a raw one.
  void RegisterRawChat();
  // A unary method: the raw bytes are parsed (ParseRequest: invalid UTF-8 is INVALID_ARGUMENT naming the field),
  // then `handler` runs on the parsed request, which must use the request only before it returns.
  template <typename Request, typename Response>
  void RegisterRawUnary(const char* method,
                        grpc::ServerUnaryReactor* (ChatServiceImpl::*handler)(grpc::CallbackServerContext*,
                                                                             const Request*, Response*));
  grpc::ServerWriteReactor<llamachat::v1::ChatResponse>* ChatFromBytes(grpc::CallbackServerContext* context,
                                                                        const grpc::ByteBuffer& bytes);

  const ChatDeps deps_;
  const ServiceInfo info_;
  std::atomic<uint64_t> next_request_id_{1};
  absl::Mutex seed_mu_;
  absl::BitGen seed_gen_ ABSL_GUARDED_BY(seed_mu_);  // seeds for requests that set none
};

}  // namespace llama::server
