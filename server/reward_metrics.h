// Prometheus metrics of the co-hosted reward models (DESIGN §7, §8), registered in the server's registry:
//   llama_chat_reward_score{model}              histogram of every candidate's score (probability)
//   llama_chat_reward_latency_seconds{model}    histogram of a request's scoring: all k candidates queued → scored
//   llama_chat_candidates_per_request           histogram of k over requests that went through selection
//   llama_chat_safety_refusals_total            counter of requests answered with the refusal (finish SAFETY)
//   llama_chat_segment_score                    scored streaming: histogram of each segment's chosen safety score
//   llama_chat_rejected_segments_total          scored streaming: segments where no candidate passed (each ends
//                                               its answer with the refusal)
// (llama_chat_segments_per_request is the server's, server/metrics.h, from each request's FinishInfo.)
//
// Threading: the RewardObserver calls run on the engine thread; prometheus-cpp metrics are internally locked.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "scheduler/reward_selector.h"

namespace llama::server {

class RewardMetrics : public RewardObserver {
 public:
  // model_names: the label values (reward model names) to pre-create series for.
  RewardMetrics(prometheus::Registry& registry, const std::vector<std::string>& model_names);

  void OnScored(const std::string& model, absl::Span<const float> scores, double latency_s) override;
  void OnSelected(int num_candidates, bool refused) override;
  void OnSegmentChosen(int segment, float safety_score, bool refused) override;

 private:
  prometheus::Family<prometheus::Histogram>* score_family_;
  prometheus::Family<prometheus::Histogram>* latency_family_;
  std::map<std::string, prometheus::Histogram*> scores_;     // by model name; fixed after construction
  std::map<std::string, prometheus::Histogram*> latencies_;  // by model name; fixed after construction
  prometheus::Histogram* candidates_per_request_;
  prometheus::Counter* safety_refusals_;
  prometheus::Histogram* segment_score_;
  prometheus::Counter* rejected_segments_;
};

}  // namespace llama::server
