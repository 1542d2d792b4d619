// The figures of one load level, computed from its RequestRecords. Definitions (those of vLLM's `bench serve`, so
// runs against either server compare):
//   - TTFT: call start → first Delta, per request that got one.
//   - TPOT: (e2e − TTFT) / (output tokens − 1), per successful request with more than one output token.
//   - ITL: the gap between consecutive Delta messages, pooled over requests (a Delta may carry several tokens when
//     the server coalesced them; k > 1 replies arrive in one Delta after scoring).
//   - e2e: call start → Final, per successful request.
//   - Throughputs: over the level's wall time (first start → last completion); output tokens are Final's usage.
//   - Goodput: successful requests meeting every given SLO, per second of wall time.
// Percentiles interpolate linearly between order statistics (numpy's default).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tools/load/load_client.h"
#include "tools/load/load_options.h"

namespace llama::load {

struct Distribution {
  int64_t count = 0;
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};
// Sorts values; all zero when empty.
Distribution Summarize(std::vector<double> values);
// The p-quantile (p in [0, 1]) of sorted values, linear between order statistics; 0 when empty.
double Quantile(const std::vector<double>& sorted, double p);

struct LevelSummary {
  std::string name;         // "concurrency 16" / "rate 4.5/s"
  int concurrency = 0;      // closed loop
  double request_rate = 0;  // open loop: the asked-for rate (0 in the closed loop)
  int64_t num_requests = 0;
  int64_t num_ok = 0;
  int64_t num_failed = 0;
  std::map<std::string, int64_t> errors;           // gRPC status code name → count
  std::map<std::string, std::string> first_error;  // code name → its first message
  std::map<std::string, int64_t> finish_reasons;   // "stop", "length", "safety", ... → count (successes)
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  int64_t token_id_mismatches = 0;  // include_token_ids: LENGTH finishes whose streamed ids ≠ completion_tokens
  int64_t dropped_turns = 0;
  double wall_s = 0;
  double request_throughput = 0;   // successful requests/s
  double output_throughput = 0;    // output tokens/s
  double total_token_throughput = 0;  // prompt + output tokens/s
  double achieved_rate = 0;        // requests started per second (open loop: compare with request_rate)
  double mean_schedule_lag_ms = 0;  // open loop: start − due, mean (the client falling behind shows here)
  double mean_in_flight = 0;       // Σ e2e / wall
  Distribution ttft_ms, tpot_ms, itl_ms, e2e_ms;
  int64_t good_requests = 0;       // meeting every SLO (all successes when no SLO is given)
  double goodput = 0;              // good requests/s
  double client_cpu_s = 0;
  double client_cpu_ms_per_output_token = 0;
};

LevelSummary SummarizeLevel(const std::string& name, const LevelPlan& plan, const LevelRun& run,
                            const SloTargets& slo, bool include_token_ids);

const char* StatusCodeName(grpc::StatusCode code);  // "RESOURCE_EXHAUSTED", ...
const char* FinishReasonName(llamachat::v1::FinishReason reason);  // "stop", "length", ...

}  // namespace llama::load
