#include "scheduler/sequence.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "base/check.h"

namespace llama {

const char* SequenceStatusName(SequenceStatus status) {
  switch (status) {
    case SequenceStatus::kWaiting: return "waiting";
    case SequenceStatus::kRunning: return "running";
    case SequenceStatus::kPaused: return "paused";
    case SequenceStatus::kPreempted: return "preempted";
    case SequenceStatus::kFinishedStopped: return "finished_stopped";
    case SequenceStatus::kFinishedLength: return "finished_length";
    case SequenceStatus::kFinishedCancelled: return "finished_cancelled";
    case SequenceStatus::kFinishedDeadline: return "finished_deadline";
    case SequenceStatus::kFinishedError: return "finished_error";
  }
  return "unknown";
}

Sequence::Sequence(uint64_t seq_id, const SequenceParams* params, int candidate_index, uint64_t seed,
                   std::vector<int32_t> prompt_tokens, BlockAllocator* allocator)
    : seq_id_(seq_id),
      params_(params),
      candidate_index_(candidate_index),
      seed_(seed),
      tokens_(std::move(prompt_tokens)),
      num_prompt_tokens_(static_cast<int>(tokens_.size())),
      block_table_(allocator) {
  CHECK(params_ != nullptr);
  CHECK_GT(num_prompt_tokens_, 0);
  ExtendHashes();
}

void Sequence::ExtendHashes() {
  const BlockAllocator& allocator = *block_table_.allocator();
  if (allocator.caching()) {
    ExtendBlockHashes(allocator.cache_root(), tokens_, allocator.block_size(), &block_hashes_);
  }
}

void Sequence::MarkRunning() {
  CHECK(status_ == SequenceStatus::kWaiting || status_ == SequenceStatus::kPreempted);
  status_ = SequenceStatus::kRunning;
}

void Sequence::MarkPreempted() {
  CHECK(status_ == SequenceStatus::kRunning);
  status_ = SequenceStatus::kPreempted;
  block_table_.Clear();
  num_computed_tokens_ = 0;  // recompute: every token so far becomes prompt of the next prefill
  ++num_preemptions_;
}

void Sequence::MarkFinished(SequenceStatus to) {
  CHECK(!is_finished());
  CHECK(IsFinished(to));
  status_ = to;
  block_table_.Clear();
}

void Sequence::MarkPaused() {
  CHECK(status_ == SequenceStatus::kRunning);
  status_ = SequenceStatus::kPaused;
}

void Sequence::MarkResumed() {
  CHECK(status_ == SequenceStatus::kPaused);
  status_ = SequenceStatus::kRunning;
}

void Sequence::Rebase(uint64_t seed) {
  CHECK(status_ == SequenceStatus::kPaused);
  candidate_index_ = 0;
  seed_ = seed;
  forked_ = false;
}

void Sequence::AdoptCachedPrefix(const PrefixMatch& match, int num_computed) {
  CHECK(status_ == SequenceStatus::kRunning);
  CHECK_EQ(num_computed_tokens_, 0);
  CHECK_GE(num_computed, 0);
  CHECK_LE(num_computed, match.num_blocks() * block_table_.allocator()->block_size());
  CHECK_LT(num_computed, num_tokens());  // the last token is always computed: its logits are needed
  block_table_.AdoptPrefix(match);
  num_computed_tokens_ = num_computed;
  num_cached_prompt_tokens_ += std::min(num_computed, num_prompt_tokens_);
}

void Sequence::AdvanceComputed(int n) {
  CHECK(status_ == SequenceStatus::kRunning);
  CHECK_GT(n, 0);
  CHECK_LE(num_computed_tokens_ + n, num_tokens());
  const int prompt_end = std::min(num_computed_tokens_ + n, num_prompt_tokens_);
  num_computed_prompt_tokens_ += std::max(0, prompt_end - num_computed_tokens_);
  num_computed_tokens_ += n;
}

void Sequence::CacheComputedBlocks() { block_table_.CacheFullBlocks(tokens_, block_hashes_, num_computed_tokens_); }

void Sequence::AppendToken(int32_t token) {
  CHECK(status_ == SequenceStatus::kRunning);
  CHECK_EQ(num_computed_tokens_, num_tokens());  // sampled only after every earlier token was computed
  tokens_.push_back(token);
  ExtendHashes();
}

std::unique_ptr<Sequence> Sequence::Fork(uint64_t seq_id, int candidate_index, uint64_t seed) const {
  CHECK(status_ == SequenceStatus::kRunning);
  auto fork = std::make_unique<Sequence>(seq_id, params_, candidate_index, seed, tokens_, block_table_.allocator());
  fork->num_prompt_tokens_ = num_prompt_tokens_;
  fork->num_computed_tokens_ = num_computed_tokens_;
  fork->block_table_ = block_table_.Fork();
  fork->status_ = SequenceStatus::kRunning;
  fork->forked_ = true;
  return fork;
}

}  // namespace llama
