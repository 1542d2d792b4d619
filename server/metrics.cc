#include "server/metrics.h"

#include "server/status_mapping.h"

namespace llama::server {
namespace {

using prometheus::Histogram;

// Buckets follow vLLM's, extended at the slow end because the CPU backend is slow.
Histogram::BucketBoundaries TtftBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
          80.0};
}
Histogram::BucketBoundaries InterTokenBuckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0};
}
Histogram::BucketBoundaries RequestBuckets() {
  return {0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
          120.0, 240.0, 480.0};
}

Histogram* AddHistogram(prometheus::Registry& registry, const std::string& name, const std::string& help,
                        Histogram::BucketBoundaries buckets) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, std::move(buckets));
}
prometheus::Gauge* AddGauge(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}
prometheus::Counter* AddCounter(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

// Reasons and codes created at start so that dashboards and alerts see zero-valued series before any traffic.
constexpr FinishReason kSuccessReasons[] = {FinishReason::kStop, FinishReason::kLength, FinishReason::kSafety};
constexpr grpc::StatusCode kFailureCodes[] = {
    grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::RESOURCE_EXHAUSTED, grpc::StatusCode::UNAVAILABLE,
    grpc::StatusCode::CANCELLED,        grpc::StatusCode::DEADLINE_EXCEEDED,  grpc::StatusCode::INTERNAL};

}  // namespace

ServerMetrics::ServerMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  time_to_first_token_ = AddHistogram(r, "llama_chat_time_to_first_token_seconds",
                                      "Arrival to first generated token, per request.", TtftBuckets());
  inter_token_latency_ = AddHistogram(r, "llama_chat_inter_token_latency_seconds",
                                      "Time between consecutive token deliveries of one stream.", InterTokenBuckets());
  e2e_request_latency_ = AddHistogram(r, "llama_chat_e2e_request_latency_seconds",
                                      "Arrival to finish, per admitted request.", RequestBuckets());
  request_queue_time_ = AddHistogram(r, "llama_chat_request_queue_time_seconds",
                                     "Arrival to first scheduled, per admitted request.", RequestBuckets());
  segments_per_request_ = AddHistogram(r, "llama_chat_segments_per_request",
                                       "Scored streaming: segments chosen per request.",
                                       prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  num_requests_running_ = AddGauge(r, "llama_chat_num_requests_running", "Requests in the engine's running set.");
  num_requests_waiting_ = AddGauge(r, "llama_chat_num_requests_waiting",
                                   "Requests admitted but waiting to be scheduled (per pod; the autoscaling signal).");
  kv_cache_usage_ratio_ = AddGauge(r, "llama_chat_kv_cache_usage_ratio", "Used KV cache blocks / all blocks (0..1).");
  kv_cache_bytes_per_token_ = AddGauge(r, "llama_chat_kv_cache_bytes_per_token",
                                       "K + V bytes of one token over all layers in the policy's KV pool.");
  kv_cache_bytes_ = AddGauge(r, "llama_chat_kv_cache_bytes", "Bytes of the policy's KV pool (all blocks).");
  weight_bytes_ = &prometheus::BuildGauge()
                      .Name("llama_chat_weight_bytes")
                      .Help("Bytes of a loaded model's stored matrices, by model (policy, reward models) and storage "
                            "type.")
                      .Register(r);
  kv_blocks_used_ = &prometheus::BuildGauge()
                         .Name("llama_chat_kv_cache_blocks_used")
                         .Help("KV blocks held by live requests, by pool: the policy's, and the reward models' "
                               "engine pools (requests waiting for or in scoring).")
                         .Register(r);
  kv_blocks_used_->Add({{"pool", "policy"}});
  kv_blocks_used_->Add({{"pool", "reward"}});
  prompt_tokens_ = AddCounter(r, "llama_chat_prompt_tokens_total", "Prompt tokens of finished requests.");
  generation_tokens_ = AddCounter(r, "llama_chat_generation_tokens_total", "Generated tokens of finished requests.");
  num_preemptions_ = AddCounter(r, "llama_chat_num_preemptions_total", "Sequences preempted (recompute).");
  request_success_ = &prometheus::BuildCounter()
                          .Name("llama_chat_request_success_total")
                          .Help("Chat calls that finished OK, by finish reason.")
                          .Register(r);
  request_failure_ = &prometheus::BuildCounter()
                          .Name("llama_chat_request_failure_total")
                          .Help("Chat calls that finished with an error status, by gRPC code.")
                          .Register(r);
  prefix_cache_queries_ = &prometheus::BuildCounter()
                               .Name("llama_chat_prefix_cache_queries_total")
                               .Help("Tokens of sequences looked up in the prefix cache when admitted, by KV pool.")
                               .Register(r);
  prefix_cache_hits_ = &prometheus::BuildCounter()
                            .Name("llama_chat_prefix_cache_hits_total")
                            .Help("Of those, tokens found in the prefix cache (not computed), by KV pool.")
                            .Register(r);
  prefix_cache_blocks_ = &prometheus::BuildGauge()
                              .Name("llama_chat_prefix_cache_blocks")
                              .Help("KV blocks held only by the prefix cache (evictable), by KV pool.")
                              .Register(r);
  // The policy's series exist from start; the reward models' appear with the engine's first snapshot.
  prefix_cache_queries_->Add({{"model", "policy"}});
  prefix_cache_hits_->Add({{"model", "policy"}});
  prefix_cache_blocks_->Add({{"model", "policy"}});
  for (FinishReason reason : kSuccessReasons) request_success_->Add({{"finished_reason", FinishReasonName(reason)}});
  for (grpc::StatusCode code : kFailureCodes) request_failure_->Add({{"code", GrpcCodeName(code)}});
}

void ServerMetrics::SetEngineGauges(int num_running, int num_waiting, int kv_blocks_used, int kv_blocks_total) const {
  num_requests_running_->Set(num_running);
  num_requests_waiting_->Set(num_waiting);
  kv_cache_usage_ratio_->Set(kv_blocks_total > 0 ? static_cast<double>(kv_blocks_used) / kv_blocks_total : 0.0);
}

void ServerMetrics::SetKvCacheShape(int64_t bytes_per_token, int64_t total_bytes) const {
  kv_cache_bytes_per_token_->Set(static_cast<double>(bytes_per_token));
  kv_cache_bytes_->Set(static_cast<double>(total_bytes));
}

void ServerMetrics::SetWeightBytes(const std::string& model, const std::string& dtype, int64_t bytes) const {
  weight_bytes_->Add({{"model", model}, {"dtype", dtype}}).Set(static_cast<double>(bytes));
}

void ServerMetrics::OnStep(const StepStats& stats) {
  SetEngineGauges(stats.num_running, stats.num_waiting, stats.kv_blocks_used,
                  stats.kv_blocks_used + stats.kv_blocks_free + stats.kv_blocks_cached);
  if (stats.num_preemptions > 0) num_preemptions_->Increment(stats.num_preemptions);
}

void ServerMetrics::RecordEngineFinish(const FinishInfo& info) {
  prompt_tokens_->Increment(info.prompt_tokens);
  generation_tokens_->Increment(info.completion_tokens);
  e2e_request_latency_->Observe(info.total_time_s);
  request_queue_time_->Observe(info.queue_time_s);
  if (info.completion_tokens > 0) time_to_first_token_->Observe(info.time_to_first_token_s);
  if (info.num_segments > 0) segments_per_request_->Observe(info.num_segments);
}

void ServerMetrics::RecordInterTokenLatency(double seconds) { inter_token_latency_->Observe(seconds); }

void ServerMetrics::RecordChatOutcome(const grpc::Status& status, FinishReason reason) {
  if (status.ok()) {
    request_success_->Add({{"finished_reason", FinishReasonName(reason)}}).Increment();
  } else {
    request_failure_->Add({{"code", GrpcCodeName(status.error_code())}}).Increment();
  }
}

void ServerMetrics::SetPrefixCaches(const std::vector<PrefixCacheStats>& caches) const {
  absl::MutexLock lock(&prefix_mu_);
  for (const PrefixCacheStats& cache : caches) {
    const prometheus::Labels labels = {{"model", cache.model}};
    prometheus::Counter& queries = prefix_cache_queries_->Add(labels);
    prometheus::Counter& hits = prefix_cache_hits_->Add(labels);
    if (cache.queries > queries.Value()) queries.Increment(cache.queries - queries.Value());
    if (cache.hits > hits.Value()) hits.Increment(cache.hits - hits.Value());
    prefix_cache_blocks_->Add(labels).Set(cache.cached_blocks);
  }
}

std::vector<prometheus::MetricFamily> ServerMetrics::Collect() const {
  if (snapshot_source_) {
    const EngineSnapshot snapshot = snapshot_source_();
    SetEngineGauges(snapshot.num_running, snapshot.num_waiting, snapshot.kv_blocks_used, snapshot.kv_blocks_total);
    kv_blocks_used_->Add({{"pool", "policy"}}).Set(snapshot.kv_blocks_used);
    kv_blocks_used_->Add({{"pool", "reward"}}).Set(snapshot.reward_kv_blocks_used);
    SetPrefixCaches(snapshot.prefix_caches);
  }
  return registry_->Collect();
}

}  // namespace llama::server
