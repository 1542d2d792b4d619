// llama-chat bench-serve: what the gRPC path costs. One in-process llama-chat-server (ChatServer) on a loopback
// port serves the same closed-loop workload (N streams in flight, the same exact prompt and output lengths, built
// the same way) two ways, alternating for several rounds: straight into its engine loop (no transport), and through
// gRPC from `llama-chat load` running as a separate process, optionally pinned to other CPUs than the server
// (--server_cpus / --client_cpus). Each leg has prompts of its own (seed + leg), so the prefix cache never serves a
// leg from an earlier one. Reports each path's aggregate output tokens/s, the server process's CPU per
// token and, for gRPC, the load process's CPU per token, so the client's share of the cost is its own line.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "server/chat_server.h"
#include "tools/backend_flags.h"
#include "tools/bench_serve_paths.h"
#include "tools/cli_flags.h"
#include "tools/load/load_run.h"
#include "tools/load/load_stats.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

struct BenchServeArgs {
  int concurrency = 16;
  int input_tokens = 32;
  int output_tokens = 128;
  int num_requests = 64;
  int rounds = 3;
  int client_threads = load::LoadOptions{}.client_threads;
  float temperature = load::LoadOptions{}.temperature;
  uint64_t seed = 0;
  std::string server_cpus;  // "" = not pinned
  std::string client_cpus;
  std::string weights_dtype = "f32";  // --weights_dtype: the server's CPU weight storage
  server::ChatServerOptions server;  // its defaults; the loopback, port, queue and sequence settings are set below
};

// The load generator's options for one leg; a direct leg builds its requests from the same ones. Every leg has its
// own seed, so no leg's prompts are in the prefix cache from an earlier one.
load::LoadOptions LoadSettings(const BenchServeArgs& args, int port, uint64_t seed) {
  load::LoadOptions o;
  o.server = absl::StrCat("127.0.0.1:", port);
  o.concurrency = {args.concurrency};
  o.input_tokens = args.input_tokens;
  o.output_tokens = args.output_tokens;
  o.num_requests = {args.num_requests};
  o.seed = seed;
  o.temperature = args.temperature;
  o.client_threads = args.client_threads;
  return o;
}

std::vector<std::string> LoadArgs(const load::LoadOptions& o) {
  return {"--concurrency", absl::StrCat(o.concurrency[0]), "--input_tokens", absl::StrCat(o.input_tokens),
          "--output_tokens", absl::StrCat(o.output_tokens), "--num_requests", absl::StrCat(o.num_requests[0]),
          "--seed", absl::StrCat(o.seed), "--temperature", absl::StrCat(o.temperature),
          "--client_threads", absl::StrCat(o.client_threads)};
}

void PrintRound(int round, const char* path, const RoundResult& r) {
  std::printf("%-5d %-6s %8lld %8lld %7lld %7.2f %9.1f %10.3f %10.3f %9.1f %9.1f\n", round, path,
              static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.output_tokens),
              static_cast<long long>(r.engine_steps), r.wall_s, r.tokens_per_s(), r.server_cpu_ms_per_token(),
              r.client_cpu_ms_per_token(), r.ttft_p50_ms, r.ttft_p99_ms);
  std::fflush(stdout);
}

double Median(std::vector<double> v) { return load::Quantile((std::sort(v.begin(), v.end()), v), 0.5); }

struct PathFigures {
  std::vector<double> tokens_per_s, server_cpu_ms, client_cpu_ms;
  void Add(const RoundResult& r) {
    tokens_per_s.push_back(r.tokens_per_s());
    server_cpu_ms.push_back(r.server_cpu_ms_per_token());
    client_cpu_ms.push_back(r.client_cpu_ms_per_token());
  }
};

void PrintSummary(const PathFigures& direct, const PathFigures& grpc) {
  const double direct_tps = Median(direct.tokens_per_s), grpc_tps = Median(grpc.tokens_per_s);
  std::printf("\nmedian output tokens/s: direct %.1f, gRPC %.1f → gRPC path throughput cost %.1f%%\n", direct_tps,
              grpc_tps, 100.0 * (1.0 - grpc_tps / direct_tps));
  const double direct_cpu = Median(direct.server_cpu_ms), grpc_cpu = Median(grpc.server_cpu_ms);
  std::printf("median server-process CPU per output token: direct %.3f ms, gRPC %.3f ms (%+.1f%%)\n", direct_cpu,
              grpc_cpu, 100.0 * (grpc_cpu / direct_cpu - 1.0));
  std::printf("median load-process (client) CPU per output token: %.3f ms\n", Median(grpc.client_cpu_ms));
}

absl::Status BenchServe(BenchServeArgs args) {
  if (!args.server_cpus.empty()) RETURN_IF_ERROR(PinProcess(args.server_cpus));  // before any thread starts
  server::ChatServerOptions options = args.server;
  ASSIGN_OR_RETURN(options.weights_dtype, ParseWeightsDtype(args.weights_dtype));
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  options.max_num_seqs = std::max(args.concurrency, 1);
  options.max_queue = std::max(args.concurrency, options.max_queue);
  ASSIGN_OR_RETURN(std::unique_ptr<server::ChatServer> server, server::ChatServer::Start(options));
  RETURN_IF_ERROR(server->Warmup());
  const std::string address = absl::StrCat("127.0.0.1:", server->port());
  auto stub = llamachat::v1::ChatService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  const load::ServerInfo info = load::AskServer(*stub, address);
  std::printf("bench-serve: %s, %d streams in flight, %d requests of %d prompt + %d output tokens (EOS ignored), "
              "%d rounds; server CPUs %s, load process CPUs %s, backend threads %d, max_num_batched_tokens %d\n",
              options.model_path.c_str(), args.concurrency, args.num_requests, args.input_tokens, args.output_tokens,
              args.rounds, args.server_cpus.empty() ? "any" : args.server_cpus.c_str(),
              args.client_cpus.empty() ? "any" : args.client_cpus.c_str(), options.num_threads,
              options.max_num_batched_tokens);
  std::printf("%-5s %-6s %8s %8s %7s %7s %9s %10s %10s %9s %9s\n", "round", "path", "prompt", "output", "steps",
              "wall_s", "tok/s", "srv_ms/tok", "cli_ms/tok", "ttft_p50", "ttft_p99");
  uint64_t next_id = uint64_t{1} << 40;  // far from the service's own ids
  PathFigures direct, grpc;
  const std::string work_dir = ::getenv("TMPDIR") != nullptr ? ::getenv("TMPDIR") : "/tmp";
  for (int round = 0; round < args.rounds; ++round) {
    // The order alternates between rounds so neither path always runs on a warmer (or quieter) machine.
    for (int leg = 0; leg < 2; ++leg) {
      const bool run_direct = (round + leg) % 2 == 0;
      const load::LoadOptions load_options = LoadSettings(args, server->port(), args.seed + 2 * round + leg);
      RoundResult r;
      if (run_direct) {
        double tokens_per_word = 0;  // the requests the load process would build for this seed, built here
        ASSIGN_OR_RETURN(load::PromptSet prompts, load::BuildRunPrompts(load_options, info, *stub, &tokens_per_word));
        ASSIGN_OR_RETURN(r, RunDirect(*server, prompts, args.concurrency, args.num_requests, &next_id));
      } else {
        ASSIGN_OR_RETURN(r, RunLoadProcess(*server, LoadArgs(load_options), args.client_cpus, work_dir));
      }
      PrintRound(round, run_direct ? "direct" : "grpc", r);
      (run_direct ? direct : grpc).Add(r);
    }
  }
  PrintSummary(direct, grpc);
  server->Drain(absl::Seconds(10));
  return absl::OkStatus();
}

int RunBenchServe(int argc, char** argv) {
  BenchServeArgs args;
  FlagSet flags("bench-serve", "--model PATH [flags]",
                "gRPC path (llama-chat load in a separate process) vs the same load straight into the engine loop: "
                "tokens/s, server and client CPU per token, time to first token.");
  AddModelFlag(&flags, &args.server.model_path);
  flags.Add("concurrency", &args.concurrency, "streams in flight (= max_num_seqs)");
  flags.Add("input_tokens", &args.input_tokens, "prompt tokens of every request (exact)");
  flags.Add("output_tokens", &args.output_tokens, "generated tokens of every request (EOS ignored)");
  flags.Add("num_requests", &args.num_requests, "requests per round and path");
  flags.Add("rounds", &args.rounds, "rounds of each path (the order alternates)");
  flags.Add("temperature", &args.temperature, "sampling temperature (each request has its own seed)");
  flags.Add("seed", &args.seed, "prompts and sampling seeds");
  flags.Add("threads", &args.server.num_threads, "CPU backend threads (0: all cores)");
  flags.Add("weights_dtype", &args.weights_dtype, "CPU backend weight storage: f32, bf16 or q8_0");
  flags.Add("max_num_batched_tokens", &args.server.max_num_batched_tokens, "tokens in one engine step at most");
  flags.Add("client_threads", &args.client_threads, "the load process's completion-queue threads");
  flags.Add("server_cpus", &args.server_cpus, "pin this (server) process to these CPUs, e.g. 0 or 0-7");
  flags.Add("client_cpus", &args.client_cpus, "pin the load process to these CPUs, e.g. 1 or 8-15");
  flags.Add("enable_prefix_caching", &args.server.enable_prefix_caching,
            "reuse KV blocks of common prompt prefixes (the server's --enable_prefix_caching)");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (args.concurrency < 1 || args.num_requests < 1 || args.rounds < 1 || args.output_tokens < 1) {
    std::fprintf(stderr, "llama-chat bench-serve: --concurrency, --num_requests, --rounds and --output_tokens must "
                         "be >= 1\n");
    return 2;
  }
  if (absl::Status status = BenchServe(args); !status.ok()) return Fail("bench-serve", status);
  return 0;
}

// Registered by hand: the subcommand name has a hyphen, which LLAMA_SUBCOMMAND cannot spell.
const SubcommandRegistrar kBenchServeRegistrar(
    "bench-serve",
    "gRPC path (llama-chat load, separate process) vs the same load straight into the engine loop",
    RunBenchServe);

}  // namespace
}  // namespace llama::cli
