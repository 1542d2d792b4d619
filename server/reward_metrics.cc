#include "server/reward_metrics.h"

namespace llama::server {
namespace {

using prometheus::Histogram;

// Scores are probabilities: 0.05-wide buckets, with the default safety threshold (0.15) as an edge.
Histogram::BucketBoundaries ScoreBuckets() {
  Histogram::BucketBoundaries b;
  for (int i = 1; i <= 20; ++i) b.push_back(0.05 * i);
  return b;
}
// One batched prefill of k candidates: milliseconds on a GPU, up to seconds for big models on the CPU.
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
}

}  // namespace

RewardMetrics::RewardMetrics(prometheus::Registry& registry, const std::vector<std::string>& model_names) {
  score_family_ = &prometheus::BuildHistogram()
                       .Name("llama_chat_reward_score")
                       .Help("Reward model score (probability) of every scored candidate.")
                       .Register(registry);
  latency_family_ = &prometheus::BuildHistogram()
                         .Name("llama_chat_reward_latency_seconds")
                         .Help("Time of one batched reward-model scoring call (all candidates of a request).")
                         .Register(registry);
  for (const std::string& name : model_names) {
    scores_[name] = &score_family_->Add({{"model", name}}, ScoreBuckets());
    latencies_[name] = &latency_family_->Add({{"model", name}}, LatencyBuckets());
  }
  candidates_per_request_ = &prometheus::BuildHistogram()
                                 .Name("llama_chat_candidates_per_request")
                                 .Help("Candidates (k) generated and scored per request.")
                                 .Register(registry)
                                 .Add({}, Histogram::BucketBoundaries{1, 2, 3, 4, 6, 8, 12, 16});
  safety_refusals_ = &prometheus::BuildCounter()
                          .Name("llama_chat_safety_refusals_total")
                          .Help("Requests answered with the refusal because no candidate passed the safety threshold.")
                          .Register(registry)
                          .Add({});
  segment_score_ = &prometheus::BuildHistogram()
                        .Name("llama_chat_segment_score")
                        .Help("Scored streaming: the chosen candidate's safety score of every segment.")
                        .Register(registry)
                        .Add({}, ScoreBuckets());
  rejected_segments_ = &prometheus::BuildCounter()
                            .Name("llama_chat_rejected_segments_total")
                            .Help("Scored streaming: segments in which no candidate passed the safety threshold.")
                            .Register(registry)
                            .Add({});
}

void RewardMetrics::OnScored(const std::string& model, absl::Span<const float> scores, double latency_s) {
  auto score_it = scores_.find(model);
  auto latency_it = latencies_.find(model);
  if (score_it == scores_.end() || latency_it == latencies_.end()) return;  // a model the server did not load
  for (float s : scores) score_it->second->Observe(s);
  latency_it->second->Observe(latency_s);
}

void RewardMetrics::OnSelected(int num_candidates, bool refused) {
  candidates_per_request_->Observe(num_candidates);
  if (refused) safety_refusals_->Increment();
}

void RewardMetrics::OnSegmentChosen(int segment, float safety_score, bool refused) {
  segment_score_->Observe(safety_score);
  if (!refused) return;
  rejected_segments_->Increment();
  if (segment > 0) safety_refusals_->Increment();  // segment 0's refusal was counted by OnSelected
}

}  // namespace llama::server
