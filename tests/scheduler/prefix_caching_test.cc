// Prefix caching through the EngineLoop on the FakeBackend, whose tokens are a hash of the context it reads back
// from its own KV slots: a wrongly matched block, a stale slot or a missing copy changes the tokens or fails the
// step. Each test runs the same requests with caching on and off and requires the same tokens, and reads what was
// computed from the engine's own counters (FinishInfo, StepStats, the backend's inputs).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "scheduler/engine_loop.h"
#include "tests/support/candidate_recorder.h"
#include "tests/support/fake_backend.h"
#include "tests/support/text_sink.h"

namespace llama {
namespace {

using ::llama::testing::FakeBackend;
using ::llama::testing::FakeBackendOptions;
using ::llama::testing::CandidateRecorder;
using Sink = ::llama::testing::TextSink;

constexpr int kBlockSize = 16;  // FakeBackendOptions' default
constexpr int32_t kEos = 2;

std::vector<int32_t> Ids(int n, int32_t first) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

GenerationRequest Request(uint64_t id, std::vector<int32_t> prompt, int max_tokens, float temperature = 0.0f,
                          int k = 1) {
  GenerationRequest r;
  r.id = id;
  r.prompt_tokens = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.seed = 1000 + id;
  r.num_candidates = k;
  return r;
}

// Sums the steps' prefix-cache counters and checks free + cached + used == total on every step.
class CacheStats : public StepObserver {
 public:
  explicit CacheStats(int total_blocks) : total_blocks_(total_blocks) {}
  void OnStep(const StepStats& s) override {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(s.kv_blocks_free + s.kv_blocks_cached + s.kv_blocks_used, total_blocks_);
    queries_ += s.prefix_cache_queries;
    hits_ += s.prefix_cache_hits;
    preemptions_ += s.num_preemptions;
  }
  int64_t hits() const { absl::MutexLock lock(&mu_); return hits_; }
  int64_t queries() const { absl::MutexLock lock(&mu_); return queries_; }
  int64_t preemptions() const { absl::MutexLock lock(&mu_); return preemptions_; }

 private:
  const int total_blocks_;
  mutable absl::Mutex mu_;
  int64_t queries_ = 0, hits_ = 0, preemptions_ = 0;
};

// One engine loop on a fresh FakeBackend, prefix caching on or off.
class Engine {
 public:
  Engine(FakeBackendOptions backend, bool caching, EngineLoopOptions options = {})
      : backend_(std::move(backend)), stats_(backend_.kv_cache().num_blocks) {
    options.scheduler.enable_prefix_caching = caching;
    options.max_queued_requests = 512;
    loop_ = std::make_unique<EngineLoop>(&backend_, nullptr, options);
    loop_->SetCandidateSelector(&selector_);
    loop_->AddObserver(&stats_);
    loop_->Start();
  }
  ~Engine() { loop_->Stop(); }

  std::shared_ptr<Sink> Submit(GenerationRequest r) {
    auto sink = std::make_shared<Sink>();
    const absl::Status status = loop_->Submit(std::move(r), sink);
    EXPECT_TRUE(status.ok()) << status;
    return sink;
  }
  // Submits all, waits for all; the sinks in request order.
  std::vector<std::shared_ptr<Sink>> RunAll(const std::vector<GenerationRequest>& requests) {
    std::vector<std::shared_ptr<Sink>> sinks;
    for (const GenerationRequest& r : requests) sinks.push_back(Submit(r));
    for (auto& sink : sinks) EXPECT_TRUE(sink->Wait());
    return sinks;
  }
  std::shared_ptr<Sink> Run(const GenerationRequest& r) { return RunAll({r})[0]; }
  // Waits until the loop is idle: no block used (the loop itself CHECKs its invariants then).
  EngineSnapshot Idle() {
    EngineSnapshot s;
    for (int i = 0; i < 2000; ++i) {
      s = loop_->Snapshot();
      if (s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_used == 0) break;
      absl::SleepFor(absl::Milliseconds(2));
    }
    EXPECT_EQ(s.kv_blocks_used, 0);
    EXPECT_LE(s.kv_blocks_cached, s.kv_blocks_total);
    return s;
  }

  EngineLoop& loop() { return *loop_; }
  FakeBackend& backend() { return backend_; }
  CacheStats& stats() { return stats_; }
  CandidateRecorder& selector() { return selector_; }

 private:
  FakeBackend backend_;
  CacheStats stats_;
  CandidateRecorder selector_;
  std::unique_ptr<EngineLoop> loop_;
};

FakeBackendOptions Backend(int num_blocks, int context) {
  FakeBackendOptions o;
  o.num_blocks = num_blocks;
  o.max_position_embeddings = context;
  return o;
}

TEST(PrefixCachingTest, FiveTurnConversationComputesOnlyEachTurnsNewTokens) {
  Engine on(Backend(128, 1024), true), off(Backend(128, 1024), false);
  std::vector<int32_t> dialog = {1};  // BOS
  size_t seen = 0;                     // tokens the engine has computed or generated for this conversation
  for (int turn = 0; turn < 5; ++turn) {
    // Each turn = the previous dialog + the model's previous answer (+ EOS) + a new user message.
    const std::vector<int32_t> prompt = Concat(dialog, Ids(20 + 7 * turn, 3000 + 100 * turn));
    const GenerationRequest r = Request(turn + 1, prompt, /*max_tokens=*/12);
    auto cached = on.Run(r);
    auto uncached = off.Run(r);
    ASSERT_TRUE(cached->info().status.ok()) << cached->info().status;
    EXPECT_EQ(cached->ids(), uncached->ids()) << "turn " << turn;
    const FinishInfo info = cached->info();
    const int new_tokens = static_cast<int>(prompt.size() - seen);
    EXPECT_LE(info.computed_prompt_tokens, new_tokens + kBlockSize) << "turn " << turn;
    EXPECT_EQ(info.cached_prompt_tokens + info.computed_prompt_tokens, static_cast<int>(prompt.size()));
    if (turn > 0) {
      EXPECT_GT(info.cached_prompt_tokens, 0);
    }
    EXPECT_EQ(uncached->info().computed_prompt_tokens, static_cast<int>(prompt.size()));
    EXPECT_EQ(uncached->info().cached_prompt_tokens, 0);
    seen = prompt.size() + cached->ids().size();
    dialog = Concat(Concat(prompt, cached->ids()), {kEos});
  }
  const EngineSnapshot s = on.Idle();
  EXPECT_GT(s.kv_blocks_cached, 0);
  ASSERT_FALSE(s.prefix_caches.empty());
  EXPECT_EQ(s.prefix_caches[0].model, "policy");
  EXPECT_EQ(s.prefix_caches[0].hits, on.stats().hits());
  EXPECT_EQ(s.prefix_caches[0].queries, on.stats().queries());
  EXPECT_EQ(off.Idle().kv_blocks_cached, 0);
}

// The tokens at positions < end over every forward the backend ran.
int64_t TokensComputedBelow(const FakeBackend& backend, int end) {
  int64_t n = 0;
  for (const ForwardInput& in : backend.inputs()) {
    n += std::count_if(in.positions.begin(), in.positions.end(), [end](int32_t p) { return p < end; });
  }
  return n;
}

TEST(PrefixCachingTest, SixtyFourConcurrentRequestsComputeTheirSystemPromptOnce) {
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 64;
  Engine on(Backend(256, 512), true, options), off(Backend(1024, 512), false, options);
  const std::vector<int32_t> system = Concat({1}, Ids(199, 5000));  // 200 tokens: 12 full blocks + 8
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 64; ++i) requests.push_back(Request(i + 1, Concat(system, Ids(10, 10000 + 100 * i)), 4));
  auto cached = on.RunAll(requests);
  auto uncached = off.RunAll(requests);
  constexpr int kShared = 12 * kBlockSize;  // 192
  int computed_whole = 0, computed_tail = 0;
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(cached[i]->info().status.ok()) << cached[i]->info().status;
    EXPECT_EQ(cached[i]->ids(), uncached[i]->ids()) << i;
    const int computed = cached[i]->info().computed_prompt_tokens;
    computed_whole += computed == 210;
    computed_tail += computed == 210 - kShared;
  }
  EXPECT_EQ(computed_whole, 1);  // the first one admitted
  EXPECT_EQ(computed_tail, 63);  // the others waited a step for its blocks
  // Counted by the backend: each of the 192 shared positions was computed once, against 64 times without caching.
  EXPECT_EQ(TokensComputedBelow(on.backend(), kShared), kShared);
  EXPECT_EQ(TokensComputedBelow(off.backend(), kShared), 64 * kShared);
  EXPECT_EQ(on.stats().hits(), 63 * kShared);
  on.Idle();
}

TEST(PrefixCachingTest, SameTokensWithAndWithoutCachingGreedyAndSampledOneAndFourCandidates) {
  Engine on(Backend(256, 512), true), off(Backend(256, 512), false);
  const std::vector<int32_t> system = Concat({1}, Ids(40, 7000));  // 2 full blocks + 9
  std::vector<GenerationRequest> first, second;
  uint64_t id = 1;
  for (float temperature : {0.0f, 0.8f}) {
    for (int k : {1, 4}) {
      first.push_back(Request(id, Concat(system, Ids(9, 100 * id)), 20, temperature, k));
      ++id;
    }
  }
  // The same prompts again (matched whole: the last token is computed in a copy), and extended ones.
  for (const GenerationRequest& r : first) {
    GenerationRequest again = r;
    again.id = id++;
    second.push_back(again);
    GenerationRequest longer = r;
    longer.id = id++;
    longer.prompt_tokens = Concat(r.prompt_tokens, Ids(30, 9000));
    second.push_back(longer);
  }
  for (const auto& batch : {first, second}) {
    auto cached = on.RunAll(batch);
    auto uncached = off.RunAll(batch);
    for (size_t i = 0; i < batch.size(); ++i) {
      ASSERT_TRUE(cached[i]->info().status.ok()) << cached[i]->info().status;
      EXPECT_EQ(cached[i]->ids(), uncached[i]->ids()) << "request " << batch[i].id;
      EXPECT_EQ(on.selector().outputs(batch[i].id), off.selector().outputs(batch[i].id)) << "request " << batch[i].id;
      if (batch[i].num_candidates == 4) {
        EXPECT_EQ(on.selector().outputs(batch[i].id).size(), 4u);
      }
    }
  }
  EXPECT_GT(on.stats().hits(), 0);
  EXPECT_EQ(off.stats().hits(), 0);
  on.Idle();
}

TEST(PrefixCachingTest, ATinyPoolEvictsTheLeastRecentlyUsedCachedBlockNeverAUsedOne) {
  // 6 blocks of 16. A and B (2 full blocks each) finish and stay cached; C needs 3 blocks: the 2 free ones and the
  // oldest cached one, A's last block (a sequence's tail is released, hence evicted, before its head).
  Engine on(Backend(6, 96), true), off(Backend(6, 96), false);
  const std::vector<int32_t> a = Concat({1}, Ids(31, 100)), b = Concat({1}, Ids(31, 200));
  const std::vector<int32_t> c = Concat({1}, Ids(47, 300));
  auto run = [&](uint64_t id, const std::vector<int32_t>& prompt) {
    auto cached = on.Run(Request(id, prompt, 1));
    EXPECT_EQ(cached->ids(), off.Run(Request(id, prompt, 1))->ids()) << id;
    return cached->info();
  };
  run(1, a);
  run(2, b);
  EXPECT_EQ(on.Idle().kv_blocks_cached, 4);
  run(3, c);
  EXPECT_EQ(on.Idle().kv_blocks_cached, 6);
  // A again: its first block is still cached, its second was evicted. Its new block evicts B's last block, now
  // the oldest cached one.
  EXPECT_EQ(run(4, a).cached_prompt_tokens, 16);
  EXPECT_EQ(run(5, b).cached_prompt_tokens, 16);

  // A long request decodes while others come and go: its blocks are used, never evicted (the fake backend's
  // tokens would change, or its KV check fail, if they were reused under it).
  const GenerationRequest long_one = Request(10, Concat({1}, Ids(15, 900)), 40);
  auto running = on.Submit(long_one);
  for (uint64_t id = 11; id < 15; ++id) run(id, Concat({1}, Ids(20, 1000 * id)));
  ASSERT_TRUE(running->Wait());
  ASSERT_TRUE(running->info().status.ok()) << running->info().status;
  EXPECT_EQ(running->ids(), off.Run(long_one)->ids());
  on.Idle();
}

TEST(PrefixCachingTest, CancelAndPreemptionWithSharedCachedBlocksLeakNothingAndChangeNoToken) {
  // 12 blocks of 16 for 6 requests of 48 + 40 tokens sharing a 40-token system prompt: they cannot all be
  // resident, so preemption happens; one of them is cancelled mid-generation.
  FakeBackendOptions backend = Backend(12, 128);
  backend.step_latency = absl::Milliseconds(1);
  EngineLoopOptions options;
  options.scheduler.max_num_batched_tokens = 64;
  Engine on(backend, true, options), off(backend, false, options);
  const std::vector<int32_t> system = Concat({1}, Ids(39, 4000));
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(Request(i + 1, Concat(system, Ids(8, 20000 + 100 * i)), 40));
  std::vector<std::shared_ptr<Sink>> sinks;
  for (const GenerationRequest& r : requests) sinks.push_back(on.Submit(r));
  for (int i = 0; i < 5000 && sinks[2]->ids().size() < 5; ++i) absl::SleepFor(absl::Milliseconds(1));
  on.loop().Cancel(3, absl::CancelledError("client went away"));
  for (auto& sink : sinks) ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sinks[2]->info().status.code(), absl::StatusCode::kCancelled);
  EXPECT_GT(on.stats().preemptions(), 0);
  EXPECT_GT(on.stats().hits(), 0);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(sinks[i]->finishes(), 1);
    if (i == 2) continue;
    ASSERT_TRUE(sinks[i]->info().status.ok()) << sinks[i]->info().status;
    EXPECT_EQ(sinks[i]->ids(), off.Run(requests[i])->ids()) << "request " << requests[i].id;
  }
  const EngineSnapshot s = on.Idle();  // the loop's idle check ran: free + cached + used == total, used == 0
  EXPECT_GT(s.kv_blocks_cached, 0);
}

TEST(PrefixCachingTest, BlockHashCollisionsNeverUseWrongKv) {
  // Two bits of block hash: dozens of different blocks share 4 index keys, so nearly every lookup meets blocks of
  // other tokens; only the token and parent comparison keeps them apart.
  EngineLoopOptions options;
  options.prefix_cache_index_bits = 2;
  Engine on(Backend(128, 256), true, options), off(Backend(128, 256), false);
  std::vector<GenerationRequest> requests;
  uint64_t id = 1;
  for (int i = 0; i < 6; ++i) {
    const std::vector<int32_t> shared = Concat({1}, Ids(31, 500 * (i + 1)));  // 2 blocks
    for (int j = 0; j < 2; ++j) {
      requests.push_back(Request(id, Concat(shared, Ids(20, 20000 + 50 * static_cast<int>(id))), 8));
      ++id;
    }
  }
  for (int round = 0; round < 2; ++round) {  // the second round finds everything cached
    auto cached = on.RunAll(requests);
    auto uncached = off.RunAll(requests);
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE(cached[i]->info().status.ok()) << cached[i]->info().status;
      EXPECT_EQ(cached[i]->ids(), uncached[i]->ids()) << "round " << round << " request " << requests[i].id;
      if (round == 1) {
        EXPECT_GE(cached[i]->info().cached_prompt_tokens, 32);
      }
    }
    for (GenerationRequest& r : requests) r.id += 100;
  }
  on.Idle();
}

}  // namespace
}  // namespace llama
