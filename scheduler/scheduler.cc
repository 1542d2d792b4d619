#include "scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace llama {

int SchedulerPlan::num_samples() const {
  int total = 0;
  for (const ScheduledSequence& s : seqs) total += s.num_samples;
  return total;
}

uint64_t CandidateSeed(uint64_t request_seed, int candidate_index) {
  return request_seed + static_cast<uint64_t>(candidate_index) * 0x9E3779B97F4A7C15ull;
}

Scheduler::Scheduler(const SchedulerConfig& config, int num_blocks, int block_size, BlockHash cache_root,
                     int cache_index_bits)
    : config_(config),
      allocator_(num_blocks, block_size,
                 PrefixCacheOptions{config.enable_prefix_caching, cache_root, cache_index_bits}) {
  CHECK_OK(config_.Validate());
  CHECK_GT(config_.max_model_len, 0);
  // A sequence alone must always fit, or it could wait forever.
  CHECK_LE(config_.max_model_len, int64_t{num_blocks} * block_size);
}

Scheduler::~Scheduler() {
  waiting_.clear();
  running_.clear();
  requests_.clear();  // sequences give their blocks back
  allocator_.CheckInvariants();
}

void Scheduler::AddRequest(uint64_t request_id, std::vector<int32_t> prompt_tokens,
                           const SamplingParams& sampling, uint64_t seed, int num_candidates) {
  CHECK(!requests_.contains(request_id));
  CHECK_GE(num_candidates, 1);
  CHECK_LE(num_candidates, config_.max_num_seqs);
  CHECK_LT(static_cast<int>(prompt_tokens.size()), config_.max_model_len);
  auto request = std::make_unique<Request>();
  request->params = {request_id, sampling, num_candidates};
  request->seed = seed;
  request->candidates.push_back(std::make_unique<Sequence>(
      next_seq_id_++, &request->params, 0, CandidateSeed(seed, 0), std::move(prompt_tokens), &allocator_));
  waiting_.push_back(request->candidates[0].get());
  requests_[request_id] = std::move(request);
}

bool Scheduler::FitsInMemory(const Sequence& seq, int num_new) const {
  return allocator_.CanAllocate(seq.block_table().NumBlocksNeeded(seq.num_computed_tokens(), num_new));
}

Scheduler::CachedPrefix Scheduler::LookUpPrefix(const Sequence& seq) const {
  CachedPrefix prefix;
  prefix.match = allocator_.Match(seq.tokens(), seq.block_hashes());
  prefix.num_computed = std::min(prefix.match.num_blocks() * allocator_.block_size(), seq.num_tokens() - 1);
  return prefix;
}

bool Scheduler::BlockInFlight(const Sequence& seq, int block_index) const {
  if (block_index >= static_cast<int>(seq.block_hashes().size())) return false;
  const BlockHash key = seq.block_hashes()[block_index];
  const int block_end = (block_index + 1) * allocator_.block_size();
  return std::any_of(running_.begin(), running_.end(), [&](const Sequence* other) {
    return other->num_computed_tokens() < block_end &&
           static_cast<int>(other->block_hashes().size()) > block_index && other->block_hashes()[block_index] == key;
  });
}

bool Scheduler::FitsInMemory(const CachedPrefix& prefix, int num_new) const {
  const int block_size = allocator_.block_size();
  const int blocks_after = (prefix.num_computed + num_new + block_size - 1) / block_size;
  int needed = std::max(0, blocks_after - prefix.match.num_blocks());
  // Matched whole: the last token goes into a copy of the last matched block.
  if (prefix.num_computed < prefix.match.num_blocks() * block_size) ++needed;
  return allocator_.CanAllocate(prefix.match.num_evictable + needed);
}

void Scheduler::AddToPlan(Sequence* seq, int num_new, SchedulerPlan* plan) {
  std::optional<std::vector<BlockCopy>> copies = seq->block_table().Append(seq->num_computed_tokens(), num_new);
  CHECK(copies.has_value());  // callers check FitsInMemory first
  plan->block_copies.insert(plan->block_copies.end(), copies->begin(), copies->end());
  ScheduledSequence s{seq, num_new, 0};
  if (seq->num_computed_tokens() + num_new == seq->num_tokens()) {
    s.num_samples = seq->fork_pending() ? seq->params().num_candidates : 1;
  }
  const bool decode = num_new == 1 && seq->num_computed_tokens() >= seq->num_prompt_tokens();
  (decode ? plan->num_decode_tokens : plan->num_prefill_tokens) += num_new;
  plan->seqs.push_back(s);
}

SchedulerPlan Scheduler::Schedule() {
  SchedulerPlan plan;
  plan.seqs.reserve(config_.max_num_seqs);  // one allocation per step, not one per doubling
  StepBudget budget(config_.max_num_batched_tokens, config_.max_num_seqs);
  ScheduleRunning(/*decodes=*/true, &budget, &plan);
  ScheduleRunning(/*decodes=*/false, &budget, &plan);
  // After a preemption memory is short: admitting more now would only preempt again next step.
  if (plan.preempted.empty()) AdmitWaiting(&budget, &plan);
  return plan;
}

void Scheduler::ScheduleRunning(bool decodes, StepBudget* budget, SchedulerPlan* plan) {
  size_t i = 0;
  while (i < running_.size()) {
    Sequence* seq = running_[i];
    const int wanted = seq->num_uncomputed_tokens();
    if ((wanted == 1) != decodes) {
      ++i;
      continue;
    }
    const int num_new = budget->TokensFor(wanted);
    if (num_new == 0) return;  // the step is full
    bool preempted_self = false;
    while (!FitsInMemory(*seq, num_new)) {
      if (PreemptNewest(plan) == seq) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) continue;  // running_[i] is now the next sequence
    AddToPlan(seq, num_new, plan);
    budget->Take(num_new);
    ++i;
  }
}

Sequence* Scheduler::PreemptNewest(SchedulerPlan* plan) {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    Sequence* victim = *it;
    const bool in_plan = std::any_of(plan->seqs.begin(), plan->seqs.end(),
                                     [victim](const ScheduledSequence& s) { return s.seq == victim; });
    if (in_plan) continue;
    running_.erase(std::next(it).base());
    victim->MarkPreempted();
    // Older victims end up in front of newer ones: they resume first.
    waiting_.push_front(victim);
    plan->preempted.push_back(victim);
    ++num_preemptions_;
    return victim;
  }
  CHECK(false);  // the sequence asking for room is itself running and not in the plan
  return nullptr;
}

int Scheduler::num_preempted_waiting() const {
  return static_cast<int>(std::count_if(waiting_.begin(), waiting_.end(), [](const Sequence* seq) {
    return seq->status() == SequenceStatus::kPreempted;
  }));
}

int Scheduler::RunningSlots() const {
  int slots = num_paused_;
  for (const Sequence* seq : running_) slots += seq->fork_pending() ? seq->params().num_candidates : 1;
  return slots;
}

void Scheduler::AdmitWaiting(StepBudget* budget, SchedulerPlan* plan) {
  int slots = RunningSlots();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    Sequence* seq = *it;
    const int seq_slots = seq->fork_pending() ? seq->params().num_candidates : 1;
    if (slots + seq_slots > config_.max_num_seqs) return;
    const CachedPrefix prefix = LookUpPrefix(*seq);
    // Its next block is being computed: a step later it is cached, and computing it twice would waste the budget.
    // It keeps its place; the queue behind it goes on (it does not wait for memory, so it loses nothing).
    if (BlockInFlight(*seq, prefix.match.num_blocks())) {
      ++it;
      continue;
    }
    const int num_new = budget->TokensFor(seq->num_tokens() - prefix.num_computed);
    if (num_new == 0 || !FitsInMemory(prefix, num_new)) return;
    it = waiting_.erase(it);
    seq->MarkRunning();
    seq->AdoptCachedPrefix(prefix.match, prefix.num_computed);
    plan->prefix_cache_queries += seq->num_tokens();
    plan->prefix_cache_hits += prefix.num_computed;
    prefix_cache_queries_ += seq->num_tokens();
    prefix_cache_hits_ += prefix.num_computed;
    running_.push_back(seq);
    slots += seq_slots;
    AddToPlan(seq, num_new, plan);
    budget->Take(num_new);
  }
}

std::vector<Sequence*> Scheduler::Update(const SchedulerPlan& plan, absl::Span<const int32_t> sampled_tokens) {
  CHECK_EQ(static_cast<int>(sampled_tokens.size()), plan.num_samples());
  std::vector<Sequence*> updated;
  updated.reserve(plan.num_samples());
  size_t row = 0;
  for (const ScheduledSequence& s : plan.seqs) {
    Sequence* seq = s.seq;
    seq->AdvanceComputed(s.num_new_tokens);
    seq->CacheComputedBlocks();  // before a fork, so the forks share the registered blocks
    if (s.num_samples == 0) continue;
    std::vector<Sequence*> forks;
    if (s.num_samples > 1) {
      CHECK(seq->fork_pending());
      Request& request = *requests_.at(seq->request_id());
      for (int j = 1; j < s.num_samples; ++j) {
        request.candidates.push_back(seq->Fork(next_seq_id_++, j, CandidateSeed(request.seed, j)));
        forks.push_back(request.candidates.back().get());
      }
      seq->set_forked();
    }
    seq->AppendToken(sampled_tokens[row++]);
    updated.push_back(seq);
    for (Sequence* fork : forks) {
      fork->AppendToken(sampled_tokens[row++]);
      running_.push_back(fork);
      updated.push_back(fork);
    }
  }
  return updated;
}

void Scheduler::Unqueue(Sequence* seq) {
  if (seq->status() == SequenceStatus::kPaused) {
    --num_paused_;
  } else if (seq->status() == SequenceStatus::kRunning) {
    auto it = std::find(running_.begin(), running_.end(), seq);
    CHECK(it != running_.end());
    running_.erase(it);
  } else {
    auto it = std::find(waiting_.begin(), waiting_.end(), seq);
    CHECK(it != waiting_.end());
    waiting_.erase(it);
  }
}

void Scheduler::FinishSequence(Sequence* seq, SequenceStatus status) {
  CHECK(!seq->is_finished());
  Unqueue(seq);
  seq->MarkFinished(status);
}

void Scheduler::PauseSequence(Sequence* seq) {
  Unqueue(seq);  // running → neither list
  seq->MarkPaused();
  ++num_paused_;
}

void Scheduler::ContinueFrom(uint64_t request_id, int winner_index) {
  Request& request = *requests_.at(request_id);
  std::unique_ptr<Sequence> winner;
  for (std::unique_ptr<Sequence>& seq : request.candidates) {
    if (seq->candidate_index() == winner_index && !seq->is_finished()) {
      winner = std::move(seq);
      continue;
    }
    if (!seq->is_finished()) FinishSequence(seq.get(), SequenceStatus::kFinishedStopped);  // a loser: blocks back
    request.retired.num_preemptions += seq->num_preemptions();
    request.retired.cached_prompt_tokens += seq->num_cached_prompt_tokens();
    request.retired.computed_prompt_tokens += seq->num_computed_prompt_tokens();
  }
  CHECK(winner != nullptr && winner->status() == SequenceStatus::kPaused);
  request.candidates.clear();
  winner->Rebase(CandidateSeed(request.seed, 0));
  --num_paused_;
  winner->MarkResumed();
  running_.push_back(winner.get());
  request.candidates.push_back(std::move(winner));
}

void Scheduler::RemoveRequest(uint64_t request_id, SequenceStatus status) {
  auto it = requests_.find(request_id);
  CHECK(it != requests_.end());
  for (auto& seq : it->second->candidates) {
    if (!seq->is_finished()) FinishSequence(seq.get(), status);
  }
  requests_.erase(it);
}

const std::vector<std::unique_ptr<Sequence>>& Scheduler::Candidates(uint64_t request_id) const {
  auto it = requests_.find(request_id);
  CHECK(it != requests_.end());
  return it->second->candidates;
}

}  // namespace llama
