// Turns a scheduler plan into the backend's ForwardInput: the ragged batch of every scheduled sequence's new
// tokens, their positions, block tables, KV slots and the rows to sample.
#pragma once

#include "engine/backend.h"
#include "scheduler/scheduler.h"

namespace llama {

ForwardInput BuildForwardInput(const SchedulerPlan& plan);

}  // namespace llama
