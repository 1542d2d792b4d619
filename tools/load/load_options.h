// LoadOptions: everything one `llama-chat load` run is told: the server, the sweep (closed-loop concurrency levels
// or open-loop request rates), the prompts, the run length per level, the SLOs for goodput and the outputs. Plain
// data with Validate(); the flag spellings live in tools/cmd_load.cc, the defaults here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llama::load {

// Latency targets a request must all meet to count towards goodput (`--slo ttft_ms=200,tpot_ms=50`).
struct SloTargets {
  std::optional<double> ttft_ms;  // time to first token
  std::optional<double> tpot_ms;  // time per output token after the first
  std::optional<double> e2e_ms;   // send → last message
  bool empty() const { return !ttft_ms && !tpot_ms && !e2e_ms; }
  std::string ToString() const;  // "ttft_ms=200,tpot_ms=50" ("" when empty)
};

// "ttft_ms=200,tpot_ms=50,e2e_ms=2000" → targets; an unknown name, a repeated name or a value that is not a
// positive number is INVALID_ARGUMENT naming it. "" → no targets.
absl::StatusOr<SloTargets> ParseSlo(absl::string_view spec);
// "1,4,16,64" → {1, 4, 16, 64}; every entry an integer >= min_value (flag names the flag in the error).
absl::StatusOr<std::vector<int>> ParseInts(absl::string_view flag, absl::string_view spec, int min_value = 1);
// "2,4.5" → {2, 4.5}; every entry a positive finite number.
absl::StatusOr<std::vector<double>> ParsePositiveNumbers(absl::string_view flag, absl::string_view spec);

// The latency a sweep plot puts on its y axis.
enum class PlotLatency { kTtft, kTpot, kItl, kE2e };
absl::StatusOr<PlotLatency> ParsePlotLatency(absl::string_view name);  // "ttft", "tpot", "itl", "e2e"
const char* PlotLatencyName(PlotLatency latency);

struct LoadOptions {
  std::string server;  // HOST:PORT of a llama-chat-server

  // The sweep. Closed loop: each level keeps that many streams in flight (a finished stream starts the next
  // request at once). Open loop (request_rates non-empty): requests arrive at gamma-distributed intervals with
  // mean 1 / rate and shape `burstiness` (1 = Poisson), however many are in flight.
  std::vector<int> concurrency = {1};
  std::vector<double> request_rates;  // requests/s; empty = closed loop
  double burstiness = 1.0;

  // Prompts. input_tokens > 0: one user turn of exactly that many prompt tokens (counted by the server's Tokenize,
  // chat template included). Otherwise the synthetic chat mix (prompt_set.h) with its lengths times length_scale.
  int input_tokens = 0;
  // > 0: every request asks for exactly this many tokens; 0: each request's length comes from the chat mix.
  int output_tokens = 0;
  double length_scale = 1.0;
  uint64_t seed = 0;
  float temperature = 0.8f;  // each request gets its own sampling seed derived from `seed`
  // EOS is an ordinary token (SamplingParams.ignore_eos), so each request generates exactly its max_tokens.
  bool ignore_eos = true;
  int num_candidates = 0;  // 0 = the server's default
  int segment_tokens = -1;  // scored streaming segment length (ChatRequest.segment_tokens); -1 = unset (server's)
  bool include_token_ids = false;  // stream token ids too, and check their count against Final's usage

  // Run length of every level: stop issuing after num_requests requests or duration_s seconds, whichever comes
  // first (0 = no limit of that kind; at least one must be set), then wait for the streams in flight. One value
  // for every level, or one per level (a sweep from 1 to 64 streams wants more requests at 64).
  std::vector<int> num_requests = {200};
  double duration_s = 0;
  int warmup = 0;         // requests run (closed loop) before each level and left out of its figures
  double timeout_s = 600;  // each call's deadline

  int client_threads = 2;  // completion-queue threads that drive every stream (not a thread per stream)
  int channels = 0;        // HTTP/2 connections; 0 = one per client thread

  SloTargets slo;
  std::string label;      // the run's name in reports and plot legends; "" = made from the settings
  std::string json_path;  // "" = no JSON
  std::string svg_path;   // "" = no plot
  PlotLatency plot_latency = PlotLatency::kE2e;
  bool progress = false;  // a progress bar on stdout (the command sets it when stdout is a terminal)

  bool open_loop() const { return !request_rates.empty(); }
  int num_levels() const {
    return static_cast<int>(open_loop() ? request_rates.size() : concurrency.size());
  }
  int RequestsAt(int level) const {
    return num_requests.size() == 1 ? num_requests[0] : num_requests.at(level);
  }
  std::string LevelName(int level) const;  // "concurrency 16" / "rate 4.5/s"
  std::string PointLabel(int level) const;  // "c=16" / "4.5/s"
  std::string RunLabel() const;  // label, or e.g. "k=1, 32 in / 128 out tokens" / "k=4, chat mix, Poisson"
  absl::Status Validate() const;
};

}  // namespace llama::load
