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

RewardQueue::RewardQueue(std::vector<RewardModel*> models, int max_tokens_per_step)
    : models_(std::move(models)), max_tokens_per_step_(max_tokens_per_step) {
  CHECK(!models_.empty());
  CHECK_GE(max_tokens_per_step_, 1);
  for (RewardModel* model : models_) {
    CHECK_GT(model->engine_kv_blocks(), 0);
    allocators_.push_back(
        std::make_unique<BlockAllocator>(model->engine_kv_blocks(), model->kv_cache().block_size));
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
// while the budget and the engine blocks allow; the first one that does not fit stops the scan (no overtaking).
std::vector<RewardQueue::Chunk> RewardQueue::Plan(int model) {
  std::vector<Chunk> chunks;
  int budget = max_tokens_per_step_;
  for (auto& job : jobs_) {
    for (Seq& seq : job->seqs[model]) {
      if (budget == 0) return chunks;
      const int len = static_cast<int>(seq.tokens.size());
      if (seq.num_computed == len) continue;
      if (!seq.blocks) {
        BlockTable table(allocators_[model].get());
        if (!table.Append(0, len)) return chunks;  // pool full: wait for running sequences to finish
        seq.blocks = std::move(table);
      }
      const int n = std::min(len - seq.num_computed, budget);
      budget -= n;
      chunks.push_back(Chunk{job.get(), &seq, n});
    }
  }
  return chunks;
}

absl::Status RewardQueue::Step(RewardStepStats* stats) {
  *stats = RewardStepStats();
  const std::optional<int> model = NextModel();
  if (!model) return absl::OkStatus();
  last_model_ = *model;
  const std::vector<Chunk> chunks = Plan(*model);
  if (chunks.empty()) return absl::OkStatus();  // cannot happen: a sequence alone fits the engine blocks
  stats->model = *model;
  stats->num_seqs = static_cast<int>(chunks.size());
  for (const Chunk& c : chunks) {
    stats->num_tokens += c.num_tokens;
    if (c.seq->num_computed + c.num_tokens == static_cast<int>(c.seq->tokens.size())) ++stats->num_outputs;
    if (stats->request_ids.empty() || stats->request_ids.back() != c.job->request_id) {
      stats->request_ids.push_back(c.job->request_id);
    }
  }
  return Run(*model, chunks);
}

// One prefill-only Forward over the chunks; output rows (hidden states) only for sequences it completes.
absl::Status RewardQueue::Run(int model, const std::vector<Chunk>& chunks) {
  RewardModel& rm = *models_[model];
  ForwardBatchBuilder batch(rm.kv_cache().block_size);
  std::vector<Seq*> finishing;  // [num_outputs] in output-row order
  for (const Chunk& c : chunks) {
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
  for (const Chunk& c : chunks) c.seq->num_computed += c.num_tokens;
  for (size_t o = 0; o < finishing.size(); ++o) {
    finishing[o]->score = rm.ScoreHidden(absl::MakeConstSpan(out.hidden).subspan(o * dim, dim));
    finishing[o]->blocks.reset();  // scored: its KV is no longer needed
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

void RewardQueue::CheckIdle() const {
  for (const auto& a : allocators_) {
    a->CheckInvariants();
    CHECK_EQ(a->num_used(), 0);
  }
}

}  // namespace llama
