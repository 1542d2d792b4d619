// Scheduler: the bookkeeping of continuous batching. Each step it decides which sequences compute which tokens,
// admitting waiting requests while their KV fits, splitting long prompts into chunks, and preempting the newest
// running sequence when blocks run out. It owns the sequences and the block allocator; it makes no device calls.
//
// Every sequence has one progress number, num_computed_tokens; a step gives it the next num_new_tokens of its
// tokens (a prefill chunk, a whole prompt, or one decode token). When that reaches the end of its tokens the
// last row is sampled. Policy, per step:
//   1. running sequences that decode (one token each), oldest first; then running sequences mid-prompt;
//   2. when a sequence's new tokens do not fit in KV memory, preempt the newest running sequence not yet in this
//      step (possibly itself) by recompute: it releases its blocks and waits at the front of the queue, keeping
//      its tokens, which it recomputes as prompt;
//   3. if nothing was preempted, admit waiting sequences in FIFO order while the budget, the sequence cap and
//      KV memory allow (a waiting sequence never jumps the queue: the head blocks the rest, except one waiting for
//      a block being computed, see below).
// A request with k candidates starts as one sequence; the step that completes its prompt samples k tokens from
// the last row and forks k - 1 sequences that share the prompt's blocks copy-on-write.
//
// Prefix caching (SchedulerConfig::enable_prefix_caching): admission looks the waiting sequence's full blocks up
// in the allocator's prefix cache; the matched prefix counts as computed, so the sequence starts after it and the
// budget counts only the tokens left to compute. The last token is always computed (its logits are needed): a
// sequence matched whole starts one token before its end, in a copy of its last block (cached blocks are never
// written; the copy is swapped back for the cached block once computed). A waiting sequence whose first unmatched
// block a running sequence is computing is passed over (it keeps its place, the others behind it may go) and finds
// that block cached a step later, so concurrent requests with one system prompt compute it once. After each step,
// blocks that became full and computed are registered for others.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "scheduler/block_allocator.h"
#include "scheduler/scheduler_config.h"
#include "scheduler/sequence.h"
#include "scheduler/step_budget.h"

namespace llama {

// One sequence's share of a step.
struct ScheduledSequence {
  Sequence* seq = nullptr;
  int num_new_tokens = 0;  // computes tokens [num_computed_tokens, num_computed_tokens + num_new_tokens)
  int num_samples = 0;     // rows sampled from its last token: 0 (a chunk short of the end), 1, or k (a fork)
};

// The plan of one step. Empty when there is nothing to do.
struct SchedulerPlan {
  std::vector<ScheduledSequence> seqs;  // decodes, then running prompts, then newly admitted prompts
  std::vector<BlockCopy> block_copies;  // copy-on-write copies to do before the forward
  std::vector<const Sequence*> preempted;
  int num_prefill_tokens = 0;  // tokens of sequences that sample nothing or compute more than one token
  int num_decode_tokens = 0;   // one-token steps
  int prefix_cache_queries = 0;  // tokens of the sequences admitted this step (looked up in the prefix cache)
  int prefix_cache_hits = 0;     // of them found cached (not computed)
  bool empty() const { return seqs.empty(); }
  int num_tokens() const { return num_prefill_tokens + num_decode_tokens; }
  int num_samples() const;
};

// The seed of candidate j: candidate 0 keeps the request's seed (so k = 1 and candidate 0 agree); the others are
// spread by an odd constant (the golden ratio in 64 bits), so their counter-based draws are independent.
uint64_t CandidateSeed(uint64_t request_seed, int candidate_index);

class Scheduler {
 public:
  // config.max_model_len must be resolved (> 0) and fit in the pool. cache_root: the prefix-cache root key of the
  // model (PrefixCacheRoot); cache_index_bits: see PrefixCacheOptions (tests only).
  Scheduler(const SchedulerConfig& config, int num_blocks, int block_size, BlockHash cache_root = 0,
            int cache_index_bits = 64);
  ~Scheduler();

  // Queues a request's first sequence at the back of the waiting queue. request_id must be new.
  void AddRequest(uint64_t request_id, std::vector<int32_t> prompt_tokens, const SamplingParams& sampling,
                  uint64_t seed, int num_candidates);
  SchedulerPlan Schedule();
  // Applies a step the backend computed: advances progress and appends the sampled tokens (one per output row,
  // in plan order), forking candidates. Returns the sequences that got a new token, in plan order.
  std::vector<Sequence*> Update(const SchedulerPlan& plan, absl::Span<const int32_t> sampled_tokens);

  // Ends one sequence (releasing its blocks); the sequence object stays readable until RemoveRequest.
  void FinishSequence(Sequence* seq, SequenceStatus status);
  // Scored streaming (segment-wise rejection sampling): a running sequence that generated its segment stops being
  // scheduled but keeps its KV until the segment's choice. It still counts against max_num_seqs.
  void PauseSequence(Sequence* seq);
  // The segment's choice: the paused candidate `winner_index` continues as candidate 0 with the request's seed;
  // every other candidate ends now (its blocks go back at once). With k > 1 the winner's next sample forks k
  // candidates again from its KV (copy-on-write), exactly like the prompt's fork.
  void ContinueFrom(uint64_t request_id, int winner_index);
  // Ends every unfinished candidate of the request with `status` and forgets the request.
  void RemoveRequest(uint64_t request_id, SequenceStatus status);
  bool HasRequest(uint64_t request_id) const { return requests_.contains(request_id); }
  // The request's candidates so far (one until its prompt is computed, then k), by candidate index.
  const std::vector<std::unique_ptr<Sequence>>& Candidates(uint64_t request_id) const;
  // What the request's sequences of earlier segments counted (ContinueFrom let them go).
  struct RetiredCounts {
    int num_preemptions = 0;
    int cached_prompt_tokens = 0;
    int computed_prompt_tokens = 0;
  };
  const RetiredCounts& Retired(uint64_t request_id) const { return requests_.at(request_id)->retired; }

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_preempted_waiting() const;  // waiting sequences that ran before (requeued by preemption)
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_requests() const { return static_cast<int>(requests_.size()); }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  int64_t prefix_cache_queries() const { return prefix_cache_queries_; }  // tokens, since construction
  int64_t prefix_cache_hits() const { return prefix_cache_hits_; }
  const BlockAllocator& allocator() const { return allocator_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  struct Request {
    SequenceParams params;
    uint64_t seed = 0;
    std::vector<std::unique_ptr<Sequence>> candidates;
    RetiredCounts retired;
  };

  // What the prefix cache holds of a waiting sequence, and where its computation would start.
  struct CachedPrefix {
    PrefixMatch match;
    int num_computed = 0;  // matched tokens, at most num_tokens - 1
  };
  CachedPrefix LookUpPrefix(const Sequence& seq) const;
  // Whether a running sequence is computing seq's block block_index (the same key): seq had better wait for it.
  bool BlockInFlight(const Sequence& seq, int block_index) const;
  // "Fits in memory": whether the pool has the blocks for a running seq's next num_new tokens; for a waiting one,
  // those and its cached prefix (cached blocks with reference count 0 count as available until taken).
  bool FitsInMemory(const Sequence& seq, int num_new) const;
  bool FitsInMemory(const CachedPrefix& prefix, int num_new) const;
  // Schedules running sequences of one kind (decode or mid-prompt); preempts to make room.
  void ScheduleRunning(bool decodes, StepBudget* budget, SchedulerPlan* plan);
  void AdmitWaiting(StepBudget* budget, SchedulerPlan* plan);
  // Frees blocks by preempting the newest running sequence not in the plan. Returns it.
  Sequence* PreemptNewest(SchedulerPlan* plan);
  void AddToPlan(Sequence* seq, int num_new, SchedulerPlan* plan);
  int RunningSlots() const;  // running and paused sequences, counting a pending fork as its k candidates
  void Unqueue(Sequence* seq);

  SchedulerConfig config_;
  BlockAllocator allocator_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Request>> requests_;
  std::deque<Sequence*> waiting_;  // FIFO; preempted sequences go back to the front
  std::vector<Sequence*> running_;  // admission order: back() is the newest
  int num_paused_ = 0;              // sequences waiting for their segment's choice (in neither list)
  uint64_t next_seq_id_ = 0;
  int64_t num_preemptions_ = 0;
  int64_t prefix_cache_queries_ = 0;
  int64_t prefix_cache_hits_ = 0;
};

}  // namespace llama
