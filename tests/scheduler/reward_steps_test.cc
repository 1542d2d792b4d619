// Reward scoring as scheduled work of the EngineLoop (scheduler/reward_queue.h): a FakeBackend policy whose
// candidates say scripted words, a small CPU reward model with a known head, both wrapped to log every Forward in
// one shared order, so the tests see which steps ran on which model.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "scheduler/engine_loop.h"
#include "scheduler/reward_selector.h"
#include "tests/support/fake_backend.h"
#include "tests/support/intercepting_backend.h"
#include "tests/support/text_sink.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

using ::llama::testing::FakeBackend;
using ::llama::testing::FakeBackendOptions;

constexpr char kTokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";
constexpr uint64_t kSeedStride = 0x9E3779B97F4A7C15ull;  // candidate j's seed = request seed + j · stride

// One Forward, in the order they ran: on the policy ('P') or the reward model ('R').
struct Event {
  char model;
  int num_seqs;
  int num_tokens;
  int num_decodes;  // policy: sequences with one new token
  int num_outputs;
  std::vector<int32_t> token_ids;
};

class EventLog {
 public:
  void Add(Event e) { absl::MutexLock lock(&mu_); events_.push_back(e); }
  std::vector<Event> events() const { absl::MutexLock lock(&mu_); return events_; }

 private:
  mutable absl::Mutex mu_;
  std::vector<Event> events_;
};

// Logs every Forward of one model ('P' policy, 'R' reward model) and can delay, hold or fail it (the hook of an
// InterceptingBackend).
class ForwardProbe {
 public:
  ForwardProbe(char model, EventLog* log) : model_(model), log_(log) {}
  absl::Status Intercept(const ForwardInput& input) {
    Event e{model_, input.num_seqs(), input.num_tokens(), 0, static_cast<int>(input.outputs.size()), input.token_ids};
    for (int s = 0; s < input.num_seqs(); ++s) e.num_decodes += input.query_start[s + 1] - input.query_start[s] == 1;
    log_->Add(e);
    if (calls_.fetch_add(1) == 0 && hold_first_) {
      entered_first_.Notify();
      release_first_.WaitForNotification();
    }
    absl::SleepFor(latency_);
    absl::MutexLock lock(&mu_);
    if (fail_next_ > 0) {
      --fail_next_;
      return absl::InternalError("injected reward failure");
    }
    return absl::OkStatus();
  }
  void FailNext(int n) { absl::MutexLock lock(&mu_); fail_next_ = n; }
  void set_latency(absl::Duration d) { latency_ = d; }  // before the loop starts
  void HoldFirstForward() { hold_first_ = true; }         // before the loop starts
  void WaitUntilFirstForwardHeld() { entered_first_.WaitForNotification(); }
  void ReleaseFirstForward() { release_first_.Notify(); }
  // The backend whose Forward calls go through this probe.
  std::unique_ptr<Backend> Wrap(std::unique_ptr<Backend> inner) {
    return std::make_unique<::llama::testing::InterceptingBackend>(
        std::move(inner), [this](const ForwardInput& input) { return Intercept(input); }, std::string(1, model_));
  }

 private:
  char model_;
  EventLog* log_;
  absl::Duration latency_ = absl::ZeroDuration();
  bool hold_first_ = false;
  std::atomic<int> calls_{0};
  absl::Notification entered_first_, release_first_;
  absl::Mutex mu_;
  int fail_next_ = 0;
};

using Sink = ::llama::testing::TextSink;

class RewardStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::Load(kTokenizerPath);
    if (!tok.ok()) GTEST_SKIP() << "tokenizer.model not set up (bash scripts/fetch-model.sh)";
    tokenizer_ = std::move(*tok);
  }

  // The known-head reward model (tests/support/tiny_models.h): "good" is safe, "bad" is not.
  void MakeRm() {
    auto rm = RewardModel::Create(
        ::llama::testing::KnownHeadRewardWeights(*tokenizer_, {{"good", 3.0f}, {"bad", -3.0f}}),
        ::llama::testing::CpuRewardBackends(/*num_blocks=*/256, /*block_size=*/4,
                                            [this](std::unique_ptr<Backend> b) { return rm_probe_.Wrap(std::move(b)); }),
        RewardModelOptions{.engine_kv_blocks = 192});
    ASSERT_TRUE(rm.ok()) << rm.status();
    rm_ = std::move(*rm);
  }

  // scripts[seed]: what candidate 0 of the request with that seed says (then EOS); other seeds say "la" forever.
  void Start(std::map<uint64_t, std::string> scripts, int max_num_batched_tokens,
             absl::Duration rm_latency = absl::ZeroDuration(), bool hold_first_policy_step = false) {
    MakeRm();
    rm_probe_.set_latency(rm_latency);
    std::map<uint64_t, std::vector<int32_t>> ids;
    for (const auto& [seed, s] : scripts) ids[seed] = tokenizer_->Encode(s);
    const int32_t la = tokenizer_->Encode("la").back();
    FakeBackendOptions o;
    o.num_blocks = 256;
    o.next_token = [ids, la](absl::Span<const int32_t>, const OutputRow& row) -> int32_t {
      for (const auto& [seed, script] : ids) {
        for (uint64_t j = 0; j < 4; ++j) {
          if (row.seed != seed + j * kSeedStride) continue;
          return row.step < static_cast<int64_t>(script.size()) ? script[row.step] : 2;
        }
      }
      return la;
    };
    policy_ = policy_probe_.Wrap(std::make_unique<FakeBackend>(std::move(o)));
    if (hold_first_policy_step) policy_probe_.HoldFirstForward();
    selector_ = std::make_unique<RewardSelector>(rm_.get(), nullptr, tokenizer_.get(), RewardSelectorOptions{});
    EngineLoopOptions options;
    options.scheduler.max_num_batched_tokens = max_num_batched_tokens;
    loop_ = std::make_unique<EngineLoop>(policy_.get(), tokenizer_.get(), options);
    loop_->SetCandidateSelector(selector_.get());
    loop_->Start();
  }
  std::shared_ptr<Sink> Submit(int k, uint64_t seed, int max_tokens, const std::string& user = "How is the weather?") {
    GenerationRequest r;
    r.id = next_id_++;
    r.prompt_tokens = BuildChatPrompt(*tokenizer_, {{Role::kUser, user}})->token_ids;
    r.num_candidates = k;
    r.seed = seed;
    r.max_tokens = max_tokens;
    auto sink = std::make_shared<Sink>();
    EXPECT_TRUE(loop_->Submit(std::move(r), sink).ok());
    return sink;
  }
  void ExpectAllBlocksFree() {
    for (int i = 0; i < 2000; ++i) {
      const EngineSnapshot s = loop_->Snapshot();
      if (s.kv_blocks_used == 0 && s.reward_kv_blocks_used == 0 && s.num_scoring == 0) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    const EngineSnapshot s = loop_->Snapshot();
    EXPECT_EQ(s.kv_blocks_used, 0);
    EXPECT_EQ(s.reward_kv_blocks_used, 0);
    EXPECT_EQ(s.num_scoring, 0);
  }
  void TearDown() override {
    if (loop_) loop_->Stop();
  }

  EventLog log_;
  ForwardProbe rm_probe_{'R', &log_};  // before the backends that call them
  ForwardProbe policy_probe_{'P', &log_};
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<RewardModel> rm_;
  std::unique_ptr<Backend> policy_;
  std::unique_ptr<RewardSelector> selector_;
  std::unique_ptr<EngineLoop> loop_;
  uint64_t next_id_ = 1;
};

TEST_F(RewardStepsTest, DecodesOfAnotherRequestRunBetweenScoringChunks) {
  // Request 1 (k = 2) says "The weather is good" and is scored in chunks of <= 8 tokens; request 2 decodes "la"
  // for 60 tokens meanwhile.
  // The first policy step waits until request 2 is queued, so it is decoding long before request 1 is scored.
  Start({{7, "The weather is good"}}, /*max_num_batched_tokens=*/8, absl::ZeroDuration(), true);
  auto scored = Submit(2, 7, 32);
  policy_probe_.WaitUntilFirstForwardHeld();
  auto decoding = Submit(1, 99, 60);
  policy_probe_.ReleaseFirstForward();
  ASSERT_TRUE(scored->Wait());
  ASSERT_TRUE(scored->info().status.ok()) << scored->info().status;
  EXPECT_EQ(scored->text(), "The weather is good");
  const std::vector<Event> events = log_.events();
  // Request 1's scoring: the reward Forwards up to the one that scores its second candidate (request 2 is scored
  // later, when it finishes).
  int first_r = -1, last_r = -1, reward_tokens = 0, outputs = 0;
  for (int i = 0; i < static_cast<int>(events.size()) && outputs < 2; ++i) {
    if (events[i].model != 'R') continue;
    if (first_r < 0) first_r = i;
    last_r = i;
    reward_tokens += events[i].num_tokens;
    outputs += events[i].num_outputs;
    EXPECT_LE(events[i].num_tokens, 8);  // the budget
  }
  EXPECT_EQ(outputs, 2);
  ASSERT_GE(first_r, 0);
  EXPECT_GT(reward_tokens, 2 * 8);  // two (prompt + answer) inputs of > 8 tokens each: several chunks
  int decodes_between = 0;
  for (int i = first_r; i < last_r; ++i) {
    if (events[i].model == 'P' && events[i].num_decodes > 0) ++decodes_between;
  }
  EXPECT_GT(decodes_between, 1);  // the other request kept decoding while request 1 was being scored
  ASSERT_TRUE(decoding->Wait());
  EXPECT_TRUE(decoding->info().status.ok()) << decoding->info().status;
  ExpectAllBlocksFree();
}

TEST_F(RewardStepsTest, ScoreWorkOfTwoRequestsFinishingTogetherSharesForwardsAndTheirPrefix) {
  // Request 1 is alone in policy step 1 (held until request 2 is queued), request 2 joins at step 2; both say
  // "la" until max_tokens (10 and 9), so all four candidates finish in step 10 and are queued together. Their
  // reward inputs are one dialog + "la"s: request 2's is a prefix of request 1's, and each request's two candidates
  // are the same text. With prefix caching the first reward Forward computes request 1's candidate 0 (the others
  // would compute the same blocks: they wait a step); the second one runs the three others together, each from
  // the end of its last full block that the first computed (reward blocks hold 4 tokens).
  Start({}, /*max_num_batched_tokens=*/512, absl::ZeroDuration(), /*hold_first_policy_step=*/true);
  auto first = Submit(2, 7, 10);
  policy_probe_.WaitUntilFirstForwardHeld();
  auto second = Submit(2, 8, 9);
  policy_probe_.ReleaseFirstForward();
  ASSERT_TRUE(first->Wait());
  ASSERT_TRUE(second->Wait());
  ASSERT_TRUE(first->info().status.ok()) << first->info().status;
  ASSERT_TRUE(second->info().status.ok()) << second->info().status;
  const int prompt =
      static_cast<int>(BuildChatPrompt(*tokenizer_, {{Role::kUser, "How is the weather?"}})->token_ids.size());
  const int len1 = prompt + 10, len2 = prompt + 9;  // one token per "la"
  // What a sequence computes when all its full blocks are cached: its partial block, or its last token.
  auto tail = [](int len) { return len % 4 == 0 ? 1 : len % 4; };
  std::vector<Event> rm_events;
  for (const Event& e : log_.events()) {
    if (e.model == 'R') rm_events.push_back(e);
  }
  ASSERT_EQ(rm_events.size(), 2u);
  EXPECT_EQ(rm_events[0].num_seqs, 1);
  EXPECT_EQ(rm_events[0].num_tokens, len1);
  EXPECT_EQ(rm_events[1].num_seqs, 3);  // both requests in one Forward
  EXPECT_EQ(rm_events[1].num_tokens, tail(len1) + 2 * tail(len2));
  EXPECT_EQ(rm_events[0].num_outputs + rm_events[1].num_outputs, 4);  // 2 requests × 2 candidates
  ExpectAllBlocksFree();
}

TEST_F(RewardStepsTest, ChunkedScoringOfTwoRequestsSharesForwards) {
  // Scoring in chunks of 8: the second request's inputs join the first's in a reward Forward before it is done.
  Start({{7, "The weather is good"}, {8, "It is bad"}}, /*max_num_batched_tokens=*/8);
  auto first = Submit(2, 7, 32);
  auto second = Submit(2, 8, 32);
  ASSERT_TRUE(first->Wait());
  ASSERT_TRUE(second->Wait());
  EXPECT_EQ(first->info().reason, FinishReason::kStop);
  EXPECT_EQ(second->info().reason, FinishReason::kSafety);
  int rows = 0;
  for (const Event& e : log_.events()) {
    if (e.model == 'R') rows += e.num_outputs;
  }
  EXPECT_EQ(rows, 4);  // 2 requests × 2 candidates, each scored exactly once
  ExpectAllBlocksFree();
}

TEST_F(RewardStepsTest, RewardFailureFailsOnlyTheRequestsInThatStep) {
  Start({{7, "The weather is good"}, {8, "The weather is good"}}, /*max_num_batched_tokens=*/512);
  rm_probe_.FailNext(1);
  auto first = Submit(2, 7, 32);  // its scoring is the first reward step: fails
  ASSERT_TRUE(first->Wait());
  auto second = Submit(2, 8, 32);  // submitted after: scored by a later, healthy step
  ASSERT_TRUE(second->Wait());
  EXPECT_EQ(first->info().status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(first->info().reason, FinishReason::kError);
  EXPECT_EQ(first->token_calls(), 0);
  EXPECT_EQ(first->finishes(), 1);
  EXPECT_TRUE(second->info().status.ok()) << second->info().status;
  EXPECT_EQ(second->text(), "The weather is good");
  ExpectAllBlocksFree();
}

TEST_F(RewardStepsTest, FailureSparesARequestStillGenerating) {
  // Request 2 decodes while request 1's scoring fails; request 2 is not in that reward step and finishes.
  Start({{7, "The weather is good"}, {8, "la la la la la la la la la la la la la la good"}}, 512,
        absl::ZeroDuration(), /*hold_first_policy_step=*/true);
  rm_probe_.FailNext(1);
  auto first = Submit(1, 7, 32);
  policy_probe_.WaitUntilFirstForwardHeld();
  auto second = Submit(1, 8, 64);  // joins at step 2: still generating when request 1's scoring fails
  policy_probe_.ReleaseFirstForward();
  ASSERT_TRUE(first->Wait());
  ASSERT_TRUE(second->Wait());
  EXPECT_EQ(first->info().status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(second->info().status.ok()) << second->info().status;
  EXPECT_EQ(second->text(), "la la la la la la la la la la la la la la good");
  for (const Event& e : log_.events()) {
    if (e.model != 'R') continue;
    EXPECT_EQ(e.num_seqs, 1);  // the failed step held request 1 alone
    break;
  }
  ExpectAllBlocksFree();
}

TEST_F(RewardStepsTest, CancelWhileWaitingForScoringFreesEverythingWithOneTerminalEvent) {
  // 30 ms per reward chunk of <= 4 tokens: scoring the two ~20-token inputs takes many steps.
  Start({{7, "The weather is good"}}, /*max_num_batched_tokens=*/4, absl::Milliseconds(30));
  auto sink = Submit(2, 7, 32);
  bool scoring = false;
  for (int i = 0; i < 4000 && !scoring; ++i) {
    const EngineSnapshot s = loop_->Snapshot();
    scoring = s.num_scoring == 1 && s.reward_kv_blocks_used > 0;
    if (!scoring) absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(scoring);
  EXPECT_EQ(loop_->Snapshot().kv_blocks_used, 0);  // the policy's blocks went back when the candidates finished
  loop_->Cancel(1, absl::CancelledError("client went away"));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kCancelled);
  EXPECT_EQ(sink->info().status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sink->token_calls(), 0);
  ExpectAllBlocksFree();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(sink->finishes(), 1);
}

TEST_F(RewardStepsTest, DeadlineWhileWaitingForScoringIsDeadlineExceeded) {
  Start({{7, "The weather is good"}}, /*max_num_batched_tokens=*/4, absl::Milliseconds(30));
  GenerationRequest r;
  auto sink = std::make_shared<Sink>();
  r.id = next_id_++;
  r.prompt_tokens = BuildChatPrompt(*tokenizer_, {{Role::kUser, "How is the weather?"}})->token_ids;
  r.num_candidates = 2;
  r.seed = 7;
  r.max_tokens = 32;
  r.deadline = absl::Now() + absl::Milliseconds(150);  // generation: a few ms; scoring: > 10 chunks of 30 ms
  ASSERT_TRUE(loop_->Submit(std::move(r), sink).ok());
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kDeadline);
  EXPECT_EQ(sink->info().status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sink->token_calls(), 0);
  ExpectAllBlocksFree();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(sink->finishes(), 1);
}

}  // namespace
}  // namespace llama
