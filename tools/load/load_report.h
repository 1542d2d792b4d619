// What a load run prints and writes: each level's report, the sweep table, the JSON file (every figure of every
// level plus the run's settings and the server's limits) and the throughput-vs-latency plot built from such JSON
// (so `--plot a.json,b.json` draws earlier runs as series of one figure).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tools/load/load_run.h"
#include "tools/load/svg_plot.h"

namespace llama::load {

void PrintLevel(std::FILE* out, const LevelSummary& level, const SloTargets& slo);
void PrintSweep(std::FILE* out, const LoadResult& result);

nlohmann::json ResultJson(const LoadResult& result);
absl::Status WriteTextFile(const std::string& path, const std::string& text);
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

// The run's requests as JSON lines, one per request: {"prompt": the last user message, "messages": [{"role",
// "content"}...], "output_tokens": max_tokens}: vLLM's `bench serve --dataset-name custom` reads "prompt" and
// "output_tokens" (a single user turn, so exact for --input_tokens prompts).
std::string PromptsJsonl(const PromptSet& prompts);

// One series from a ResultJson: x = output tokens/s, y = the chosen latency's p50 in ms, one point per level.
absl::StatusOr<PlotSeries> SeriesFromJson(const nlohmann::json& result, PlotLatency latency);
PlotSpec SweepPlot(std::vector<PlotSeries> series, PlotLatency latency);

}  // namespace llama::load
