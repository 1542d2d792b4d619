#include "tools/bench_serve_paths.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "server/request_validation.h"
#include "tools/load/load_client.h"
#include "tools/load/load_report.h"
#include "tools/load/load_stats.h"

namespace llama::cli {
namespace {

absl::StatusOr<cpu_set_t> ParseCpuList(const std::string& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (absl::string_view part : absl::StrSplit(cpus, ',')) {
    const std::vector<std::string> range = absl::StrSplit(part, '-');
    int first = 0, last = 0;
    if (range.size() > 2 || !absl::SimpleAtoi(range[0], &first) ||
        !absl::SimpleAtoi(range.back(), &last) || first < 0 || last < first || last >= CPU_SETSIZE) {
      return absl::InvalidArgumentError(absl::StrCat("bad CPU list '", cpus, "' (e.g. 0, 1-3, 0,2)"));
    }
    for (int cpu = first; cpu <= last; ++cpu) CPU_SET(cpu, &set);
  }
  return set;
}

// Samples this process's CPU time and the engine's step count every 2 ms; the busy window runs from the last
// sample before the first new step to the first sample after the last one.
class BusyWindow {
 public:
  explicit BusyWindow(EngineLoop& engine) : engine_(engine) {
    samples_.reserve(1 << 16);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        Sample();
        absl::SleepFor(absl::Milliseconds(2));
      }
      Sample();
    });
  }
  // Stops sampling; returns (CPU seconds, engine steps) of the busy window.
  std::pair<double, int64_t> Finish() {
    stop_ = true;
    thread_.join();
    const int64_t first_steps = samples_.front().steps, last_steps = samples_.back().steps;
    size_t begin = 0, end = samples_.size() - 1;
    while (begin + 1 < samples_.size() && samples_[begin + 1].steps == first_steps) ++begin;
    while (end > 0 && samples_[end - 1].steps == last_steps) --end;
    if (end <= begin) return {0, 0};
    return {samples_[end].cpu_s - samples_[begin].cpu_s, last_steps - first_steps};
  }

 private:
  struct Point {
    double cpu_s;
    int64_t steps;
  };
  void Sample() { samples_.push_back({load::ProcessCpuSeconds(), engine_.Snapshot().num_steps}); }

  EngineLoop& engine_;
  std::vector<Point> samples_;  // sampler thread until Finish
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Receives one direct request's output on the engine thread and hands the finish to the driver.
class DirectSink : public RequestSink {
 public:
  struct Shared {
    absl::Mutex mu;
    int64_t finished ABSL_GUARDED_BY(mu) = 0;
    std::vector<double> ttft_ms ABSL_GUARDED_BY(mu);
    int64_t output_tokens ABSL_GUARDED_BY(mu) = 0;
    int64_t prompt_tokens ABSL_GUARDED_BY(mu) = 0;
    int64_t failed ABSL_GUARDED_BY(mu) = 0;
  };
  // A condition on Shared: at least n requests finished.
  struct Finished {
    const Shared* shared;
    int64_t n;
    bool Reached() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return shared->finished >= n; }
  };
  DirectSink(Shared* shared, absl::Time submitted) : shared_(shared), submitted_(submitted) {}
  void OnTokens(absl::Span<const int32_t> ids, std::string_view) override {
    if (ttft_ms_ < 0 && !ids.empty()) ttft_ms_ = absl::ToDoubleMilliseconds(absl::Now() - submitted_);
  }
  void OnFinish(const FinishInfo& info) override {
    absl::MutexLock lock(&shared_->mu);
    ++shared_->finished;
    if (!info.status.ok()) {
      ++shared_->failed;
      return;
    }
    shared_->output_tokens += info.completion_tokens;
    shared_->prompt_tokens += info.prompt_tokens;
    if (ttft_ms_ >= 0) shared_->ttft_ms.push_back(ttft_ms_);
  }

 private:
  Shared* const shared_;
  const absl::Time submitted_;
  double ttft_ms_ = -1;  // engine thread
};

}  // namespace

absl::Status PinProcess(const std::string& cpus) {
  ASSIGN_OR_RETURN(cpu_set_t set, ParseCpuList(cpus));
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot pin to CPUs ", cpus, " (not on this machine?)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RoundResult> RunDirect(server::ChatServer& server, const load::PromptSet& prompts, int concurrency,
                                      int num_requests, uint64_t* next_request_id) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < num_requests; ++i) {
    ASSIGN_OR_RETURN(server::PreparedChat prepared,
                     server::PrepareChatRequest(prompts.at(i), server.limits(), server.tokenizer(), 0));
    requests.push_back(std::move(prepared.request));
  }
  DirectSink::Shared shared;
  BusyWindow window(server.engine());
  const absl::Time start = absl::Now();
  int submitted = 0;
  auto submit = [&]() -> absl::Status {
    GenerationRequest request = requests[submitted++];
    request.id = (*next_request_id)++;
    request.arrival = absl::Now();
    auto sink = std::make_shared<DirectSink>(&shared, request.arrival);
    return server.engine().Submit(std::move(request), std::move(sink));
  };
  for (int i = 0; i < std::min(concurrency, num_requests); ++i) RETURN_IF_ERROR(submit());
  while (submitted < num_requests) {
    // One more in flight for every finished one (a closed loop, like the load generator's).
    const DirectSink::Finished one_more{&shared, submitted - concurrency + 1};
    shared.mu.LockWhen(absl::Condition(&one_more, &DirectSink::Finished::Reached));
    shared.mu.Unlock();
    RETURN_IF_ERROR(submit());
  }
  const DirectSink::Finished all{&shared, num_requests};
  absl::MutexLock lock(&shared.mu);
  shared.mu.Await(absl::Condition(&all, &DirectSink::Finished::Reached));
  RoundResult r;
  r.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  std::tie(r.server_cpu_s, r.engine_steps) = window.Finish();
  r.requests_ok = shared.finished - shared.failed;
  r.output_tokens = shared.output_tokens;
  r.prompt_tokens = shared.prompt_tokens;
  const load::Distribution ttft = load::Summarize(shared.ttft_ms);
  r.ttft_p50_ms = ttft.p50;
  r.ttft_p99_ms = ttft.p99;
  if (shared.failed > 0) return absl::InternalError(absl::StrCat(shared.failed, " direct requests failed"));
  return r;
}

absl::StatusOr<RoundResult> RunLoadProcess(server::ChatServer& server, const std::vector<std::string>& load_args,
                                           const std::string& cpus, const std::string& work_dir) {
  const std::string json_path = work_dir + "/bench-serve-load.json", log_path = work_dir + "/bench-serve-load.log";
  std::vector<std::string> args = {"llama-chat", "load", "--server", absl::StrCat("127.0.0.1:", server.port()),
                                   "--json", json_path};
  args.insert(args.end(), load_args.begin(), load_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::optional<cpu_set_t> pin;
  if (!cpus.empty()) {
    ASSIGN_OR_RETURN(pin, ParseCpuList(cpus));
  }
  BusyWindow window(server.engine());
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {  // the child: only async-signal-safe calls until exec
    if (pin.has_value()) sched_setaffinity(0, sizeof(*pin), &*pin);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  RoundResult r;
  std::tie(r.server_cpu_s, r.engine_steps) = window.Finish();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("llama-chat load failed (exit ", WEXITSTATUS(status), "); see ", log_path));
  }
  ASSIGN_OR_RETURN(nlohmann::json result, load::ReadJsonFile(json_path));
  const nlohmann::json& level = result["levels"].at(0);
  r.requests_ok = level["num_ok"].get<int64_t>();
  r.output_tokens = level["output_tokens"].get<int64_t>();
  r.prompt_tokens = level["prompt_tokens"].get<int64_t>();
  r.wall_s = level["wall_s"].get<double>();
  r.client_cpu_s = level["client_cpu_s"].get<double>();
  r.ttft_p50_ms = level["ttft_ms"]["p50"].get<double>();
  r.ttft_p99_ms = level["ttft_ms"]["p99"].get<double>();
  if (level["num_failed"].get<int64_t>() > 0) {
    return absl::InternalError(absl::StrCat(level["num_failed"].get<int64_t>(), " gRPC requests failed; see ", log_path));
  }
  return r;
}

}  // namespace llama::cli
