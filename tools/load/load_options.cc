#include "tools/load/load_options.h"

#include <cmath>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace llama::load {
namespace {

absl::Status Invalid(absl::string_view flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

std::vector<absl::string_view> Entries(absl::string_view spec) {
  std::vector<absl::string_view> out;
  for (absl::string_view part : absl::StrSplit(spec, ',')) out.push_back(absl::StripAsciiWhitespace(part));
  return out;
}

}  // namespace

std::string SloTargets::ToString() const {
  std::vector<std::string> parts;
  if (ttft_ms) parts.push_back(absl::StrFormat("ttft_ms=%g", *ttft_ms));
  if (tpot_ms) parts.push_back(absl::StrFormat("tpot_ms=%g", *tpot_ms));
  if (e2e_ms) parts.push_back(absl::StrFormat("e2e_ms=%g", *e2e_ms));
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<SloTargets> ParseSlo(absl::string_view spec) {
  SloTargets slo;
  if (absl::StripAsciiWhitespace(spec).empty()) return slo;
  std::set<std::string> seen;
  for (absl::string_view entry : Entries(spec)) {
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return Invalid("slo", absl::StrCat("'", entry, "' is not name=value (names: ttft_ms, tpot_ms, e2e_ms)"));
    }
    const std::string name(absl::StripAsciiWhitespace(entry.substr(0, eq)));
    const absl::string_view text = absl::StripAsciiWhitespace(entry.substr(eq + 1));
    double value = 0;
    if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) || value <= 0) {
      return Invalid("slo", absl::StrCat(name, " must be a positive number of milliseconds, got '", text, "'"));
    }
    if (!seen.insert(name).second) return Invalid("slo", absl::StrCat(name, " given twice"));
    if (name == "ttft_ms") {
      slo.ttft_ms = value;
    } else if (name == "tpot_ms") {
      slo.tpot_ms = value;
    } else if (name == "e2e_ms") {
      slo.e2e_ms = value;
    } else {
      return Invalid("slo", absl::StrCat("unknown target '", name, "' (names: ttft_ms, tpot_ms, e2e_ms)"));
    }
  }
  return slo;
}

absl::StatusOr<std::vector<int>> ParseInts(absl::string_view flag, absl::string_view spec, int min_value) {
  std::vector<int> out;
  for (absl::string_view entry : Entries(spec)) {
    int value = 0;
    if (!absl::SimpleAtoi(entry, &value) || value < min_value) {
      const char* what = min_value == 1 ? "a positive integer" : min_value == 0 ? "an integer >= 0" : "in range";
      return Invalid(flag, absl::StrCat("'", entry, "' is not ", what, " (a list is written 1,4,16)"));
    }
    out.push_back(value);
  }
  return out;
}

absl::StatusOr<std::vector<double>> ParsePositiveNumbers(absl::string_view flag, absl::string_view spec) {
  std::vector<double> out;
  for (absl::string_view entry : Entries(spec)) {
    double value = 0;
    if (!absl::SimpleAtod(entry, &value) || !std::isfinite(value) || value <= 0) {
      return Invalid(flag, absl::StrCat("'", entry, "' is not a positive number (a list is written 2,4.5)"));
    }
    out.push_back(value);
  }
  return out;
}

absl::StatusOr<PlotLatency> ParsePlotLatency(absl::string_view name) {
  if (name == "ttft") return PlotLatency::kTtft;
  if (name == "tpot") return PlotLatency::kTpot;
  if (name == "itl") return PlotLatency::kItl;
  if (name == "e2e") return PlotLatency::kE2e;
  return Invalid("svg_latency", absl::StrCat("must be ttft, tpot, itl or e2e, got '", name, "'"));
}

const char* PlotLatencyName(PlotLatency latency) {
  switch (latency) {
    case PlotLatency::kTtft: return "ttft";
    case PlotLatency::kTpot: return "tpot";
    case PlotLatency::kItl: return "itl";
    case PlotLatency::kE2e: return "e2e";
  }
  return "?";
}

std::string LoadOptions::LevelName(int level) const {
  if (open_loop()) return absl::StrFormat("rate %g/s", request_rates.at(level));
  return absl::StrCat("concurrency ", concurrency.at(level));
}

std::string LoadOptions::PointLabel(int level) const {
  if (open_loop()) return absl::StrFormat("%g/s", request_rates.at(level));
  return absl::StrCat("c=", concurrency.at(level));
}

std::string LoadOptions::RunLabel() const {
  if (!label.empty()) return label;
  std::string out = absl::StrCat("k=", num_candidates == 0 ? 1 : num_candidates);
  if (segment_tokens >= 0) absl::StrAppend(&out, ", S=", segment_tokens);
  if (input_tokens > 0) {
    absl::StrAppend(&out, ", ", input_tokens, " in / ", output_tokens > 0 ? absl::StrCat(output_tokens) : "mix",
                    " out tokens");
  } else {
    absl::StrAppend(&out, ", chat mix");
    if (output_tokens > 0) absl::StrAppend(&out, " / ", output_tokens, " out tokens");
  }
  if (open_loop()) {
    absl::StrAppend(&out, burstiness == 1.0 ? ", Poisson" : absl::StrFormat(", gamma arrivals B=%g", burstiness));
  }
  return out;
}

absl::Status LoadOptions::Validate() const {
  if (server.empty()) return Invalid("server", "is required (HOST:PORT of a llama-chat-server)");
  if (!open_loop() && concurrency.empty()) return Invalid("concurrency", "needs at least one level");
  for (int c : concurrency) {
    if (c < 1) return Invalid("concurrency", absl::StrCat("levels must be >= 1, got ", c));
  }
  for (double r : request_rates) {
    if (!std::isfinite(r) || r <= 0) return Invalid("request_rate", absl::StrCat("must be > 0, got ", r));
  }
  if (!std::isfinite(burstiness) || burstiness <= 0) {
    return Invalid("burstiness", absl::StrCat("must be > 0 (1 = Poisson), got ", burstiness));
  }
  if (input_tokens < 0) return Invalid("input_tokens", absl::StrCat("must be >= 0, got ", input_tokens));
  if (output_tokens < 0) return Invalid("output_tokens", absl::StrCat("must be >= 0, got ", output_tokens));
  if (!std::isfinite(length_scale) || length_scale <= 0) {
    return Invalid("length_scale", absl::StrCat("must be > 0, got ", length_scale));
  }
  if (!std::isfinite(temperature) || temperature < 0) {
    return Invalid("temperature", absl::StrCat("must be >= 0 (0 = greedy), got ", temperature));
  }
  if (num_candidates < 0) return Invalid("num_candidates", absl::StrCat("must be >= 0, got ", num_candidates));
  if (segment_tokens < -1) {
    return Invalid("segment_tokens", absl::StrCat("must be >= 0 (-1 = the server's default), got ", segment_tokens));
  }
  if (num_requests.size() != 1 && static_cast<int>(num_requests.size()) != num_levels()) {
    return Invalid("num_requests", absl::StrCat("give one count or one per level (", num_levels(), "), got ",
                                                num_requests.size()));
  }
  if (!std::isfinite(duration_s) || duration_s < 0) {
    return Invalid("duration_s", absl::StrCat("must be >= 0, got ", duration_s));
  }
  for (int n : num_requests) {
    if (n < 0) return Invalid("num_requests", absl::StrCat("must be >= 0, got ", n));
    if (n == 0 && duration_s == 0) {
      return Invalid("num_requests", "0 (no limit) needs --duration_s, or the run would never end");
    }
  }
  if (warmup < 0) return Invalid("warmup", absl::StrCat("must be >= 0, got ", warmup));
  if (!std::isfinite(timeout_s) || timeout_s <= 0) {
    return Invalid("timeout_s", absl::StrCat("must be > 0, got ", timeout_s));
  }
  if (client_threads < 1 || client_threads > 64) {
    return Invalid("client_threads", absl::StrCat("must be in [1, 64], got ", client_threads));
  }
  if (channels < 0 || channels > 1024) return Invalid("channels", absl::StrCat("must be in [0, 1024], got ", channels));
  return absl::OkStatus();
}

}  // namespace llama::load
