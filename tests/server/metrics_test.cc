// ServerMetrics without a server: the KV usage gauge counts blocks kept only by the prefix cache as not used, and
// the prefix-cache families follow the engine's cumulative counters per KV pool, never going down.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace llama::server {
namespace {

// The value of one series (counter or gauge) of a family; -1 when the series does not exist.
double Value(ServerMetrics& metrics, const std::string& family, const std::string& model = "") {
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      bool match = model.empty();
      for (const auto& l : m.label) match = match || (l.name == "model" && l.value == model);
      if (match) return m.counter.value + m.gauge.value;
    }
  }
  return -1;
}

TEST(ServerMetricsTest, CachedBlocksAreNotUsedBlocks) {
  ServerMetrics metrics;
  StepStats stats;
  stats.kv_blocks_used = 2;
  stats.kv_blocks_free = 1;
  stats.kv_blocks_cached = 5;
  metrics.OnStep(stats);
  EXPECT_DOUBLE_EQ(Value(metrics, "llama_chat_kv_cache_usage_ratio"), 2.0 / 8.0);
}

TEST(ServerMetricsTest, KvCacheShapeGauges) {
  ServerMetrics metrics;
  metrics.SetKvCacheShape(3456, 3456 * 16 * 100);
  EXPECT_DOUBLE_EQ(Value(metrics, "llama_chat_kv_cache_bytes_per_token"), 3456);
  EXPECT_DOUBLE_EQ(Value(metrics, "llama_chat_kv_cache_bytes"), 3456.0 * 16 * 100);
}

TEST(ServerMetricsTest, PrefixCacheSeriesFollowTheEnginesTotalsPerPool) {
  ServerMetrics metrics;
  // The policy's series exist before the engine reports anything.
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_queries_total", "policy"), 0);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_hits_total", "policy"), 0);
  EngineSnapshot snapshot;
  snapshot.prefix_caches = {{"policy", 300, 120, 7}, {"safety", 80, 40, 3}};
  metrics.SetSnapshotSource([&snapshot] { return snapshot; });
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_queries_total", "policy"), 300);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_hits_total", "policy"), 120);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_blocks", "policy"), 7);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_queries_total", "safety"), 80);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_hits_total", "safety"), 40);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_blocks", "safety"), 3);
  // Scraped again after more work: the counters are the totals, not the sum of scrapes.
  snapshot.prefix_caches = {{"policy", 500, 320, 2}, {"safety", 80, 40, 0}};
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_queries_total", "policy"), 500);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_hits_total", "policy"), 320);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_blocks", "policy"), 2);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_hits_total", "safety"), 40);
  EXPECT_EQ(Value(metrics, "llama_chat_prefix_cache_blocks", "safety"), 0);
}

}  // namespace
}  // namespace llama::server
