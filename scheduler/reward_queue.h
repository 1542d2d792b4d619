// RewardQueue: reward-model scoring as scheduled, prefill-only work of the engine loop (DESIGN §7, issue 5).
//
// A request whose candidates have all finished is queued here with its reward inputs (per reward model, one token
// sequence per candidate, formatted by the selector). Each engine step, after the policy's forward, the loop calls
// Step once: it runs at most one Forward on one reward model, over pending sequences of ALL queued requests (FIFO)
// up to the token budget. A sequence longer than what is left of the budget is prefilled in chunks over several
// steps (its K/V stays in the model's engine blocks between steps), so the policy's decodes keep flowing between
// chunks. Only a sequence whose last token is in the step gets an output row (return_hidden), and its score.
//
// KV: each reward model's engine part of its pool (RewardModel::engine_kv_blocks) is tracked by a BlockAllocator;
// a sequence reserves all its blocks when its first chunk is scheduled, so a started sequence can always finish
// (no deadlock between half-prefilled sequences), and gives them back when it is scored.
//
// Prefix caching (per reward model, keyed by its own root: its weights, config and KV format): a sequence starts
// after the full blocks of its prefix that the model's cache holds (at most all but its last token, whose hidden
// state is the score), and its blocks are registered as they are computed and kept, evictable, after it is
// scored. So the dialog prefix that a request's k candidates share is computed once, the next turn of a
// conversation (dialog + answer + new message) starts after the blocks of the previous turn's sequences, and any
// sequence that extends an earlier one (a growing answer scored segment by segment) reuses the earlier one's full
// blocks. A sequence whose first unmatched block another started sequence is computing is passed over (the scan goes
// on) and finds that block cached a step later.
//
// With several reward models, steps rotate over the models that have work (one Forward per step).
// Engine thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/reward/reward_model.h"
#include "scheduler/block_allocator.h"
#include "scheduler/block_hash.h"
#include "scheduler/block_table.h"
#include "scheduler/step_stats.h"

namespace llama {

// A request whose scoring is done: scores[m][c] (model m, candidate c); latency_s[m] = queued → model m done.
struct ScoredRequest {
  uint64_t request_id = 0;
  std::vector<std::vector<float>> scores;
  std::vector<double> latency_s;
};

// What one reward step did.
struct RewardStepStats {
  int model = -1;        // which reward model ran; -1 = none (nothing to do, or nothing fit)
  int num_seqs = 0;      // sequences (chunks) in the Forward
  int num_tokens = 0;
  int num_outputs = 0;   // sequences finished (scored) by this step
  int prefix_cache_queries = 0;  // tokens of the sequences started this step
  int prefix_cache_hits = 0;     // of them found in the model's prefix cache (not computed)
  std::vector<uint64_t> request_ids;  // requests with a chunk in the step (an error fails exactly these)
};

class RewardQueue {
 public:
  // models: each needs engine_kv_blocks() > 0; they must outlive the queue. max_tokens_per_step >= 1.
  // cache_index_bits: see PrefixCacheOptions (tests only).
  RewardQueue(std::vector<RewardModel*> models, int max_tokens_per_step, bool enable_prefix_caching = true,
              int cache_index_bits = 64);
  ~RewardQueue();

  // inputs[m][c]: model m's token ids for candidate c. INVALID_ARGUMENT/RESOURCE_EXHAUSTED (nothing queued) when
  // a sequence is empty or can never fit the model's engine blocks.
  absl::Status Add(uint64_t request_id, std::vector<std::vector<std::vector<int32_t>>> inputs, absl::Time now);
  // Drops a request (cancel, deadline, failure): its reward KV blocks are freed. Unknown ids are ignored.
  void Remove(uint64_t request_id);
  bool Contains(uint64_t request_id) const;
  bool empty() const { return jobs_.empty(); }

  // One reward step (see above). On a backend error the step's requests stay queued; the caller removes them.
  absl::Status Step(RewardStepStats* stats);
  // Requests scored by every model, in queue order; they leave the queue (and free their blocks).
  std::vector<ScoredRequest> TakeFinished(absl::Time now);

  int num_blocks_used() const;  // over all models' engine blocks
  // Model m's prefix cache: tokens looked up and found since construction, blocks held only by the cache.
  PrefixCacheStats prefix_cache_stats(int model) const;
  int num_models() const { return static_cast<int>(models_.size()); }
  // CHECKs that no block is held and free + cached + used == total in every pool (the loop's idle leak check).
  void CheckIdle() const;

 private:
  struct Seq {
    std::vector<int32_t> tokens;
    std::vector<BlockHash> hashes;  // keys of its full blocks (empty without prefix caching)
    int num_computed = 0;
    std::optional<BlockTable> blocks;  // reserved for the whole sequence at its first chunk
    std::optional<float> score;
  };
  struct Job {
    uint64_t request_id = 0;
    absl::Time queued;
    std::vector<std::vector<Seq>> seqs;  // [model][candidate]
    std::vector<std::optional<absl::Time>> done_at;  // [model]
  };
  struct Chunk {
    Job* job;
    Seq* seq;
    int num_tokens;
  };

  struct Plan {
    std::vector<Chunk> chunks;
    std::vector<BlockCopy> copies;  // copy-on-write of matched last blocks, before the forward
  };

  std::optional<int> NextModel() const;
  Plan PlanStep(int model, RewardStepStats* stats);
  enum class StartResult { kStarted, kWaitsForBlock, kNoRoom };
  // Reserves seq's blocks (after its cached prefix) and sets where it starts, unless it waits (see above).
  StartResult Start(int model, Seq* seq, Plan* plan, RewardStepStats* stats);
  bool BlockInFlight(int model, const Seq& seq, int block_index) const;
  absl::Status Run(int model, const Plan& plan);

  std::vector<RewardModel*> models_;
  std::vector<std::unique_ptr<BlockAllocator>> allocators_;  // [model] over blocks [0, engine_kv_blocks)
  std::vector<PrefixCacheStats> cache_stats_;                 // [model] queries and hits
  const int max_tokens_per_step_;
  std::deque<std::unique_ptr<Job>> jobs_;  // FIFO
  int last_model_ = -1;
};

}  // namespace llama
