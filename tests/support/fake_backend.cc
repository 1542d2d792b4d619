#include "tests/support/fake_backend.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/tiny_models.h"

namespace llama::testing {
namespace {

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 29);
}

absl::Status Corrupt(int seq, const std::string& what) {
  return absl::InternalError(absl::StrCat("fake backend: sequence ", seq, ": ", what));
}

}  // namespace

FakeBackend::FakeBackend(FakeBackendOptions options)
    : options_(std::move(options)),
      config_(TinyConfig({.hidden = 64, .intermediate = 128, .layers = 1, .heads = 4, .kv_heads = 4,
                          .vocab = options_.vocab_size, .context = options_.max_position_embeddings})) {
  config_.eos_token_id = options_.eos_id;
  kv_.block_size = options_.block_size;
  kv_.num_blocks = options_.num_blocks;
  kv_.num_layers = 1;
  kv_.num_kv_heads = 4;
  kv_.head_dim = 16;
  kv_tokens_.assign(int64_t{kv_.num_blocks} * kv_.block_size, -1);
  kv_positions_.assign(kv_tokens_.size(), -1);
  step_latency_ = options_.step_latency;
}

void FakeBackend::SetFailAtStep(int64_t step) {
  absl::MutexLock lock(&mu_);
  fail_at_step_ = step;
}

void FakeBackend::SetStepLatency(absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  step_latency_ = latency;
}

int64_t FakeBackend::num_steps() const {
  absl::MutexLock lock(&mu_);
  return num_steps_;
}

std::vector<ForwardInput> FakeBackend::inputs() const {
  absl::MutexLock lock(&mu_);
  return inputs_;
}

int32_t FakeBackend::HashToken(absl::Span<const int32_t> context, const OutputRow& row, int vocab_size,
                               int32_t eos_id, int eos_one_in) {
  uint64_t h = 0x12345;
  for (int32_t t : context) h = Mix(h, static_cast<uint64_t>(t));
  // Greedy depends on the context only; sampling also on (seed, step), like the real counter-based sampler.
  if (row.params.temperature > 0) h = Mix(Mix(h, row.seed), static_cast<uint64_t>(row.step));
  if (eos_one_in > 0 && h % eos_one_in == 0) return eos_id;
  int32_t token = static_cast<int32_t>((h >> 8) % vocab_size);
  if (token == eos_id) token = (token + 1) % vocab_size;
  return token;
}

absl::Status FakeBackend::CheckAndWriteKv(const ForwardInput& input) {
  const int num_seqs = input.num_seqs();
  if (static_cast<int>(input.context_lens.size()) != num_seqs ||
      static_cast<int>(input.block_tables.size()) != num_seqs * input.max_blocks_per_seq ||
      input.positions.size() != input.token_ids.size() || input.slot_mapping.size() != input.token_ids.size() ||
      input.query_start.back() != input.num_tokens()) {
    return absl::InvalidArgumentError("fake backend: inconsistent ForwardInput sizes");
  }
  for (const auto& [src, dst] : input.block_copies) {
    for (int i = 0; i < kv_.block_size; ++i) {
      kv_tokens_[dst * kv_.block_size + i] = kv_tokens_[src * kv_.block_size + i];
      kv_positions_[dst * kv_.block_size + i] = kv_positions_[src * kv_.block_size + i];
    }
  }
  for (int s = 0; s < num_seqs; ++s) {
    const int begin = input.query_start[s];
    const int end = input.query_start[s + 1];
    for (int i = begin; i < end; ++i) {
      const int pos = input.positions[i];
      if (pos != input.context_lens[s] - (end - i)) return Corrupt(s, "positions are not the context's tail");
      const int32_t block = input.block_tables[s * input.max_blocks_per_seq + pos / kv_.block_size];
      if (block < 0 || block >= kv_.num_blocks) return Corrupt(s, "block table too short");
      if (input.slot_mapping[i] != block * kv_.block_size + pos % kv_.block_size) {
        return Corrupt(s, "slot mapping disagrees with the block table");
      }
      kv_tokens_[input.slot_mapping[i]] = input.token_ids[i];
      kv_positions_[input.slot_mapping[i]] = pos;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> FakeBackend::ReadContext(const ForwardInput& input, int seq) const {
  std::vector<int32_t> context(input.context_lens[seq]);  // [context_len] every token so far, from the KV
  for (int pos = 0; pos < input.context_lens[seq]; ++pos) {
    const int32_t block = input.block_tables[seq * input.max_blocks_per_seq + pos / kv_.block_size];
    if (block < 0 || block >= kv_.num_blocks) return Corrupt(seq, "block table too short");
    const int slot = block * kv_.block_size + pos % kv_.block_size;
    if (kv_positions_[slot] != pos) return Corrupt(seq, absl::StrCat("KV slot for position ", pos, " is stale"));
    context[pos] = kv_tokens_[slot];
  }
  return context;
}

absl::Status FakeBackend::Forward(const ForwardInput& input, ForwardOutput* output) {
  int64_t step;
  absl::Duration latency;
  {
    absl::MutexLock lock(&mu_);
    step = num_steps_++;
    latency = step_latency_;
    inputs_.push_back(input);
    if (step == fail_at_step_) return absl::InternalError(absl::StrCat("fake failure at step ", step));
  }
  if (latency > absl::ZeroDuration()) absl::SleepFor(latency);
  if (auto status = CheckAndWriteKv(input); !status.ok()) return status;
  output->sampled_tokens.clear();
  for (const OutputRow& row : input.outputs) {
    auto seq_end = std::upper_bound(input.query_start.begin(), input.query_start.end(), row.token_index);
    const int seq = static_cast<int>(seq_end - input.query_start.begin()) - 1;
    absl::StatusOr<std::vector<int32_t>> context = ReadContext(input, seq);
    if (!context.ok()) return context.status();
    output->sampled_tokens.push_back(
        options_.next_token ? options_.next_token(*context, row)
                            : HashToken(*context, row, config_.vocab_size, options_.eos_id, options_.eos_one_in));
  }
  return absl::OkStatus();
}

}  // namespace llama::testing
