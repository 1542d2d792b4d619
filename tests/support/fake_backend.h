// FakeBackend: a Backend for tests (test-only: tests/support, never linked into a binary we ship). It computes nothing real but keeps an honest KV
// cache of its own: every slot remembers the (token, position) written to it, block copies copy those, and each
// sampled token is a hash of the context read back through the sequence's block table. So a wrong block table,
// slot mapping, missing copy-on-write copy or reused-too-early block changes the tokens (or fails the step with
// INTERNAL), and tests see it. Deterministic: the same context (and seed/step when sampling) gives the same token.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/backend.h"

namespace llama::testing {

struct FakeBackendOptions {
  int vocab_size = 32000;
  int max_position_embeddings = 256;
  int num_blocks = 64;
  int block_size = 16;
  int32_t eos_id = 2;
  int eos_one_in = 0;  // 0: never EOS; n: EOS whenever the token hash is 0 mod n
  absl::Duration step_latency = absl::ZeroDuration();
  // Overrides the hash: next token from the context (every token in the sequence so far, read from the fake KV)
  // and the output row (seed, step). Called on the engine thread.
  std::function<int32_t(absl::Span<const int32_t> context, const OutputRow& row)> next_token;
};

class FakeBackend : public Backend {
 public:
  explicit FakeBackend(FakeBackendOptions options);

  const ModelConfig& config() const override { return config_; }
  const KvCacheSpec& kv_cache() const override { return kv_; }
  std::string name() const override { return "fake"; }
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override;

  // Thread-safe controls and records.
  void SetFailAtStep(int64_t step);  // the step-th Forward call (0-based) returns INTERNAL; -1: never
  void SetStepLatency(absl::Duration latency);
  int64_t num_steps() const;
  std::vector<ForwardInput> inputs() const;  // every input seen, in order

  // The token the hash rule gives (without the next_token override), for tests that predict outputs.
  static int32_t HashToken(absl::Span<const int32_t> context, const OutputRow& row, int vocab_size,
                           int32_t eos_id, int eos_one_in);

 private:
  absl::Status CheckAndWriteKv(const ForwardInput& input);
  absl::StatusOr<std::vector<int32_t>> ReadContext(const ForwardInput& input, int seq) const;

  FakeBackendOptions options_;
  ModelConfig config_;
  KvCacheSpec kv_;
  // Engine thread only: [num_blocks * block_size] token and position stored in each slot (-1 = never written).
  std::vector<int32_t> kv_tokens_;
  std::vector<int32_t> kv_positions_;

  mutable absl::Mutex mu_;
  int64_t num_steps_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fail_at_step_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Duration step_latency_ ABSL_GUARDED_BY(mu_);
  std::vector<ForwardInput> inputs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace llama::testing
