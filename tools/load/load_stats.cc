#include "tools/load/load_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace llama::load {

namespace v1 = ::llamachat::v1;

double Quantile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double position = std::clamp(p, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

Distribution Summarize(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.count = static_cast<int64_t>(values.size());
  d.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  d.p50 = Quantile(values, 0.50);
  d.p90 = Quantile(values, 0.90);
  d.p99 = Quantile(values, 0.99);
  d.max = values.back();
  return d;
}

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

const char* FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_LENGTH: return "length";
    case v1::FINISH_REASON_SAFETY: return "safety";
    case v1::FINISH_REASON_CANCELLED: return "cancelled";
    case v1::FINISH_REASON_DEADLINE: return "deadline";
    case v1::FINISH_REASON_ERROR: return "error";
    default: return "unspecified";
  }
}

namespace {

bool MeetsSlo(const RequestRecord& r, double tpot_s, const SloTargets& slo) {
  if (slo.ttft_ms && !(r.ttft_s >= 0 && 1e3 * r.ttft_s <= *slo.ttft_ms)) return false;
  if (slo.tpot_ms && 1e3 * tpot_s > *slo.tpot_ms) return false;
  if (slo.e2e_ms && 1e3 * r.e2e_s > *slo.e2e_ms) return false;
  return true;
}

// The counts: successes, errors by code, finish reasons, tokens.
void CountOutcomes(const LevelRun& run, bool include_token_ids, LevelSummary* s) {
  for (const RequestRecord& r : run.records) {
    ++s->num_requests;
    if (!r.ok()) {
      ++s->num_failed;
      const std::string code = StatusCodeName(r.code);
      ++s->errors[code];
      s->first_error.emplace(code, r.error);
      continue;
    }
    ++s->num_ok;
    ++s->finish_reasons[FinishReasonName(r.finish_reason)];
    s->prompt_tokens += r.prompt_tokens;
    s->output_tokens += r.output_tokens;
    s->dropped_turns += r.dropped_turns;
    // Only a LENGTH finish streams every generated token (EOS and a cut stop string are counted, not streamed).
    if (include_token_ids && r.finish_reason == v1::FINISH_REASON_LENGTH && r.streamed_token_ids != r.output_tokens) {
      ++s->token_id_mismatches;
    }
  }
}

// Latency distributions, goodput, in-flight average.
void SummarizeLatencies(const LevelRun& run, const SloTargets& slo, LevelSummary* s) {
  std::vector<double> ttft, tpot, itl, e2e;
  double e2e_sum = 0;
  for (const RequestRecord& r : run.records) {
    e2e_sum += r.e2e_s;
    if (!r.ok()) continue;
    if (r.ttft_s >= 0) ttft.push_back(1e3 * r.ttft_s);
    e2e.push_back(1e3 * r.e2e_s);
    for (double gap : r.itl_s) itl.push_back(1e3 * gap);
    double tpot_s = 0;
    if (r.output_tokens > 1 && r.ttft_s >= 0) {
      tpot_s = (r.e2e_s - r.ttft_s) / (r.output_tokens - 1);
      tpot.push_back(1e3 * tpot_s);
    }
    if (MeetsSlo(r, tpot_s, slo)) ++s->good_requests;
  }
  s->ttft_ms = Summarize(std::move(ttft));
  s->tpot_ms = Summarize(std::move(tpot));
  s->itl_ms = Summarize(std::move(itl));
  s->e2e_ms = Summarize(std::move(e2e));
  if (s->wall_s > 0) s->mean_in_flight = e2e_sum / s->wall_s;
}

// Open loop: achieved arrival rate and how far behind schedule the client started requests.
void SummarizeArrivals(const LevelRun& run, LevelSummary* s) {
  if (run.records.empty()) return;
  double first = run.records[0].start_s, last = first, lag = 0;
  for (const RequestRecord& r : run.records) {
    first = std::min(first, r.start_s);
    last = std::max(last, r.start_s);
    lag += r.start_s - r.scheduled_s;
  }
  const double n = static_cast<double>(run.records.size());
  if (run.records.size() > 1 && last > first) s->achieved_rate = (n - 1) / (last - first);
  s->mean_schedule_lag_ms = 1e3 * lag / n;
}

}  // namespace

LevelSummary SummarizeLevel(const std::string& name, const LevelPlan& plan, const LevelRun& run,
                            const SloTargets& slo, bool include_token_ids) {
  LevelSummary s;
  s.name = name;
  s.concurrency = plan.open_loop() ? 0 : plan.concurrency;
  s.request_rate = plan.open_loop() ? plan.rate_per_s : 0;
  s.wall_s = run.wall_s;
  s.client_cpu_s = run.client_cpu_s;
  CountOutcomes(run, include_token_ids, &s);
  SummarizeLatencies(run, slo, &s);
  SummarizeArrivals(run, &s);
  if (s.wall_s > 0) {
    s.request_throughput = s.num_ok / s.wall_s;
    s.output_throughput = s.output_tokens / s.wall_s;
    s.total_token_throughput = (s.prompt_tokens + s.output_tokens) / s.wall_s;
    s.goodput = s.good_requests / s.wall_s;
  }
  if (s.output_tokens > 0) s.client_cpu_ms_per_output_token = 1e3 * s.client_cpu_s / s.output_tokens;
  return s;
}

}  // namespace llama::load
