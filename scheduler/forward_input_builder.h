// Turns a scheduler plan into the backend's ForwardInput: each scheduled sequence's new tokens (from its
// num_computed_tokens on) and its block table go to the ForwardBatchBuilder (engine/forward_batch.h), with the rows
// to sample (k rows, one per candidate, on the step that forks a request) and the plan's copy-on-write copies.
#pragma once

#include "engine/backend.h"
#include "scheduler/scheduler.h"

namespace llama {

ForwardInput BuildForwardInput(const SchedulerPlan& plan);

}  // namespace llama
