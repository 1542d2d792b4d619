// EngineLoop::Impl: the engine thread's state and the loop's steps, shared by engine_loop.cc (inbox, policy steps,
// terminal events) and engine_loop_scoring.cc (reward steps and scored streaming). Private to scheduler/.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "scheduler/candidate_selector.h"
#include "scheduler/engine_loop.h"
#include "scheduler/request_state.h"
#include "scheduler/reward_queue.h"
#include "scheduler/scheduler.h"

namespace llama {
namespace engine_loop_internal {

// Reward-queue ids of score jobs: [2^62, 2^63), never a request's (Submit refuses them).
inline constexpr uint64_t kFirstScoreJobId = uint64_t{1} << 62;
inline constexpr uint64_t kLastScoreJobId = (uint64_t{1} << 63) - 1;

// The context limit: the configured one (default: the model's), never more than the model's positions nor what
// the KV pool can hold for one sequence (so a sequence alone always fits and the queue cannot stall).
inline SchedulerConfig ResolveConfig(SchedulerConfig config, const ModelConfig& model, const KvCacheSpec& kv) {
  if (config.max_model_len == 0) config.max_model_len = model.max_position_embeddings;
  config.max_model_len = std::min({int64_t{config.max_model_len}, int64_t{model.max_position_embeddings},
                                   int64_t{kv.num_blocks} * kv.block_size});
  return config;
}

}  // namespace engine_loop_internal

using engine_loop_internal::kFirstScoreJobId;
using engine_loop_internal::kLastScoreJobId;

class EngineLoop::Impl {
 public:
  Impl(Backend* backend, const Tokenizer* tokenizer, const EngineLoopOptions& options)
      : backend_(backend),
        tokenizer_(tokenizer),
        max_queued_requests_(options.max_queued_requests),
        cache_index_bits_(options.prefix_cache_index_bits),
        scheduler_(engine_loop_internal::ResolveConfig(options.scheduler, backend->config(), backend->kv_cache()),
                   backend->kv_cache().num_blocks, backend->kv_cache().block_size,
                   PrefixCacheRoot(options.model_source, backend->name(), backend->config(), backend->kv_cache()),
                   options.prefix_cache_index_bits) {
    absl::MutexLock lock(&mu_);
    PublishSnapshotLocked();
  }

  std::vector<StepObserver*> observers;
  CandidateSelector* selector = &default_selector_;

  int max_model_len() const { return scheduler_.config().max_model_len; }  // immutable after construction
  bool prefix_caching() const { return scheduler_.config().enable_prefix_caching; }

  void Start() {
    absl::MutexLock lock(&mu_);
    CHECK(!thread_.joinable() && !stop_requested_);
    if (std::vector<RewardModel*> models = selector->RewardModels(); !models.empty()) {
      reward_queue_ = std::make_unique<RewardQueue>(std::move(models), scheduler_.config().max_num_batched_tokens,
                                                    prefix_caching(), cache_index_bits_);
    }
    num_score_models_ = reward_queue_ != nullptr ? reward_queue_->num_models() : 0;
    accepting_ = true;
    snapshot_.running = true;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      accepting_ = false;
      stop_requested_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  absl::Status Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink) {
    RETURN_IF_ERROR(ValidateRequest(request, sink.get()));
    absl::MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError("engine loop is not running");
    if (num_queued_ >= max_queued_requests_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("request queue is full (", max_queued_requests_, " waiting)"));
    }
    if (!live_ids_.insert(request.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("request id ", request.id, " is already live"));
    }
    ++num_queued_;
    inbox_.push_back(InboxItem{std::move(request), std::move(sink), 0, absl::OkStatus()});
    return absl::OkStatus();
  }

  absl::Status SubmitScore(ScoreJob job) {
    absl::MutexLock lock(&mu_);
    if (!accepting_) return absl::UnavailableError("engine loop is not running");
    if (num_score_models_ == 0) return absl::FailedPreconditionError("the engine loop has no reward models");
    if (static_cast<int>(job.inputs.size()) != num_score_models_) {
      return absl::InvalidArgumentError(
          absl::StrCat("score job has ", job.inputs.size(), " inputs for ", num_score_models_, " reward models"));
    }
    InboxItem item;
    item.score = std::move(job);
    inbox_.push_back(std::move(item));
    return absl::OkStatus();
  }

  // Only the first cancel of a live request is queued, so the inbox stays bounded by the live requests.
  void Cancel(uint64_t request_id, absl::Status reason) {
    if (reason.ok()) reason = absl::CancelledError("cancelled");
    absl::MutexLock lock(&mu_);
    if (!live_ids_.contains(request_id) || !cancelling_.insert(request_id).second) return;
    inbox_.push_back(InboxItem{std::nullopt, nullptr, request_id, std::move(reason)});
  }

  EngineSnapshot Snapshot() const {
    absl::MutexLock lock(&mu_);
    EngineSnapshot snapshot = snapshot_;
    snapshot.num_waiting = num_queued_ + num_preempted_waiting_;
    return snapshot;
  }

 private:
  // A submission (request set) or a cancellation, in arrival order.
  struct InboxItem {
    std::optional<GenerationRequest> request;
    std::shared_ptr<RequestSink> sink;
    uint64_t cancel_id = 0;
    absl::Status cancel_reason;
    std::optional<ScoreJob> score;  // a Score RPC's job
  };

  absl::Status ValidateRequest(const GenerationRequest& request, const RequestSink* sink) const;
  void Run();
  bool WaitForWork();
  void Apply(InboxItem item);
  void Step();
  void MarkScheduled(const SchedulerPlan& plan, absl::Time now);
  void ApplyTokens(const std::vector<Sequence*>& updated);
  void FailStep(const SchedulerPlan& plan, const absl::Status& status);
  void ExpireDeadlines(absl::Time now);
  void Complete(uint64_t request_id);
  void EnqueueScoring(uint64_t request_id);
  void FinishSegment(uint64_t request_id, absl::StatusOr<CandidateChoice> choice, absl::Time now);
  void RewardStep(StepStats* stats);
  void FailRewardStep(const RewardStepStats& step, const absl::Status& status);
  void AddScoreJob(ScoreJob job);
  // Ends a score job that is not done (its reward blocks back now) with `status`.
  void FailScoreJob(uint64_t id, const absl::Status& status);
  void ExpireScoreJobs(absl::Time now);
  RequestCounters Counters(uint64_t request_id) const;
  bool has_work() const { return scheduler_.has_work() || (reward_queue_ != nullptr && !reward_queue_->empty()); }
  void Abort(uint64_t request_id, const absl::Status& status, FinishReason reason);
  void Forget(uint64_t request_id, RequestState& state);
  void PublishStep(const SchedulerPlan& plan, StepStats stats, absl::Duration step_time);
  void PublishSnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool InboxReadyOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !inbox_.empty() || stop_requested_;
  }

  Backend* const backend_;
  const Tokenizer* const tokenizer_;
  const int max_queued_requests_;
  const int cache_index_bits_;
  FirstCandidateSelector default_selector_;
  std::thread thread_;

  // Engine thread only.
  Scheduler scheduler_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<RequestState>> requests_;
  int64_t num_steps_ = 0;
  // Scoring as scheduled work (null without reward models) and, per request in it, its sequences' counters (in
  // whole-answer mode the scheduler has already let go of its sequences; a scored-streaming request's stay paused).
  std::unique_ptr<RewardQueue> reward_queue_;
  absl::flat_hash_map<uint64_t, RequestCounters> scoring_;
  // Score jobs in the reward queue, by their ids (the loop's own range, kFirstScoreJobId up).
  absl::flat_hash_map<uint64_t, ScoreJob> score_jobs_;
  uint64_t next_score_job_id_ = kFirstScoreJobId;

  mutable absl::Mutex mu_;
  std::vector<InboxItem> inbox_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<uint64_t> live_ids_ ABSL_GUARDED_BY(mu_);  // accepted and not finished
  absl::flat_hash_set<uint64_t> cancelling_ ABSL_GUARDED_BY(mu_);  // live ids with a cancel in the inbox
  int num_queued_ ABSL_GUARDED_BY(mu_) = 0;                      // accepted and never scheduled
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  EngineSnapshot snapshot_ ABSL_GUARDED_BY(mu_);
  int num_preempted_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int num_score_models_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace llama
