// Prefix caching through the EngineLoop on the CPU backend, on against off (alternating runs, medians):
//
//  1. Multi-turn chat: time to first token of turns 1..N of one conversation, each turn = the previous prompt + the
//     model's answer + EOS + a new user turn of ~--turn_tokens tokens (BOS "[INST] ... [/INST]", the LLaMA 2-Chat
//     layout, built on the token ids so the answer is carried exactly as generated). stories15M's context is 256
//     tokens, so this part runs a random-weights model of stories15M's shape with --context positions (2048).
//  2. Shared system prompt: --requests requests at once, each a --system_tokens system prompt + a short distinct
//     user part, on stories15M: generated tokens/s and prompt tokens computed.
//
//   prefix_cache_bench [--model_dir models/stories15M] [--turns 8] [--turn_tokens 150] [--answer_tokens 32]
//                      [--context 2048] [--requests 32] [--system_tokens 200] [--repeats 3] [--threads 0]
//                      [--hidden_size H --intermediate_size I --num_layers L --num_heads N] [--skip_shared_prompt]
// (the shape flags widen part 1's random model: attention over a long context costs less next to its matmuls).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"
#include "scheduler/engine_loop.h"

ABSL_FLAG(std::string, model_dir, "models/stories15M", "model directory (weights for part 2, shape and tokenizer)");
ABSL_FLAG(int, turns, 8, "turns of the conversation (part 1)");
ABSL_FLAG(int, turn_tokens, 150, "tokens of each new user turn (part 1)");
ABSL_FLAG(int, answer_tokens, 32, "tokens of each answer (EOS ignored)");
ABSL_FLAG(int, context, 2048, "max_position_embeddings of the random-weights model of part 1");
ABSL_FLAG(int, hidden_size, 0, "part 1's model: hidden size (0: the model's); with --num_heads, --intermediate_size");
ABSL_FLAG(int, intermediate_size, 0, "part 1's model: FFN size (0: the model's)");
ABSL_FLAG(int, num_layers, 0, "part 1's model: layers (0: the model's)");
ABSL_FLAG(int, num_heads, 0, "part 1's model: attention heads = KV heads (0: the model's)");
ABSL_FLAG(bool, skip_shared_prompt, false, "run part 1 only");
ABSL_FLAG(bool, compare_uncached, true, "part 1: also run every conversation with caching off");
ABSL_FLAG(int, requests, 32, "concurrent requests sharing the system prompt (part 2)");
ABSL_FLAG(int, system_tokens, 200, "tokens of the shared system prompt, BOS included (part 2)");
ABSL_FLAG(int, repeats, 3, "runs per mode (alternating on/off; medians are reported)");
ABSL_FLAG(int, threads, llama::CpuBackendOptions().num_threads, "CPU backend threads (0: all cores)");

namespace llama {
namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Words of a story, cycled: text of any length for user turns and system prompts.
std::vector<int32_t> TextTokens(const Tokenizer& tokenizer, int num_tokens, int variant) {
  static const char* kWords[] = {"the", "little", "dog", "ran", "to", "a", "big", "park", "and", "saw", "many",
                                 "birds", "in", "old", "trees", "while", "his", "friend", "Lily", "sang", "happy",
                                 "songs", "about", "sun", "rain", "flowers", "boats", "on", "blue", "river"};
  constexpr int kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::string text = absl::StrCat("Question ", variant, ":");
  std::vector<int32_t> ids;
  for (int i = 0; static_cast<int>(ids.size()) < num_tokens; ++i) {
    absl::StrAppend(&text, " ", kWords[(i * 7 + variant * 3) % kNumWords]);
    ids = tokenizer.Encode(text);
  }
  ids.resize(num_tokens);
  return ids;
}

// One request at a time: its tokens, the FinishInfo, and the process CPU time when its first token came (on a
// shared machine wall-clock TTFT mostly measures the other tenants; CPU time from submit to first token is what the
// prefill cost, since nothing else runs in the process meanwhile).
class TurnSink : public RequestSink {
 public:
  void OnTokens(absl::Span<const int32_t> ids, std::string_view) override {
    absl::MutexLock lock(&mu_);
    if (ids_.empty()) first_token_clock_ = std::clock();
    ids_.insert(ids_.end(), ids.begin(), ids.end());
  }
  void OnFinish(const FinishInfo& info) override {
    {
      absl::MutexLock lock(&mu_);
      info_ = info;
    }
    done_.Notify();
  }
  void Wait() { done_.WaitForNotification(); }
  std::vector<int32_t> ids() const { absl::MutexLock lock(&mu_); return ids_; }
  FinishInfo info() const { absl::MutexLock lock(&mu_); return info_; }
  std::clock_t first_token_clock() const { absl::MutexLock lock(&mu_); return first_token_clock_; }

 private:
  mutable absl::Mutex mu_;
  std::clock_t first_token_clock_ = 0;
  std::vector<int32_t> ids_;
  FinishInfo info_;
  absl::Notification done_;
};

struct TurnResult {
  int prompt_tokens = 0;
  int computed_prompt_tokens = 0;
  double ttft_s = 0;      // wall clock, arrival → first token
  double ttft_cpu_s = 0;  // process CPU time, submit → first token
};

// One conversation of `turns` turns on a fresh loop.
absl::StatusOr<std::vector<TurnResult>> Conversation(Backend* backend, const Tokenizer& tokenizer, bool caching, int turns,
                                     int turn_tokens, int answer_tokens) {
  EngineLoopOptions options;
  options.scheduler.enable_prefix_caching = caching;
  options.model_source = "dummy:prefix_cache_bench:1";  // random weights, seed 1
  EngineLoop loop(backend, &tokenizer, options);
  loop.Start();
  std::vector<int32_t> prompt;
  std::vector<TurnResult> results;
  for (int t = 0; t < turns; ++t) {
    prompt.push_back(tokenizer.bos_id());
    for (int32_t id : tokenizer.Encode("[INST]")) prompt.push_back(id);
    for (int32_t id : TextTokens(tokenizer, turn_tokens, t)) prompt.push_back(id);
    for (int32_t id : tokenizer.Encode("[/INST]")) prompt.push_back(id);
    GenerationRequest r;
    r.id = static_cast<uint64_t>(t + 1);
    r.prompt_tokens = prompt;
    r.sampling.temperature = 0;
    r.max_tokens = answer_tokens;
    r.ignore_eos = true;
    auto sink = std::make_shared<TurnSink>();
    r.arrival = absl::Now();
    const std::clock_t submitted = std::clock();
    if (absl::Status s = loop.Submit(std::move(r), sink); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("turn ", t + 1, ": ", s.message()));
    }
    sink->Wait();
    const FinishInfo info = sink->info();
    results.push_back({static_cast<int>(prompt.size()), info.computed_prompt_tokens, info.time_to_first_token_s,
                       static_cast<double>(sink->first_token_clock() - submitted) / CLOCKS_PER_SEC});
    for (int32_t id : sink->ids()) prompt.push_back(id);
    prompt.push_back(tokenizer.eos_id());
  }
  loop.Stop();
  return results;
}

int MultiTurn(const Tokenizer& tokenizer, const ModelConfig& shape, int num_threads) {
  const int turns = absl::GetFlag(FLAGS_turns), turn_tokens = absl::GetFlag(FLAGS_turn_tokens);
  const int answer_tokens = absl::GetFlag(FLAGS_answer_tokens), repeats = absl::GetFlag(FLAGS_repeats);
  ModelConfig config = shape;
  config.max_position_embeddings = absl::GetFlag(FLAGS_context);
  if (int h = absl::GetFlag(FLAGS_hidden_size); h > 0) config.hidden_size = h;
  if (int i = absl::GetFlag(FLAGS_intermediate_size); i > 0) config.intermediate_size = i;
  if (int l = absl::GetFlag(FLAGS_num_layers); l > 0) config.num_hidden_layers = l;
  if (int n = absl::GetFlag(FLAGS_num_heads); n > 0) config.num_attention_heads = config.num_key_value_heads = n;
  if (absl::Status valid = config.Validate(); !valid.ok()) {
    std::fprintf(stderr, "%s\n", valid.ToString().c_str());
    return 1;
  }
  CpuBackendOptions options;
  options.num_threads = num_threads;
  auto backend = CpuBackend::Create(MakeRandomWeights(config, /*seed=*/1), options);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  std::printf("== multi-turn chat: random weights, hidden %d, FFN %d, %d layers, %d heads, %d positions; %d turns of "
              "%d new user tokens + %d-token answers (greedy), %d threads, %d repeats (on/off alternating)\n",
              config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
              config.max_position_embeddings, turns, turn_tokens, answer_tokens, (*backend)->num_threads(), repeats);
  std::vector<std::vector<double>> ttft_on(turns), ttft_off(turns), cpu_on(turns), cpu_off(turns);
  std::vector<TurnResult> last_on, last_off;
  const bool compare = absl::GetFlag(FLAGS_compare_uncached);
  for (int r = 0; r < repeats; ++r) {
    for (bool caching : {r % 2 == 0, r % 2 != 0}) {
      if (!caching && !compare) continue;
      absl::StatusOr<std::vector<TurnResult>> conversation =
          Conversation(backend->get(), tokenizer, caching, turns, turn_tokens, answer_tokens);
      if (!conversation.ok()) {
        std::fprintf(stderr, "%s\n", conversation.status().ToString().c_str());
        return 1;
      }
      const std::vector<TurnResult>& run = *conversation;
      for (int t = 0; t < turns; ++t) {
        (caching ? ttft_on : ttft_off)[t].push_back(run[t].ttft_s);
        (caching ? cpu_on : cpu_off)[t].push_back(run[t].ttft_cpu_s);
      }
      (caching ? last_on : last_off) = run;
    }
  }
  std::printf("%-5s %-7s | %-9s %-8s %-8s | %-9s %-8s %-8s | %s\n", "turn", "prompt", "on:comp", "ttft_ms",
              "cpu_ms", "off:comp", "ttft_ms", "cpu_ms", "off/on ttft");
  if (!compare) {  // nothing measured off: print the on columns only
    for (int t = 0; t < turns; ++t) {
      ttft_off[t] = cpu_off[t] = {0.0};
      if (last_off.size() < last_on.size()) last_off.push_back(TurnResult{});
    }
  }
  for (int t = 0; t < turns; ++t) {
    const double on = Median(ttft_on[t]), off = Median(ttft_off[t]);
    std::printf("%-5d %-7d | %-9d %-8.1f %-8.1f | %-9d %-8.1f %-8.1f | %.2f\n", t + 1, last_on[t].prompt_tokens,
                last_on[t].computed_prompt_tokens, on * 1e3, Median(cpu_on[t]) * 1e3,
                last_off[t].computed_prompt_tokens, off * 1e3, Median(cpu_off[t]) * 1e3, off / on);
  }
  const int last = turns - 1;
  std::printf("turn %d / turn 1 TTFT, caching on: %.2f wall, %.2f CPU (goal <= 1.3); off: %.2f wall, %.2f CPU\n",
              turns, Median(ttft_on[last]) / Median(ttft_on[0]), Median(cpu_on[last]) / Median(cpu_on[0]),
              Median(ttft_off[last]) / Median(ttft_off[0]), Median(cpu_off[last]) / Median(cpu_off[0]));
  std::fflush(stdout);
  return 0;
}

int SharedSystemPrompt(const Tokenizer& tokenizer, const std::string& model_dir, int num_threads) {
  const int n = absl::GetFlag(FLAGS_requests), system_tokens = absl::GetFlag(FLAGS_system_tokens);
  const int answer_tokens = absl::GetFlag(FLAGS_answer_tokens), repeats = absl::GetFlag(FLAGS_repeats);
  auto weights = LoadModelWeights(model_dir);
  if (!weights.ok()) {
    std::fprintf(stderr, "%s\n", weights.status().ToString().c_str());
    return 1;
  }
  CpuBackendOptions options;
  options.num_threads = num_threads;
  auto backend = CpuBackend::Create(std::move(*weights), options);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  std::vector<int32_t> system = {tokenizer.bos_id()};
  for (int32_t id : TextTokens(tokenizer, system_tokens - 1, 1000)) system.push_back(id);
  auto requests = [&] {
    std::vector<GenerationRequest> out;
    for (int i = 0; i < n; ++i) {
      GenerationRequest r;
      r.id = static_cast<uint64_t>(i + 1);
      r.prompt_tokens = system;
      for (int32_t id : TextTokens(tokenizer, 12, i)) r.prompt_tokens.push_back(id);
      r.sampling.temperature = 0;
      r.max_tokens = answer_tokens;
      r.ignore_eos = true;
      out.push_back(std::move(r));
    }
    return out;
  };
  std::printf("== shared system prompt: %s, %d requests at once, %d-token system prompt + 12 own tokens, "
              "%d-token answers, %d threads, %d repeats (on/off alternating)\n",
              model_dir.c_str(), n, system_tokens, answer_tokens, (*backend)->num_threads(), repeats);
  std::vector<double> rate[2], cpu_rate[2], ttft[2];
  int64_t computed[2] = {0, 0};
  for (int r = 0; r < repeats; ++r) {
    for (bool caching : {r % 2 == 0, r % 2 != 0}) {
      EngineLoopOptions loop;
      loop.scheduler.enable_prefix_caching = caching;
      loop.model_source = model_dir;
      const std::clock_t cpu_start = std::clock();
      auto result = RunBatch(backend->get(), &tokenizer, loop, requests());
      if (!result.ok()) {
        std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
        return 1;
      }
      const double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
      rate[caching].push_back(result->num_generated_tokens / result->wall_s);
      cpu_rate[caching].push_back(result->num_generated_tokens / cpu_s);
      double sum_ttft = 0;
      computed[caching] = 0;
      for (const FinishInfo& info : result->finish) {
        sum_ttft += info.time_to_first_token_s;
        computed[caching] += info.computed_prompt_tokens;
      }
      ttft[caching].push_back(sum_ttft / n);
    }
  }
  // Tokens per CPU-second (process CPU time, all threads): on a shared machine wall-clock rates mostly measure
  // the other tenants.
  std::printf("%-8s %-16s %-20s %-18s %-14s\n", "caching", "generated tok/s", "generated tok/cpu-s",
              "prompt computed", "mean ttft_ms");
  for (int c : {1, 0}) {
    std::printf("%-8s %-16.1f %-20.1f %-18lld %-14.1f\n", c ? "on" : "off", Median(rate[c]), Median(cpu_rate[c]),
                static_cast<long long>(computed[c]), Median(ttft[c]) * 1e3);
  }
  std::printf("on/off throughput %.2f (per CPU-second %.2f), mean TTFT off/on %.2f\n",
              Median(rate[1]) / Median(rate[0]), Median(cpu_rate[1]) / Median(cpu_rate[0]),
              Median(ttft[0]) / Median(ttft[1]));
  std::fflush(stdout);
  return 0;
}

int Main() {
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  auto tokenizer = Tokenizer::Load(model_dir + "/tokenizer.model");
  auto config = LoadModelConfig(model_dir);
  if (!tokenizer.ok() || !config.ok()) {
    std::fprintf(stderr, "cannot load %s\n", model_dir.c_str());
    return 1;
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  if (int rc = MultiTurn(**tokenizer, *config, threads); rc != 0) return rc;
  if (absl::GetFlag(FLAGS_skip_shared_prompt)) return 0;
  return SharedSystemPrompt(**tokenizer, model_dir, threads);
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("prefix_cache_bench [--model_dir DIR] [--turns 8] [--turn_tokens 150] [...]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_turns) < 1 || absl::GetFlag(FLAGS_turn_tokens) < 1 || absl::GetFlag(FLAGS_repeats) < 1 ||
      absl::GetFlag(FLAGS_requests) < 1 || absl::GetFlag(FLAGS_system_tokens) < 2 ||
      absl::GetFlag(FLAGS_answer_tokens) < 1) {
    std::fprintf(stderr, "prefix_cache_bench: every count must be >= 1 (system_tokens >= 2)\n");
    return 2;
  }
  return llama::Main();
}
