#include "scheduler/request_state.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace llama {

RequestState::RequestState(GenerationRequest request, std::shared_ptr<RequestSink> sink,
                           const Tokenizer* tokenizer, int max_model_len, int32_t eos_id, bool buffer_output,
                           int segment_tokens)
    : request_(std::move(request)),
      sink_(std::move(sink)),
      max_model_len_(max_model_len),
      eos_id_(eos_id),
      buffer_output_(buffer_output),
      segment_tokens_(buffer_output ? segment_tokens : 0) {
  CHECK_GE(segment_tokens, 0);
  candidates_.reserve(request_.num_candidates);
  for (int i = 0; i < request_.num_candidates; ++i) {
    candidates_.emplace_back(TextStream(tokenizer, &request_.stop));
    // Room for the whole reply up front, so emitting a token never reallocates on the engine thread.
    candidates_.back().token_ids.reserve(request_.max_tokens);
  }
}

namespace {

void SetCounters(const RequestCounters& counters, FinishInfo* info) {
  info->num_preemptions = counters.num_preemptions;
  info->cached_prompt_tokens = counters.cached_prompt_tokens;
  info->computed_prompt_tokens = counters.computed_prompt_tokens;
}

// What the end of a request reports of its chosen candidate (the reason is set by the caller).
FinishInfo ChosenFinishInfo(const CandidateChoice& choice, int completion_tokens, const RequestCounters& counters) {
  FinishInfo info;
  info.safety_score = choice.safety_score;
  info.helpfulness_score = choice.helpfulness_score;
  info.completion_tokens = completion_tokens;
  SetCounters(counters, &info);
  return info;
}

}  // namespace

void RequestState::MarkScheduled(absl::Time now) {
  if (!first_scheduled_) first_scheduled_ = now;
}

TokenOutcome RequestState::OnToken(const Sequence& seq, absl::Time now) {
  Candidate& c = candidates_.at(seq.candidate_index());
  CHECK(!c.finished.has_value() && !c.paused);
  const int32_t token = seq.tokens().back();
  c.num_generated = seq.num_generated_tokens();
  if (token == eos_id_ && !request_.ignore_eos) {
    Emit(c, c.stream.Flush(), now);
    c.finished = FinishReason::kStop;
    return {SequenceStatus::kFinishedStopped};
  }
  TextStream::Delta delta = c.stream.Push(token);
  const bool stopped = delta.stopped;
  Emit(c, delta, now);
  if (stopped) {
    c.finished = FinishReason::kStop;
    return {SequenceStatus::kFinishedStopped};
  }
  // The context limit: the sequence could not take another token.
  if (c.num_generated >= request_.max_tokens || seq.num_tokens() >= max_model_len_) {
    Emit(c, c.stream.Flush(), now);
    c.finished = FinishReason::kLength;
    return {SequenceStatus::kFinishedLength};
  }
  if (segmented() && c.num_generated - segment_start_generated_ >= segment_tokens_) {
    c.paused = true;
    return {std::nullopt, /*segment_full=*/true};
  }
  return {};
}

bool RequestState::all_candidates_finished() const {
  for (const Candidate& c : candidates_) {
    if (!c.finished) return false;
  }
  return true;
}

bool RequestState::segment_complete() const {
  if (!segmented()) return false;
  for (const Candidate& c : candidates_) {
    if (!c.finished && !c.paused) return false;
  }
  return true;
}

void RequestState::RecordSegmentScore(float score) {
  ++num_segments_;
  if (num_segments_ == 1 || score < min_segment_score_) min_segment_score_ = score;
}

bool RequestState::AcceptSegment(absl::StatusOr<CandidateChoice> chosen, const RequestCounters& counters,
                                 absl::Time now) {
  CHECK(segment_complete());
  if (!chosen.ok() || chosen->index < 0 || chosen->index >= request_.num_candidates) {
    for (Candidate& c : candidates_) {
      if (!c.finished) c.finished = FinishReason::kStop;  // CompleteWith's error path reports it
    }
    CompleteWith(std::move(chosen), counters, now);
    return false;
  }
  const CandidateChoice& choice = *chosen;
  RecordSegmentScore(choice.safety_score);
  const Candidate& winner = candidates_[choice.index];
  FinishInfo info = ChosenFinishInfo(choice, winner.num_generated, counters);
  if (choice.refused) {
    // What was streamed before had passed; the refusal ends the answer.
    info.reason = FinishReason::kSafety;
    SendTokens(choice.refusal_token_ids, choice.refusal_text, now);
    SendFinish(std::move(info), now);
    return false;
  }
  // The winner's segment: everything after what earlier segments sent (the same prefix in every candidate).
  if (winner.token_ids.size() > sent_ids_ || winner.text.size() > sent_text_) {
    SendTokens(absl::MakeConstSpan(winner.token_ids).subspan(sent_ids_),
               std::string_view(winner.text).substr(sent_text_), now);
  }
  if (winner.finished) {
    info.reason = *winner.finished;
    SendFinish(std::move(info), now);
    return false;
  }
  sent_ids_ = winner.token_ids.size();
  sent_text_ = winner.text.size();
  segment_start_generated_ = winner.num_generated;
  const Candidate start = winner;  // a copy: the loop below overwrites the winner's slot too
  for (Candidate& c : candidates_) {
    c.stream = start.stream;
    c.token_ids.assign(start.token_ids.begin(), start.token_ids.end());  // keeps the reserved capacity
    c.text = start.text;
    c.num_generated = start.num_generated;
    c.finished.reset();
    c.paused = false;
  }
  return true;
}

void RequestState::Emit(Candidate& candidate, const TextStream::Delta& delta, absl::Time now) {
  if (delta.empty()) return;
  if (streams_directly()) SendTokens(delta.token_ids, delta.text, now);
  candidate.token_ids.insert(candidate.token_ids.end(), delta.token_ids.begin(), delta.token_ids.end());
  candidate.text += delta.text;
}

void RequestState::SendTokens(absl::Span<const int32_t> ids, std::string_view text, absl::Time now) {
  if (!first_token_) first_token_ = now;
  sink_->OnTokens(ids, text);
}

void RequestState::Complete(CandidateSelector* selector, const RequestCounters& counters, absl::Time now) {
  CHECK(all_candidates_finished());
  if (streams_directly()) {
    CompleteWith(CandidateChoice{}, counters, now);
    return;
  }
  absl::StatusOr<CandidateChoice> chosen = Choose(selector);
  // Selection (reward-model scoring) takes time: TTFT and e2e latency include it.
  CompleteWith(std::move(chosen), counters, absl::Now());
}

void RequestState::CompleteWith(absl::StatusOr<CandidateChoice> chosen, const RequestCounters& counters,
                                absl::Time now) {
  CHECK(all_candidates_finished());
  if (!chosen.ok()) {
    // A reward model that ran out of the request's time is a deadline, not a server error.
    const bool expired = chosen.status().code() == absl::StatusCode::kDeadlineExceeded;
    Abort(chosen.status(), expired ? FinishReason::kDeadline : FinishReason::kError, counters, now);
    return;
  }
  if (chosen->index < 0 || chosen->index >= request_.num_candidates) {
    Abort(absl::InternalError(absl::StrCat("candidate selector chose ", chosen->index, " of ",
                                           request_.num_candidates)),
          FinishReason::kError, counters, now);
    return;
  }
  const CandidateChoice& choice = *chosen;
  const Candidate& winner = candidates_[choice.index];
  FinishInfo info = ChosenFinishInfo(choice, winner.num_generated, counters);
  info.reason = *winner.finished;
  if (choice.refused) {
    info.reason = FinishReason::kSafety;
    SendTokens(choice.refusal_token_ids, choice.refusal_text, now);
  } else if (!streams_directly() && (!winner.token_ids.empty() || !winner.text.empty())) {
    SendTokens(winner.token_ids, winner.text, now);
  }
  SendFinish(std::move(info), now);
}

std::vector<CandidateOutput> RequestState::Outputs() const {
  std::vector<CandidateOutput> outputs;
  for (int i = 0; i < request_.num_candidates; ++i) {
    const Candidate& c = candidates_[i];
    outputs.push_back({i, c.token_ids, c.text, c.finished.value_or(FinishReason::kStop)});
  }
  return outputs;
}

absl::StatusOr<CandidateChoice> RequestState::Choose(CandidateSelector* selector) const {
  return selector->Select(request_, Outputs(), CandidateScores{});  // a selector without reward models
}

void RequestState::Abort(const absl::Status& status, FinishReason reason, const RequestCounters& counters,
                         absl::Time now) {
  FinishInfo info;
  info.status = status;
  info.reason = reason;
  info.completion_tokens = candidates_[0].num_generated;
  SetCounters(counters, &info);
  SendFinish(std::move(info), now);
}

void RequestState::SendFinish(FinishInfo info, absl::Time now) {
  CHECK(!done_);  // exactly one terminal event
  done_ = true;
  info.prompt_tokens = static_cast<int>(request_.prompt_tokens.size());
  info.num_candidates = request_.num_candidates;
  info.num_segments = num_segments_;
  info.min_segment_score = min_segment_score_;
  const absl::Time arrival = request_.arrival;
  info.total_time_s = absl::ToDoubleSeconds(now - arrival);
  // Never scheduled (cancelled or expired while waiting): it queued for its whole life.
  info.queue_time_s = first_scheduled_ ? absl::ToDoubleSeconds(*first_scheduled_ - arrival) : info.total_time_s;
  info.time_to_first_token_s = first_token_ ? absl::ToDoubleSeconds(*first_token_ - arrival) : 0;
  sink_->OnFinish(info);
}

}  // namespace llama
