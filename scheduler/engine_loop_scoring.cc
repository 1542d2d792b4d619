// The reward half of the engine loop: queueing finished candidates (or a scored-streaming segment) for the reward
// steps, one reward step per engine step, and what the scores decide.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "scheduler/engine_loop_impl.h"

namespace llama {

// The scheduler's counts while it holds the request (scored streaming: all along), else those saved when its
// candidates went to scoring.
RequestCounters EngineLoop::Impl::Counters(uint64_t request_id) const {
  if (!scheduler_.HasRequest(request_id)) return scoring_.at(request_id);
  const Scheduler::RetiredCounts& retired = scheduler_.Retired(request_id);
  RequestCounters counters{retired.num_preemptions, retired.cached_prompt_tokens, retired.computed_prompt_tokens};
  for (const auto& seq : scheduler_.Candidates(request_id)) {
    counters.num_preemptions += seq->num_preemptions();
    counters.cached_prompt_tokens += seq->num_cached_prompt_tokens();
    counters.computed_prompt_tokens += seq->num_computed_prompt_tokens();
  }
  return counters;
}

// All candidates finished (whole-answer mode: the policy's blocks go back now), or every candidate of a
// scored-streaming segment paused or finished (they keep their KV for the continuation). The request waits for
// reward steps; nothing of what is being scored is sent until its choice.
void EngineLoop::Impl::EnqueueScoring(uint64_t request_id) {
  RequestState& state = *requests_.at(request_id);
  scoring_[request_id] = Counters(request_id);
  if (!state.segmented()) scheduler_.RemoveRequest(request_id, SequenceStatus::kFinishedStopped);  // all finished
  const std::vector<CandidateOutput> outputs = state.Outputs();
  const int num_models = static_cast<int>(selector->RewardModels().size());
  std::vector<std::vector<std::vector<int32_t>>> inputs(num_models);  // [model][candidate] token ids
  absl::Status status;
  for (int m = 0; m < num_models && status.ok(); ++m) {
    for (const CandidateOutput& c : outputs) {
      absl::StatusOr<std::vector<int32_t>> ids = selector->RewardInput(m, state.request(), c);
      if (!ids.ok()) {
        status = ids.status();
        break;
      }
      inputs[m].push_back(*std::move(ids));
    }
  }
  if (status.ok()) status = reward_queue_->Add(request_id, std::move(inputs), absl::Now());
  if (!status.ok()) {
    Abort(request_id, absl::InternalError(absl::StrCat("reward scoring: ", status.message())), FinishReason::kError);
  }
}

// Scored streaming: the segment's choice. The winner's segment goes out; the request ends (the winner had finished,
// or the refusal) or continues from the winner's KV.
void EngineLoop::Impl::FinishSegment(uint64_t request_id, absl::StatusOr<CandidateChoice> choice, absl::Time now) {
  RequestState& state = *requests_.at(request_id);
  scoring_.erase(request_id);
  const int winner = choice.ok() ? choice->index : -1;
  if (state.AcceptSegment(std::move(choice), Counters(request_id), now)) {
    scheduler_.ContinueFrom(request_id, winner);
    return;
  }
  scheduler_.RemoveRequest(request_id, SequenceStatus::kFinishedStopped);
  Forget(request_id, state);
}

// One reward step, then the choice of every request it completed. Scores that arrive after a request's deadline
// are not used (DEADLINE_EXCEEDED).
void EngineLoop::Impl::RewardStep(StepStats* stats) {
  if (reward_queue_ == nullptr || reward_queue_->empty()) return;
  RewardStepStats step;
  const absl::Status status = reward_queue_->Step(&step);
  stats->num_reward_seqs = step.num_seqs;
  stats->num_reward_tokens = step.num_tokens;
  stats->reward_model = step.model;
  stats->reward_prefix_cache_queries = step.prefix_cache_queries;
  stats->reward_prefix_cache_hits = step.prefix_cache_hits;
  if (!status.ok()) FailRewardStep(step, status);
  const absl::Time now = absl::Now();
  for (ScoredRequest& scored : reward_queue_->TakeFinished(now)) {
    const uint64_t id = scored.request_id;
    if (auto job = score_jobs_.find(id); job != score_jobs_.end()) {
      std::vector<float> scores;  // [model]: one sequence each
      for (const std::vector<float>& s : scored.scores) scores.push_back(s.at(0));
      auto done = std::move(job->second.done);
      const bool expired = job->second.deadline <= now;
      score_jobs_.erase(job);
      if (expired) {
        done(absl::DeadlineExceededError("scoring finished after the deadline"));
      } else {
        done(std::move(scores));
      }
      continue;
    }
    RequestState& state = *requests_.at(id);
    absl::StatusOr<CandidateChoice> choice =
        state.request().deadline <= now
            ? absl::DeadlineExceededError("reward scoring finished after the deadline")
            : selector->Select(state.request(), state.Outputs(),
                               CandidateScores{std::move(scored.scores), std::move(scored.latency_s),
                                               state.segmented() ? state.num_segments() : -1});
    if (state.segmented()) {
      FinishSegment(id, std::move(choice), now);
      continue;
    }
    state.CompleteWith(std::move(choice), scoring_.at(id), now);
    Forget(id, state);
  }
}

// The reward backend failed: exactly the requests with work in that step end (INTERNAL); nothing of theirs is sent.
void EngineLoop::Impl::FailRewardStep(const RewardStepStats& step, const absl::Status& status) {
  const std::string model = selector->RewardModels().at(step.model)->name();
  const absl::Status error =
      absl::InternalError(absl::StrCat("reward model '", model, "' failed: ", status.message()));
  for (uint64_t id : step.request_ids) {
    if (score_jobs_.contains(id)) {
      FailScoreJob(id, error);
    } else if (requests_.contains(id)) {
      Abort(id, error, FinishReason::kError);
    }
  }
}

// A Score RPC's job: one sequence per reward model into the reward queue, scored by the next reward steps.
void EngineLoop::Impl::AddScoreJob(ScoreJob job) {
  const uint64_t id = next_score_job_id_++;
  CHECK_LE(id, kLastScoreJobId);
  std::vector<std::vector<std::vector<int32_t>>> inputs;  // [model][1] token ids
  for (std::vector<int32_t>& ids : job.inputs) inputs.push_back({std::move(ids)});
  if (absl::Status status = reward_queue_->Add(id, std::move(inputs), absl::Now()); !status.ok()) {
    job.done(std::move(status));
    return;
  }
  score_jobs_.emplace(id, std::move(job));
}

void EngineLoop::Impl::FailScoreJob(uint64_t id, const absl::Status& status) {
  auto it = score_jobs_.find(id);
  CHECK(it != score_jobs_.end());
  reward_queue_->Remove(id);  // its reward blocks back now
  auto done = std::move(it->second.done);
  score_jobs_.erase(it);
  done(status);
}

void EngineLoop::Impl::ExpireScoreJobs(absl::Time now) {
  std::vector<uint64_t> expired;
  for (const auto& [id, job] : score_jobs_) {
    if (job.deadline <= now) expired.push_back(id);
  }
  for (uint64_t id : expired) FailScoreJob(id, absl::DeadlineExceededError("deadline exceeded"));
}

}  // namespace llama
