#include "scheduler/scheduler_config.h"

#include "absl/strings/str_cat.h"

namespace llama {

absl::Status SchedulerConfig::Validate() const {
  if (max_num_seqs < 1) return absl::InvalidArgumentError(absl::StrCat("max_num_seqs must be >= 1, got ", max_num_seqs));
  if (max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens must be >= 1, got ", max_num_batched_tokens));
  }
  if (max_model_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_model_len must be >= 0, got ", max_model_len));
  }
  if (max_num_candidates < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_candidates must be >= 1, got ", max_num_candidates));
  }
  return absl::OkStatus();
}

}  // namespace llama
