// RunBatch: submits a set of requests to a fresh EngineLoop all at once and waits for every one to finish. The
// driver behind `llama-chat generate --prompts`, the throughput benchmark and the batch-invariance tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/text/tokenizer.h"
#include "scheduler/engine_loop.h"
#include "scheduler/request.h"

namespace llama {

struct BatchResult {
  std::vector<std::vector<int32_t>> token_ids;  // [num_requests] what each sink received, in request order
  std::vector<std::string> texts;               // [num_requests]
  std::vector<FinishInfo> finish;               // [num_requests]
  EngineSnapshot snapshot;                      // after the last request finished
  int64_t num_generated_tokens = 0;             // sum of completion_tokens
  double wall_s = 0;                            // first submit → last finish
};

// options.max_queued_requests is raised to the number of requests. Fails only when a request is refused at
// Submit; per-request errors are in `finish`.
absl::StatusOr<BatchResult> RunBatch(Backend* backend, const Tokenizer* tokenizer, EngineLoopOptions options,
                                     std::vector<GenerationRequest> requests);

}  // namespace llama
