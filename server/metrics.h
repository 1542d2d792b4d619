// Prometheus metrics of the server, named after vLLM's set with the prefix llama_chat_ (DESIGN §8):
//   histograms  time_to_first_token_seconds, inter_token_latency_seconds, e2e_request_latency_seconds,
//               request_queue_time_seconds
//   gauges      num_requests_running, num_requests_waiting (the per-pod HPA signal), kv_cache_usage_ratio,
//               kv_cache_bytes_per_token and kv_cache_bytes (the policy's KV pool: they follow its element type,
//               e.g. --kv_dtype f16 halves bytes per token)
//   counters    prompt_tokens_total, generation_tokens_total, num_preemptions_total,
//               request_success_total{finished_reason}, request_failure_total{code},
//               prefix_cache_queries_total{model}, prefix_cache_hits_total{model} (tokens)
//   gauge       prefix_cache_blocks{model}
//   gauge       weight_bytes{model,dtype}: bytes of each loaded model's stored matrices (model="policy" and each
//               reward model's name; dtype = its storage type, "f32"/"bf16"/"q8_0", empty when the backend does
//               not say), set once at start
//   histogram   segments_per_request (scored streaming: segments chosen per request; whole-answer requests are not
//               observed)
// The prefix-cache families are labelled by KV pool: model="policy" and each reward model's name ("safety",
// "helpfulness"); they follow the engine's cumulative counters (EngineSnapshot::prefix_caches) at scrape time.
// Every Chat call ends in exactly one of request_success_total (OK) or request_failure_total (any other status,
// including refusals before admission), so the two sum to the calls received.
//
// Threading: OnStep and RecordInterTokenLatency run on the engine thread (cheap: atomics and a short histogram
// lock), the Record* calls on gRPC threads, Collect on the exposer's HTTP threads. The gauges are refreshed from
// EngineLoop::Snapshot at scrape time as well as every step, so an idle server reports 0 running / 0 waiting.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler/engine_loop.h"
#include "scheduler/request.h"
#include "scheduler/step_stats.h"

namespace llama::server {

class ServerMetrics : public prometheus::Collectable, public StepObserver {
 public:
  ServerMetrics();

  // Where scrape-time gauges come from (thread-safe; usually EngineLoop::Snapshot). Set before serving.
  void SetSnapshotSource(std::function<EngineSnapshot()> source) { snapshot_source_ = std::move(source); }

  // StepObserver (engine thread): running/waiting/KV gauges and the preemption counter.
  void OnStep(const StepStats& stats) override;

  // An engine-side finish (any status): latency histograms and token counters.
  void RecordEngineFinish(const FinishInfo& info);
  // Gap between two token deliveries of one stream.
  void RecordInterTokenLatency(double seconds);
  // The status a Chat call finished with: success{finished_reason} when OK, failure{code} otherwise.
  void RecordChatOutcome(const grpc::Status& status, FinishReason reason);

  // The policy KV pool's shape (KvCacheSpec::bytes_per_token, total_bytes), set once at start.
  void SetKvCacheShape(int64_t bytes_per_token, int64_t total_bytes) const;
  // One loaded model's stored weights (weight_bytes{model,dtype}), set once at start per model.
  void SetWeightBytes(const std::string& model, const std::string& dtype, int64_t bytes) const;

  // Collectable: refreshes the gauges from the snapshot source, then returns every family.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // For other server parts that add their own families (e.g. reward models, issue 5).
  prometheus::Registry& registry() { return *registry_; }

 private:
  void SetEngineGauges(int num_running, int num_waiting, int kv_blocks_used, int kv_blocks_total) const;
  // Brings the prefix-cache series up to the engine's totals (counters only ever go up).
  void SetPrefixCaches(const std::vector<PrefixCacheStats>& caches) const;

  std::shared_ptr<prometheus::Registry> registry_;
  std::function<EngineSnapshot()> snapshot_source_;

  prometheus::Histogram* time_to_first_token_;
  prometheus::Histogram* inter_token_latency_;
  prometheus::Histogram* e2e_request_latency_;
  prometheus::Histogram* request_queue_time_;
  prometheus::Histogram* segments_per_request_;
  prometheus::Gauge* num_requests_running_;
  prometheus::Gauge* num_requests_waiting_;
  prometheus::Gauge* kv_cache_usage_ratio_;
  prometheus::Gauge* kv_cache_bytes_per_token_;
  prometheus::Gauge* kv_cache_bytes_;
  prometheus::Family<prometheus::Gauge>* weight_bytes_;
  prometheus::Family<prometheus::Gauge>* kv_blocks_used_;  // {pool}: set from the snapshot at scrape time
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* num_preemptions_;
  prometheus::Family<prometheus::Counter>* request_success_;
  prometheus::Family<prometheus::Counter>* request_failure_;
  prometheus::Family<prometheus::Counter>* prefix_cache_queries_;
  prometheus::Family<prometheus::Counter>* prefix_cache_hits_;
  prometheus::Family<prometheus::Gauge>* prefix_cache_blocks_;
  mutable absl::Mutex prefix_mu_;  // one scrape at a time raises the counters
};

}  // namespace llama::server
