#include "scheduler/reward_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "engine/forward_batch.h"

namespace llama {
namespace {

int BlocksFor(int num_tokens, int block_size) { return (num_tokens + block_size - 1) / block_size; }

}  // namespace

RewardQueue::RewardQueue(std::vector<RewardModel*> models, int max_tokens_per_step, bool enable_prefix_caching,
                         int cache_index_bits)
    : models_(std::move(models)), max_tokens_per_step_(max_tokens_per_step) {
  CHECK(!models_.empty());
  CHECK_GE(max_tokens_per_step_, 1);
  for (RewardModel* model : models_) {
    CHECK_GT(model->engine_kv_blocks(), 0);
    PrefixCacheOptions cache;
    cache.enabled = enable_prefix_caching;
    cache.root = PrefixCacheRoot(absl::StrCat("reward:", model->name(), ":", model->source()), model->backend_name(),
                                 model->config(), model->kv_cache());
    cache.index_bits = cache_index_bits;
    allocators_.push_back(
        std::make_unique<BlockAllocator>(model->engine_kv_blocks(), model->kv_cache().block_size, cache));
    cache_stats_.push_back(PrefixCacheStats{model->name()});
  }
}

RewardQueue::~RewardQueue() { jobs_.clear(); }  // tables give their blocks back before the allocators die

absl::Status RewardQueue::Add(uint64_t request_id, std::vector<std::vector<std::vector<int32_t>>> inputs,
                              absl::Time now) {
  if (inputs.size() != models_.size()) {
    return absl::InternalError(absl::StrCat("reward inputs for ", inputs.size(), " models, expected ", models_.size()));
  }
  auto job = std::make_unique<Job>();
  job->request_id = request_id;
  job->queued = now;
  job->done_at.resize(models_.size());
  for (size_t m = 0; m < models_.size(); ++m) {
    const int block_size = models_[m]->kv_cache().block_size;
    std::vector<Seq>& seqs = job->seqs.emplace_back();
    for (std::vector<int32_t>& tokens : inputs[m]) {
      if (tokens.empty()) return absl::InvalidArgumentError("empty reward input");
      if (static_cast<int>(tokens.size()) > models_[m]->max_tokens() ||
          BlocksFor(static_cast<int>(tokens.size()), block_size) > allocators_[m]->num_total()) {
        return absl::ResourceExhaustedError(
            absl::StrCat("reward input of ", tokens.size(), " tokens does not fit reward model '",
                         models_[m]->name(), "' (context ", models_[m]->max_tokens(), ", ",
                         allocators_[m]->num_total(), " engine blocks of ", block_size, ")"));
      }
      Seq seq;
      seq.tokens = std::move(tokens);
      if (allocators_[m]->caching()) {
        ExtendBlockHashes(allocators_[m]->cache_root(), seq.tokens, block_size, &seq.hashes);
      }
      seqs.push_back(std::move(seq));
    }
    if (seqs.empty()) job->done_at[m] = now;  // no candidates: nothing to score
  }
  jobs_.push_back(std::move(job));
  return absl::OkStatus();
}

void RewardQueue::Remove(uint64_t request_id) {
  for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
    if ((*it)->request_id == request_id) {
      jobs_.erase(it);
      return;
    }
  }
}

bool RewardQueue::Contains(uint64_t request_id) const {
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j->request_id == request_id; });
}

// The next model with unscored sequences after the last one that ran (round robin, so neither model starves).
std::optional<int> RewardQueue::NextModel() const {
  const int n = static_cast<int>(models_.size());
  for (int i = 1; i <= n; ++i) {
    const int m = (last_model_ + i) % n;
    for (const auto& job : jobs_) {
      if (!job->done_at[m]) return m;
    }
  }
  return std::nullopt;
}

// FIFO over requests and their candidates: started sequences continue (their blocks are reserved), new ones start
// while the budget and the engine blocks allow; the first one that does not fit stops the scan (no overtaking). One
// whose next block another started sequence is computing is passed over this step (it does not wait for memory).
RewardQueue::Plan RewardQueue::PlanStep(int model, RewardStepStats* stats) {
  Plan plan;
  int budget = max_tokens_per_step_;
  for (auto& job : jobs_) {
    for (Seq& seq : job->seqs[model]) {
      if (budget == 0) return plan;
      const int len = static_cast<int>(seq.tokens.size());
      if (seq.num_computed == len) continue;
      if (!seq.blocks) {
        const StartResult started = Start(model, &seq, &plan, stats);
        if (started == StartResult::kWaitsForBlock) continue;
        if (started == StartResult::kNoRoom) return plan;
      }
      const int n = std::min(len - seq.num_computed, budget);
      budget -= n;
      plan.chunks.push_back(Chunk{job.get(), &seq, n});
    }
  }
  return plan;
}

// The cached prefix counts as computed, up to all but the last token (its hidden state is the score); a sequence
// matched whole writes that token into a copy of its last block (cached blocks are never written).
RewardQueue::StartResult RewardQueue::Start(int model, Seq* seq, Plan* plan, RewardStepStats* stats) {
  BlockAllocator& allocator = *allocators_[model];
  const int block_size = allocator.block_size();
  const int len = static_cast<int>(seq->tokens.size());
  const PrefixMatch match = allocator.Match(seq->tokens, seq->hashes);
  if (BlockInFlight(model, *seq, match.num_blocks())) return StartResult::kWaitsForBlock;  // cached a step later
  const int start = std::min(match.num_blocks() * block_size, len - 1);
  // Matched whole: the last token goes into a copy of the last matched block.
  const int needed =
      BlocksFor(len, block_size) - match.num_blocks() + (start < match.num_blocks() * block_size ? 1 : 0);
  if (!allocator.CanAllocate(match.num_evictable + needed)) return StartResult::kNoRoom;  // wait for others to finish
  BlockTable table(&allocator);
  table.AdoptPrefix(match);
  std::optional<std::vector<BlockCopy>> copies = table.Append(start, len - start);
  CHECK(copies.has_value());
  plan->copies.insert(plan->copies.end(), copies->begin(), copies->end());
  seq->blocks = std::move(table);
  seq->num_computed = start;
  stats->prefix_cache_queries += len;
  stats->prefix_cache_hits += start;
  cache_stats_[model].queries += len;
  cache_stats_[model].hits += start;
  return StartResult::kStarted;
}

// Whether a started sequence is computing seq's block block_index (the same key, not computed yet).
bool RewardQueue::BlockInFlight(int model, const Seq& seq, int block_index) const {
  if (block_index >= static_cast<int>(seq.hashes.size())) return false;
  const int block_end = (block_index + 1) * allocators_[model]->block_size();
  for (const auto& job : jobs_) {
    for (const Seq& other : job->seqs[model]) {
      if (other.blocks && other.num_computed < block_end && static_cast<int>(other.hashes.size()) > block_index &&
          other.hashes[block_index] == seq.hashes[block_index]) {
        return true;
      }
    }
  }
  return false;
}

absl::Status RewardQueue::Step(RewardStepStats* stats) {
  *stats = RewardStepStats();
  const std::optional<int> model = NextModel();
  if (!model) return absl::OkStatus();
  last_model_ = *model;
  const Plan plan = PlanStep(*model, stats);
  // Never empty with work queued: a sequence alone fits the engine blocks, and one that waits for a block waits
  // for a started sequence, which is in the plan.
  if (plan.chunks.empty()) return absl::OkStatus();
  stats->model = *model;
  stats->num_seqs = static_cast<int>(plan.chunks.size());
  for (const Chunk& c : plan.chunks) {
    stats->num_tokens += c.num_tokens;
    if (c.seq->num_computed + c.num_tokens == static_cast<int>(c.seq->tokens.size())) ++stats->num_outputs;
    if (stats->request_ids.empty() || stats->request_ids.back() != c.job->request_id) {
      stats->request_ids.push_back(c.job->request_id);
    }
  }
  return Run(*model, plan);
}

// One prefill-only Forward over the chunks; output rows (hidden states) only for sequences it completes.
absl::Status RewardQueue::Run(int model, const Plan& plan) {
  RewardModel& rm = *models_[model];
  ForwardBatchBuilder batch(rm.kv_cache().block_size);
  for (const auto& [src, dst] : plan.copies) batch.AddBlockCopy(src, dst);
  std::vector<Seq*> finishing;  // [num_outputs] in output-row order
  for (const Chunk& c : plan.chunks) {
    const int end = c.seq->num_computed + c.num_tokens;
    batch.AddSequence(absl::MakeConstSpan(c.seq->tokens).subspan(c.seq->num_computed, c.num_tokens),
                      c.seq->num_computed, c.seq->blocks->blocks());
    if (end == static_cast<int>(c.seq->tokens.size())) {
      OutputRow row;
      row.sample = false;  // the hidden state of the sequence's last token
      batch.AddOutput(std::move(row));
      finishing.push_back(c.seq);
    }
  }
  ForwardInput in = std::move(batch).Build();
  in.return_hidden = true;
  ForwardOutput out;
  RETURN_IF_ERROR(rm.EngineForward(in, &out));
  const size_t dim = rm.config().hidden_size;
  if (out.hidden.size() != finishing.size() * dim) {
    return absl::InternalError(absl::StrCat("reward model '", rm.name(), "': backend returned ", out.hidden.size(),
                                            " hidden values, expected ", finishing.size() * dim));
  }
  for (const Chunk& c : plan.chunks) {
    c.seq->num_computed += c.num_tokens;
    c.seq->blocks->CacheFullBlocks(c.seq->tokens, c.seq->hashes, c.seq->num_computed);
  }
  for (size_t o = 0; o < finishing.size(); ++o) {
    finishing[o]->score = rm.ScoreHidden(absl::MakeConstSpan(out.hidden).subspan(o * dim, dim));
    finishing[o]->blocks.reset();  // scored: its registered blocks stay cached for later sequences
  }
  return absl::OkStatus();
}

std::vector<ScoredRequest> RewardQueue::TakeFinished(absl::Time now) {
  std::vector<ScoredRequest> done;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    Job& job = **it;
    bool all = true;
    for (size_t m = 0; m < models_.size(); ++m) {
      if (!job.done_at[m] &&
          std::all_of(job.seqs[m].begin(), job.seqs[m].end(), [](const Seq& s) { return s.score.has_value(); })) {
        job.done_at[m] = now;
      }
      all = all && job.done_at[m].has_value();
    }
    if (!all) {
      ++it;
      continue;
    }
    ScoredRequest r;
    r.request_id = job.request_id;
    for (size_t m = 0; m < models_.size(); ++m) {
      std::vector<float>& scores = r.scores.emplace_back();
      for (const Seq& s : job.seqs[m]) scores.push_back(*s.score);
      r.latency_s.push_back(absl::ToDoubleSeconds(*job.done_at[m] - job.queued));
    }
    done.push_back(std::move(r));
    it = jobs_.erase(it);
  }
  return done;
}

int RewardQueue::num_blocks_used() const {
  int used = 0;
  for (const auto& a : allocators_) used += a->num_used();
  return used;
}

PrefixCacheStats RewardQueue::prefix_cache_stats(int model) const {
  PrefixCacheStats stats = cache_stats_.at(model);
  stats.cached_blocks = allocators_[model]->num_cached();
  return stats;
}

void RewardQueue::CheckIdle() const {
  for (const auto& a : allocators_) {
    a->CheckInvariants();
    CHECK_EQ(a->num_used(), 0);
  }
}

}  // namespace llama
