// Sampling: greedy, temperature, top-k, top-p, repetition penalty, reproducible per sequence.
//
// Randomness is counter-based: the uniform draw for a sequence's step-th generated token is a hash of
// (seed, step). So a sequence's tokens do not depend on what else was in the batch, on preemption, or on the
// backend that ran it.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace llama {

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;               // (0, 1]; 1 = off
  int top_k = 0;                    // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off; >1 discourages tokens already seen (CTRL-style: divide positive
                                    // logits, multiply negative ones)
  absl::Status Validate() const;    // ranges; messages name the field
};

// Uniform in [0, 1) from (seed, step): a SplitMix64-style mix, identical on every backend.
float CounterUniform(uint64_t seed, int64_t step);

// Samples one token from logits [vocab]. Modifies logits in place (penalty, temperature). penalty_tokens are the
// distinct ids the repetition penalty applies to.
int32_t SampleToken(absl::Span<float> logits, const SamplingParams& params, uint64_t seed, int64_t step,
                    absl::Span<const int32_t> penalty_tokens);

}  // namespace llama
