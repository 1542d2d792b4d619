#include "scheduler/engine_loop.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "scheduler/candidate_selector.h"
#include "scheduler/engine_loop_impl.h"
#include "scheduler/forward_input_builder.h"
#include "scheduler/request_state.h"
#include "scheduler/reward_queue.h"
#include "scheduler/scheduler.h"

namespace llama {
namespace {

FinishReason ReasonFor(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDeadlineExceeded ? FinishReason::kDeadline : FinishReason::kCancelled;
}

SequenceStatus SequenceStatusFor(FinishReason reason) {
  switch (reason) {
    case FinishReason::kDeadline: return SequenceStatus::kFinishedDeadline;
    case FinishReason::kError: return SequenceStatus::kFinishedError;
    default: return SequenceStatus::kFinishedCancelled;
  }
}

}  // namespace

absl::Status EngineLoopOptions::Validate() const {
  RETURN_IF_ERROR(scheduler.Validate());
  if (max_queued_requests < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_queued_requests must be >= 1, got ", max_queued_requests));
  }
  if (prefix_cache_index_bits < 1 || prefix_cache_index_bits > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix_cache_index_bits must be in [1, 64], got ", prefix_cache_index_bits));
  }
  return absl::OkStatus();
}

absl::Status EngineLoop::Impl::ValidateRequest(const GenerationRequest& request, const RequestSink* sink) const {
  const ModelConfig& model = backend_->config();
  const int max_model_len = scheduler_.config().max_model_len;  // immutable after construction
  if (sink == nullptr) return absl::InvalidArgumentError("request has no sink");
  if (request.prompt_tokens.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (request.id >= kFirstScoreJobId && request.id <= kLastScoreJobId) {
    return absl::InvalidArgumentError(absl::StrCat("request id ", request.id, " is in the engine's own range"));
  }
  if (static_cast<int>(request.prompt_tokens.size()) + 1 > max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("prompt has ", request.prompt_tokens.size(),
                                                   " tokens; the context limit is ", max_model_len,
                                                   " and at least one token must be generated"));
  }
  for (int32_t id : request.prompt_tokens) {
    if (id < 0 || id >= model.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id, " is outside the vocabulary"));
    }
  }
  // All k candidates of a request run in one step, so k is also capped by the sequence cap.
  const int max_k = std::min(scheduler_.config().max_num_candidates, scheduler_.config().max_num_seqs);
  if (request.num_candidates < 1 || request.num_candidates > max_k) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_candidates must be in [1, ", max_k, "], got ", request.num_candidates));
  }
  if (request.segment_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment_tokens must be >= 0 (0 = whole-answer mode), got ", request.segment_tokens));
  }
  if (request.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 1, got ", request.max_tokens));
  }
  for (const std::string& stop : request.stop) {
    if (stop.empty()) return absl::InvalidArgumentError("stop strings must not be empty");
  }
  if (!request.stop.empty() && tokenizer_ == nullptr) {
    return absl::InvalidArgumentError("stop strings need a tokenizer");
  }
  return request.sampling.Validate();
}

// The loop body: schedule → forward → sample (inside Forward) → update, until Stop().
void EngineLoop::Impl::Run() {
  while (WaitForWork()) Step();
  // Shutting down: every accepted request still live gets its one terminal event.
  std::vector<InboxItem> items;
  {
    absl::MutexLock lock(&mu_);
    items.swap(inbox_);
  }
  for (InboxItem& item : items) Apply(std::move(item));
  std::vector<uint64_t> ids;
  for (const auto& [id, state] : requests_) ids.push_back(id);
  for (uint64_t id : ids) Abort(id, absl::CancelledError("server shutting down"), FinishReason::kCancelled);
  std::vector<uint64_t> jobs;
  for (const auto& [id, job] : score_jobs_) jobs.push_back(id);
  for (uint64_t id : jobs) FailScoreJob(id, absl::CancelledError("server shutting down"));
  absl::MutexLock lock(&mu_);
  PublishSnapshotLocked();
  snapshot_.running = false;
}

// Takes the inbox; when idle, checks for leaks and sleeps until something arrives. False when stopping.
bool EngineLoop::Impl::WaitForWork() {
  std::vector<InboxItem> items;
  {
    absl::MutexLock lock(&mu_);
    if (!has_work()) {
      // Idle: every block is back, free or cached (free + cached + used == total is checked inside), the reward
      // models' too.
      scheduler_.allocator().CheckInvariants();
      CHECK_EQ(scheduler_.allocator().num_used(), 0);
      if (reward_queue_ != nullptr) reward_queue_->CheckIdle();
      CHECK(scoring_.empty());
      CHECK(score_jobs_.empty());
      PublishSnapshotLocked();
      mu_.Await(absl::Condition(this, &Impl::InboxReadyOrStopping));
    }
    if (stop_requested_) return false;
    items.swap(inbox_);
  }
  for (InboxItem& item : items) Apply(std::move(item));
  ExpireDeadlines(absl::Now());
  return true;
}

void EngineLoop::Impl::Apply(InboxItem item) {
  if (item.score.has_value()) {
    AddScoreJob(*std::move(item.score));
    return;
  }
  if (!item.request.has_value()) {
    if (requests_.contains(item.cancel_id)) Abort(item.cancel_id, item.cancel_reason, ReasonFor(item.cancel_reason));
    return;
  }
  GenerationRequest& request = *item.request;
  const uint64_t id = request.id;
  scheduler_.AddRequest(id, request.prompt_tokens, request.sampling, request.seed, request.num_candidates);
  // Scored streaming needs the loop's reward steps; without them there is nothing to score segment by segment.
  const int segment_tokens = reward_queue_ != nullptr ? request.segment_tokens : 0;
  requests_[id] = std::make_unique<RequestState>(std::move(request), std::move(item.sink), tokenizer_,
                                                 scheduler_.config().max_model_len,
                                                 backend_->config().eos_token_id, selector->ScoresCandidates(),
                                                 segment_tokens);
}

// The policy's forward (when anything is scheduled), then at most one reward step (when anything waits for
// scoring), so scoring chunks and other requests' decodes alternate step by step.
void EngineLoop::Impl::Step() {
  const absl::Time start = absl::Now();
  SchedulerPlan plan = scheduler_.Schedule();
  // With policy work a step always schedules something (a sequence alone fits the pool, and the budget and
  // sequence cap are >= 1), so the loop never spins.
  if (plan.empty()) CHECK(!scheduler_.has_work());
  if (!has_work()) return;  // the inbox emptied everything (cancels)
  if (!plan.empty()) {
    MarkScheduled(plan, start);
    const ForwardInput input = BuildForwardInput(plan);
    ForwardOutput output;
    absl::Status status = backend_->Forward(input, &output);
    if (status.ok() && static_cast<int>(output.sampled_tokens.size()) != plan.num_samples()) {
      status = absl::InternalError(absl::StrCat("backend returned ", output.sampled_tokens.size(),
                                                " tokens for ", plan.num_samples(), " output rows"));
    }
    if (status.ok()) {
      ApplyTokens(scheduler_.Update(plan, output.sampled_tokens));
    } else {
      FailStep(plan, status);
    }
  }
  StepStats stats;
  RewardStep(&stats);
  ++num_steps_;
  PublishStep(plan, stats, absl::Now() - start);
}

void EngineLoop::Impl::MarkScheduled(const SchedulerPlan& plan, absl::Time now) {
  int newly_scheduled = 0;
  for (const ScheduledSequence& s : plan.seqs) {
    RequestState& state = *requests_.at(s.seq->request_id());
    if (state.scheduled()) continue;
    state.MarkScheduled(now);
    ++newly_scheduled;
  }
  if (newly_scheduled == 0) return;
  // The requests leave "waiting" and enter "running" in one snapshot: were num_queued_ to drop while the published
  // num_running still showed the previous step, a reader could see an idle engine while a request is in flight.
  absl::MutexLock lock(&mu_);
  num_queued_ -= newly_scheduled;
  PublishSnapshotLocked();
}

void EngineLoop::Impl::ApplyTokens(const std::vector<Sequence*>& updated) {
  const absl::Time now = absl::Now();
  for (Sequence* seq : updated) {
    const uint64_t id = seq->request_id();
    RequestState& state = *requests_.at(id);
    const TokenOutcome outcome = state.OnToken(*seq, now);
    if (outcome.finished) {
      scheduler_.FinishSequence(seq, *outcome.finished);
    } else if (outcome.segment_full) {
      scheduler_.PauseSequence(seq);  // keeps its KV until the segment's choice
    } else {
      continue;
    }
    if (state.segmented()) {
      if (state.segment_complete()) EnqueueScoring(id);
      continue;
    }
    if (!state.all_candidates_finished()) continue;
    const bool selects = state.request().num_candidates > 1 || selector->ScoresCandidates();
    if (reward_queue_ != nullptr && selects) {
      EnqueueScoring(id);
    } else {
      Complete(id);
    }
  }
}

// The backend failed: the step's KV writes are lost, so exactly the requests in this step end (INTERNAL).
void EngineLoop::Impl::FailStep(const SchedulerPlan& plan, const absl::Status& status) {
  const absl::Status error =
      absl::InternalError(absl::StrCat("backend ", backend_->name(), " failed: ", status.message()));
  absl::flat_hash_set<uint64_t> ids;
  for (const ScheduledSequence& s : plan.seqs) ids.insert(s.seq->request_id());
  for (uint64_t id : ids) Abort(id, error, FinishReason::kError);
}

void EngineLoop::Impl::ExpireDeadlines(absl::Time now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, state] : requests_) {
    if (state->request().deadline <= now) expired.push_back(id);
  }
  for (uint64_t id : expired) Abort(id, absl::DeadlineExceededError("deadline exceeded"), FinishReason::kDeadline);
  ExpireScoreJobs(now);
}

void EngineLoop::Impl::Complete(uint64_t request_id) {
  RequestState& state = *requests_.at(request_id);
  const RequestCounters counters = Counters(request_id);
  scheduler_.RemoveRequest(request_id, SequenceStatus::kFinishedStopped);  // all finished already
  state.Complete(selector, counters, absl::Now());
  Forget(request_id, state);
}

void EngineLoop::Impl::Abort(uint64_t request_id, const absl::Status& status, FinishReason reason) {
  RequestState& state = *requests_.at(request_id);
  const RequestCounters counters = Counters(request_id);
  // Its reward-model blocks and its policy blocks (a scored-streaming request may hold both) go back now.
  if (scoring_.contains(request_id)) reward_queue_->Remove(request_id);
  if (scheduler_.HasRequest(request_id)) scheduler_.RemoveRequest(request_id, SequenceStatusFor(reason));
  state.Abort(status, reason, counters, absl::Now());
  Forget(request_id, state);
}

void EngineLoop::Impl::Forget(uint64_t request_id, RequestState& state) {
  {
    absl::MutexLock lock(&mu_);
    if (!state.scheduled()) --num_queued_;
    live_ids_.erase(request_id);
    cancelling_.erase(request_id);
  }
  scoring_.erase(request_id);
  requests_.erase(request_id);
}

void EngineLoop::Impl::PublishStep(const SchedulerPlan& plan, StepStats stats, absl::Duration step_time) {
  stats.step = num_steps_;
  stats.num_seqs = static_cast<int>(plan.seqs.size());
  stats.num_prefill_tokens = plan.num_prefill_tokens;
  stats.num_decode_tokens = plan.num_decode_tokens;
  stats.kv_blocks_used = scheduler_.allocator().num_used();
  stats.kv_blocks_free = scheduler_.allocator().num_free();
  stats.kv_blocks_cached = scheduler_.allocator().num_cached();
  stats.prefix_cache_queries = plan.prefix_cache_queries;
  stats.prefix_cache_hits = plan.prefix_cache_hits;
  stats.num_preemptions = static_cast<int>(plan.preempted.size());
  stats.num_running = scheduler_.num_running();
  stats.num_waiting = scheduler_.num_waiting();
  stats.step_time_s = absl::ToDoubleSeconds(step_time);
  for (StepObserver* observer : observers) observer->OnStep(stats);
  absl::MutexLock lock(&mu_);
  PublishSnapshotLocked();
}

void EngineLoop::Impl::PublishSnapshotLocked() {
  snapshot_.num_running = scheduler_.num_running();
  // Waiting = never scheduled (num_queued_, exact at any moment, read in Snapshot) + preempted and requeued.
  num_preempted_waiting_ = scheduler_.num_preempted_waiting();
  snapshot_.kv_blocks_used = scheduler_.allocator().num_used();
  snapshot_.kv_blocks_total = scheduler_.allocator().num_total();
  snapshot_.kv_blocks_cached = scheduler_.allocator().num_cached();
  const int num_reward_models = reward_queue_ != nullptr ? reward_queue_->num_models() : 0;
  snapshot_.prefix_caches.resize(1 + num_reward_models);
  snapshot_.prefix_caches[0] = PrefixCacheStats{"policy", scheduler_.prefix_cache_queries(),
                                                scheduler_.prefix_cache_hits(), scheduler_.allocator().num_cached()};
  for (int m = 0; m < num_reward_models; ++m) snapshot_.prefix_caches[1 + m] = reward_queue_->prefix_cache_stats(m);
  snapshot_.reward_kv_blocks_used = reward_queue_ != nullptr ? reward_queue_->num_blocks_used() : 0;
  snapshot_.num_scoring = static_cast<int>(scoring_.size());
  snapshot_.num_steps = num_steps_;
  snapshot_.num_preemptions = scheduler_.num_preemptions();
}

EngineLoop::EngineLoop(Backend* backend, const Tokenizer* tokenizer, EngineLoopOptions options)
    : backend_(backend) {
  CHECK_OK(options.Validate());
  impl_ = std::make_unique<Impl>(backend, tokenizer, options);
}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::AddObserver(StepObserver* observer) { impl_->observers.push_back(observer); }
void EngineLoop::SetCandidateSelector(CandidateSelector* selector) { impl_->selector = selector; }
void EngineLoop::Start() { impl_->Start(); }
void EngineLoop::Stop() { impl_->Stop(); }

absl::Status EngineLoop::Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink) {
  return impl_->Submit(std::move(request), std::move(sink));
}

absl::Status EngineLoop::SubmitScore(ScoreJob job) { return impl_->SubmitScore(std::move(job)); }

void EngineLoop::Cancel(uint64_t request_id, absl::Status reason) { impl_->Cancel(request_id, std::move(reason)); }

EngineSnapshot EngineLoop::Snapshot() const { return impl_->Snapshot(); }

int EngineLoop::max_model_len() const { return impl_->max_model_len(); }

bool EngineLoop::prefix_caching() const { return impl_->prefix_caching(); }

}  // namespace llama
