// Backend: one forward pass of a Llama model over a ragged batch, with a paged KV cache that the backend owns.
//
// A step's batch is the concatenation of every scheduled sequence's new tokens (a prefill chunk or one decode
// token). Sequence s owns tokens [query_start[s], query_start[s+1]); its KV history lives in the blocks listed in
// its block-table row, and after this step it holds context_lens[s] tokens (its earlier ones plus these). The
// scheduler (host-only bookkeeping) decides all of that; the backend only computes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/model/config.h"
#include "engine/sampling.h"

namespace llama {

// Tokens per KV block unless a backend is told otherwise (every backend's options default to it).
inline constexpr int kDefaultBlockSize = 16;

// Shape of the paged KV cache: per layer, K and V are [num_blocks, n_kv_heads, block_size, head_dim].
struct KvCacheSpec {
  int block_size = kDefaultBlockSize;  // tokens per block
  int num_blocks = 0;      // blocks in the pool
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int dtype_bytes = 4;     // 4 (fp32 on CPU), 2 (bf16/fp16 on CUDA)

  // K + V bytes of one token over all layers: 2 · n_layers · n_kv_heads · head_dim · dtype_bytes.
  int64_t bytes_per_token() const { return int64_t{2} * num_layers * num_kv_heads * head_dim * dtype_bytes; }
  int64_t bytes_per_block() const { return bytes_per_token() * block_size; }
  int64_t total_bytes() const { return bytes_per_block() * num_blocks; }
};

// Where position `position` of a sequence with block table `blocks` keeps its K/V: block `position / block_size`,
// offset `position % block_size`, i.e. slot block_id · block_size + offset. The one definition of a slot.
inline int64_t KvSlot(absl::Span<const int32_t> blocks, int position, int block_size) {
  return static_cast<int64_t>(blocks[position / block_size]) * block_size + position % block_size;
}

// One row that needs output: logits (and a sampled token) and/or the final hidden state.
struct OutputRow {
  int32_t token_index = 0;       // row in the batch's tokens (usually a sequence's last new token)
  bool sample = true;            // sample a token from this row's logits
  SamplingParams params;         // how to sample (only when sample)
  uint64_t seed = 0;             // sequence seed; with `step` it fixes the random draw (counter-based RNG)
  int64_t step = 0;              // index of the token being generated (0 for the first generated token)
  std::vector<int32_t> penalty_tokens;  // distinct token ids seen so far, for the repetition penalty
};

// A ragged batch. Build one with ForwardBatchBuilder (engine/forward_batch.h), which derives every field below
// from the sequences' tokens, start positions and blocks.
struct ForwardInput {
  std::vector<int32_t> token_ids;      // [num_tokens]
  std::vector<int32_t> positions;      // [num_tokens] absolute position of each token in its sequence
  std::vector<int32_t> query_start;    // [num_seqs + 1] offsets into token_ids
  std::vector<int32_t> context_lens;   // [num_seqs] tokens in the KV cache after this step
  std::vector<int32_t> block_tables;   // [num_seqs, max_blocks_per_seq] row-major, unused entries -1
  int max_blocks_per_seq = 0;
  std::vector<int32_t> slot_mapping;   // [num_tokens] block_id * block_size + offset where the token's K/V go
  // Copy-on-write block copies (src, dst) done before the forward, in order.
  std::vector<std::pair<int32_t, int32_t>> block_copies;
  std::vector<OutputRow> outputs;      // rows that need results
  bool return_logits = false;          // also return raw logits of the output rows (tests, scoring)
  bool return_hidden = false;          // also return final-norm hidden states of the output rows (reward models)

  int num_seqs() const { return query_start.empty() ? 0 : static_cast<int>(query_start.size()) - 1; }
  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  // Structural checks a backend runs before computing: sizes agree, ids/positions/slots/blocks in range.
  absl::Status Validate(const ModelConfig& config, const KvCacheSpec& kv) const;
};

struct ForwardOutput {
  std::vector<int32_t> sampled_tokens;  // [num_outputs]; -1 for rows with sample == false
  std::vector<float> logits;            // [num_outputs, vocab] when return_logits
  std::vector<float> hidden;            // [num_outputs, hidden_size] when return_hidden
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const KvCacheSpec& kv_cache() const = 0;
  virtual std::string name() const = 0;
  // Runs the block copies, then the forward over the batch, then sampling of the output rows. A failure fails
  // this step only; the backend stays usable.
  virtual absl::Status Forward(const ForwardInput& input, ForwardOutput* output) = 0;
};

}  // namespace llama
