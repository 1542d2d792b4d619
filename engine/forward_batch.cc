#include "engine/forward_batch.h"

#include <algorithm>

#include "base/check.h"

namespace llama {

ForwardBatchBuilder::ForwardBatchBuilder(int block_size) : block_size_(block_size), row_starts_{0} {
  CHECK_GT(block_size_, 0);
  input_.query_start.push_back(0);
}

void ForwardBatchBuilder::Reserve(int num_tokens, int num_seqs, int num_block_entries, int num_outputs) {
  input_.token_ids.reserve(num_tokens);
  input_.positions.reserve(num_tokens);
  input_.slot_mapping.reserve(num_tokens);
  input_.query_start.reserve(num_seqs + 1);
  input_.context_lens.reserve(num_seqs);
  input_.outputs.reserve(num_outputs);
  rows_.reserve(num_block_entries);
  row_starts_.reserve(num_seqs + 1);
}

void ForwardBatchBuilder::AddSequence(absl::Span<const int32_t> new_tokens, int start,
                                      absl::Span<const int32_t> blocks) {
  CHECK_GE(start, 0);
  const int context_len = start + static_cast<int>(new_tokens.size());
  CHECK_GE(static_cast<int64_t>(blocks.size()) * block_size_, context_len);
  for (size_t i = 0; i < new_tokens.size(); ++i) {
    const int position = start + static_cast<int>(i);
    input_.token_ids.push_back(new_tokens[i]);
    input_.positions.push_back(position);
    input_.slot_mapping.push_back(static_cast<int32_t>(KvSlot(blocks, position, block_size_)));
  }
  input_.query_start.push_back(input_.num_tokens());
  input_.context_lens.push_back(context_len);
  rows_.insert(rows_.end(), blocks.begin(), blocks.end());
  row_starts_.push_back(static_cast<int32_t>(rows_.size()));
}

void ForwardBatchBuilder::AddOutput(OutputRow row) {
  CHECK_GT(num_seqs(), 0);
  const int num_new = input_.query_start.back() - input_.query_start[num_seqs() - 1];
  AddOutputAt(num_new - 1, std::move(row));
}

void ForwardBatchBuilder::AddOutputAt(int i, OutputRow row) {
  CHECK_GT(num_seqs(), 0);
  const int32_t begin = input_.query_start[num_seqs() - 1];
  CHECK_GE(i, 0);
  CHECK_LT(i, input_.query_start.back() - begin);
  row.token_index = begin + i;
  input_.outputs.push_back(std::move(row));
}

ForwardInput ForwardBatchBuilder::Build() && {
  int max_blocks = 0;
  for (int s = 0; s < num_seqs(); ++s) max_blocks = std::max(max_blocks, row_starts_[s + 1] - row_starts_[s]);
  input_.max_blocks_per_seq = max_blocks;
  input_.block_tables.assign(static_cast<size_t>(num_seqs()) * max_blocks, -1);  // [num_seqs, max_blocks_per_seq]
  for (int s = 0; s < num_seqs(); ++s) {
    std::copy(rows_.begin() + row_starts_[s], rows_.begin() + row_starts_[s + 1],
              input_.block_tables.begin() + static_cast<size_t>(s) * max_blocks);
  }
  return std::move(input_);
}

}  // namespace llama
