// llama-chat-server: parses flags into ChatServerOptions, starts, warms up, waits for SIGTERM/SIGINT, drains.
#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/chat_server.h"

// Every default is ChatServerOptions' (which takes the engine's): written once, there.
using Options = llama::server::ChatServerOptions;

ABSL_FLAG(std::string, model, Options().model_path,
          "the model: a Hugging Face Llama model directory (config.json, model.safetensors, tokenizer.model) or a "
          "GGUF file (its own vocab, or a tokenizer.model beside it)");
ABSL_FLAG(std::string, model_dir, "", "the older spelling of --model");
ABSL_FLAG(int, port, Options().port, "gRPC port (0: any free port)");
ABSL_FLAG(int, metrics_port, Options().metrics_port, "Prometheus /metrics port (0: any free port, -1: off)");
ABSL_FLAG(std::string, backend, Options().backend, "cpu or cuda");
ABSL_FLAG(int, threads, Options().num_threads, "CPU backend threads (0: all cores)");
ABSL_FLAG(std::string, weights_dtype, llama::WeightsDtypeName(Options().weights_dtype),
          "CPU backend weight storage: f32, bf16 or q8_0");
ABSL_FLAG(std::string, dummy_weights, Options().dummy_weights,
          "CPU backend on dummy weights of a named shape (llama-2-7b, llama-2-13b, tinyllama-1.1b, stories15M, tiny); "
          "--model then only gives the tokenizer");
ABSL_FLAG(int, max_queue, Options().max_queue, "queued requests beyond which Chat answers RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_num_seqs, Options().max_num_seqs, "sequences in one engine step at most");
ABSL_FLAG(int, max_num_batched_tokens, Options().max_num_batched_tokens, "tokens in one engine step at most");
ABSL_FLAG(std::string, kv_dtype, Options().kv_dtype,
          "CPU backend KV cache element type: f32, f16 or bf16 (half types: half the bytes per token, twice the "
          "blocks for the same memory; the policy's and the reward models')");
ABSL_FLAG(int, num_kv_blocks, Options().num_kv_blocks, "KV cache blocks (0: sized by the backend)");
ABSL_FLAG(int, max_candidates, Options().max_candidates, "num_candidates cap per request");
ABSL_FLAG(bool, enable_prefix_caching, Options().enable_prefix_caching,
          "keep full KV blocks after a request and reuse them for later ones with the same prefix (policy and "
          "reward models)");
ABSL_FLAG(int, default_candidates, Options().default_candidates,
          "num_candidates when a request sets none (> 1 needs --safety_model_dir)");
ABSL_FLAG(int, segment_tokens, Options().segment_tokens,
          "scored streaming: generate, score and stream the answer segment_tokens tokens at a time (a request's "
          "segment_tokens overrides it); 0 = whole-answer mode (nothing streams until the answer is scored)");
ABSL_FLAG(std::string, safety_model_dir, Options().safety_model_dir,
          "safety reward model (LlamaForSequenceClassification) scoring every answer before it is streamed");
ABSL_FLAG(std::string, helpfulness_model_dir, Options().helpfulness_model_dir,
          "optional helpfulness reward model (needs --safety_model_dir)");
ABSL_FLAG(std::string, reward_weights_dtype, Options().reward_weights_dtype,
          "CPU backend weight storage of the reward models: f32, bf16 or q8_0 (empty: --weights_dtype)");
ABSL_FLAG(float, safety_threshold, Options().safety_threshold,
          "safety score below which a candidate is rejected (Llama 2: 0.15)");
ABSL_FLAG(std::string, refusal_text, Options().refusal_text,
          "the answer when no candidate passes the safety threshold (finish reason SAFETY)");
ABSL_FLAG(int, default_max_tokens, Options().default_max_tokens,
          "max_tokens when a request sets none (clamped to the context)");
ABSL_FLAG(double, drain_timeout, 30, "seconds streams in flight get to finish after SIGTERM");
ABSL_FLAG(bool, reflection, Options().reflection, "serve gRPC server reflection");
ABSL_FLAG(int, max_concurrent_streams, Options().max_concurrent_streams,
          "Chat streams live at once beyond which a new one gets RESOURCE_EXHAUSTED (0: no cap)");
ABSL_FLAG(int, max_message_bytes, Options().max_grpc_message_bytes,
          "largest request message in bytes; gRPC refuses a bigger one with RESOURCE_EXHAUSTED before parsing it");
ABSL_FLAG(int, max_stream_pending_bytes, Options().max_stream_pending_bytes,
          "text bytes waiting for a client that is not reading beyond which its stream is dropped "
          "(RESOURCE_EXHAUSTED \"client not reading\"; the engine frees the sequence)");
ABSL_FLAG(int, stream_stall_timeout_s, Options().stream_stall_timeout_s,
          "seconds a Chat write may stay outstanding (a client that stopped reading) before the call is cancelled "
          "and the engine frees the sequence (0: no time bound)");
ABSL_FLAG(std::string, request_log, Options().request_log,
          "one JSON line per Chat call (request id, status, tokens, times): - for stderr, empty for none, or a file");
ABSL_FLAG(int, debug_leak_bytes_per_request, 0,
          "TESTING ONLY: leak this many bytes per Chat call (proves the soak's memory check catches a leak)");
ABSL_FLAG(int, keepalive_time_s, Options().keepalive_time_s,
          "HTTP/2 keepalive: ping a connection after this many idle seconds (0: no pings)");
ABSL_FLAG(int, keepalive_timeout_s, Options().keepalive_timeout_s,
          "close a connection (cancelling its streams) whose keepalive ping is unanswered this many seconds");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("llama-chat-server --model DIR|FILE.gguf [--port 50051] [--metrics_port 9400] [...]");
  absl::ParseCommandLine(argc, argv);
  // SIGTERM/SIGINT are blocked in every thread (they inherit this mask) and taken by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Options options;
  options.model_path = absl::GetFlag(FLAGS_model);
  if (const std::string old = absl::GetFlag(FLAGS_model_dir); !old.empty()) {
    if (!options.model_path.empty() && options.model_path != old) {
      std::fprintf(stderr, "llama-chat-server: --model and --model_dir name different models\n");
      return 2;
    }
    options.model_path = old;
  }
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.backend = absl::GetFlag(FLAGS_backend);
  options.num_threads = absl::GetFlag(FLAGS_threads);
  absl::StatusOr<llama::WeightsDtype> weights_dtype = llama::ParseWeightsDtype(absl::GetFlag(FLAGS_weights_dtype));
  if (!weights_dtype.ok()) {
    std::fprintf(stderr, "llama-chat-server: %s\n", std::string(weights_dtype.status().message()).c_str());
    return 2;
  }
  options.weights_dtype = *weights_dtype;
  options.dummy_weights = absl::GetFlag(FLAGS_dummy_weights);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  options.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  options.num_kv_blocks = absl::GetFlag(FLAGS_num_kv_blocks);
  options.kv_dtype = absl::GetFlag(FLAGS_kv_dtype);
  options.max_candidates = absl::GetFlag(FLAGS_max_candidates);
  options.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  options.default_candidates = absl::GetFlag(FLAGS_default_candidates);
  options.segment_tokens = absl::GetFlag(FLAGS_segment_tokens);
  options.safety_model_dir = absl::GetFlag(FLAGS_safety_model_dir);
  options.helpfulness_model_dir = absl::GetFlag(FLAGS_helpfulness_model_dir);
  options.reward_weights_dtype = absl::GetFlag(FLAGS_reward_weights_dtype);
  options.safety_threshold = absl::GetFlag(FLAGS_safety_threshold);
  options.refusal_text = absl::GetFlag(FLAGS_refusal_text);
  options.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  options.reflection = absl::GetFlag(FLAGS_reflection);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.max_grpc_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_stream_pending_bytes = absl::GetFlag(FLAGS_max_stream_pending_bytes);
  options.stream_stall_timeout_s = absl::GetFlag(FLAGS_stream_stall_timeout_s);
  options.keepalive_time_s = absl::GetFlag(FLAGS_keepalive_time_s);
  options.keepalive_timeout_s = absl::GetFlag(FLAGS_keepalive_timeout_s);
  options.request_log = absl::GetFlag(FLAGS_request_log);
  options.debug_leak_bytes_per_request = absl::GetFlag(FLAGS_debug_leak_bytes_per_request);

  auto server = llama::server::ChatServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "llama-chat-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "llama-chat-server: gRPC on %s:%d, metrics on :%d/metrics; warming up\n",
               options.host.c_str(), (*server)->port(), (*server)->metrics_port());
  if (absl::Status warm = (*server)->Warmup(); !warm.ok()) {
    std::fprintf(stderr, "llama-chat-server: %s\n", warm.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "llama-chat-server: SERVING on port %d\n", (*server)->port());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  const absl::Duration drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_timeout));
  std::fprintf(stderr, "llama-chat-server: signal %d, draining %d stream(s) (timeout %s)\n", signal_number,
               (*server)->serving().active_streams(), absl::FormatDuration(drain_timeout).c_str());
  const bool clean = (*server)->Drain(drain_timeout);
  std::fprintf(stderr, "llama-chat-server: %s, exiting\n",
               clean ? "all streams finished" : "drain timeout: remaining streams cancelled");
  return 0;
}
