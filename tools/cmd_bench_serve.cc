// llama-chat bench-serve: what the gRPC layer costs. One in-process llama-chat-server (ChatServer) on a loopback
// port; N concurrent streaming clients send the same N chat requests (distinct prompts and seeds, sampled) first
// straight into its engine loop (Submit + sinks, same process, same engine, same settings), then through gRPC,
// alternating for several rounds. Reports aggregate generated tokens/s of each path, the gRPC overhead, and
// client-side p50/p99 time to first token.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "server/chat_server.h"
#include "server/request_validation.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

namespace v1 = ::llamachat::v1;

struct RoundResult {
  double wall_s = 0;
  int64_t steps = 0;  // engine steps the round took
  double cpu_s = 0;   // process CPU time (user + system) the round took
  int64_t tokens = 0;
  std::vector<double> ttft_s;  // [num_clients] client-side
  double tokens_per_s() const { return wall_s > 0 ? tokens / wall_s : 0; }
};

v1::ChatRequest BenchRequest(int i, int max_tokens) {
  v1::ChatRequest request;
  v1::Message* m = request.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(absl::StrCat("Tell me story number ", i, " about a little bird and a big tree."));
  request.mutable_sampling()->set_temperature(0.8f);
  request.mutable_sampling()->set_seed(1000 + i);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  return request;
}

// Records the first-token time and the token count of one request fed straight into the engine loop.
class BenchSink : public RequestSink {
 public:
  explicit BenchSink(absl::Time start) : start_(start) {}
  void OnTokens(absl::Span<const int32_t> ids, std::string_view) override {
    if (tokens_ == 0 && !ids.empty()) ttft_s_ = absl::ToDoubleSeconds(absl::Now() - start_);
    tokens_ += static_cast<int64_t>(ids.size());
  }
  void OnFinish(const FinishInfo&) override { done_.Notify(); }
  void Wait() { done_.WaitForNotification(); }
  int64_t tokens() const { return tokens_; }
  double ttft_s() const { return ttft_s_; }

 private:
  const absl::Time start_;
  int64_t tokens_ = 0;   // engine thread until done_
  double ttft_s_ = 0;
  absl::Notification done_;
};

absl::StatusOr<RoundResult> RunDirect(server::ChatServer& server, int num_clients, int max_tokens, uint64_t* next_id) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < num_clients; ++i) {
    ASSIGN_OR_RETURN(server::PreparedChat prepared,
                     server::PrepareChatRequest(BenchRequest(i, max_tokens), server.limits(), server.tokenizer(), 0));
    prepared.request.id = (*next_id)++;
    requests.push_back(std::move(prepared.request));
  }
  RoundResult result;
  std::vector<std::shared_ptr<BenchSink>> sinks;
  const absl::Time start = absl::Now();
  for (GenerationRequest& request : requests) {
    request.arrival = absl::Now();
    sinks.push_back(std::make_shared<BenchSink>(request.arrival));
    RETURN_IF_ERROR(server.engine().Submit(std::move(request), sinks.back()));
  }
  for (auto& sink : sinks) sink->Wait();
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& sink : sinks) {
    result.tokens += sink->tokens();
    result.ttft_s.push_back(sink->ttft_s());
  }
  return result;
}

absl::StatusOr<RoundResult> RunGrpc(int port, int num_clients, int max_tokens) {
  RoundResult result;
  result.ttft_s.assign(num_clients, 0);
  std::vector<int64_t> tokens(num_clients, 0);
  std::vector<grpc::Status> statuses(num_clients);
  // One channel per client, as separate client processes would have.
  std::vector<std::unique_ptr<v1::ChatService::Stub>> stubs;
  for (int i = 0; i < num_clients; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::ChatService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args)));
  }
  absl::Barrier* barrier = new absl::Barrier(num_clients + 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < num_clients; ++i) {
    threads.emplace_back([&, i] {
      const v1::ChatRequest request = BenchRequest(i, max_tokens);
      if (barrier->Block()) delete barrier;
      grpc::ClientContext context;
      const absl::Time start = absl::Now();
      auto reader = stubs[i]->Chat(&context, request);
      v1::ChatResponse response;
      bool first = true;
      while (reader->Read(&response)) {
        if (response.has_delta() && first) {
          result.ttft_s[i] = absl::ToDoubleSeconds(absl::Now() - start);  // client side, network included
          first = false;
        }
        if (response.has_final()) tokens[i] = response.final().usage().completion_tokens();
      }
      statuses[i] = reader->Finish();
    });
  }
  const absl::Time start = absl::Now();
  if (barrier->Block()) delete barrier;
  for (std::thread& t : threads) t.join();
  result.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  for (int i = 0; i < num_clients; ++i) {
    if (!statuses[i].ok()) return absl::InternalError(absl::StrCat("client ", i, ": ", statuses[i].error_message()));
    result.tokens += tokens[i];
  }
  return result;
}

double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * (values.size() - 1) + 0.5));
  return values[index];
}

struct BenchServeArgs {
  int clients = 32;
  int max_tokens = 64;
  int rounds = 3;
  server::ChatServerOptions server;  // its defaults; the loopback, port and queue settings are set below
};

absl::Status BenchServe(const BenchServeArgs& args) {
  const int num_clients = args.clients, max_tokens = args.max_tokens, rounds = args.rounds;
  server::ChatServerOptions options = args.server;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  options.max_num_seqs = std::max(num_clients, 1);
  options.max_queue = std::max(num_clients, 1);
  ASSIGN_OR_RETURN(std::unique_ptr<server::ChatServer> server, server::ChatServer::Start(options));
  RETURN_IF_ERROR(server->Warmup());
  std::printf("bench-serve: %d clients × %d tokens (sampled, seeds 1000..), %d rounds, %s, max_num_seqs %d\n",
              num_clients, max_tokens, rounds, options.model_path.c_str(), options.max_num_seqs);
  std::printf("%-6s %-6s %8s %7s %8s %8s %10s %12s %12s\n", "round", "path", "tokens", "steps", "wall_s", "cpu_s",
              "tokens/s",
              "ttft_p50_ms", "ttft_p99_ms");
  uint64_t next_id = uint64_t{1} << 40;  // far from the service's own ids
  std::vector<double> direct_tps, grpc_tps, direct_ttft, grpc_ttft, direct_cpu, grpc_cpu;
  for (int round = 0; round < rounds; ++round) {
    // The order alternates between rounds so neither path always runs on a warmer machine.
    const std::vector<const char*> order =
        round % 2 == 0 ? std::vector<const char*>{"direct", "grpc"} : std::vector<const char*>{"grpc", "direct"};
    for (const char* path : order) {
      const bool direct = std::string(path) == "direct";
      const int64_t steps_before = server->engine().Snapshot().num_steps;
      const double cpu_before = ProcessCpuSeconds();
      ASSIGN_OR_RETURN(RoundResult r, direct ? RunDirect(*server, num_clients, max_tokens, &next_id)
                                             : RunGrpc(server->port(), num_clients, max_tokens));
      r.steps = server->engine().Snapshot().num_steps - steps_before;
      r.cpu_s = ProcessCpuSeconds() - cpu_before;
      std::printf("%-6d %-6s %8lld %7lld %8.2f %8.2f %10.1f %12.1f %12.1f\n", round, path,
                  static_cast<long long>(r.tokens), static_cast<long long>(r.steps), r.wall_s, r.cpu_s, r.tokens_per_s(), 1e3 * Percentile(r.ttft_s, 0.5), 1e3 * Percentile(r.ttft_s, 0.99));
      std::fflush(stdout);
      (direct ? direct_tps : grpc_tps).push_back(r.tokens_per_s());
      (direct ? direct_cpu : grpc_cpu).push_back(r.tokens > 0 ? 1e3 * r.cpu_s / r.tokens : 0);
      auto& ttft = direct ? direct_ttft : grpc_ttft;
      ttft.insert(ttft.end(), r.ttft_s.begin(), r.ttft_s.end());
    }
  }
  const double direct_median = Percentile(direct_tps, 0.5), grpc_median = Percentile(grpc_tps, 0.5);
  std::printf("\nmedian tokens/s: direct %.1f, grpc %.1f → gRPC overhead %.1f%%\n", direct_median, grpc_median,
              100.0 * (1.0 - grpc_median / direct_median));
  // On a shared machine wall time mostly measures how much CPU the OS gave us; CPU time per token is the cost.
  const double direct_cpu_ms = Percentile(direct_cpu, 0.5), grpc_cpu_ms = Percentile(grpc_cpu, 0.5);
  std::printf("median process CPU per generated token: direct %.2f ms, grpc %.2f ms → gRPC overhead %.1f%%\n",
              direct_cpu_ms, grpc_cpu_ms, 100.0 * (grpc_cpu_ms / direct_cpu_ms - 1.0));
  std::printf("time to first token over all rounds: direct p50 %.1f ms p99 %.1f ms; grpc p50 %.1f ms p99 %.1f ms\n",
              1e3 * Percentile(direct_ttft, 0.5), 1e3 * Percentile(direct_ttft, 0.99),
              1e3 * Percentile(grpc_ttft, 0.5), 1e3 * Percentile(grpc_ttft, 0.99));
  server->Drain(absl::Seconds(10));
  return absl::OkStatus();
}

int RunBenchServe(int argc, char** argv) {
  BenchServeArgs args;
  FlagSet flags("bench-serve", "--model PATH [flags]",
                "gRPC vs direct engine-loop throughput and time to first token with N concurrent streaming clients.");
  AddModelFlag(&flags, &args.server.model_path);
  flags.Add("clients", &args.clients, "concurrent streaming clients (= max_num_seqs and the queue size)");
  flags.Add("max_tokens", &args.max_tokens, "tokens per request");
  flags.Add("rounds", &args.rounds, "rounds of each path (the order alternates)");
  flags.Add("threads", &args.server.num_threads, "CPU backend threads (0: all cores)");
  flags.Add("max_num_batched_tokens", &args.server.max_num_batched_tokens, "tokens in one engine step at most");
  flags.Add("enable_prefix_caching", &args.server.enable_prefix_caching,
            "reuse KV blocks of common prompt prefixes (the server's --enable_prefix_caching)");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (absl::Status status = BenchServe(args); !status.ok()) return Fail("bench-serve", status);
  return 0;
}

// Registered by hand: the subcommand name has a hyphen, which LLAMA_SUBCOMMAND cannot spell.
const SubcommandRegistrar kBenchServeRegistrar(
    "bench-serve",
    "gRPC vs direct engine-loop throughput and time to first token with N concurrent streaming clients",
    RunBenchServe);

}  // namespace
}  // namespace llama::cli
