// SimpleGenerate: one sequence driven directly on a Backend, without the scheduler: one forward over the whole
// prompt (prefill), then one token per forward (decode). Used by `llama-chat generate`, `llama-chat bench` and
// tests. The sequence uses KV blocks 0, 1, 2, ... of the backend, so nothing else may use the backend meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/sampling.h"

namespace llama {

struct GenerateOptions {
  SamplingParams params;
  uint64_t seed = 0;
  int max_new_tokens = 256;  // clamped so that prompt + generated fit the model's context
  // Generation stops after emitting one of these (it is included in the result). The stories models emit BOS
  // at the end of a story (they were trained on BOS-separated documents); chat models emit EOS.
  std::vector<int32_t> stop_token_ids;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (a stop token, if hit, is the last one)
  bool stopped = false;         // ended on a stop token
  double prefill_seconds = 0;   // the prompt's forward, which also yields the first generated token
  double decode_seconds = 0;    // the forwards of every later token
  int decode_steps = 0;         // tokens produced by decode forwards (tokens.size() - 1 when any)
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_steps / decode_seconds : 0.0; }
};

// on_token (optional) is called with every generated id as soon as it is sampled. prompt must be non-empty
// (usually BOS first).
absl::StatusOr<GenerateResult> SimpleGenerate(Backend* backend, const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options,
                                              const std::function<void(int32_t)>& on_token = nullptr);

}  // namespace llama
