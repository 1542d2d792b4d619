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
// (no deadlock between half-prefilled sequences) and blocks are freed when the request leaves the queue.
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
  std::vector<uint64_t> request_ids;  // requests with a chunk in the step (an error fails exactly these)
};

class RewardQueue {
 public:
  // models: each needs engine_kv_blocks() > 0; they must outlive the queue. max_tokens_per_step >= 1.
  RewardQueue(std::vector<RewardModel*> models, int max_tokens_per_step);
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
  void CheckIdle() const;       // CHECKs that no block is held (the loop's idle leak check)

 private:
  struct Seq {
    std::vector<int32_t> tokens;
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

  std::optional<int> NextModel() const;
  std::vector<Chunk> Plan(int model);
  absl::Status Run(int model, const std::vector<Chunk>& chunks);

  std::vector<RewardModel*> models_;
  std::vector<std::unique_ptr<BlockAllocator>> allocators_;  // [model] over blocks [0, engine_kv_blocks)
  const int max_tokens_per_step_;
  std::deque<std::unique_ptr<Job>> jobs_;  // FIFO
  int last_model_ = -1;
};

}  // namespace llama
