// RequestState: the engine loop's record of one accepted request: its sink, each candidate's text stream and stop
// conditions, and its timings. It decides when a candidate is done (EOS, max_tokens, context limit, stop string)
// and sends the request's output: streamed as it comes for k = 1 (unless a reward model must judge it first);
// otherwise nothing until every candidate has finished and the selector has chosen, then the chosen output (or
// the selector's refusal) at once. In scored streaming (segment_tokens > 0) the same happens segment by segment:
// a candidate pauses after segment_tokens tokens of its segment, and when every candidate has paused or finished
// the segment is scored; the winner's segment goes out (or the refusal, which ends the answer), and every
// candidate continues from the winner's state (AcceptSegment).
// Engine thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/text/tokenizer.h"
#include "scheduler/candidate_selector.h"
#include "scheduler/request.h"
#include "scheduler/sequence.h"
#include "scheduler/text_stream.h"

namespace llama {

// What the scheduler counted over a request's sequences (all candidates), reported in its FinishInfo.
struct RequestCounters {
  int num_preemptions = 0;
  int cached_prompt_tokens = 0;
  int computed_prompt_tokens = 0;
};

// What one sampled token did to its candidate.
struct TokenOutcome {
  std::optional<SequenceStatus> finished;  // the candidate ended (EOS, stop string, a length limit)
  bool segment_full = false;               // scored streaming: its segment is complete; pause it until the choice
};

class RequestState {
 public:
  // buffer_output: hold even a single candidate's output until the selector has chosen (a reward model scores it).
  // segment_tokens > 0 (with buffer_output): scored streaming, the answer is chosen and sent segment by segment.
  RequestState(GenerationRequest request, std::shared_ptr<RequestSink> sink, const Tokenizer* tokenizer,
               int max_model_len, int32_t eos_id, bool buffer_output = false, int segment_tokens = 0);

  const GenerationRequest& request() const { return request_; }
  // The first time any of its sequences is in a step (ends its queue time).
  void MarkScheduled(absl::Time now);
  bool scheduled() const { return first_scheduled_.has_value(); }

  // seq (one of this request's candidates) has just sampled a token (its last). Streams it when k == 1 (and
  // nothing scores it) and says whether the token ends the candidate or (scored streaming) its segment.
  TokenOutcome OnToken(const Sequence& seq, absl::Time now);
  bool all_candidates_finished() const;
  bool segmented() const { return segment_tokens_ > 0; }
  int num_segments() const { return num_segments_; }  // segments chosen so far
  // Scored streaming: every candidate has finished or paused in the current segment (score it now).
  bool segment_complete() const;
  // Scored streaming: the current segment's choice. Sends the winner's segment; when the winner had finished (or
  // the choice is the refusal, finish reason SAFETY) also OnFinish, and returns false. Otherwise every candidate
  // continues from the winner (its text stream, ids, text) and it returns true: the scheduler's ContinueFrom must
  // follow. An error choice aborts (returns false).
  bool AcceptSegment(absl::StatusOr<CandidateChoice> chosen, const RequestCounters& counters, absl::Time now);

  // The request ended normally: for k > 1 asks the selector, then sends the chosen output; then OnFinish.
  void Complete(CandidateSelector* selector, const RequestCounters& counters, absl::Time now);
  // Every candidate's output so far (all finished: what the selector chooses from). [num_candidates]
  std::vector<CandidateOutput> Outputs() const;
  // Ends the request with a choice made elsewhere (the engine loop's reward steps): sends the chosen output (or
  // the refusal) and OnFinish; an error choice ends it like Complete's selector error.
  void CompleteWith(absl::StatusOr<CandidateChoice> chosen, const RequestCounters& counters, absl::Time now);
  // The request ended early (cancel, deadline, backend error, shutdown): OnFinish with `status`.
  void Abort(const absl::Status& status, FinishReason reason, const RequestCounters& counters, absl::Time now);

 private:
  struct Candidate {
    explicit Candidate(TextStream s) : stream(std::move(s)) {}
    TextStream stream;
    std::vector<int32_t> token_ids;  // emitted (for k > 1: buffered until the choice)
    std::string text;
    int num_generated = 0;
    std::optional<FinishReason> finished;
    bool paused = false;  // scored streaming: generated its segment, waits for the choice
  };

  absl::StatusOr<CandidateChoice> Choose(CandidateSelector* selector) const;
  void Emit(Candidate& candidate, const TextStream::Delta& delta, absl::Time now);
  bool streams_directly() const { return request_.num_candidates == 1 && !buffer_output_; }
  void SendTokens(absl::Span<const int32_t> ids, std::string_view text, absl::Time now);
  void SendFinish(FinishInfo info, absl::Time now);
  void RecordSegmentScore(float score);

  GenerationRequest request_;
  std::shared_ptr<RequestSink> sink_;
  int max_model_len_;
  int32_t eos_id_;
  bool buffer_output_;  // k == 1 is buffered and selected too
  int segment_tokens_;  // 0: whole-answer mode
  // Scored streaming: where the current segment starts (every candidate's tokens and text before it were sent).
  int segment_start_generated_ = 0;
  size_t sent_ids_ = 0;
  size_t sent_text_ = 0;
  int num_segments_ = 0;
  float min_segment_score_ = -1.0f;
  std::vector<Candidate> candidates_;  // [num_candidates]
  std::optional<absl::Time> first_scheduled_;
  std::optional<absl::Time> first_token_;
  bool done_ = false;
};

}  // namespace llama
