// llama-chat load: the serving benchmark a user runs against a llama-chat-server from a separate process (see
// tools/load/README.md for what it measures and how, docs/benchmarks.md for recorded runs).
//
//   llama-chat load --server localhost:50051 --concurrency 1,4,16,64 --input_tokens 32 --output_tokens 128
//   llama-chat load --server localhost:50051 --request_rate 20 --burstiness 1 --slo ttft_ms=500,tpot_ms=50
//   llama-chat load --plot k1.json,k4.json --svg sweep.svg     (draws earlier --json runs into one plot)
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "grpcpp/grpcpp.h"
#include "tools/cli_flags.h"
#include "tools/load/load_options.h"
#include "tools/load/load_report.h"
#include "tools/load/load_run.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

struct LoadFlags {
  load::LoadOptions options;
  std::string concurrency = "1";
  std::string num_requests = "200";
  std::string request_rate;
  std::string slo;
  std::string svg_latency = "e2e";
  std::string plot;  // comma-separated --json files to draw instead of running
  std::string dump_prompts;  // write the run's requests as JSON lines instead of running
};

void DeclareFlags(FlagSet& flags, LoadFlags& f) {
  load::LoadOptions& o = f.options;
  flags.Add("server", &o.server, "HOST:PORT of the llama-chat-server to load (required unless --plot)");
  flags.Add("concurrency", &f.concurrency, "closed loop: streams in flight, a comma list is a sweep (1,4,16,64)");
  flags.Add("request_rate", &f.request_rate, "open loop: requests/s (a comma list is a sweep); replaces --concurrency");
  flags.Add("burstiness", &o.burstiness, "open loop: gamma shape of the arrival gaps (1 = Poisson, < 1 burstier)");
  flags.Add("input_tokens", &o.input_tokens, "> 0: fixed prompts of exactly this many tokens; 0: the chat mix");
  flags.Add("output_tokens", &o.output_tokens, "> 0: every request generates this many tokens; 0: the mix's lengths");
  flags.Add("length_scale", &o.length_scale, "chat mix: multiplies every drawn length (the mix is for a 4k context)");
  flags.Add("seed", &o.seed, "prompts, sampling seeds and arrival times");
  flags.Add("temperature", &o.temperature, "sampling temperature of every request (0 = greedy)");
  flags.Add("ignore_eos", &o.ignore_eos, "ask the server to treat EOS as a token, so lengths are exact");
  flags.Add("num_candidates", &o.num_candidates, "k candidates per request (scored by the server's reward model)");
  flags.Add("segment_tokens", &o.segment_tokens,
            "scored streaming segment length per request (ChatRequest.segment_tokens); 0 = whole-answer mode, "
            "-1 = unset (the server's --segment_tokens)");
  flags.Add("include_token_ids", &o.include_token_ids, "stream token ids and check their count against Final");
  flags.Add("num_requests", &f.num_requests, "requests per level, or a list with one per level (0: only "
            "--duration_s limits it)");
  flags.Add("duration_s", &o.duration_s, "seconds per level (0: only --num_requests limits it)");
  flags.Add("warmup", &o.warmup, "requests before each level, left out of its figures");
  flags.Add("timeout_s", &o.timeout_s, "deadline of each call");
  flags.Add("client_threads", &o.client_threads, "completion-queue threads driving all streams");
  flags.Add("channels", &o.channels, "HTTP/2 connections (0: one per client thread)");
  flags.Add("slo", &f.slo, "goodput targets, e.g. ttft_ms=500,tpot_ms=50,e2e_ms=5000");
  flags.Add("label", &o.label, "the run's name in reports and plots (default: from the settings)");
  flags.Add("json", &o.json_path, "write every figure of every level and the settings to this file");
  flags.Add("svg", &o.svg_path, "write a throughput-vs-latency plot of the sweep to this file");
  flags.Add("svg_latency", &f.svg_latency, "the plot's latency: ttft, tpot, itl or e2e (p50)");
  flags.Add("plot", &f.plot, "comma list of --json files: draw them into --svg and exit (no load)");
  flags.Add("dump_prompts", &f.dump_prompts, "write the run's requests as JSON lines (vLLM's custom dataset format) "
            "and exit (no load)");
}

absl::Status ParseLists(LoadFlags& f) {
  load::LoadOptions& o = f.options;
  if (!f.request_rate.empty()) {
    ASSIGN_OR_RETURN(o.request_rates, load::ParsePositiveNumbers("request_rate", f.request_rate));
  }
  ASSIGN_OR_RETURN(o.concurrency, load::ParseInts("concurrency", f.concurrency));
  ASSIGN_OR_RETURN(o.num_requests, load::ParseInts("num_requests", f.num_requests, /*min_value=*/0));
  ASSIGN_OR_RETURN(o.slo, load::ParseSlo(f.slo));
  ASSIGN_OR_RETURN(o.plot_latency, load::ParsePlotLatency(f.svg_latency));
  return absl::OkStatus();
}

absl::Status DrawPlot(const std::string& files, const std::string& svg_path, load::PlotLatency latency) {
  if (svg_path.empty()) return absl::InvalidArgumentError("--plot needs --svg FILE to draw into");
  std::vector<load::PlotSeries> series;
  for (const std::string& path : std::vector<std::string>(absl::StrSplit(files, ',', absl::SkipEmpty()))) {
    ASSIGN_OR_RETURN(nlohmann::json result, load::ReadJsonFile(path));
    absl::StatusOr<load::PlotSeries> s = load::SeriesFromJson(result, latency);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.status().message()));
    series.push_back(std::move(*s));
  }
  RETURN_IF_ERROR(load::WriteTextFile(svg_path, load::RenderSvg(load::SweepPlot(std::move(series), latency))));
  std::printf("wrote %s\n", svg_path.c_str());
  return absl::OkStatus();
}

// The requests a run with these options would send (built with the server's Tokenize), as JSON lines.
absl::Status DumpPrompts(const load::LoadOptions& options, const std::string& path) {
  auto stub = llamachat::v1::ChatService::NewStub(
      grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials()));
  const load::ServerInfo info = load::AskServer(*stub, options.server);
  if (!info.reachable) return absl::UnavailableError(info.error);
  double tokens_per_word = 0;
  ASSIGN_OR_RETURN(load::PromptSet prompts, load::BuildRunPrompts(options, info, *stub, &tokens_per_word));
  RETURN_IF_ERROR(load::WriteTextFile(path, load::PromptsJsonl(prompts)));
  std::printf("wrote %d requests to %s\n", prompts.size(), path.c_str());
  return absl::OkStatus();
}

absl::Status WriteOutputs(const load::LoadResult& result) {
  const load::LoadOptions& o = result.options;
  const nlohmann::json json = load::ResultJson(result);
  if (!o.json_path.empty()) RETURN_IF_ERROR(load::WriteTextFile(o.json_path, json.dump(2) + "\n"));
  if (!o.svg_path.empty()) {
    ASSIGN_OR_RETURN(load::PlotSeries series, load::SeriesFromJson(json, o.plot_latency));
    RETURN_IF_ERROR(load::WriteTextFile(o.svg_path, load::RenderSvg(load::SweepPlot({series}, o.plot_latency))));
  }
  return absl::OkStatus();
}

// A bad flag value: the message and where the flags are listed, exit code 2 (the FlagSet convention).
int UsageError(const absl::Status& status) {
  std::fprintf(stderr, "llama-chat load: %s\n(llama-chat load --help lists the flags)\n",
               std::string(status.message()).c_str());
  return 2;
}

int RunLoadCommand(int argc, char** argv) {
  LoadFlags f;
  FlagSet flags("load", "--server HOST:PORT [flags]",
                "Load a llama-chat-server over gRPC from this process: closed-loop concurrency sweeps or open-loop "
                "Poisson/gamma arrivals; TTFT, TPOT, ITL, e2e percentiles, throughput, goodput, errors by code.");
  DeclareFlags(flags, f);
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (absl::Status status = ParseLists(f); !status.ok()) return UsageError(status);
  if (!f.plot.empty()) {
    const absl::Status status = DrawPlot(f.plot, f.options.svg_path, f.options.plot_latency);
    return status.ok() ? 0 : Fail("load", status);
  }
  if (flags.Has("request_rate") && flags.Has("concurrency")) {
    return UsageError(absl::InvalidArgumentError("--request_rate (open loop) and --concurrency (closed loop) "
                                                 "exclude each other"));
  }
  if (absl::Status status = f.options.Validate(); !status.ok()) return UsageError(status);
  if (!f.dump_prompts.empty()) {
    const absl::Status status = DumpPrompts(f.options, f.dump_prompts);
    return status.ok() ? 0 : Fail("load", status);
  }
  f.options.progress = isatty(STDOUT_FILENO) == 1;
  absl::StatusOr<load::LoadResult> result = load::RunLoad(f.options, stdout);
  if (!result.ok()) return Fail("load", result.status());
  load::PrintSweep(stdout, *result);
  if (absl::Status status = WriteOutputs(*result); !status.ok()) return Fail("load", status);
  if (!result->any_success()) {
    const std::string why = result->server.reachable ? "see the errors above" : result->server.error;
    return Fail("load", absl::UnavailableError(absl::StrCat("no request succeeded (", why, ")")));
  }
  return 0;
}

LLAMA_SUBCOMMAND(load, "load a llama-chat-server from this process: sweeps, Poisson arrivals, latency percentiles",
                 RunLoadCommand);

}  // namespace
}  // namespace llama::cli
