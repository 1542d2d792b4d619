// Host cost of one engine step's bookkeeping with many running sequences: Schedule (admission, budget, block
// appends), BuildForwardInput (the ragged batch) and Update (progress, sampled tokens). No backend: this is the
// overhead continuous batching adds per step, which must stay far below a forward pass (tens of microseconds).
// The second argument turns prefix caching off (0) or on (1, the default): with it a step also hashes and registers
// blocks that fill (here every sequence says the same, so each filled block is found registered and shared).
#include <benchmark/benchmark.h>

#include <memory>
#include <numeric>
#include <vector>

#include "scheduler/forward_input_builder.h"
#include "scheduler/scheduler.h"

namespace llama {
namespace {

constexpr int kBlockSize = 16;
constexpr int kPromptTokens = 64;
constexpr int kMaxDecodeSteps = 1024;  // sequences are rebuilt before they grow past this

// A scheduler with `num_seqs` sequences that have finished their prompts and decode one token per step.
std::unique_ptr<Scheduler> DecodingScheduler(int num_seqs, bool prefix_caching) {
  SchedulerConfig config;
  config.enable_prefix_caching = prefix_caching;
  config.max_num_seqs = num_seqs;
  config.max_num_batched_tokens = std::max(512, num_seqs);
  // Room for the warm-up's decode steps too (early sequences decode while later ones are admitted).
  config.max_model_len = kPromptTokens + 2 * kMaxDecodeSteps;
  const int blocks_per_seq = (config.max_model_len + kBlockSize - 1) / kBlockSize;
  auto scheduler = std::make_unique<Scheduler>(config, num_seqs * blocks_per_seq, kBlockSize);
  std::vector<int32_t> prompt(kPromptTokens);
  std::iota(prompt.begin(), prompt.end(), 1);
  for (int i = 0; i < num_seqs; ++i) scheduler->AddRequest(i, prompt, SamplingParams{}, i, 1);
  while (true) {
    SchedulerPlan plan = scheduler->Schedule();
    scheduler->Update(plan, std::vector<int32_t>(plan.num_samples(), 7));
    if (scheduler->num_waiting() == 0 && plan.num_prefill_tokens == 0) break;
  }
  return scheduler;
}

template <bool kBuildInput>
void BM_Step(benchmark::State& state) {
  const int num_seqs = static_cast<int>(state.range(0));
  const bool prefix_caching = state.range(1) != 0;
  std::unique_ptr<Scheduler> scheduler = DecodingScheduler(num_seqs, prefix_caching);
  std::vector<int32_t> sampled(num_seqs, 42);
  int steps = 0;
  for (auto _ : state) {
    if (++steps == kMaxDecodeSteps - 8) {
      state.PauseTiming();
      scheduler.reset();
      scheduler = DecodingScheduler(num_seqs, prefix_caching);
      steps = 0;
      state.ResumeTiming();
    }
    SchedulerPlan plan = scheduler->Schedule();
    if (kBuildInput) {
      ForwardInput input = BuildForwardInput(plan);
      benchmark::DoNotOptimize(input.slot_mapping.data());
    }
    scheduler->Update(plan, sampled);
    if (!plan.preempted.empty()) state.SkipWithError("preempted: the pool is too small");
  }
  state.counters["seqs"] = num_seqs;
  state.counters["prefix_caching"] = prefix_caching;
}

// Schedule + Update only.
BENCHMARK(BM_Step<false>)->ArgsProduct({{16, 64, 256}, {0, 1}})->Unit(benchmark::kMicrosecond);
// Schedule + BuildForwardInput + Update: everything the engine thread does per step besides Forward.
BENCHMARK(BM_Step<true>)->ArgsProduct({{16, 64, 256}, {0, 1}})->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace llama

BENCHMARK_MAIN();
