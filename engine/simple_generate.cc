#include "engine/simple_generate.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/forward_batch.h"

namespace llama {
namespace {

// A single-sequence step over blocks 0, 1, 2, ...: tokens at positions [start, start + ids.size()), sampling the
// last one.
ForwardInput MakeStep(const std::vector<int32_t>& ids, int start, const std::vector<int32_t>& blocks,
                      int block_size, OutputRow row) {
  ForwardBatchBuilder batch(block_size);
  batch.AddSequence(ids, start, blocks);
  batch.AddOutput(std::move(row));
  return std::move(batch).Build();
}

}  // namespace

absl::StatusOr<GenerateResult> SimpleGenerate(Backend* backend, const std::vector<int32_t>& prompt,
                                              const GenerateOptions& options,
                                              const std::function<void(int32_t)>& on_token) {
  RETURN_IF_ERROR(options.params.Validate());
  const int max_ctx = backend->config().max_position_embeddings;
  const int prompt_len = static_cast<int>(prompt.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("prompt is empty");
  if (prompt_len >= max_ctx) {
    return absl::InvalidArgumentError(absl::StrCat("prompt has ", prompt_len, " tokens; the context holds ", max_ctx));
  }
  const int max_new = std::clamp(options.max_new_tokens, 0, max_ctx - prompt_len);
  const KvCacheSpec& kv = backend->kv_cache();
  const int max_blocks = (prompt_len + max_new + kv.block_size - 1) / kv.block_size;
  if (max_blocks > kv.num_blocks) {
    return absl::ResourceExhaustedError(absl::StrCat("need ", max_blocks, " KV blocks, the cache has ", kv.num_blocks));
  }
  std::vector<int32_t> blocks(max_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);
  absl::flat_hash_set<int32_t> seen(prompt.begin(), prompt.end());
  GenerateResult result;
  std::vector<int32_t> step_ids = prompt;
  ForwardOutput out;
  for (int i = 0; i < max_new; ++i) {
    const int start = i == 0 ? 0 : prompt_len + i - 1;
    OutputRow row;
    row.params = options.params;
    row.seed = options.seed;
    row.step = i;
    if (options.params.repetition_penalty != 1.0f) row.penalty_tokens.assign(seen.begin(), seen.end());
    const ForwardInput in = MakeStep(step_ids, start, blocks, kv.block_size, std::move(row));
    const auto t0 = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(backend->Forward(in, &out));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    (i == 0 ? result.prefill_seconds : result.decode_seconds) += dt;
    if (i > 0) ++result.decode_steps;
    const int32_t next = out.sampled_tokens[0];
    result.tokens.push_back(next);
    seen.insert(next);
    if (on_token) on_token(next);
    const auto& stops = options.stop_token_ids;
    if (std::find(stops.begin(), stops.end(), next) != stops.end()) {
      result.stopped = true;
      break;
    }
    step_ids = {next};
  }
  return result;
}

}  // namespace llama
