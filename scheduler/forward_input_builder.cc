#include "scheduler/forward_input_builder.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "base/check.h"
#include "engine/forward_batch.h"

namespace llama {
namespace {

// Distinct ids the repetition penalty applies to: everything the sequence has seen (prompt and generated).
std::vector<int32_t> DistinctTokens(const Sequence& seq) {
  absl::flat_hash_set<int32_t> seen(seq.tokens().begin(), seq.tokens().end());
  std::vector<int32_t> ids(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The rows a scheduled sequence samples: one, or k for the step that forks a request's k candidates.
void AddOutputRows(const ScheduledSequence& s, ForwardBatchBuilder* batch) {
  const Sequence& seq = *s.seq;
  for (int j = 0; j < s.num_samples; ++j) {
    OutputRow row;
    row.params = seq.params().sampling;
    // A fork's rows are candidates 0..k-1 of the request (candidate 0's seed is the request's).
    row.seed = s.num_samples > 1 ? CandidateSeed(seq.seed(), j) : seq.seed();
    row.step = seq.num_generated_tokens();  // index of the token being generated
    if (row.params.repetition_penalty != 1.0f) row.penalty_tokens = DistinctTokens(seq);
    batch->AddOutput(std::move(row));
  }
}

}  // namespace

ForwardInput BuildForwardInput(const SchedulerPlan& plan) {
  if (plan.empty()) return ForwardInput();  // an idle step
  ForwardBatchBuilder batch(plan.seqs.front().seq->block_table().allocator()->block_size());
  int num_block_entries = 0;
  for (const ScheduledSequence& s : plan.seqs) num_block_entries += static_cast<int>(s.seq->block_table().blocks().size());
  batch.Reserve(plan.num_tokens(), static_cast<int>(plan.seqs.size()), num_block_entries, plan.num_samples());
  for (const auto& [src, dst] : plan.block_copies) batch.AddBlockCopy(src, dst);
  for (const ScheduledSequence& s : plan.seqs) {
    const Sequence& seq = *s.seq;
    const int begin = seq.num_computed_tokens();
    CHECK_LE(begin + s.num_new_tokens, seq.num_tokens());
    batch.AddSequence(absl::MakeConstSpan(seq.tokens()).subspan(begin, s.num_new_tokens), begin,
                      seq.block_table().blocks());
    if (s.num_samples > 0) AddOutputRows(s, &batch);
  }
  CHECK_EQ(batch.num_tokens(), plan.num_tokens());
  return std::move(batch).Build();
}

}  // namespace llama
