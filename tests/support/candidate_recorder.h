// CandidateRecorder: a CandidateSelector for tests that keeps every candidate's emitted tokens by request id and
// chooses candidate 0 (the default choice), so a test can compare all k candidates of a request between two runs.
// Thread-safe (Select runs on the engine thread, the test reads).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "scheduler/candidate_selector.h"

namespace llama::testing {

class CandidateRecorder : public CandidateSelector {
 public:
  absl::StatusOr<CandidateChoice> Select(const GenerationRequest& request,
                                         absl::Span<const CandidateOutput> candidates,
                                         const CandidateScores&) override {
    absl::MutexLock lock(&mu_);
    std::vector<std::vector<int32_t>>& out = outputs_[request.id];
    out.clear();
    for (const CandidateOutput& c : candidates) out.push_back(c.token_ids);
    return CandidateChoice{};
  }
  // [num_candidates] token ids of each candidate of request `id`; empty if it never reached selection.
  std::vector<std::vector<int32_t>> outputs(uint64_t id) const {
    absl::MutexLock lock(&mu_);
    auto it = outputs_.find(id);
    return it == outputs_.end() ? std::vector<std::vector<int32_t>>{} : it->second;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, std::vector<std::vector<int32_t>>> outputs_;
};

}  // namespace llama::testing
