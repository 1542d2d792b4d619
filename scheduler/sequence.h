// Sequence: one token stream being generated (one candidate of a request), its state machine and its progress.
//
// Prefill, chunked prefill, decode and recompute after preemption are one code path: a sequence holds its tokens
// (prompt + generated) and num_computed_tokens, the prefix whose KV is in the cache. Each step computes some of
// tokens[num_computed_tokens, num_tokens); when that reaches num_tokens, the last row's logits give a new token.
// With prefix caching a sequence also keeps the block hash of each full block of its tokens (block_hash.h); on
// admission the prefix the cache holds counts as computed (AdoptCachedPrefix), and every block that becomes full
// and computed is registered for others (CacheComputedBlocks).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/sampling.h"
#include "scheduler/block_allocator.h"
#include "scheduler/block_hash.h"
#include "scheduler/block_table.h"

namespace llama {

// Ordered: everything after kPreempted is finished.
enum class SequenceStatus {
  kWaiting,    // admitted to the scheduler, no KV yet
  kRunning,    // holds KV blocks; scheduled each step (budget permitting)
  kPaused,     // scored streaming: its segment is generated; holds its KV, not scheduled, until the choice
  kPreempted,  // lost its KV to make room; waits at the front of the queue to recompute it
  kFinishedStopped,    // EOS or a stop string
  kFinishedLength,     // max_tokens or the context limit
  kFinishedCancelled,  // the client went away, or the engine stopped
  kFinishedDeadline,   // the request's deadline passed
  kFinishedError,      // the backend failed on a step holding this sequence
};
inline bool IsFinished(SequenceStatus status) { return status > SequenceStatus::kPreempted; }
const char* SequenceStatusName(SequenceStatus status);

// What a request fixes for all its candidates.
struct SequenceParams {
  uint64_t request_id = 0;
  SamplingParams sampling;
  int num_candidates = 1;
};

class Sequence {
 public:
  // candidate_index 0 is the request's first sequence; the others fork from it after the prompt's prefill.
  Sequence(uint64_t seq_id, const SequenceParams* params, int candidate_index, uint64_t seed,
           std::vector<int32_t> prompt_tokens, BlockAllocator* allocator);

  // Named transitions; each CHECKs that it is legal from the current status.
  void MarkRunning();                    // waiting/preempted → running
  void MarkPreempted();                  // running → preempted: drops KV, keeps tokens (recomputed as prompt)
  void MarkFinished(SequenceStatus to);  // any unfinished → finished: releases KV
  void MarkPaused();                     // running → paused (keeps KV and tokens)
  void MarkResumed();                    // paused → running
  // Scored streaming: this paused sequence won its segment and becomes candidate 0 of the next one with `seed`
  // (the request's); with k > 1 its next sample forks the k candidates again (fork_pending).
  void Rebase(uint64_t seed);

  // Running, with no KV yet: takes the cached prefix `match` as its first blocks and starts at num_computed
  // (at most the matched tokens; fewer when the last token must still be computed).
  void AdoptCachedPrefix(const PrefixMatch& match, int num_computed);
  // Records that tokens [num_computed_tokens, num_computed_tokens + n) are now in the KV cache.
  void AdvanceComputed(int n);
  // Registers the blocks that are full and computed in the prefix cache (no-op without caching).
  void CacheComputedBlocks();
  void AppendToken(int32_t token);  // a newly sampled token (not yet computed)
  // A copy of this sequence as candidate `candidate_index`, sharing its KV blocks (copy-on-write).
  std::unique_ptr<Sequence> Fork(uint64_t seq_id, int candidate_index, uint64_t seed) const;

  uint64_t seq_id() const { return seq_id_; }
  uint64_t request_id() const { return params_->request_id; }
  const SequenceParams& params() const { return *params_; }
  int candidate_index() const { return candidate_index_; }
  uint64_t seed() const { return seed_; }
  SequenceStatus status() const { return status_; }
  bool is_finished() const { return IsFinished(status_); }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  int num_tokens() const { return static_cast<int>(tokens_.size()); }
  int num_prompt_tokens() const { return num_prompt_tokens_; }
  int num_generated_tokens() const { return num_tokens() - num_prompt_tokens_; }
  int num_computed_tokens() const { return num_computed_tokens_; }
  int num_uncomputed_tokens() const { return num_tokens() - num_computed_tokens_; }
  int num_preemptions() const { return num_preemptions_; }
  // Keys of the full blocks of tokens() (empty without prefix caching). [num_tokens / block_size]
  const std::vector<BlockHash>& block_hashes() const { return block_hashes_; }
  // Prompt tokens (positions < num_prompt_tokens) taken from the prefix cache, and computed, over every admission
  // (a preempted sequence is admitted again). A fork starts at 0: its prompt was its parent's.
  int num_cached_prompt_tokens() const { return num_cached_prompt_tokens_; }
  int num_computed_prompt_tokens() const { return num_computed_prompt_tokens_; }
  // Candidate 0 of a k > 1 request before its prompt is computed: its first sample is k samples.
  bool fork_pending() const { return candidate_index_ == 0 && params_->num_candidates > 1 && !forked_; }
  void set_forked() { forked_ = true; }

  BlockTable& block_table() { return block_table_; }
  const BlockTable& block_table() const { return block_table_; }

 private:
  void ExtendHashes();  // keys for blocks that became full

  uint64_t seq_id_;
  const SequenceParams* params_;  // owned by the request; outlives its sequences
  int candidate_index_;
  uint64_t seed_;
  SequenceStatus status_ = SequenceStatus::kWaiting;
  std::vector<int32_t> tokens_;  // [num_tokens] prompt, then generated
  int num_prompt_tokens_;
  int num_computed_tokens_ = 0;
  int num_preemptions_ = 0;
  int num_cached_prompt_tokens_ = 0;
  int num_computed_prompt_tokens_ = 0;
  bool forked_ = false;
  std::vector<BlockHash> block_hashes_;  // [num_tokens / block_size] when the allocator caches
  BlockTable block_table_;
};

}  // namespace llama
