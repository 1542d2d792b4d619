// Aggregate generation throughput through the EngineLoop on the CPU backend: N concurrent sequences with fixed
// prompt and output lengths (EOS ignored), for each N in --concurrency. Prints generated tokens/s per run and the
// median over --repeats runs. Continuous batching pays off when the backend reads the weights once per step for
// all sequences: tokens/s should grow with N until compute, not memory bandwidth, is the limit.
//
//   throughput_bench --model_dir models/stories15M [--concurrency 1,4,16,64] [--prompt_tokens 32]
//                    [--max_tokens 128] [--repeats 3] [--threads 0] [--weights_dtype f32|bf16|q8_0]
//                    [--dummy_weights SHAPE]     (--help for every flag)
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/dummy_weight_source.h"
#include "engine/model/model_source.h"
#include "engine/model/weights.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"

ABSL_FLAG(std::string, model_dir, "models/stories15M", "model directory or GGUF file");
ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"1", "4", "16", "64"}),
          "concurrent sequences of each run, comma-separated");
ABSL_FLAG(int, prompt_tokens, 32, "prompt length of every sequence");
ABSL_FLAG(int, max_tokens, 128, "tokens generated per sequence (EOS ignored)");
ABSL_FLAG(int, repeats, 3, "runs per concurrency (the median is reported)");
ABSL_FLAG(int, threads, llama::CpuBackendOptions().num_threads, "CPU backend threads (0: all cores)");
ABSL_FLAG(std::string, kv_dtype, "f32", "CPU KV cache element type: f32, f16 or bf16");
ABSL_FLAG(std::string, weights_dtype, "f32", "CPU backend weight storage: f32, bf16 or q8_0");
ABSL_FLAG(std::string, dummy_weights, "",
          "dummy weights of this named shape (llama-2-7b, tinyllama-1.1b, ...; vocab 32000) instead of --model_dir's; "
          "the tokenizer still comes from --model_dir");
ABSL_FLAG(bool, enable_prefix_caching, llama::SchedulerConfig().enable_prefix_caching,
          "reuse KV blocks of common prompt prefixes (the prompts here share none)");

namespace llama {
namespace {

struct Args {
  std::string model_dir;
  std::vector<int> concurrency;
  int prompt_tokens;
  int max_tokens;
  int repeats;
  int num_threads;
  KvDtype kv_dtype = KvDtype::kF32;
};

absl::StatusOr<Args> ArgsFromFlags() {
  Args args{absl::GetFlag(FLAGS_model_dir), {}, absl::GetFlag(FLAGS_prompt_tokens), absl::GetFlag(FLAGS_max_tokens),
            absl::GetFlag(FLAGS_repeats), absl::GetFlag(FLAGS_threads)};
  for (const std::string& part : absl::GetFlag(FLAGS_concurrency)) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--concurrency: '", part, "' is not a positive integer"));
    }
    args.concurrency.push_back(n);
  }
  ASSIGN_OR_RETURN(args.kv_dtype, ParseKvDtype(absl::GetFlag(FLAGS_kv_dtype)));
  if (args.concurrency.empty() || args.prompt_tokens < 1 || args.max_tokens < 1 || args.repeats < 1) {
    return absl::InvalidArgumentError("--concurrency, --prompt_tokens, --max_tokens and --repeats must be >= 1");
  }
  return args;
}

// n prompts of exactly prompt_tokens ids (BOS + a story opening, repeated/truncated), each a little different.
std::vector<GenerationRequest> MakeRequests(const Tokenizer& tokenizer, int n, const Args& args) {
  const std::vector<int32_t> text = tokenizer.Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
      "friends. One day, she saw a big red ball under a tree and wanted to play with it.");
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = static_cast<uint64_t>(i + 1);
    r.prompt_tokens.push_back(tokenizer.bos_id());
    for (int j = 0; static_cast<int>(r.prompt_tokens.size()) < args.prompt_tokens; ++j) {
      r.prompt_tokens.push_back(text[(i + j) % text.size()]);
    }
    r.sampling.temperature = 0;
    r.max_tokens = args.max_tokens;
    r.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

int Main(const Args& args) {
  auto tokenizer = LoadModelTokenizer(args.model_dir);
  const std::string dummy = absl::GetFlag(FLAGS_dummy_weights);
  absl::StatusOr<std::unique_ptr<WeightSource>> source = OpenWeightSource(args.model_dir);
  if (!dummy.empty()) {
    auto d = DummyWeightSource::Create(dummy, 1);
    source = d.ok() ? absl::StatusOr<std::unique_ptr<WeightSource>>(std::move(*d)) : d.status();
  }
  auto dtype = ParseWeightsDtype(absl::GetFlag(FLAGS_weights_dtype));
  if (!tokenizer.ok() || !source.ok() || !dtype.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", args.model_dir.c_str(),
                 (!tokenizer.ok() ? tokenizer.status() : !source.ok() ? source.status() : dtype.status())
                     .ToString().c_str());
    return 1;
  }
  const int max_n = *std::max_element(args.concurrency.begin(), args.concurrency.end());
  CpuBackendOptions options;
  options.num_threads = args.num_threads;
  options.kv_dtype = args.kv_dtype;
  // Room for every sequence at once: the benchmark measures batching, not preemption.
  options.num_blocks = max_n * ((args.prompt_tokens + args.max_tokens + options.block_size - 1) / options.block_size);
  options.weights_dtype = *dtype;
  auto backend = CpuBackend::Create(**source, options);
  source->reset();
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  std::printf("model %s, %s weights (%.1f MB, %s kernels), prompt %d tokens, output %d tokens, %d threads, %d KV "
              "blocks of %s\n", dummy.empty() ? args.model_dir.c_str() : ("dummy " + dummy).c_str(),
              WeightsDtypeName(*dtype), (*backend)->weight_bytes() / 1e6, CpuBackend::isa_name(), args.prompt_tokens,
              args.max_tokens, (*backend)->num_threads(), options.num_blocks, KvDtypeName(args.kv_dtype));
  // tokens per CPU-second (process CPU time, all threads) is reported too: on a shared machine wall-clock
  // throughput mostly measures the other tenants, while CPU time per token shows what batching saves.
  std::printf("%-12s %-8s %-28s %-16s %s\n", "concurrency", "steps", "tokens/s per run", "median tokens/s",
              "median tokens/cpu-s");
  for (int n : args.concurrency) {
    EngineLoopOptions loop_options;
    loop_options.scheduler.max_num_seqs = std::max(n, 1);
    loop_options.scheduler.max_num_batched_tokens = std::max(loop_options.scheduler.max_num_batched_tokens, n);
    loop_options.scheduler.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
    loop_options.model_source = args.model_dir;
    std::vector<double> rates;
    std::vector<double> cpu_rates;
    std::string runs;
    int64_t steps = 0;
    for (int r = 0; r < args.repeats; ++r) {
      const std::clock_t cpu_start = std::clock();
      auto result = RunBatch(backend->get(), tokenizer->get(), loop_options, MakeRequests(**tokenizer, n, args));
      if (!result.ok()) {
        std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
        return 1;
      }
      rates.push_back(result->num_generated_tokens / result->wall_s);
      const double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
      cpu_rates.push_back(result->num_generated_tokens / cpu_s);
      steps = result->snapshot.num_steps;
      runs += std::to_string(static_cast<int>(rates.back())) + " ";
    }
    std::printf("%-12d %-8lld %-28s %-16.1f %.1f\n", n, static_cast<long long>(steps), runs.c_str(),
                Median(rates), Median(cpu_rates));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("throughput_bench [--model_dir DIR] [--concurrency 1,4,16,64] [...]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<llama::Args> args = llama::ArgsFromFlags();
  if (!args.ok()) {
    std::fprintf(stderr, "throughput_bench: %s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  return llama::Main(*args);
}
