// EngineLoop with the FakeBackend (whose KV cache is checked on every read, so wrong block tables, missing
// copy-on-write copies or early block reuse fail the step): cancellation, deadlines, backend failures, queue
// limits, stop conditions, k candidates, and exactly one terminal event per accepted request in every case.
#include "scheduler/engine_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "scheduler/candidate_selector.h"
#include "tests/support/fake_backend.h"

namespace llama {
namespace {

using ::llama::testing::FakeBackend;
using ::llama::testing::FakeBackendOptions;

constexpr char kTokenizerPath[] = LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";

class RecordingSink : public RequestSink {
 public:
  void OnTokens(absl::Span<const int32_t> ids, std::string_view text) override {
    absl::MutexLock lock(&mu_);
    ++num_token_calls_;
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    text_ += text;
  }
  void OnFinish(const FinishInfo& info) override {
    absl::MutexLock lock(&mu_);
    ++num_finishes_;
    info_ = info;
    if (!done_.HasBeenNotified()) done_.Notify();
  }
  bool Wait(absl::Duration timeout = absl::Seconds(20)) { return done_.WaitForNotificationWithTimeout(timeout); }
  std::vector<int32_t> ids() const { absl::MutexLock lock(&mu_); return ids_; }
  std::string text() const { absl::MutexLock lock(&mu_); return text_; }
  FinishInfo info() const { absl::MutexLock lock(&mu_); return info_; }
  int num_finishes() const { absl::MutexLock lock(&mu_); return num_finishes_; }
  int num_token_calls() const { absl::MutexLock lock(&mu_); return num_token_calls_; }
  size_t num_ids() const { absl::MutexLock lock(&mu_); return ids_.size(); }

 private:
  mutable absl::Mutex mu_;
  std::vector<int32_t> ids_;
  std::string text_;
  FinishInfo info_;
  int num_finishes_ = 0;
  int num_token_calls_ = 0;
  absl::Notification done_;
};

class StatsRecorder : public StepObserver {
 public:
  void OnStep(const StepStats& stats) override {
    absl::MutexLock lock(&mu_);
    ++num_steps_;
    max_blocks_used_ = std::max(max_blocks_used_, stats.kv_blocks_used);
    preemptions_ += stats.num_preemptions;
    EXPECT_EQ(stats.kv_blocks_used + stats.kv_blocks_free + stats.kv_blocks_cached, total_blocks_);
  }
  int total_blocks_ = 0;
  int num_steps() const { absl::MutexLock lock(&mu_); return num_steps_; }
  int max_blocks_used() const { absl::MutexLock lock(&mu_); return max_blocks_used_; }
  int preemptions() const { absl::MutexLock lock(&mu_); return preemptions_; }

 private:
  mutable absl::Mutex mu_;
  int num_steps_ = 0;
  int max_blocks_used_ = 0;
  int preemptions_ = 0;
};

// A prompt of n ids starting at `first` (ids chosen per request so tests can find them in the backend's inputs).
std::vector<int32_t> Prompt(int n, int32_t first) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), first);
  ids[0] = 1;  // BOS
  return ids;
}

GenerationRequest Request(uint64_t id, int prompt_len, int max_tokens) {
  GenerationRequest r;
  r.id = id;
  r.prompt_tokens = Prompt(prompt_len, static_cast<int32_t>(1000 * id));
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.seed = id;
  return r;
}

bool InputHasToken(const ForwardInput& input, int32_t token) {
  return std::find(input.token_ids.begin(), input.token_ids.end(), token) != input.token_ids.end();
}

class EngineLoopTest : public ::testing::Test {
 protected:
  void Make(FakeBackendOptions backend_options, EngineLoopOptions options = {}) {
    backend_ = std::make_unique<FakeBackend>(std::move(backend_options));
    loop_ = std::make_unique<EngineLoop>(backend_.get(), tokenizer_.get(), options);
    stats_.total_blocks_ = backend_->kv_cache().num_blocks;
    loop_->AddObserver(&stats_);
    loop_->Start();
  }
  std::shared_ptr<RecordingSink> Submit(GenerationRequest request) {
    auto sink = std::make_shared<RecordingSink>();
    const absl::Status status = loop_->Submit(std::move(request), sink);
    EXPECT_TRUE(status.ok()) << status;
    return sink;
  }
  // Waits until the loop is idle and checks nothing leaked.
  void ExpectIdleAndNoLeaks() {
    for (int i = 0; i < 2000; ++i) {
      EngineSnapshot s = loop_->Snapshot();
      if (s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_used == 0) return;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "blocks still used: " << loop_->Snapshot().kv_blocks_used;
  }
  void WaitForTokens(const RecordingSink& sink, size_t n) {
    for (int i = 0; i < 4000 && sink.num_ids() < n; ++i) absl::SleepFor(absl::Milliseconds(1));
    ASSERT_GE(sink.num_ids(), n);
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<FakeBackend> backend_;
  StatsRecorder stats_;
  std::unique_ptr<EngineLoop> loop_;
};

TEST_F(EngineLoopTest, GeneratesMaxTokensAndOutputDoesNotDependOnTheBatch) {
  Make({});
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (uint64_t id = 1; id <= 6; ++id) sinks.push_back(Submit(Request(id, 5 + 7 * id, 12)));
  for (auto& sink : sinks) ASSERT_TRUE(sink->Wait());
  for (size_t i = 0; i < sinks.size(); ++i) {
    EXPECT_EQ(sinks[i]->num_finishes(), 1);
    const FinishInfo info = sinks[i]->info();
    EXPECT_TRUE(info.status.ok()) << info.status;
    EXPECT_EQ(info.reason, FinishReason::kLength);
    EXPECT_EQ(info.completion_tokens, 12);
    EXPECT_EQ(info.prompt_tokens, 5 + 7 * static_cast<int>(i + 1));
    EXPECT_EQ(sinks[i]->ids().size(), 12u);
    EXPECT_GE(info.total_time_s, info.time_to_first_token_s);
    EXPECT_GE(info.time_to_first_token_s, info.queue_time_s);
  }
  // The same request alone gives the same tokens.
  auto alone = Submit(Request(3, 5 + 7 * 3, 12));
  ASSERT_TRUE(alone->Wait());
  EXPECT_EQ(alone->ids(), sinks[2]->ids());
  ExpectIdleAndNoLeaks();
  EXPECT_EQ(stats_.num_steps(), backend_->num_steps());
}

TEST_F(EngineLoopTest, PreemptionUnderASmallPoolKeepsEveryOutput) {
  // 8 requests of 20..48 tokens in a pool of 10 blocks of 16: they cannot all be resident.
  FakeBackendOptions small;
  small.num_blocks = 10;
  small.max_position_embeddings = 128;
  EngineLoopOptions options;
  options.scheduler.max_num_batched_tokens = 64;
  Make(small, options);
  std::vector<GenerationRequest> requests;
  for (uint64_t id = 1; id <= 8; ++id) requests.push_back(Request(id, 8 + 4 * id, 40));
  std::vector<std::shared_ptr<RecordingSink>> together;
  for (const auto& r : requests) together.push_back(Submit(r));
  for (auto& sink : together) ASSERT_TRUE(sink->Wait());
  EXPECT_GT(loop_->Snapshot().num_preemptions, 0);
  EXPECT_GT(stats_.preemptions(), 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    auto alone = Submit(requests[i]);
    ASSERT_TRUE(alone->Wait());
    EXPECT_TRUE(together[i]->info().status.ok()) << together[i]->info().status;
    EXPECT_EQ(together[i]->ids(), alone->ids()) << "request " << requests[i].id;
    EXPECT_EQ(together[i]->ids().size(), 40u);
  }
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, EosEndsTheRequestAndIsNotEmitted) {
  FakeBackendOptions o;
  o.next_token = [](absl::Span<const int32_t>, const OutputRow& row) { return row.step == 3 ? 2 : 500; };
  Make(o);
  auto sink = Submit(Request(1, 4, 100));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kStop);
  EXPECT_EQ(sink->ids(), (std::vector<int32_t>{500, 500, 500}));
  EXPECT_EQ(sink->info().completion_tokens, 4);  // EOS counts as generated

  GenerationRequest fixed_length = Request(2, 4, 6);
  fixed_length.ignore_eos = true;  // benchmarks: EOS is an ordinary token
  auto ignoring = Submit(fixed_length);
  ASSERT_TRUE(ignoring->Wait());
  EXPECT_EQ(ignoring->info().reason, FinishReason::kLength);
  EXPECT_EQ(ignoring->ids(), (std::vector<int32_t>{500, 500, 500, 2, 500, 500}));
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, ContextLimitEndsWithLength) {
  FakeBackendOptions o;
  o.max_position_embeddings = 32;
  Make(o);
  auto sink = Submit(Request(1, 28, 100));
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kLength);
  EXPECT_EQ(sink->ids().size(), 4u);  // 28 + 4 = the 32-token context
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, CancelWhileWaitingRunsNoStepForIt) {
  FakeBackendOptions o;
  o.step_latency = absl::Milliseconds(5);
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 1;  // B waits while A runs
  Make(o, options);
  auto a = Submit(Request(1, 4, 40));
  WaitForTokens(*a, 1);
  auto b = Submit(Request(2, 4, 40));
  loop_->Cancel(2, absl::CancelledError("client went away"));
  ASSERT_TRUE(b->Wait());
  EXPECT_EQ(b->info().status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(b->info().reason, FinishReason::kCancelled);
  EXPECT_TRUE(b->ids().empty());
  ASSERT_TRUE(a->Wait());
  EXPECT_TRUE(a->info().status.ok());
  for (const ForwardInput& input : backend_->inputs()) EXPECT_FALSE(InputHasToken(input, 2001));
  EXPECT_EQ(b->num_finishes(), 1);
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, CancelMidGenerationReturnsBlocksWithinOneStep) {
  FakeBackendOptions o;
  o.step_latency = absl::Milliseconds(2);
  Make(o);
  auto a = Submit(Request(1, 40, 1000));
  auto b = Submit(Request(2, 4, 1000));
  WaitForTokens(*a, 3);
  loop_->Cancel(1, absl::CancelledError("client went away"));
  // Once Cancel has returned the cancel is in the inbox, which the loop takes before every step: at most one more
  // Forward (one already being scheduled) still carries a. Counted as the Forward calls with both sequences, so the
  // test thread's own delays (read before Cancel, or late after Wait, under a loaded machine) cannot add b's steps.
  const size_t inputs_at_cancel = backend_->inputs().size();
  ASSERT_TRUE(a->Wait());
  const std::vector<ForwardInput> inputs = backend_->inputs();
  int steps_with_a = 0;
  for (size_t i = inputs_at_cancel; i < inputs.size(); ++i) steps_with_a += inputs[i].num_seqs() == 2;
  EXPECT_LE(steps_with_a, 1);
  EXPECT_EQ(a->info().reason, FinishReason::kCancelled);
  // Only b's blocks are left once a's end is published. b keeps growing, so its share is bounded by the tokens it
  // has streamed by a later moment (+2: the token in flight and the block taken for it); a's 3 blocks (43+ tokens)
  // would not fit under that bound.
  EngineSnapshot snapshot;
  for (int i = 0; i < 1000; ++i) {
    snapshot = loop_->Snapshot();
    if (snapshot.num_running == 1) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(snapshot.num_running, 1);
  const int b_tokens_bound = 4 + static_cast<int>(b->ids().size()) + 2;
  EXPECT_LE(snapshot.kv_blocks_used, (b_tokens_bound + 15) / 16) << b_tokens_bound << " tokens of b at most";
  loop_->Cancel(2, absl::DeadlineExceededError("deadline"));
  ASSERT_TRUE(b->Wait());
  EXPECT_EQ(b->info().reason, FinishReason::kDeadline);
  EXPECT_EQ(a->num_finishes(), 1);
  EXPECT_EQ(b->num_finishes(), 1);
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, BackendFailureEndsExactlyTheSequencesOfThatStep) {
  FakeBackendOptions o;
  // Every generated token names its request (its first prompt id after BOS: 1001, 2001, ...), so the failed
  // step's input says which requests it held.
  o.next_token = [](absl::Span<const int32_t> context, const OutputRow&) { return context[1]; };
  o.step_latency = absl::Milliseconds(2);
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 2;  // C waits while A and B run
  Make(o, options);
  backend_->SetFailAtStep(2);
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (uint64_t id = 1; id <= 3; ++id) sinks.push_back(Submit(Request(id, 4, 8)));
  for (auto& s : sinks) ASSERT_TRUE(s->Wait());
  const std::vector<ForwardInput> inputs = backend_->inputs();
  ASSERT_GT(inputs.size(), 2u);
  int num_failed = 0;
  for (uint64_t id = 1; id <= 3; ++id) {
    const FinishInfo info = sinks[id - 1]->info();
    if (InputHasToken(inputs[2], static_cast<int32_t>(1000 * id + 1))) {
      ++num_failed;
      EXPECT_EQ(info.status.code(), absl::StatusCode::kInternal) << "request " << id;
      EXPECT_NE(info.status.message().find("fake failure at step 2"), std::string::npos);
      EXPECT_EQ(info.reason, FinishReason::kError);
    } else {
      EXPECT_TRUE(info.status.ok()) << "request " << id << ": " << info.status;  // the loop kept serving
      EXPECT_EQ(sinks[id - 1]->ids().size(), 8u);
    }
  }
  EXPECT_GE(num_failed, 1);
  EXPECT_LE(num_failed, 2);
  EXPECT_TRUE(sinks[2]->info().status.ok());  // C could not be in step 2: it waited for a free sequence slot
  auto d = Submit(Request(4, 4, 3));
  ASSERT_TRUE(d->Wait());
  EXPECT_TRUE(d->info().status.ok());
  for (auto& s : sinks) EXPECT_EQ(s->num_finishes(), 1);
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, DeadlineEndsWaitingAndRunningRequests) {
  FakeBackendOptions o;
  o.step_latency = absl::Milliseconds(2);
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 1;
  Make(o, options);
  GenerationRequest running = Request(1, 4, 100000);
  running.deadline = absl::Now() + absl::Milliseconds(60);
  GenerationRequest waiting = Request(2, 4, 10);
  waiting.deadline = absl::Now() + absl::Milliseconds(20);
  auto a = Submit(running);
  auto b = Submit(waiting);
  ASSERT_TRUE(b->Wait());
  ASSERT_TRUE(a->Wait());
  for (auto* s : {a.get(), b.get()}) {
    EXPECT_EQ(s->info().status.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_EQ(s->info().reason, FinishReason::kDeadline);
    EXPECT_EQ(s->num_finishes(), 1);
  }
  EXPECT_GT(a->ids().size(), 0u);
  EXPECT_TRUE(b->ids().empty());
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, FullQueueIsResourceExhausted) {
  FakeBackendOptions o;
  o.step_latency = absl::Milliseconds(2);
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 1;
  options.max_queued_requests = 2;
  Make(o, options);
  auto a = Submit(Request(1, 4, 100000));
  WaitForTokens(*a, 1);  // a is running, not queued
  auto b = Submit(Request(2, 4, 10));
  auto c = Submit(Request(3, 4, 10));
  auto d = std::make_shared<RecordingSink>();
  EXPECT_EQ(loop_->Submit(Request(4, 4, 10), d).code(), absl::StatusCode::kResourceExhausted);
  const EngineSnapshot snapshot = loop_->Snapshot();
  EXPECT_EQ(snapshot.num_running, 1);
  EXPECT_EQ(snapshot.num_waiting, 2);
  EXPECT_TRUE(snapshot.running);
  loop_->Cancel(1, absl::CancelledError("done"));
  for (auto* s : {a.get(), b.get(), c.get()}) ASSERT_TRUE(s->Wait());
  EXPECT_TRUE(b->info().status.ok());
  EXPECT_EQ(d->num_finishes(), 0);  // a refused request gets no terminal event
  ExpectIdleAndNoLeaks();
}

TEST_F(EngineLoopTest, InvalidRequestsAreRefusedBeforeAnyCompute) {
  FakeBackendOptions o;
  o.max_position_embeddings = 32;
  Make(o);
  auto sink = std::make_shared<RecordingSink>();
  GenerationRequest r = Request(1, 4, 10);
  r.prompt_tokens.clear();
  EXPECT_EQ(loop_->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop_->Submit(Request(1, 32, 10), sink).code(), absl::StatusCode::kInvalidArgument);
  r = Request(1, 4, 10);
  r.num_candidates = 9;
  EXPECT_EQ(loop_->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  r = Request(1, 4, 0);
  EXPECT_EQ(loop_->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  r = Request(1, 4, 10);
  r.sampling.top_p = 0;
  EXPECT_EQ(loop_->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  r = Request(1, 4, 10);
  r.stop = {"x"};  // no tokenizer in this loop
  EXPECT_EQ(loop_->Submit(r, sink).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(backend_->num_steps(), 0);
  EXPECT_EQ(sink->num_finishes(), 0);
}

TEST_F(EngineLoopTest, StopEndsEveryLiveRequestWithCancelled) {
  FakeBackendOptions o;
  o.step_latency = absl::Milliseconds(2);
  EngineLoopOptions options;
  options.scheduler.max_num_seqs = 1;
  Make(o, options);
  auto a = Submit(Request(1, 4, 100000));
  auto b = Submit(Request(2, 4, 100000));
  WaitForTokens(*a, 1);
  loop_->Stop();
  for (auto* s : {a.get(), b.get()}) {
    ASSERT_TRUE(s->Wait(absl::ZeroDuration()));
    EXPECT_EQ(s->info().status.code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(s->num_finishes(), 1);
  }
  EXPECT_FALSE(loop_->Snapshot().running);
  EXPECT_EQ(loop_->Snapshot().kv_blocks_used, 0);
  EXPECT_EQ(loop_->Submit(Request(3, 4, 1), std::make_shared<RecordingSink>()).code(),
            absl::StatusCode::kUnavailable);
}

GenerationRequest SampledRequest(uint64_t id, int k) {
  GenerationRequest r = Request(1, 40, 6);
  r.id = id;
  r.sampling.temperature = 1.0f;
  r.seed = 1234;
  r.num_candidates = k;
  return r;
}

TEST_F(EngineLoopTest, CandidatesShareThePromptsBlocksAndStreamNothingUntilAllFinish) {
  Make({});
  auto k4 = Submit(SampledRequest(10, 4));
  ASSERT_TRUE(k4->Wait());
  const int k4_blocks = stats_.max_blocks_used();
  EXPECT_TRUE(k4->info().status.ok());
  EXPECT_EQ(k4->info().num_candidates, 4);
  EXPECT_EQ(k4->num_token_calls(), 1);  // everything at once, after the choice
  ExpectIdleAndNoLeaks();

  // Four separate k = 1 requests with the same prompt, at the same time, without prefix caching (which would
  // share their prompt's full blocks too: prefix_caching_test).
  StatsRecorder separate;
  separate.total_blocks_ = backend_->kv_cache().num_blocks;
  loop_.reset();
  EngineLoopOptions no_caching;
  no_caching.scheduler.enable_prefix_caching = false;
  loop_ = std::make_unique<EngineLoop>(backend_.get(), nullptr, no_caching);
  loop_->AddObserver(&separate);
  loop_->Start();
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (uint64_t id = 20; id < 24; ++id) sinks.push_back(Submit(SampledRequest(id, 1)));
  for (auto& s : sinks) ASSERT_TRUE(s->Wait());
  // 40 prompt tokens = 3 blocks shared, + 3 copy-on-write tails, against 4 × 3.
  EXPECT_EQ(k4_blocks, 6);
  EXPECT_EQ(separate.max_blocks_used(), 12);
  EXPECT_LT(k4_blocks, separate.max_blocks_used());
  // Default selection: candidate 0, which samples with the request's seed, so it equals the k = 1 output.
  EXPECT_EQ(k4->ids(), sinks[0]->ids());
  ExpectIdleAndNoLeaks();
}

class RecordingSelector : public CandidateSelector {
 public:
  absl::StatusOr<CandidateChoice> Select(const GenerationRequest& request, absl::Span<const CandidateOutput> candidates,
                                         const CandidateScores&) override {
    seen.assign(candidates.begin(), candidates.end());
    if (fail) return absl::InternalError("reward model failed");
    CandidateChoice choice;
    choice.index = 2;
    choice.safety_score = 0.5f;
    return choice;
  }
  std::vector<CandidateOutput> seen;
  bool fail = false;
};

TEST_F(EngineLoopTest, SelectorSeesEveryCandidateAndItsChoiceIsStreamed) {
  RecordingSelector selector;
  backend_ = std::make_unique<FakeBackend>(FakeBackendOptions{});
  loop_ = std::make_unique<EngineLoop>(backend_.get(), nullptr, EngineLoopOptions{});
  loop_->SetCandidateSelector(&selector);
  loop_->Start();
  auto sink = Submit(SampledRequest(1, 4));
  ASSERT_TRUE(sink->Wait());
  ASSERT_EQ(selector.seen.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(selector.seen[i].index, i);
    EXPECT_EQ(selector.seen[i].token_ids.size(), 6u);
  }
  EXPECT_NE(selector.seen[0].token_ids, selector.seen[1].token_ids);  // independent seeds
  EXPECT_EQ(sink->ids(), selector.seen[2].token_ids);
  EXPECT_FLOAT_EQ(sink->info().safety_score, 0.5f);

  selector.fail = true;
  auto failed = Submit(SampledRequest(2, 3));
  ASSERT_TRUE(failed->Wait());
  EXPECT_EQ(failed->info().status.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(failed->ids().empty());  // unscored text never goes out
  EXPECT_EQ(failed->num_finishes(), 1);
}

TEST_F(EngineLoopTest, StopStringsEndTheRequestWithoutEmittingTheMatch) {
  auto tokenizer = Tokenizer::Load(kTokenizerPath);
  if (!tokenizer.ok()) GTEST_SKIP() << "tokenizer.model not set up";
  tokenizer_ = std::move(*tokenizer);
  const std::vector<int32_t> script = tokenizer_->Encode("The cat sat. Then it slept on the mat.");
  FakeBackendOptions o;
  o.next_token = [script](absl::Span<const int32_t>, const OutputRow& row) {
    return row.step < static_cast<int64_t>(script.size()) ? script[row.step] : 2;
  };
  Make(o);
  GenerationRequest r = Request(1, 4, 100);
  r.stop = {"slept"};
  auto sink = Submit(r);
  ASSERT_TRUE(sink->Wait());
  EXPECT_EQ(sink->info().reason, FinishReason::kStop);
  EXPECT_EQ(sink->text(), "The cat sat. Then it ");
  r.id = 2;
  r.stop = {"nothing like this"};
  auto whole = Submit(r);
  ASSERT_TRUE(whole->Wait());
  EXPECT_EQ(whole->text(), "The cat sat. Then it slept on the mat.");
  EXPECT_EQ(whole->ids(), script);
  ExpectIdleAndNoLeaks();
}

}  // namespace
}  // namespace llama
