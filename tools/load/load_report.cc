#include "tools/load/load_report.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace llama::load {
namespace {

using nlohmann::json;

json DistributionJson(const Distribution& d) {
  return {{"count", d.count}, {"mean", d.mean}, {"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}, {"max", d.max}};
}

void PrintDistribution(std::FILE* out, const char* name, const Distribution& d) {
  std::fprintf(out, "  %-8s %10.2f %10.2f %10.2f %10.2f %10.2f %8lld\n", name, d.mean, d.p50, d.p90, d.p99, d.max,
               static_cast<long long>(d.count));
}

std::string CountsText(const std::map<std::string, int64_t>& counts) {
  std::vector<std::string> parts;
  for (const auto& [name, n] : counts) parts.push_back(absl::StrCat(name, " ", n));
  return parts.empty() ? "none" : absl::StrJoin(parts, ", ");
}

json LevelJson(const LevelSummary& s) {
  return {{"name", s.name},
          {"concurrency", s.concurrency},
          {"request_rate", s.request_rate},
          {"num_requests", s.num_requests},
          {"num_ok", s.num_ok},
          {"num_failed", s.num_failed},
          {"errors", s.errors},
          {"first_error", s.first_error},
          {"finish_reasons", s.finish_reasons},
          {"prompt_tokens", s.prompt_tokens},
          {"output_tokens", s.output_tokens},
          {"token_id_mismatches", s.token_id_mismatches},
          {"dropped_turns", s.dropped_turns},
          {"wall_s", s.wall_s},
          {"request_throughput", s.request_throughput},
          {"output_throughput", s.output_throughput},
          {"total_token_throughput", s.total_token_throughput},
          {"achieved_rate", s.achieved_rate},
          {"mean_schedule_lag_ms", s.mean_schedule_lag_ms},
          {"mean_in_flight", s.mean_in_flight},
          {"ttft_ms", DistributionJson(s.ttft_ms)},
          {"tpot_ms", DistributionJson(s.tpot_ms)},
          {"itl_ms", DistributionJson(s.itl_ms)},
          {"e2e_ms", DistributionJson(s.e2e_ms)},
          {"good_requests", s.good_requests},
          {"goodput", s.goodput},
          {"client_cpu_s", s.client_cpu_s},
          {"client_cpu_ms_per_output_token", s.client_cpu_ms_per_output_token}};
}

json SettingsJson(const LoadOptions& o) {
  return {{"server", o.server},
          {"label", o.RunLabel()},
          {"mode", o.open_loop() ? "open_loop" : "closed_loop"},
          {"concurrency", o.open_loop() ? std::vector<int>{} : o.concurrency},
          {"request_rates", o.request_rates},
          {"burstiness", o.burstiness},
          {"input_tokens", o.input_tokens},
          {"output_tokens", o.output_tokens},
          {"length_scale", o.length_scale},
          {"seed", o.seed},
          {"temperature", o.temperature},
          {"ignore_eos", o.ignore_eos},
          {"num_candidates", o.num_candidates},
          {"segment_tokens", o.segment_tokens},
          {"include_token_ids", o.include_token_ids},
          {"num_requests", o.num_requests},
          {"duration_s", o.duration_s},
          {"warmup", o.warmup},
          {"timeout_s", o.timeout_s},
          {"client_threads", o.client_threads},
          {"channels", o.channels},
          {"slo", o.slo.ToString()}};
}

}  // namespace

void PrintLevel(std::FILE* out, const LevelSummary& s, const SloTargets& slo) {
  std::fprintf(out, "== %s: %lld requests, %lld ok, %lld failed, %.2f s\n", s.name.c_str(),
               static_cast<long long>(s.num_requests), static_cast<long long>(s.num_ok),
               static_cast<long long>(s.num_failed), s.wall_s);
  std::fprintf(out, "  throughput: %.2f requests/s, %.1f output tok/s, %.1f total tok/s (%lld prompt + %lld output)\n",
               s.request_throughput, s.output_throughput, s.total_token_throughput,
               static_cast<long long>(s.prompt_tokens), static_cast<long long>(s.output_tokens));
  if (s.request_rate > 0) {
    std::fprintf(out, "  arrivals: asked %.2f/s, achieved %.2f/s, mean start lag %.2f ms, mean in flight %.1f\n",
                 s.request_rate, s.achieved_rate, s.mean_schedule_lag_ms, s.mean_in_flight);
  }
  std::fprintf(out, "  %-8s %10s %10s %10s %10s %10s %8s\n", "ms", "mean", "p50", "p90", "p99", "max", "n");
  PrintDistribution(out, "TTFT", s.ttft_ms);
  PrintDistribution(out, "TPOT", s.tpot_ms);
  PrintDistribution(out, "ITL", s.itl_ms);
  PrintDistribution(out, "e2e", s.e2e_ms);
  if (!slo.empty()) {
    std::fprintf(out, "  goodput (%s): %.2f requests/s, %lld of %lld requests\n", slo.ToString().c_str(), s.goodput,
                 static_cast<long long>(s.good_requests), static_cast<long long>(s.num_requests));
  }
  std::fprintf(out, "  finish reasons: %s; errors: %s\n", CountsText(s.finish_reasons).c_str(),
               CountsText(s.errors).c_str());
  for (const auto& [code, message] : s.first_error) {
    std::fprintf(out, "    first %s: %s\n", code.c_str(), message.c_str());
  }
  if (s.token_id_mismatches > 0) {
    std::fprintf(out, "  %lld requests streamed a different number of token ids than Final's usage\n",
                 static_cast<long long>(s.token_id_mismatches));
  }
  std::fprintf(out, "  client CPU: %.2f s, %.4f ms per output token\n", s.client_cpu_s,
               s.client_cpu_ms_per_output_token);
  std::fflush(out);
}

void PrintSweep(std::FILE* out, const LoadResult& result) {
  std::fprintf(out, "\n== sweep: %s\n", result.options.RunLabel().c_str());
  std::fprintf(out, "%-18s %6s %6s %9s %10s %9s %9s %9s %9s %9s %9s\n", "level", "ok", "failed", "req/s",
               "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "e2e p50", "goodput");
  for (const LevelSummary& s : result.levels) {
    std::fprintf(out, "%-18s %6lld %6lld %9.2f %10.1f %9.1f %9.1f %9.2f %9.2f %9.1f %9.2f\n", s.name.c_str(),
                 static_cast<long long>(s.num_ok), static_cast<long long>(s.num_failed), s.request_throughput,
                 s.output_throughput, s.ttft_ms.p50, s.ttft_ms.p99, s.tpot_ms.p50, s.tpot_ms.p99, s.e2e_ms.p50,
                 s.goodput);
  }
  std::fflush(out);
}

json ResultJson(const LoadResult& result) {
  const ServerInfo& server = result.server;
  json levels = json::array();
  for (const LevelSummary& s : result.levels) levels.push_back(LevelJson(s));
  const PromptSetStats& p = result.prompts;
  return {{"started_utc", result.started_utc},
          {"settings", SettingsJson(result.options)},
          {"server", {{"reachable", server.reachable},
                      {"error", server.error},
                      {"model_dir", server.model_dir},
                      {"backend", server.backend},
                      {"context_length", server.context_length},
                      {"max_num_seqs", server.max_num_seqs},
                      {"max_queue", server.max_queue},
                      {"max_candidates", server.max_candidates},
                      {"num_reward_models", server.num_reward_models}}},
          {"prompts", {{"num_requests", p.num_requests},
                       {"mean_prompt_tokens", p.mean_prompt_tokens},
                       {"mean_output_tokens", p.mean_output_tokens},
                       {"mean_turns", p.mean_turns},
                       {"num_fitted", p.num_fitted},
                       {"exact_prompt_lengths", p.exact_prompt_lengths},
                       {"tokens_per_word", result.tokens_per_word}}},
          {"levels", levels}};
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON"));
  return parsed;
}

std::string PromptsJsonl(const PromptSet& prompts) {
  namespace v1 = ::llamachat::v1;
  std::string out;
  for (int i = 0; i < prompts.size(); ++i) {
    const v1::ChatRequest& request = prompts.at(i);
    json messages = json::array();
    for (const v1::Message& m : request.messages()) {
      const char* role = m.role() == v1::ROLE_SYSTEM ? "system" : m.role() == v1::ROLE_USER ? "user" : "assistant";
      messages.push_back({{"role", role}, {"content", m.content()}});
    }
    const std::string& last = request.messages(request.messages_size() - 1).content();
    out += json({{"prompt", last}, {"messages", messages}, {"output_tokens", request.sampling().max_tokens()}}).dump();
    out += '\n';
  }
  return out;
}

absl::StatusOr<PlotSeries> SeriesFromJson(const json& result, PlotLatency latency) {
  const std::string key = absl::StrCat(PlotLatencyName(latency), "_ms");
  if (!result.contains("levels") || !result["levels"].is_array() || !result.contains("settings")) {
    return absl::InvalidArgumentError("not a `llama-chat load --json` result (no settings or levels)");
  }
  PlotSeries series;
  series.name = result["settings"].value("label", "run");
  for (const json& level : result["levels"]) {
    if (!level.contains(key) || !level.contains("output_throughput")) {
      return absl::InvalidArgumentError(absl::StrCat("a level without ", key, " or output_throughput"));
    }
    PlotPoint point;
    point.x = level["output_throughput"].get<double>();
    point.y = level[key].value("p50", 0.0);
    const int concurrency = level.value("concurrency", 0);
    point.label = concurrency > 0 ? absl::StrCat("c=", concurrency)
                                  : absl::StrCat(level.value("request_rate", 0.0), "/s");
    series.points.push_back(point);
  }
  return series;
}

PlotSpec SweepPlot(std::vector<PlotSeries> series, PlotLatency latency) {
  const char* names[] = {"time to first token", "time per output token", "inter-token latency",
                         "end-to-end latency"};
  const std::string name = names[static_cast<int>(latency)];
  PlotSpec spec;
  spec.title = absl::StrCat("llama-chat load: throughput vs ", name);
  spec.x_label = "output tokens/s (all streams)";
  spec.y_label = absl::StrCat(name, ", p50 (ms)");
  spec.series = std::move(series);
  return spec;
}

}  // namespace llama::load
