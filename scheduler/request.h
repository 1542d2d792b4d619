// What callers hand the engine loop (a GenerationRequest and a sink) and what comes back through the sink.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/sampling.h"

namespace llama {

enum class FinishReason {
  kStop,       // EOS or a stop string
  kLength,     // max_tokens or the context limit
  kSafety,     // every candidate scored below the safety threshold; the refusal text was sent
  kCancelled,  // the client went away or cancelled
  kDeadline,   // the request's deadline passed
  kError,      // the backend or a reward model failed; status says why
};
const char* FinishReasonName(FinishReason reason);  // "stop", "length", "safety", "cancelled", "deadline", "error"

struct GenerationRequest {
  uint64_t id = 0;                     // unique among live requests; the caller picks it
  std::vector<int32_t> prompt_tokens;  // BOS included
  SamplingParams sampling;
  uint64_t seed = 0;
  int max_tokens = 256;                // generated tokens at most (the context limit also applies)
  std::vector<std::string> stop;       // stop strings; the matched string is not emitted
  int num_candidates = 1;              // k candidates (rejection sampling); 1 = plain generation
  // Scored streaming: with a reward model, choose and stream the answer segment by segment, segment_tokens
  // generated tokens each (the last one may be shorter). 0 = whole-answer mode. Larger than max_tokens is fine: one
  // segment. Without a reward model nothing is scored and the answer streams as it is generated.
  int segment_tokens = 0;
  bool ignore_eos = false;             // benchmarks: EOS is an ordinary token, so exactly max_tokens are generated
  absl::Time deadline = absl::InfiniteFuture();
  absl::Time arrival = absl::Now();
};

struct FinishInfo {
  absl::Status status;                 // OK for kStop/kLength/kSafety; CANCELLED, DEADLINE_EXCEEDED, INTERNAL…
  FinishReason reason = FinishReason::kStop;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int num_candidates = 1;
  float safety_score = -1.0f;          // chosen candidate's safety score; -1 when no reward model ran
  float helpfulness_score = -1.0f;     // chosen candidate's helpfulness score; -1 when no such model ran
  double queue_time_s = 0;             // arrival → first scheduled
  double time_to_first_token_s = 0;    // arrival → first token handed to the sink (0 if none)
  double total_time_s = 0;             // arrival → finish
  int num_preemptions = 0;
  // Prompt tokens taken from the prefix cache and prompt tokens computed, summed over the request's candidates and
  // admissions (a preempted sequence is admitted again). k = 1, never preempted: cached + computed == prompt_tokens.
  int cached_prompt_tokens = 0;
  int computed_prompt_tokens = 0;
  // Scored streaming: segments chosen (the refused one included) and the lowest of their chosen safety scores
  // (the refused segment's best candidate's score); 0 and -1 in whole-answer mode.
  int num_segments = 0;
  float min_segment_score = -1.0f;
};

// Receives one request's output. Called on the engine thread: implementations must not block (queue and wake).
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // New tokens and the text they complete (whole UTF-8, possibly empty while a character is incomplete).
  virtual void OnTokens(absl::Span<const int32_t> token_ids, std::string_view text) = 0;
  // Exactly once per accepted request, last.
  virtual void OnFinish(const FinishInfo& info) = 0;
};

}  // namespace llama
