// Rejection sampling cost on the CPU backend: end-to-end latency of one request with k = 4 candidates scored by the
// co-hosted safety reward model, relative to k = 1 (with and without the reward model), throughput with concurrent
// k = 4 requests, the reward model's share of the request time, and peak KV blocks (the k candidates share the
// prompt's blocks). Everything runs in-process through the EngineLoop and the RewardSelector, as in the server:
// scoring runs as the loop's reward steps (scheduler/reward_queue.h), and the reward share is the time spent inside
// the reward model's Forward calls (a timing wrapper around its backend) over the wall time (rm_s: those seconds).
// The reward model is loaded as the server loads it (RewardModel::Load: panel by panel into its storage type).
//
//   rejection_sampling_bench [--model_dir models/stories15M] [--rm_dir models/stories15M-safety-rm]
//                            [--max_tokens 64] [--repeats 5] [--concurrency 4] [--threads 0]
//                            [--max_num_batched_tokens 512]  (the policy's step budget, and the reward step's)
//                            [--rm_weights_dtype f32|bf16|q8_0] [--rm_kv_dtype f32|f16|bf16]
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/tokenizer.h"
#include "scheduler/engine_loop.h"
#include "scheduler/reward_selector.h"
#include "scheduler/scheduler_config.h"

ABSL_FLAG(std::string, model_dir, "models/stories15M", "the policy model: a directory or a GGUF file");
ABSL_FLAG(std::string, rm_dir, "models/stories15M-safety-rm", "the safety reward model directory");
ABSL_FLAG(std::string, rm_weights_dtype, "f32", "the reward model's CPU weight storage: f32, bf16 or q8_0");
ABSL_FLAG(std::string, rm_kv_dtype, "f32", "the reward model's CPU KV cache element type: f32, f16 or bf16");
ABSL_FLAG(int, max_tokens, 64, "tokens per candidate");
ABSL_FLAG(int, repeats, 5, "runs per mode (the median is reported)");
ABSL_FLAG(std::vector<std::string>, segment_tokens, {},
          "scored streaming: also run k = 1 and k = 4 with these segment lengths (e.g. 16,32,64), single requests");
ABSL_FLAG(int, concurrency, 4, "requests of the concurrent modes");
ABSL_FLAG(int, threads, llama::CpuBackendOptions().num_threads, "CPU backend threads (0: all cores)");
ABSL_FLAG(bool, enable_prefix_caching, llama::SchedulerConfig().enable_prefix_caching,
          "reuse KV blocks of common prefixes (every run here sends the same dialog: with it on, repeats find the "
          "dialog cached in the policy and the reward model)");
ABSL_FLAG(int, max_num_batched_tokens, llama::SchedulerConfig().max_num_batched_tokens,
          "the policy's step budget, and the reward step's");

namespace llama {
namespace {

std::vector<int> ParseInts(const std::vector<std::string>& values) {
  std::vector<int> out;
  for (const std::string& v : values) {
    int x = 0;
    CHECK(absl::SimpleAtoi(v, &x) && x >= 0);
    out.push_back(x);
  }
  return out;
}

struct Args {
  std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  std::string rm_dir = absl::GetFlag(FLAGS_rm_dir);
  std::string rm_weights_dtype = absl::GetFlag(FLAGS_rm_weights_dtype);
  std::string rm_kv_dtype = absl::GetFlag(FLAGS_rm_kv_dtype);
  int max_tokens = absl::GetFlag(FLAGS_max_tokens);
  int repeats = absl::GetFlag(FLAGS_repeats);
  int concurrency = absl::GetFlag(FLAGS_concurrency);
  int num_threads = absl::GetFlag(FLAGS_threads);
  int max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  std::vector<int> segment_tokens = ParseInts(absl::GetFlag(FLAGS_segment_tokens));
};

class WaitSink : public RequestSink {
 public:
  void OnTokens(absl::Span<const int32_t>, std::string_view) override {}
  void OnFinish(const FinishInfo& info) override {
    info_ = info;
    done_.Notify();
  }
  FinishInfo Wait() {
    done_.WaitForNotification();
    return info_;
  }

 private:
  absl::Notification done_;
  FinishInfo info_;  // written before Notify
};

// Sums reward-model Forward time and tracks peak KV use (engine thread writes, bench thread reads between runs).
class Probe : public StepObserver {
 public:
  // One reward Forward: its wall time and the tokens it computed (counted here, before the request it finishes
  // is reported, so a run's last reward step is never missed).
  void AddRewardForward(double s, int num_tokens) {
    absl::MutexLock lock(&mu_);
    reward_s_ += s;
    reward_tokens_ += num_tokens;
  }
  void OnStep(const StepStats& s) override {
    absl::MutexLock lock(&mu_);
    peak_blocks_ = std::max(peak_blocks_, s.kv_blocks_used);
  }
  void Reset() {
    absl::MutexLock lock(&mu_);
    reward_s_ = 0;
    peak_blocks_ = 0;
    reward_tokens_ = 0;
  }
  int64_t reward_tokens() { absl::MutexLock lock(&mu_); return reward_tokens_; }
  double reward_s() { absl::MutexLock lock(&mu_); return reward_s_; }
  int peak_blocks() { absl::MutexLock lock(&mu_); return peak_blocks_; }

 private:
  absl::Mutex mu_;
  double reward_s_ = 0;
  int peak_blocks_ = 0;
  int64_t reward_tokens_ = 0;  // reward-model tokens computed (not taken from its prefix cache)
};

struct RunStats {
  double e2e_s = 0, wall_s = 0, reward_s = 0, ttft_s = 0;
  int peak_blocks = 0;
  int64_t reward_tokens = 0;
  int64_t tokens = 0;  // generated over all candidates
};

// Submits n identical-shape requests at once (k candidates each) and waits for all.
RunStats RunOnce(EngineLoop& loop, Probe& probe, const std::vector<int32_t>& prompt, int n, int k, const Args& a,
                 uint64_t* next_id, int segment_tokens = 0) {
  probe.Reset();
  std::vector<std::shared_ptr<WaitSink>> sinks;
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = (*next_id)++;
    r.prompt_tokens = prompt;
    r.num_candidates = k;
    r.segment_tokens = segment_tokens;
    r.max_tokens = a.max_tokens;
    r.ignore_eos = true;  // every candidate generates exactly max_tokens: k = 1 and k = 4 do the same work per seq
    r.sampling.temperature = 1.0f;
    r.seed = 1000 + i;
    r.arrival = absl::Now();
    sinks.push_back(std::make_shared<WaitSink>());
    CHECK_OK(loop.Submit(std::move(r), sinks.back()));
  }
  RunStats s;
  for (auto& sink : sinks) {
    const FinishInfo info = sink->Wait();
    CHECK_OK(info.status);
    s.e2e_s += info.total_time_s / n;
    s.ttft_s += info.time_to_first_token_s / n;
  }
  s.wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  s.reward_s = probe.reward_s();
  s.peak_blocks = probe.peak_blocks();
  s.reward_tokens = probe.reward_tokens();
  s.tokens = static_cast<int64_t>(n) * k * a.max_tokens;
  return s;
}

RunStats Median(std::vector<RunStats> runs) {
  std::sort(runs.begin(), runs.end(), [](const RunStats& x, const RunStats& y) { return x.e2e_s < y.e2e_s; });
  return runs[runs.size() / 2];
}

// The reward model's backend, timed: every Forward's wall time goes to the probe.
class TimedBackend : public Backend {
 public:
  TimedBackend(std::unique_ptr<Backend> inner, Probe* probe) : inner_(std::move(inner)), probe_(probe) {}
  const ModelConfig& config() const override { return inner_->config(); }
  const KvCacheSpec& kv_cache() const override { return inner_->kv_cache(); }
  std::string name() const override { return inner_->name(); }
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override {
    const absl::Time start = absl::Now();
    absl::Status status = inner_->Forward(input, output);
    probe_->AddRewardForward(absl::ToDoubleSeconds(absl::Now() - start), input.num_tokens());
    return status;
  }

 private:
  std::unique_ptr<Backend> inner_;
  Probe* probe_;
};

std::unique_ptr<Backend> Cpu(ModelWeights w, int threads, int num_blocks) {
  CpuBackendOptions o;
  o.num_threads = threads;
  o.num_blocks = num_blocks;
  auto b = CpuBackend::Create(std::move(w), o);
  CHECK_OK(b.status());
  return std::move(*b);
}

// The benchmark's dialog; `run` numbers its system prompt so every run has a prompt of its own.
std::vector<int32_t> PromptFor(const Tokenizer& tokenizer, int run) {
  const std::vector<Message> dialog = {
      {Role::kSystem,
       absl::StrCat("Session ", run, ". You are a helpful assistant who tells short, kind stories for children.")},
      {Role::kUser, "Please tell me a story about a little dog who is afraid of the rain, and how a friend helps."}};
  return BuildChatPrompt(tokenizer, dialog)->token_ids;
}

int Main() {
  const Args a;  // from the flags
  if (a.max_tokens < 1 || a.repeats < 1 || a.concurrency < 1) {
    std::fprintf(stderr, "rejection_sampling_bench: --max_tokens, --repeats and --concurrency must be >= 1\n");
    return 2;
  }
  auto tokenizer = LoadModelTokenizer(a.model_dir);
  auto policy_weights = LoadModelWeights(a.model_dir);
  CHECK_OK(tokenizer.status());
  CHECK_OK(policy_weights.status());
  const int ctx = policy_weights->config.max_position_embeddings;
  std::unique_ptr<Backend> policy = Cpu(std::move(*policy_weights), a.num_threads, 512);
  Probe probe;
  // The engine's reward steps get KV for 4 · concurrency full-context sequences; one more for direct calls.
  const int blocks_per_seq = (ctx + kDefaultBlockSize - 1) / kDefaultBlockSize;  // the CPU backends' block size
  RewardModelOptions rm_options;
  rm_options.engine_kv_blocks = 4 * a.concurrency * blocks_per_seq;
  CpuBackendOptions rm_cpu;
  rm_cpu.num_threads = a.num_threads;
  rm_cpu.num_blocks = rm_options.engine_kv_blocks + blocks_per_seq;
  auto rm_weights_dtype = ParseWeightsDtype(a.rm_weights_dtype, "--rm_weights_dtype");
  auto rm_kv_dtype = ParseKvDtype(a.rm_kv_dtype);
  CHECK_OK(rm_weights_dtype.status());
  CHECK_OK(rm_kv_dtype.status());
  rm_cpu.weights_dtype = *rm_weights_dtype;
  rm_cpu.kv_dtype = *rm_kv_dtype;
  const absl::Time rm_start = absl::Now();
  auto rm = RewardModel::Load(
      a.rm_dir,
      [&](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
        ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> b, CpuBackend::Create(source, rm_cpu));
        return std::unique_ptr<Backend>(std::make_unique<TimedBackend>(std::move(b), &probe));
      },
      rm_options);
  CHECK_OK(rm.status());
  std::printf("reward model: %s weights, %s KV, loaded in %.3f s\n", a.rm_weights_dtype.c_str(),
              a.rm_kv_dtype.c_str(), absl::ToDoubleSeconds(absl::Now() - rm_start));
  RewardSelector selector(rm->get(), nullptr, tokenizer->get(), {});
  const std::vector<int32_t> prompt = PromptFor(**tokenizer, 0);
  int run = 0;
  std::printf("policy %s, reward model %s, prompt %zu tokens, output %d tokens/candidate, %d threads\n",
              a.model_dir.c_str(), a.rm_dir.c_str(), prompt.size(), a.max_tokens,
              static_cast<CpuBackend*>(policy.get())->num_threads());

  uint64_t next_id = 1;
  struct Mode { std::string name; bool rm; int n; int k; int segment_tokens = 0; };
  std::vector<Mode> modes = {{"k=1, no RM (streamed)", false, 1, 1}, {"k=1 + RM", true, 1, 1},
                             {"k=4 + RM", true, 1, 4}};
  for (int k : {1, 4}) {
    for (int st : a.segment_tokens) modes.push_back({absl::StrCat("k=", k, " + RM, S=", st), true, 1, k, st});
  }
  modes.push_back({"concurrent k=1 + RM", true, a.concurrency, 1});
  modes.push_back({"concurrent k=4 + RM", true, a.concurrency, 4});
  std::printf("%-24s %-4s %-10s %-10s %-10s %-12s %-12s %-10s %-12s %-10s\n", "mode", "n", "ttft_s", "e2e_s",
              "wall_s", "gen_tok/s", "reward_share", "peak_blocks", "rm_tok/gen", "rm_s");
  for (const Mode& m : modes) {
    FirstCandidateSelector first;
    EngineLoopOptions options;
    options.scheduler.max_num_batched_tokens = a.max_num_batched_tokens;
    options.scheduler.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
    options.model_source = a.model_dir;
    EngineLoop loop(policy.get(), tokenizer->get(), options);
    loop.SetCandidateSelector(m.rm ? static_cast<CandidateSelector*>(&selector) : &first);
    loop.AddObserver(&probe);
    loop.Start();
    // Each run's dialog is its own (a numbered system prompt), so no run is served from an earlier one's prefix
    // cache; within a run the caches work as in serving (scored streaming's incremental scoring relies on them).
    RunOnce(loop, probe, PromptFor(**tokenizer, 0), m.n, m.k, a, &next_id, m.segment_tokens);  // warm-up
    std::vector<RunStats> runs;
    for (int r = 0; r < a.repeats; ++r) {
      runs.push_back(RunOnce(loop, probe, PromptFor(**tokenizer, ++run), m.n, m.k, a, &next_id, m.segment_tokens));
    }
    loop.Stop();
    const RunStats s = Median(runs);
    std::printf("%-24s %-4d %-10.3f %-10.3f %-10.3f %-12.1f %-12.3f %-10d %-12.2f %-10.4f\n", m.name.c_str(), m.n,
                s.ttft_s, s.e2e_s, s.wall_s, s.tokens / s.wall_s, s.reward_s / s.wall_s, s.peak_blocks,
                static_cast<double>(s.reward_tokens) / s.tokens, s.reward_s);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("rejection_sampling_bench [--model_dir DIR] [--rm_dir DIR] [...]");
  absl::ParseCommandLine(argc, argv);
  return llama::Main();
}
