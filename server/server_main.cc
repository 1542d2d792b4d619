// llama-chat-server: parses flags into ChatServerOptions, starts, warms up, waits for SIGTERM/SIGINT, drains.
#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/chat_server.h"

ABSL_FLAG(std::string, model_dir, "", "Hugging Face Llama model directory (config.json, model.safetensors, "
                                      "tokenizer.model)");
ABSL_FLAG(int, port, 50051, "gRPC port (0: any free port)");
ABSL_FLAG(int, metrics_port, 9400, "Prometheus /metrics port (0: any free port, -1: off)");
ABSL_FLAG(std::string, backend, "cpu", "cpu or cuda");
ABSL_FLAG(int, threads, 0, "CPU backend threads (0: all cores)");
ABSL_FLAG(int, max_queue, 256, "queued requests beyond which Chat answers RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_num_seqs, 64, "sequences in one engine step at most");
ABSL_FLAG(int, max_num_batched_tokens, 512, "tokens in one engine step at most");
ABSL_FLAG(int, num_kv_blocks, 0, "KV cache blocks (0: sized by the backend)");
ABSL_FLAG(int, max_candidates, 8, "num_candidates cap per request");
ABSL_FLAG(int, default_candidates, 1, "num_candidates when a request sets none (> 1 needs --safety_model_dir)");
ABSL_FLAG(std::string, safety_model_dir, "",
          "safety reward model (LlamaForSequenceClassification) scoring every answer before it is streamed");
ABSL_FLAG(std::string, helpfulness_model_dir, "", "optional helpfulness reward model (needs --safety_model_dir)");
ABSL_FLAG(double, safety_threshold, 0.15, "safety score below which a candidate is rejected (Llama 2: 0.15)");
ABSL_FLAG(std::string, refusal_text, "I'm sorry, but I can't help with that.",
          "the answer when no candidate passes the safety threshold (finish reason SAFETY)");
ABSL_FLAG(int, default_max_tokens, 256, "max_tokens when a request sets none (clamped to the context)");
ABSL_FLAG(double, drain_timeout, 30, "seconds streams in flight get to finish after SIGTERM");
ABSL_FLAG(bool, reflection, false, "serve gRPC server reflection");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("llama-chat-server --model_dir DIR [--port 50051] [--metrics_port 9400] [...]");
  absl::ParseCommandLine(argc, argv);
  // SIGTERM/SIGINT are blocked in every thread (they inherit this mask) and taken by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  llama::server::ChatServerOptions options;
  options.model_dir = absl::GetFlag(FLAGS_model_dir);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.backend = absl::GetFlag(FLAGS_backend);
  options.num_threads = absl::GetFlag(FLAGS_threads);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  options.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  options.num_kv_blocks = absl::GetFlag(FLAGS_num_kv_blocks);
  options.max_candidates = absl::GetFlag(FLAGS_max_candidates);
  options.default_candidates = absl::GetFlag(FLAGS_default_candidates);
  options.safety_model_dir = absl::GetFlag(FLAGS_safety_model_dir);
  options.helpfulness_model_dir = absl::GetFlag(FLAGS_helpfulness_model_dir);
  options.safety_threshold = static_cast<float>(absl::GetFlag(FLAGS_safety_threshold));
  options.refusal_text = absl::GetFlag(FLAGS_refusal_text);
  options.default_max_tokens = absl::GetFlag(FLAGS_default_max_tokens);
  options.reflection = absl::GetFlag(FLAGS_reflection);

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
