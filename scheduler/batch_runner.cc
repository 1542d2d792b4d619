#include "scheduler/batch_runner.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace llama {
namespace {

// Collects one request's output into its slot of the shared result; counts finished requests.
class SlotSink : public RequestSink {
 public:
  struct Progress {
    int num_done = 0;
    int total = 0;
    bool done() const { return num_done == total; }
  };
  SlotSink(BatchResult* result, size_t slot, absl::Mutex* mu, Progress* progress)
      : result_(result), slot_(slot), mu_(mu), progress_(progress) {}
  void OnTokens(absl::Span<const int32_t> ids, std::string_view text) override {
    absl::MutexLock lock(mu_);
    auto& out = result_->token_ids[slot_];
    out.insert(out.end(), ids.begin(), ids.end());
    result_->texts[slot_] += text;
  }
  void OnFinish(const FinishInfo& info) override {
    absl::MutexLock lock(mu_);
    result_->finish[slot_] = info;
    ++progress_->num_done;
  }

 private:
  BatchResult* result_;
  size_t slot_;
  absl::Mutex* mu_;
  Progress* progress_;
};

}  // namespace

absl::StatusOr<BatchResult> RunBatch(Backend* backend, const Tokenizer* tokenizer, EngineLoopOptions options,
                                     std::vector<GenerationRequest> requests) {
  const int n = static_cast<int>(requests.size());
  options.max_queued_requests = std::max(options.max_queued_requests, n);
  BatchResult result;
  result.token_ids.resize(n);
  result.texts.resize(n);
  result.finish.resize(n);
  absl::Mutex mu;
  SlotSink::Progress progress;
  progress.total = n;
  EngineLoop loop(backend, tokenizer, options);
  loop.Start();
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    const uint64_t id = requests[i].id;
    absl::Status status = loop.Submit(std::move(requests[i]), std::make_shared<SlotSink>(&result, i, &mu, &progress));
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("request ", i, " (id ", id, "): ", status.message()));
    }
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&progress, &SlotSink::Progress::done));
    result.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  }
  loop.Stop();  // publishes the final counters
  result.snapshot = loop.Snapshot();
  for (const FinishInfo& info : result.finish) result.num_generated_tokens += info.completion_tokens;
  return result;
}

}  // namespace llama
