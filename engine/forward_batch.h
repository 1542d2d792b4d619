// ForwardBatchBuilder: the one place a ForwardInput is put together. A caller names, per sequence, its new tokens,
// the position the first of them takes and the sequence's KV blocks; positions, KV slots, query starts, context
// lengths and the padded block-table rows all follow from that, here and nowhere else. Used by the scheduler
// (plan → batch), the reward queue, the reward model's direct calls, SimpleGenerate, the benchmarks and the tests.
//
//   ForwardBatchBuilder batch(kv.block_size);
//   batch.AddSequence(prompt, /*start=*/0, blocks);   // a prefill
//   batch.AddOutput(row);                             // sample its last token
//   ForwardInput input = std::move(batch).Build();
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "engine/backend.h"

namespace llama {

class ForwardBatchBuilder {
 public:
  explicit ForwardBatchBuilder(int block_size);

  // Capacity hints (the scheduler's step sizes: tokens, sequences, block-table entries of all of them, output rows),
  // so building a step's input allocates once per vector however many sequences it has; nothing else changes.
  void Reserve(int num_tokens, int num_seqs, int num_block_entries = 0, int num_outputs = 0);

  // The next sequence of the batch: new_tokens take positions [start, start + new_tokens.size()), after which the
  // sequence's context holds start + new_tokens.size() tokens (its earlier ones are already in the KV cache).
  // blocks: the sequence's block table, block b holding positions [b · block_size, (b + 1) · block_size); it must
  // cover the whole context (CHECK: the caller allocated them).
  void AddSequence(absl::Span<const int32_t> new_tokens, int start, absl::Span<const int32_t> blocks);

  // An output row for the last new token of the sequence added last (row.token_index is set here). Call it k
  // times for k rows from the same token (a request's k candidates).
  void AddOutput(OutputRow row);
  // An output row for new token `i` (0-based, CHECKed in range) of the sequence added last: results at a position
  // inside a prefill chunk (tests against golden logits).
  void AddOutputAt(int i, OutputRow row);

  // A copy-on-write block copy done before the forward (in the order added).
  void AddBlockCopy(int32_t src, int32_t dst) { input_.block_copies.emplace_back(src, dst); }

  int num_seqs() const { return static_cast<int>(input_.context_lens.size()); }
  int num_tokens() const { return input_.num_tokens(); }

  // The batch; block-table rows are padded with -1 to the longest row. The builder is spent.
  ForwardInput Build() &&;

 private:
  const int block_size_;
  ForwardInput input_;
  std::vector<int32_t> rows_;         // every sequence's blocks, concatenated
  std::vector<int32_t> row_starts_;   // [num_seqs + 1] offsets into rows_
};

}  // namespace llama
