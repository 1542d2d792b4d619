#include "scheduler/forward_input_builder.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "base/check.h"

namespace llama {
namespace {

// Distinct ids the repetition penalty applies to: everything the sequence has seen (prompt and generated).
std::vector<int32_t> DistinctTokens(const Sequence& seq) {
  absl::flat_hash_set<int32_t> seen(seq.tokens().begin(), seq.tokens().end());
  std::vector<int32_t> ids(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

void AddOutputRows(const ScheduledSequence& s, int32_t last_row, ForwardInput* input) {
  const Sequence& seq = *s.seq;
  for (int j = 0; j < s.num_samples; ++j) {
    OutputRow row;
    row.token_index = last_row;
    row.params = seq.params().sampling;
    // A fork's rows are candidates 0..k-1 of the request (candidate 0's seed is the request's).
    row.seed = s.num_samples > 1 ? CandidateSeed(seq.seed(), j) : seq.seed();
    row.step = seq.num_generated_tokens();  // index of the token being generated
    if (row.params.repetition_penalty != 1.0f) row.penalty_tokens = DistinctTokens(seq);
    input->outputs.push_back(std::move(row));
  }
}

}  // namespace

ForwardInput BuildForwardInput(const SchedulerPlan& plan) {
  ForwardInput input;
  const int num_tokens = plan.num_tokens();
  input.token_ids.reserve(num_tokens);
  input.positions.reserve(num_tokens);
  input.slot_mapping.reserve(num_tokens);
  input.query_start.reserve(plan.seqs.size() + 1);
  input.context_lens.reserve(plan.seqs.size());
  input.block_copies = plan.block_copies;
  for (const ScheduledSequence& s : plan.seqs) {
    input.max_blocks_per_seq = std::max(input.max_blocks_per_seq, s.seq->block_table().num_blocks());
  }
  // [num_seqs, max_blocks_per_seq], -1 past each sequence's blocks.
  input.block_tables.assign(plan.seqs.size() * input.max_blocks_per_seq, -1);
  input.query_start.push_back(0);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSequence& s = plan.seqs[i];
    const Sequence& seq = *s.seq;
    const int begin = seq.num_computed_tokens();
    const int end = begin + s.num_new_tokens;
    CHECK_LE(end, seq.num_tokens());
    for (int pos = begin; pos < end; ++pos) {
      input.token_ids.push_back(seq.tokens()[pos]);
      input.positions.push_back(pos);
      input.slot_mapping.push_back(seq.block_table().SlotOf(pos));
    }
    input.query_start.push_back(static_cast<int32_t>(input.token_ids.size()));
    input.context_lens.push_back(end);
    const auto& blocks = seq.block_table().blocks();
    std::copy(blocks.begin(), blocks.end(), input.block_tables.begin() + i * input.max_blocks_per_seq);
    if (s.num_samples > 0) AddOutputRows(s, input.query_start.back() - 1, &input);
  }
  CHECK_EQ(input.num_tokens(), num_tokens);
  return input;
}

}  // namespace llama
